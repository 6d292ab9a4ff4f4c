package sfu

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// Targets of offers, answers and candidates (same strings as the wire protocol).
const (
	TargetPublisher  = wire.TargetPublisher
	TargetSubscriber = wire.TargetSubscriber
)

const maxPendingCandidates = 64

// Sink receives what the SFU has to tell one participant's client. It is
// implemented by the signaling layer. Every method must return quickly and
// never block (enqueue or drop); the SFU calls them without holding locks,
// from several goroutines.
type Sink interface {
	// SubscriberOffer carries a new offer for the subscriber PeerConnection.
	SubscriberOffer(sdp string)
	// Candidate carries a local ICE candidate for target; nil means gathering ended.
	Candidate(target string, c *webrtc.ICECandidateInit)
	// TrackPublished and TrackUnpublished describe other participants' tracks.
	TrackPublished(info wire.TrackInfo)
	TrackUnpublished(participantID, trackID string)
	// ActiveSpeakers lists the room's loudest participants, loudest first.
	ActiveSpeakers(participantIDs []string)
	// ConnectionQuality reports a participant's 0–5 score.
	ConnectionQuality(participantID string, score float64)
}

// ParticipantConfig describes a participant joining a room.
type ParticipantConfig struct {
	ID           string
	Name         string
	CanPublish   bool
	CanSubscribe bool
	Sink         Sink
	// Relay makes a hidden relay subscriber for another edge (a cascade
	// leg's upstream end): it receives every simulcast layer of every
	// track published on this edge (never tracks relayed in from other
	// edges), one DownTrack per layer, and is not shown to anyone.
	Relay bool
}

// Participant is one member of a room on the media plane: a Publisher (if
// allowed to publish) and a Subscriber (if allowed to subscribe).
type Participant struct {
	room *Room
	id   string
	// key is the room's map key: the id for local participants, and a
	// prefixed key for relay subscribers and remote participants, so that
	// one participant id can exist locally and on another edge at once.
	key    string
	name   string
	sink   Sink
	relay  bool        // hidden relay subscriber (cascade leg upstream end)
	remote bool        // published on another edge, relayed in
	origin string      // remote: the edge it is published on
	pub    *Publisher  // nil without publish permission
	sub    *Subscriber // nil without subscribe permission

	// ready: the client was told `joined` (Ready). Room events sent before
	// that wait in signaling's buffer, bounded by the socket's queue; a
	// quality round's full set (one frame per participant) would overflow it
	// in a room larger than the queue, and the overflow closes the socket.
	ready atomic.Bool

	closeOnce sync.Once
}

// ID returns the participant id.
func (p *Participant) ID() string { return p.id }

// local reports whether the participant is a client of this edge (not a
// relay subscriber, not relayed in from another edge).
func (p *Participant) local() bool { return !p.relay && !p.remote }

// Room returns the participant's room.
func (p *Participant) Room() *Room { return p.room }

func (p *Participant) sendCandidate(target string, c *webrtc.ICECandidate) {
	if c == nil {
		p.sink.Candidate(target, nil)
		return
	}
	init := c.ToJSON()
	p.sink.Candidate(target, &init)
}

// Start adds the participant to its room: others can now subscribe to its
// tracks and it is subscribed to theirs. Negotiation of its subscriber
// PeerConnection waits for Ready, so the client is told `joined` first.
func (p *Participant) Start() error { return p.room.start(p) }

// OnSubscriberState registers fn for the subscriber PeerConnection's state
// changes (a cascade leg reports itself up when it connects).
func (p *Participant) OnSubscriberState(fn func(webrtc.PeerConnectionState)) {
	if p.sub != nil {
		p.sub.onState.Store(&fn)
	}
}

// Ready lets the subscriber PeerConnection negotiate.
func (p *Participant) Ready() {
	p.ready.Store(true)
	if p.sub != nil {
		p.sub.release()
	}
}

// HandleOffer applies an offer for the publisher PeerConnection and returns the answer.
func (p *Participant) HandleOffer(sdp string) (string, error) {
	if p.pub == nil {
		return "", ErrForbidden
	}
	return p.pub.handleOffer(sdp)
}

