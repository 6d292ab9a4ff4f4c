// Package edgeapi holds the JSON messages between an edge's agent and the
// control plane. Edges authenticate with a bearer edge token (never an API secret).
//
// Routes on the control API (all POST, JSON):
//
//	/internal/v1/edges/register   Register → RegisterReply
//	/internal/v1/edges/heartbeat  Heartbeat → HeartbeatReply
//	/internal/v1/edges/events     EventBatch → {}
//	/internal/v1/edges/stats      StatsBatch → {}
//	/internal/v1/rooms/attach     Attach → RoomPeers
//	/internal/v1/rooms/seat       Seat → SeatReply
//
// Routes on the edge (POST, JSON), called by the control plane:
//
//	/internal/v1/rooms/remove-participant  RemoveParticipant
//	/internal/v1/rooms/close               CloseRoom
//	/internal/v1/rooms/peers               RoomPeers (a placement changed)
//	/internal/v1/drain                     Drain
//
// And between edges: GET /internal/v1/cascade (WebSocket), see cascade.go.
package edgeapi

import (
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
)

// Load is an edge's current load, also gossiped.
type Load struct {
	Participants int     `json:"participants"`
	Tracks       int     `json:"tracks"`
	Rooms        int     `json:"rooms"`
	CPU          float64 `json:"cpu"` // 0..1
	EgressBps    int64   `json:"egressBps"`
}

// Register announces an edge to the control plane.
type Register struct {
	EdgeID      string   `json:"edgeId"`
	Region      string   `json:"region"`
	SignalURL   string   `json:"signalUrl"`   // ws(s)://host:port/rtc
	InternalURL string   `json:"internalUrl"` // http(s)://host:port for control → edge calls
	TURNURLs    []string `json:"turnUrls"`    // turn:host:3478?transport=udp ...
	STUNURLs    []string `json:"stunUrls"`
	Capacity    int      `json:"capacity"` // max participants
	Load        Load     `json:"load"`
	Version     string   `json:"version"`
	Latitude    float64  `json:"lat,omitempty"`
	Longitude   float64  `json:"lon,omitempty"`
	// GossipAddr is the edge's memberlist host:port ("" without gossip).
	GossipAddr string `json:"gossipAddr,omitempty"`
	// PublicKey is the edge's Ed25519 identity key (relay legs).
	PublicKey []byte `json:"publicKey,omitempty"`
	Draining  bool   `json:"draining,omitempty"`
	// Rooms are the rooms with somebody connected here, as heartbeats
	// report them: an edge the control plane lost may hold participants
	// of a room closed meanwhile (the reply's Missed says so).
	Rooms []RoomEpoch `json:"rooms,omitempty"`
}

// RegisterReply hands the edge what it needs to admit clients.
type RegisterReply struct {
	// Missed: orders the edge must carry out before it reports again who
	// is here (see Missed).
	Missed
	TicketPublicKey []byte `json:"ticketPublicKey"` // Ed25519
	TURNSecret      string `json:"turnSecret"`
	HeartbeatEvery  string `json:"heartbeatEvery"` // Go duration
	// GossipSeeds are the gossip addresses of the region's other edges.
	GossipSeeds []string `json:"gossipSeeds,omitempty"`
	// Received and Now: see HeartbeatReply.
	Received time.Time `json:"received,omitzero"`
	Now      time.Time `json:"now,omitzero"`
	// Recorded are the participants the control plane records as present
	// on this edge, and RecordedSince when they may have been gone (the
	// edge's mark-down, or this registration). A process registering for
	// the first time holds none of them (it replaced one that died): each
	// one it has not admitted within RejoinGrace (a Go duration) it
	// reports left at RecordedSince. A process registering again reports
	// who it has instead.
	Recorded      []RecordedParticipant `json:"recorded,omitempty"`
	RecordedSince time.Time             `json:"recordedSince,omitzero"`
	RejoinGrace   string                `json:"rejoinGrace,omitempty"`
}

// RecordedParticipant is a participant the control plane records on an edge.
type RecordedParticipant struct {
	RoomID        string `json:"roomId"`
	ParticipantID string `json:"participantId"`
}

