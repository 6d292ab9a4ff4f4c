package signal

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/pion/webrtc/v4"

	"github.com/meridian-video/meridian/edge/sfu"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

type memberState uint8

const (
	stateLobby  memberState = iota // waiting for a moderator
	stateActive                    // connected
	stateGrace                     // socket dropped, may resume
	stateGone                      // left; kept only by stale references
)

// member is one participant of a room as signaling sees it. It outlives its
// sockets: a resume or a duplicate join attaches a new conn.
//
// Locks: Server.mu guards state, the room maps and graceTimer; member.mu
// guards conn, gen, ready and pending (what the SFU sink needs); op
// serialises activations (SFU calls) of this member. Order: op → Server.mu →
// member.mu. The SFU calls the sink with none of ours held.
type member struct {
	roomID string
	id     string
	nonce  string

	op sync.Mutex

	// under Server.mu
	state      memberState
	name       string
	perms      ticket.Permissions
	graceTimer *time.Timer
	graceEpoch int
	// announced: the room was told about this member (participant-joined);
	// listed: this member got a snapshot of the room. Together they make
	// every pair learn about each other exactly once.
	announced, listed bool
	// unreported: the control plane forgot this member (the edge
	// re-registered while it was in its resume grace); taking it over
	// reports the join again.
	unreported bool
	// maxParticipants is the room cap from the member's ticket (0 = none).
	maxParticipants int
	// since: when this connection of the participant arrived, then when
	// it was admitted (a resume keeps it, a duplicate join renews it).
	// Other edges compare it when the same id is connected to them too
	// (DuplicateElsewhere); a late room close spares members newer than
	// the close (CloseRoomAt).
	since time.Time
	// issued is when the ticket this connection joined with was issued (the
	// control plane's clock): a close or removal made before it spares it,
	// whenever the order arrives, since the join API handed it out after the
	// order (it is the room's next session, or the participant came back).
	issued time.Time

	mu      sync.Mutex
	conn    *conn
	media   *sfu.Participant
	gen     int // media generation; sinks of older generations are ignored
	ready   bool
	pending [][]byte
}

// deliver sends a frame from media generation gen to the current conn,
// buffering it until `joined` went out. The buffer is bounded by the conn's
// queue (it is queued behind `joined`) and overflows the same way: the
// socket is closed. Frames cannot be dropped one by one without the client's
// view of the room going wrong; a client whose socket closed joins again and
// gets a fresh snapshot.
func (m *member) deliver(gen int, frame []byte) { m.deliverFrame(gen, frame, false) }

// deliverSoon is deliver for presence and quality events, which may wait
// briefly to share a socket write (conn.sendSoon).
func (m *member) deliverSoon(gen int, frame []byte) { m.deliverFrame(gen, frame, true) }

func (m *member) deliverFrame(gen int, frame []byte, soon bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen || m.conn == nil {
		return
	}
	if !m.ready {
		if len(m.pending)+1 >= m.conn.max { // +1: joined goes first
			m.pending = nil
			m.conn.abort(dropHeldFull)
			return
		}
		m.pending = append(m.pending, frame)
		return
	}
	if soon {
		m.conn.sendSoon(frame) // never blocks
	} else {
		m.conn.send(frame)
	}
}

// sendJoinedLocked sends `joined`, then whatever the SFU said meanwhile (in
// order), then extra; frames delivered from now on go straight to the conn.
// m.mu is held.
func (m *member) sendJoinedLocked(joined []byte, extra [][]byte) {
	m.conn.send(joined)
	for _, f := range m.pending {
		m.conn.send(f)
	}
	for _, f := range extra {
		m.conn.send(f)
	}
	m.pending = nil
	m.ready = true
}

func (m *member) currentConn() *conn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conn
}

// sink adapts one media generation of a member to sfu.Sink.
type sink struct {
	m   *member
	gen int
}

var _ sfu.Sink = sink{}

func (k sink) SubscriberOffer(sdp string) {
	k.m.deliver(k.gen, wire.MustMarshal(wire.TypeOffer, wire.SDP{Target: wire.TargetSubscriber, SDP: sdp}))
}

func (k sink) Candidate(target string, c *webrtc.ICECandidateInit) {
	var raw []byte
	if c != nil {
		raw = encodeJSON(c)
	} else {
		raw = []byte("null")
	}
	k.m.deliver(k.gen, wire.MustMarshal(wire.TypeCandidate, wire.Candidate{Target: target, Candidate: raw}))
}

func (k sink) TrackPublished(info wire.TrackInfo) {
	k.m.deliver(k.gen, wire.MustMarshal(wire.TypeTrackPublished, info))
}

func (k sink) TrackUnpublished(participantID, trackID string) {
	k.m.deliver(k.gen, wire.MustMarshal(wire.TypeTrackUnpublished, wire.TrackUnpublished{ParticipantID: participantID, TrackID: trackID}))
}

func (k sink) ActiveSpeakers(ids []string) {
	if ids == nil {
		ids = []string{}
	}
	k.m.deliver(k.gen, wire.MustMarshal(wire.TypeActiveSpeaker, wire.ActiveSpeaker{ParticipantIDs: ids}))
}

func (k sink) ConnectionQuality(participantID string, score float64) {
	k.m.deliverSoon(k.gen, qualityFrame(participantID, score))
}

// qualityFrames memoizes connection-quality frames. A quality round gives
// every member of a room the same (participant, score) frames, and while a
// room fills nearly every pair is sent (a joiner gets everyone's score,
// everyone gets the joiner's): N² frames from N² encodings without it.
var qualityFrames = func() *lru.Cache[qualityKey, []byte] {
	c, err := lru.New[qualityKey, []byte](8192)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return c
}()

type qualityKey struct {
	participantID string
	score         float64
}

func qualityFrame(participantID string, score float64) []byte {
	k := qualityKey{participantID, score}
	if f, ok := qualityFrames.Get(k); ok {
		return f
	}
	f := wire.MustMarshal(wire.TypeConnectionQuality, wire.ConnectionQuality{ParticipantID: participantID, Score: score})
	qualityFrames.Add(k, f)
	return f
}
