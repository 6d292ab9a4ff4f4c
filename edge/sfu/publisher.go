package sfu

import (
	"errors"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// Publisher owns the PeerConnection a participant publishes on (the client
// offers) and the tracks that arrive on it.
type Publisher struct {
	part *Participant
	pc   *webrtc.PeerConnection
	// shared: pc belongs to a cascade leg (RelayIn) that carries several
	// remote participants; closing this publisher stops only its tracks.
	shared bool

	mu      sync.Mutex
	tracks  map[string]*PublishedTrack // by track id
	pending []webrtc.ICECandidateInit  // before the remote description
	closed  bool
	// mutedHint: relayed tracks' mute state told before the track arrived.
	mutedHint map[string]bool
}

func newPublisher(part *Participant) (*Publisher, error) {
	pc, err := part.room.sfu.media.newPeerConnection(false)
	if err != nil {
		return nil, fmt.Errorf("sfu: publisher peer connection: %w", err)
	}
	p := &Publisher{part: part, pc: pc, tracks: make(map[string]*PublishedTrack)}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { part.sendCandidate(TargetPublisher, c) })
	pc.OnTrack(p.onTrack)
	return p, nil
}

// handleOffer applies the client's offer and returns the answer SDP.
func (p *Publisher) handleOffer(sdp string) (string, error) {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	p.mu.Lock()
	pend := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, c := range pend {
		_ = p.pc.AddICECandidate(c)
	}
	return ans.SDP, nil
}

func (p *Publisher) addCandidate(c webrtc.ICECandidateInit) error {
	p.mu.Lock()
	if p.pc.RemoteDescription() == nil {
		if len(p.pending) < maxPendingCandidates {
			p.pending = append(p.pending, c)
		}
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return p.pc.AddICECandidate(c)
}

func (p *Publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	id := remote.ID()
	if id == "" {
		if tr := transceiverOf(p.pc, recv); tr != nil {
			id = "mid-" + tr.Mid()
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	t, existed := p.tracks[id]
	if !existed {
		t = newPublishedTrack(p, remote, recv, id)
		p.tracks[id] = t
	}
	p.mu.Unlock()
	l, ok := t.addLayer(remote, recv)
	if !ok {
		return
	}
	t.start(l)
	if !existed {
		p.part.room.publish(t)
	}
	// Late layers: let waiting forwarders get a keyframe.
	t.keyframeForWaiting(l.idx)
}

func transceiverOf(pc *webrtc.PeerConnection, recv *webrtc.RTPReceiver) *webrtc.RTPTransceiver {
	for _, tr := range pc.GetTransceivers() {
		if tr.Receiver() == recv {
			return tr
		}
	}
	return nil
}

func (p *Publisher) trackEnded(t *PublishedTrack) {
	p.mu.Lock()
	if p.tracks[t.ID()] == t {
		delete(p.tracks, t.ID())
	}
	p.mu.Unlock()
	p.part.room.unpublish(t)
}

func (p *Publisher) sendPLI(ssrc uint32) {
	if err := p.pc.WriteRTCP(pliPacket(ssrc)); err != nil && !errors.Is(err, errClosedPipe) {
		p.part.room.sfu.log.Debug("sfu: PLI write failed", "participant", p.part.id, "err", err)
	}
}

func (p *Publisher) trackList() []*PublishedTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*PublishedTrack, 0, len(p.tracks))
	for _, t := range p.tracks {
		out = append(out, t)
	}
	return out
}

func (p *Publisher) track(id string) *PublishedTrack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tracks[id]
}

// close stops the PeerConnection and waits for the track readers.
func (p *Publisher) close() []*PublishedTrack {
	p.mu.Lock()
	p.closed = true
	ts := make([]*PublishedTrack, 0, len(p.tracks))
	for _, t := range p.tracks {
		ts = append(ts, t)
		t.end()
	}
	p.tracks = map[string]*PublishedTrack{}
	p.mu.Unlock()
	if p.shared {
		for _, t := range ts {
			t.stopReceivers()
		}
	} else {
		_ = p.pc.Close()
	}
	for _, t := range ts {
		t.wg.Wait()
	}
	return ts
}

// addRelayTrack adds one layer of a relayed track (see relayTrackID).
func (p *Publisher) addRelayTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver, rt relayTrack) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = recv.Stop()
		return
	}
	t, existed := p.tracks[rt.trackID]
	if !existed {
		t = newTrackWithInfo(p, remote, recv, wire.TrackInfo{TrackID: rt.trackID, ParticipantID: p.part.id, Kind: remote.Kind().String(),
			Source: rt.source, Simulcast: rt.simulcast, Muted: p.mutedHint[rt.trackID]})
		p.tracks[rt.trackID] = t
	}
	p.mu.Unlock()
	l, ok := t.addLayerAt(remote, recv, rt.layer)
	if !ok {
		_ = recv.Stop()
		return
	}
	t.start(l)
	if !existed {
		p.part.room.publish(t)
	}
	t.keyframeForWaiting(l.idx)
}