// Gossip member states as edges report them.
const (
	MemberAlive   = "alive"
	MemberSuspect = "suspect"
	MemberDead    = "dead"
	MemberLeft    = "left"
)

// PoolMember is one member of the edge's region pool as its gossip sees it.
type PoolMember struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Load     Load   `json:"load"`
	Draining bool   `json:"draining,omitempty"`
}

// RoomEpoch is a room an edge serves and the placement epoch it knows.
type RoomEpoch struct {
	RoomID string `json:"roomId"`
	Epoch  uint64 `json:"epoch"`
	// Oldest is when the control plane issued the oldest ticket among the
	// room's participants (and lobby guests) on this edge, Unix
	// milliseconds (0: nobody, the room is held for an egress job). The
	// control plane compares it with the room's closes and removals
	// (Missed): both its own clock's, so an edge's clock does not enter.
	Oldest int64 `json:"oldest,omitempty"`
}

// Missed are room closes and participant removals the control plane made
// that an edge may not have carried out: the call telling it was lost (the
// edge was stopped or cut off while it was retried, or the control node
// retrying it died). Heartbeat and registration replies carry them while
// the edge reports the room with somebody connected since before them, so
// they reach the edge whichever control node it talks to. The edge applies
// them as late orders: whoever it admitted after At is spared.
type Missed struct {
	Closed  []CloseRoom         `json:"closed,omitempty"`
	Removed []RemoveParticipant `json:"removed,omitempty"`
}

// Heartbeat refreshes liveness and load.
type Heartbeat struct {
	EdgeID   string `json:"edgeId"`
	Load     Load   `json:"load"`
	Draining bool   `json:"draining,omitempty"`
	// Pool is the edge's view of its region's gossip pool (other members).
	Pool []PoolMember `json:"pool,omitempty"`
	// Rooms are the rooms with participants on this edge.
	Rooms []RoomEpoch `json:"rooms,omitempty"`
	// ClockOffsetMs is how far the edge's clock is ahead of the control
	// plane's (negative: behind), as the edge last measured it from a
	// heartbeat reply's Now; absent until it has.
	ClockOffsetMs *int64 `json:"clockOffsetMs,omitempty"`
}

// HeartbeatReply may ask the edge to re-register (control lost it), and
// carries the current peers of every reported room whose epoch differs.
type HeartbeatReply struct {
	Reregister bool        `json:"reregister,omitempty"`
	Rooms      []RoomPeers `json:"rooms,omitempty"`
	// Received and Now are the answering control node's clock as the
	// request arrived and as it answered: the edge measures its own clock's
	// offset from them as NTP does, the time spent answering left out.
	Received time.Time `json:"received,omitzero"`
	Now      time.Time `json:"now,omitzero"`
	Missed
}

// Peer is another edge serving a room, with the relay ticket that lets the
// two link.
type Peer struct {
	EdgeID      string `json:"edgeId"`
	Region      string `json:"region"`
	URL         string `json:"url"` // the peer's internal http(s) base URL
	RelayTicket string `json:"relayTicket"`
}

// RoomPeers is a room's placement as one edge needs it. Member is false
// when the edge is not (or no longer) recorded as serving the room.
type RoomPeers struct {
	RoomID string `json:"roomId"`
	Epoch  uint64 `json:"epoch"`
	Member bool   `json:"member"`
	Home   string `json:"home,omitempty"`
	Peers  []Peer `json:"peers"`
}

// Attach asks for a room's peers; with Claim the edge first adds itself to
// the room's placement (an alternate candidate's ticket, or an edge that
// found itself dropped while it still has participants).
type Attach struct {
	EdgeID        string `json:"edgeId"`
	RoomID        string `json:"roomId"`
	Claim         bool   `json:"claim,omitempty"`
	ParticipantID string `json:"participantId,omitempty"`
}

// Seat asks for a place in a room with maxParticipants for a lobby guest a
// moderator admitted on this edge (the join API holds one for every direct
// joiner): the Raft log orders it with every other join and admission.
type Seat struct {
	EdgeID        string `json:"edgeId"`
	RoomID        string `json:"roomId"`
	ParticipantID string `json:"participantId"`
}

