package sfu

import (
	"errors"
	"fmt"
	"strings"
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
	p.announce()
	return ans.SDP, nil
}

// announce publishes the tracks the client's offer says it sends, before
// their first packet: subscribers get their offer while the publisher's
// ICE and DTLS are still running, so their answer is usually in place
// before the encoder's first keyframe reaches the edge, and no keyframe
// has to be asked for. The layers still start from pion's OnTrack at each
// stream's first packet (onTrack finds the announced track by its id).
//
// From the SDP, because pion's SettingEngine.SetFireOnTrackBeforeFirstRTP
// fires OnTrack only once DTLS is up (startRTP), not for simulcast (rid)
// streams, and with no codec. A track whose negotiated codec is ambiguous
// (several video codecs enabled) is left to its first packet, which
// tells. Tracks announced by an earlier offer that this one no longer
// sends, and that never received a packet, end here (a started one ends
// when pion stops its receiver).
func (p *Publisher) announce() {
	present := map[string]bool{}
	var fresh []*PublishedTrack
	for _, tr := range p.pc.GetTransceivers() {
		recv := tr.Receiver()
		if recv == nil || tr.Direction() != webrtc.RTPTransceiverDirectionRecvonly && tr.Direction() != webrtc.RTPTransceiverDirectionSendrecv {
			continue
		}
		remotes := recv.Tracks()
		if len(remotes) == 0 {
			continue
		}
		id := remotes[0].ID()
		if id == "" {
			id = "mid-" + tr.Mid()
		}
		present[id] = true
		params := recv.GetParameters()
		codec, ok := soleCodec(params.Codecs)
		if !ok {
			continue
		}
		kind := tr.Kind()
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		if p.tracks[id] == nil {
			t := newTrack(p, kind, codec, params.HeaderExtensions, wire.TrackInfo{
				TrackID: id, ParticipantID: p.part.id, Kind: kind.String(),
				Source: sourceOf(remotes[0].StreamID(), kind), Simulcast: len(remotes) > 1,
			})
			p.tracks[id] = t
			fresh = append(fresh, t)
		}
		p.mu.Unlock()
	}
	var gone []*PublishedTrack
	p.mu.Lock()
	for id, t := range p.tracks {
		if !present[id] && t.endIfIdle() {
			delete(p.tracks, id)
			gone = append(gone, t)
		}
	}
	p.mu.Unlock()
	for _, t := range gone {
		p.part.room.unpublish(t)
	}
	for _, t := range fresh {
		p.part.room.publish(t)
	}
}

// soleCodec returns the one media codec negotiated for a transceiver
// (retransmission and FEC formats aside), if there is exactly one.
func soleCodec(cs []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var out webrtc.RTPCodecParameters
	n := 0
	for _, c := range cs {
		switch strings.ToLower(c.MimeType) {
		case "video/rtx", "video/red", "video/ulpfec", "video/flexfec-03", "audio/red":
			continue
		}
		out = c
		n++
	}
	return out, n == 1
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
	p.part.room.sfu.keyframes.sent.Add(1)
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
}
