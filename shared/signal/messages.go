// Package signal holds the JSON wire types of Meridian's WebSocket signaling
// protocol between a client (browser SDK, pion client) and an edge.
// docs/signaling.md is the prose version; keep the two in step.
package signal

import "encoding/json"

// Message types. Client → edge unless marked.
const (
	TypeJoin              = "join"               // first message: ticket or resume token
	TypeJoined            = "joined"             // edge → client: admitted, room state
	TypeLobby             = "lobby"              // edge → client: waiting for a moderator
	TypeOffer             = "offer"              // both ways, see Target
	TypeAnswer            = "answer"             // both ways, see Target
	TypeCandidate         = "candidate"          // both ways, trickle ICE
	TypeParticipantJoined = "participant-joined" // edge → client
	TypeParticipantLeft   = "participant-left"   // edge → client
	TypeTrackPublished    = "track-published"    // edge → client
	TypeTrackUnpublished  = "track-unpublished"  // edge → client
	TypeMute              = "mute"               // client → edge: my own track state; edge → client: someone's state changed
	TypeMuteParticipant   = "mute-participant"   // moderator → edge: mute another participant
	TypeRemoveParticipant = "remove-participant" // moderator → edge
	TypeLobbyRequest      = "lobby-request"      // edge → moderators: someone asks to join
	TypeLobbyDecision     = "lobby-decision"     // moderator → edge: admit or deny
	TypeLobbyWithdrawn    = "lobby-withdrawn"    // edge → moderators: a request is no longer pending
	TypeActiveSpeaker     = "active-speaker"     // edge → client
	TypeConnectionQuality = "connection-quality" // edge → client
	TypeEgressState       = "egress-state"       // edge → client: the room's recording / live streaming started or ended
	TypeSetLayer          = "set-layer"          // client → edge: preferred simulcast layer for a track
	TypeRemoved           = "removed"            // edge → client: you were removed / denied / room closed
	TypeReconnect         = "reconnect"          // edge → client: this edge is draining; join again through the API (avoid this edge)
	TypeLeave             = "leave"              // client → edge
	TypePing              = "ping"
	TypePong              = "pong"
	TypeError             = "error" // edge → client
)

// Targets of offer/answer/candidate: Meridian uses two PeerConnections per
// participant — the client offers on "publisher", the edge offers on "subscriber" —
// so neither side ever has to resolve offer glare.
const (
	TargetPublisher  = "publisher"
	TargetSubscriber = "subscriber"
)