// SeatReply says whether the room had a place; Message names the cap when
// it did not.
type SeatReply struct {
	Granted bool   `json:"granted"`
	Message string `json:"message,omitempty"`
}

// Drain starts (or stops) draining an edge.
type Drain struct {
	Draining bool `json:"draining"`
	// DeadlineSeconds bounds how long running meetings may stay (0 = default).
	DeadlineSeconds int `json:"deadlineSeconds,omitempty"`
}

// Event kinds an edge reports.
const (
	EventParticipantJoined = "participant-joined"
	EventParticipantLeft   = "participant-left"
	EventCascadeLegUp      = "cascade-leg-up"   // a relay leg to PeerEdgeID carries the room
	EventCascadeLegDown    = "cascade-leg-down" // that leg ended
	EventTURNRelay         = "turn-relay"       // this edge's TURN relays ParticipantID
)

// Event is one lifecycle fact observed on the edge.
type Event struct {
	ID            string    `json:"id"` // unique per event, lets control dedupe retries
	Kind          string    `json:"kind"`
	RoomID        string    `json:"roomId"`
	ParticipantID string    `json:"participantId"`
	Name          string    `json:"name,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	PeerEdgeID    string    `json:"peerEdgeId,omitempty"`
	PeerRegion    string    `json:"peerRegion,omitempty"`
	At            time.Time `json:"at"`
	// Egress is set on EventEgressStatus: the job's new status.
	Egress *egressapi.Status `json:"egress,omitempty"`
}

// EventBatch is delivered in order; the edge retries a batch until acknowledged.
type EventBatch struct {
	EdgeID string  `json:"edgeId"`
	Events []Event `json:"events"`
}

// TrackStats summarises one direction of one media kind over the interval.
type TrackStats struct {
	Kind        string  `json:"kind"`    // audio | video
	Bitrate     float64 `json:"bitrate"` // bit/s
	PacketsLost int64   `json:"packetsLost"`
	Packets     int64   `json:"packets"`
	JitterMs    float64 `json:"jitterMs"`
	RTTMs       float64 `json:"rttMs"`
	Width       int     `json:"width,omitempty"`
	Height      int     `json:"height,omitempty"`
	FPS         float64 `json:"fps,omitempty"`
}

// ParticipantStats is one participant's summary over one interval.
type ParticipantStats struct {
	RoomID        string       `json:"roomId"`
	ParticipantID string       `json:"participantId"`
	Time          time.Time    `json:"time"`
	Send          []TrackStats `json:"send"`    // what the participant published (edge inbound)
	Recv          []TrackStats `json:"recv"`    // what the participant received (edge outbound)
	Quality       float64      `json:"quality"` // 0..5
}

// LegStats summarises one cascade leg end over one interval.
type LegStats struct {
	RoomID     string    `json:"roomId"`
	PeerEdgeID string    `json:"peerEdgeId"`
	Direction  string    `json:"direction"` // in: media from the peer; out: media to it
	Time       time.Time `json:"time"`
	Bitrate    float64   `json:"bitrate"`
	Packets    uint64    `json:"packets"`
	Bytes      uint64    `json:"bytes"`
	RTTMs      float64   `json:"rttMs,omitempty"`
	Tracks     int       `json:"tracks"`
}

// StatsBatch is sent every ~10 s per edge.
type StatsBatch struct {
	EdgeID string             `json:"edgeId"`
	Stats  []ParticipantStats `json:"stats"`
	Legs   []LegStats         `json:"legs,omitempty"`
}

// RemoveParticipant asks an edge to disconnect a participant. At is when
// the control plane removed it (as CloseRoom.At: arriving late, the order
// spares a connection admitted after it).
type RemoveParticipant struct {
	RoomID        string    `json:"roomId"`
	ParticipantID string    `json:"participantId"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"at,omitzero"`
}

// CloseRoom asks an edge to disconnect everybody in a room. At is when the
// control plane closed it (its clock, as tickets' IssuedAt): the edge
// refuses tickets issued until then, and a request arriving late (retried
// while the edge was unreachable) spares those admitted after it, who are
// in the room's next session.
type CloseRoom struct {
	RoomID string    `json:"roomId"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at,omitzero"`
}
