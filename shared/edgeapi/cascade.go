package edgeapi

import (
	wire "github.com/meridian-video/meridian/shared/signal"
)

// Cascade leg protocol (edge ↔ edge, JSON frames in a wire.Envelope over a
// WebSocket at GET /internal/v1/cascade). The downstream edge D dials the
// upstream edge U to receive U's local participants and tracks:
//
//	U → D  challenge {nonce}
//	D → U  hello     {ticket, roomId, edgeId, nonce, proof}  proof = D signs ProofMessage(room, D, U, U's nonce)
//	U → D  welcome   {proof, participants}                    proof = U signs ProofMessage(room, U, D, D's nonce)
//	U → D  offer / candidate (U offers on the leg's PeerConnection), D → U answer / candidate
//	U → D  participant-joined {participant, since}, participant-left, mute, track-gone, quality
//	U → D  lobby-request {participantId, name}, lobby-gone {participantId}
//	D → U  moderate  {action, participantId, kind}
//
// The lobby frames let a moderator on D answer someone waiting in U's
// lobby (moderate admit | deny): an asker lands on the edge nearest to
// them, not necessarily on a moderator's.
//
// Either side closes the socket (and the leg) on any protocol violation.
const (
	CascadeChallenge   = "challenge"
	CascadeHello       = "hello"
	CascadeWelcome     = "welcome"
	CascadeOffer       = "offer"
	CascadeAnswer      = "answer"
	CascadeCandidate   = "candidate"
	CascadeJoined      = "participant-joined"
	CascadeLeft        = "participant-left"
	CascadeMute        = "mute"
	CascadeTrackGone   = "track-gone"
	CascadeQuality     = "quality"
	CascadeModerate    = "moderate"
	CascadeLobby       = "lobby-request" // wire.LobbyRequest: someone waits in U's lobby
	CascadeLobbyGone   = "lobby-gone"    // CascadeLobbyGoneMsg: no longer waiting there
	CascadeEgress      = "egress-state"  // wire.EgressState of U's own jobs for the room
	CascadeClose       = "close"
	CascadePath        = "/internal/v1/cascade"
	ModerateMute       = "mute"
	ModerateRemove     = "remove"
	ModerateAdmit      = "admit" // a lobby decision
	ModerateDeny       = "deny"
	CascadeReasonLost  = "edge-unreachable"
	CascadeMaxFrameLen = 1 << 20
)

// CascadeChallengeMsg is U's fresh nonce.
type CascadeChallengeMsg struct {
	Nonce string `json:"nonce"`
}

// CascadeHelloMsg opens a leg.
type CascadeHelloMsg struct {
	Ticket string `json:"ticket"`
	RoomID string `json:"roomId"`
	EdgeID string `json:"edgeId"`
	Nonce  string `json:"nonce"`
	Proof  []byte `json:"proof"`
	// EventsOnly: D has participants in the room but none that subscribes
	// (and no egress job): U sends room events only, no media (no relay
	// PeerConnection). D dials again without it when a subscriber arrives.
	EventsOnly bool `json:"eventsOnly,omitempty"`
}

// CascadeParticipant is one of U's participants as a leg relays it
// (welcome, participant-joined): what clients see, and since when it has
// been connected to U (U's clock, Unix milliseconds; 0 from an edge that
// does not say). When the same participant id is connected to two edges
// and stays so, the edges compare it: the older connection is the
// duplicate, as on one edge, where a new join takes over.
type CascadeParticipant struct {
	wire.Participant
	Since int64 `json:"since,omitempty"`
}

// CascadeWelcomeMsg accepts a leg.
type CascadeWelcomeMsg struct {
	Proof        []byte               `json:"proof"`
	Participants []CascadeParticipant `json:"participants"`
	// Egress is the room's recording/streaming state by U's own jobs.
	Egress wire.EgressState `json:"egress,omitzero"`
	// Lobby lists who waits in U's lobby for the room.
	Lobby []wire.LobbyRequest `json:"lobby,omitempty"`
}

// CascadeLobbyGoneMsg says a participant no longer waits in U's lobby
// (admitted, denied, gone, or moved to another edge).
type CascadeLobbyGoneMsg struct {
	ParticipantID string `json:"participantId"`
}

// CascadeLeftMsg says a participant left U.
type CascadeLeftMsg struct {
	ParticipantID string `json:"participantId"`
	Reason        string `json:"reason,omitempty"`
}

// CascadeTrackGoneMsg says a participant on U stopped publishing a track.
type CascadeTrackGoneMsg struct {
	ParticipantID string `json:"participantId"`
	TrackID       string `json:"trackId"`
}

// CascadeQualityMsg carries a participant's connection quality, as U measures it.
type CascadeQualityMsg struct {
	ParticipantID string  `json:"participantId"`
	Score         float64 `json:"score"`
}

// CascadeModerateMsg asks U to act on one of its participants.
type CascadeModerateMsg struct {
	Action        string `json:"action"` // mute | remove | admit | deny
	ParticipantID string `json:"participantId"`
	Kind          string `json:"kind,omitempty"` // audio | video for mute
}