// Envelope is every message on the wire; Data holds the type-specific body.
type Envelope struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Marshal encodes a message: its envelope, with v as the data (none when v
// is nil).
func Marshal(typ string, v any) ([]byte, error) {
	env := Envelope{Type: typ}
	if v != nil {
		data, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		env.Data = data
	}
	return json.Marshal(env)
}

// MustMarshal is Marshal for the types of this package, which always
// marshal: it panics on an error.
func MustMarshal(typ string, v any) []byte {
	b, err := Marshal(typ, v)
	if err != nil {
		panic(err)
	}
	return b
}

// Leave ends the participant on this edge. Reason is empty (a leave) or
// ReasonMoved.
type Leave struct {
	Reason string `json:"reason,omitempty"`
}

// Join opens (or resumes) a participant's signaling session.
type Join struct {
	Ticket      string `json:"ticket,omitempty"`
	ResumeToken string `json:"resumeToken,omitempty"`
	Name        string `json:"name,omitempty"`
}

// ICEServer mirrors RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// TrackInfo describes a published track. StreamID equals the publisher's
// participant id, so browsers map ontrack events to participants.
type TrackInfo struct {
	TrackID       string `json:"trackId"`
	ParticipantID string `json:"participantId"`
	Kind          string `json:"kind"`   // audio | video
	Source        string `json:"source"` // microphone | camera | screen | screen_audio
	Muted         bool   `json:"muted"`
	Simulcast     bool   `json:"simulcast,omitempty"`
}

// Participant is one member of the room as other members see it.
type Participant struct {
	ParticipantID string      `json:"participantId"`
	Name          string      `json:"name"`
	Moderator     bool        `json:"moderator,omitempty"`
	Tracks        []TrackInfo `json:"tracks"`
}

// Joined is sent once admitted (and again after a resume).
type Joined struct {
	RoomID        string        `json:"roomId"`
	ParticipantID string        `json:"participantId"`
	Name          string        `json:"name"`
	Permissions   Permissions   `json:"permissions"`
	Participants  []Participant `json:"participants"`
	ICEServers    []ICEServer   `json:"iceServers"`
	ResumeToken   string        `json:"resumeToken"`
	Resumed       bool          `json:"resumed,omitempty"`
	// Egress is the room's recording and streaming state when joined; later
	// changes come as egress-state.
	Egress EgressState `json:"egress"`
}

// Permissions as the client sees them.
type Permissions struct {
	Publish   bool `json:"publish"`
	Subscribe bool `json:"subscribe"`
	Moderate  bool `json:"moderate"`
}

// SDP carries an offer or an answer.
type SDP struct {
	Target string `json:"target"`
	SDP    string `json:"sdp"`
}

// Candidate carries one trickled ICE candidate (RTCIceCandidateInit); a nil
// Candidate means end of candidates.
type Candidate struct {
	Target    string          `json:"target"`
	Candidate json.RawMessage `json:"candidate"`
}

// ParticipantLeft tells who left and why (left | removed | timeout).
type ParticipantLeft struct {
	ParticipantID string `json:"participantId"`
	Reason        string `json:"reason,omitempty"`
}

// TrackUnpublished names a track that went away.
type TrackUnpublished struct {
	ParticipantID string `json:"participantId"`
	TrackID       string `json:"trackId"`
}

// Mute reports (or, from a moderator, requests) a track kind's mute state.
type Mute struct {
	ParticipantID string `json:"participantId,omitempty"`
	Kind          string `json:"kind"` // audio | video (or a TrackID)
	TrackID       string `json:"trackId,omitempty"`
	Muted         bool   `json:"muted"`
}

// MuteParticipant is a moderator's request.
type MuteParticipant struct {
	ParticipantID string `json:"participantId"`
	Kind          string `json:"kind"` // audio | video
}

// RemoveParticipant is a moderator's request.
type RemoveParticipant struct {
	ParticipantID string `json:"participantId"`
}

// LobbyRequest is shown to moderators.
type LobbyRequest struct {
	ParticipantID string `json:"participantId"`
	Name          string `json:"name"`
}

// LobbyDecision answers a LobbyRequest.
type LobbyDecision struct {
	ParticipantID string `json:"participantId"`
	Admit         bool   `json:"admit"`
}

// LobbyWithdrawn tells moderators a LobbyRequest no longer waits for an
// answer: it was admitted or denied (perhaps by another moderator), the
// asker left, or its edge can no longer be reached.
type LobbyWithdrawn struct {
	ParticipantID string `json:"participantId"`
}

// ActiveSpeaker lists the loudest participants, loudest first.
type ActiveSpeaker struct {
	ParticipantIDs []string `json:"participantIds"`
}

// ConnectionQuality is a 0–5 score per participant (5 best).
type ConnectionQuality struct {
	ParticipantID string  `json:"participantId"`
	Score         float64 `json:"score"`
}

// EgressState tells participants whether their meeting is being recorded
// (a composite, participant or track recording) or streamed live (RTMP or
// HLS) by an edge, so the page can show it.
type EgressState struct {
	Recording bool `json:"recording"`
	Streaming bool `json:"streaming"`
}

// SetLayer asks for a simulcast layer ("q", "h", "f" or "auto").
type SetLayer struct {
	TrackID string `json:"trackId"`
	Layer   string `json:"layer"`
}

// Removed ends the session for the receiving client.
type Removed struct {
	Reason string `json:"reason"` // removed | denied | room-closed | duplicate
}

// Reconnect asks a client to move: join again through the join API with the
// same participant id and avoidEdges [EdgeID], then leave this edge.
type Reconnect struct {
	Reason string `json:"reason"` // edge-draining
	EdgeID string `json:"edgeId"`
	// Deadline is when this edge closes the connection regardless (RFC 3339).
	Deadline string `json:"deadline,omitempty"`
}

// Error is a protocol error; Code is stable, Message for humans.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