// HandleAnswer applies the client's answer to the subscriber offer.
func (p *Participant) HandleAnswer(sdp string) error {
	if p.sub == nil {
		return fmt.Errorf("%w: no subscriber connection", ErrBadSDP)
	}
	return p.sub.handleAnswer(sdp)
}

// AddICECandidate adds a remote candidate (JSON RTCIceCandidateInit; null or
// empty means end of candidates) to the target PeerConnection.
func (p *Participant) AddICECandidate(target string, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSDP, err)
	}
	switch target {
	case TargetPublisher:
		if p.pub == nil {
			return ErrForbidden
		}
		return p.pub.addCandidate(c)
	case TargetSubscriber:
		if p.sub == nil {
			return fmt.Errorf("%w: no subscriber connection", ErrBadSDP)
		}
		return p.sub.addCandidate(c)
	}
	return fmt.Errorf("%w: unknown target %q", ErrBadSDP, target)
}

// SetLayer pins a simulcast layer ("q", "h", "f") of another participant's
// track for this subscriber, or returns it to "auto". trackID may be
// "participantId/trackId" or a bare track id.
func (p *Participant) SetLayer(trackID, layer string) error {
	if p.sub == nil {
		return ErrNotFound
	}
	if LayerIndex(layer) == noLayer {
		return fmt.Errorf("%w: layer %q", ErrBadRequest, layer)
	}
	for _, f := range p.sub.forwarders() {
		if f.track.info.TrackID == trackID || trackKey(f.track) == trackID {
			f.Pin(layer)
			return nil
		}
	}
	return ErrNotFound
}

// SetTrackMuted records the client's own mute state for a track (by id, or
// every track of a kind when trackID is empty) and returns the tracks changed.
func (p *Participant) SetTrackMuted(trackID, kind string, muted bool) []wire.TrackInfo {
	return p.eachTrack(trackID, kind, func(t *PublishedTrack) { t.setMuted(muted) })
}

// ForceMute stops (or resumes) forwarding a kind of this participant's
// tracks to everyone, as a moderator asked; it also marks them muted.
func (p *Participant) ForceMute(kind string, muted bool) []wire.TrackInfo {
	return p.eachTrack("", kind, func(t *PublishedTrack) {
		t.setMuted(muted)
		t.setPaused(muted)
	})
}

func (p *Participant) eachTrack(trackID, kind string, fn func(*PublishedTrack)) []wire.TrackInfo {
	if p.pub == nil {
		return nil
	}
	var out []wire.TrackInfo
	for _, t := range p.pub.trackList() {
		if (trackID != "" && t.info.TrackID == trackID) || (trackID == "" && t.info.Kind == kind) {
			fn(t)
			out = append(out, t.Info())
		}
	}
	return out
}

// Tracks describes what the participant publishes.
func (p *Participant) Tracks() []wire.TrackInfo {
	if p.pub == nil {
		return []wire.TrackInfo{}
	}
	ts := p.pub.trackList()
	out := make([]wire.TrackInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.Info())
	}
	return out
}

// Forwarder returns the forwarder this participant receives the given
// publisher track through (nil if none); for tests and diagnostics.
func (p *Participant) Forwarder(publisherID, trackID string) *Forwarder {
	if p.sub == nil {
		return nil
	}
	for _, f := range p.sub.forwarders() {
		if f.track.info.ParticipantID == publisherID && f.track.info.TrackID == trackID && f.track.pub.part.local() {
			return f
		}
	}
	return p.sub.forwarder(publisherID + "/" + trackID)
}

// Estimate is the subscriber's bandwidth estimate in bit/s.
func (p *Participant) Estimate() int {
	if p.sub == nil {
		return 0
	}
	return p.sub.Estimate()
}

// Close leaves the room and tears both PeerConnections down. Idempotent.
func (p *Participant) Close() {
	p.closeOnce.Do(func() {
		p.room.leave(p)
		var ended []*PublishedTrack
		if p.pub != nil {
			ended = p.pub.close()
		}
		for _, t := range ended {
			p.room.unpublish(t)
		}
		if p.sub != nil {
			p.sub.close()
		}
		p.room.sfu.release(p.room)
	})
}
