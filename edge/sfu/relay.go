package sfu

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// A cascade leg has two ends. Upstream, a hidden relay participant
// (ParticipantConfig.Relay) subscribes to every layer of every track
// published on this edge and offers them on one PeerConnection. Downstream,
// a RelayIn answers that offer and turns each arriving track into a track of
// a remote participant in the local room, where local subscribers pick
// layers from it as they would from a local publisher. The relay track id
// carries what the downstream end needs to build the track without waiting
// for any other message: "<trackId>|<layer>|<s|n>|<source>".

func itoa(n int) string { return strconv.Itoa(n) }

func relayTrackID(info wire.TrackInfo, layer int) string {
	sim := "n"
	if info.Simulcast {
		sim = "s"
	}
	return info.TrackID + "|" + itoa(layer) + "|" + sim + "|" + info.Source
}

type relayTrack struct {
	trackID   string
	layer     int
	simulcast bool
	source    string
}

func parseRelayTrackID(id string) (relayTrack, bool) {
	parts := strings.Split(id, "|")
	if len(parts) < 4 {
		return relayTrack{}, false
	}
	n := len(parts)
	layer, err := strconv.Atoi(parts[n-3])
	if err != nil || layer < 0 || layer >= nLayers || (parts[n-2] != "s" && parts[n-2] != "n") {
		return relayTrack{}, false
	}
	rt := relayTrack{trackID: strings.Join(parts[:n-3], "|"), layer: layer, simulcast: parts[n-2] == "s", source: parts[n-1]}
	if rt.trackID == "" || (!rt.simulcast && layer != 0) {
		return relayTrack{}, false
	}
	switch rt.source {
	case "microphone", "camera", "screen", "screen_audio":
	default:
		return relayTrack{}, false
	}
	return rt, true
}

// LegStats summarises one cascade leg end.
type LegStats struct {
	Tracks  int     // relayed tracks (all layers count once)
	Packets uint64  // RTP packets sent (upstream end) or received (downstream end)
	Bytes   uint64  // payload + header bytes
	Bitrate float64 // bit/s over the last interval
	RTTMs   float64 // round trip on the leg (upstream end, from receiver reports)
}

// RelayStats sums what a relay participant sends on its leg.
func (p *Participant) RelayStats() LegStats {
	var ls LegStats
	if p.sub == nil {
		return ls
	}
	seen := map[*PublishedTrack]bool{}
	var rtts []float64
	for _, f := range p.sub.forwarders() {
		if !seen[f.track] {
			seen[f.track] = true
			ls.Tracks++
		}
		ls.Packets += f.stats.packets.Load()
		ls.Bytes += f.stats.bytes.Load()
		ls.Bitrate += f.stats.bitrate.rate.Load() * 8
		if r := f.stats.rtt.Load(); r > 0 {
			rtts = append(rtts, r)
		}
	}
	for _, r := range rtts {
		ls.RTTMs += r * 1000 / float64(len(rtts))
	}
	return ls
}

// RelayIn is the downstream end of a cascade leg: the PeerConnection the
// upstream edge offers on, and the remote participants whose tracks arrive
// on it. Its methods are safe for concurrent use.
type RelayIn struct {
	sfu  *SFU
	room *Room
	peer string
	pc   *webrtc.PeerConnection

	mu      sync.Mutex
	parts   map[string]*Participant // by participant id
	pending []webrtc.ICECandidateInit
	closed  bool
}

// NewRelayIn opens the downstream end of a leg from edge peer for roomID.
// onCandidate receives local ICE candidates (nil: gathering finished).
func (s *SFU) NewRelayIn(roomID, peer string, onCandidate func(*webrtc.ICECandidateInit)) (*RelayIn, error) {
	r, err := s.acquireRoom(roomID)
	if err != nil {
		return nil, err
	}
	pc, err := s.media.newRelayPeerConnection(false)
	if err != nil {
		s.release(r)
		return nil, fmt.Errorf("sfu: relay peer connection: %w", err)
	}
	ri := &RelayIn{sfu: s, room: r, peer: peer, pc: pc, parts: map[string]*Participant{}}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			onCandidate(nil)
			return
		}
		init := c.ToJSON()
		onCandidate(&init)
	})
	pc.OnTrack(ri.onTrack)
	return ri, nil
}

// Negotiated reports whether the upstream edge has offered anything yet
// (it offers only once it has a track to carry).
func (ri *RelayIn) Negotiated() bool { return ri.pc.RemoteDescription() != nil }

// ConnectionState reports the leg's PeerConnection state.
func (ri *RelayIn) ConnectionState() webrtc.PeerConnectionState { return ri.pc.ConnectionState() }

// OnConnectionStateChange registers fn for the leg's PeerConnection.
func (ri *RelayIn) OnConnectionStateChange(fn func(webrtc.PeerConnectionState)) {
	ri.pc.OnConnectionStateChange(fn)
}

// HandleOffer applies the upstream edge's offer and returns the answer.
func (ri *RelayIn) HandleOffer(sdp string) (string, error) {
	if err := ri.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	ans, err := ri.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	if err := ri.pc.SetLocalDescription(ans); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	ri.mu.Lock()
	pend := ri.pending
	ri.pending = nil
	ri.mu.Unlock()
	for _, c := range pend {
		_ = ri.pc.AddICECandidate(c)
	}
	return ans.SDP, nil
}

// AddICECandidate adds a remote candidate (JSON RTCIceCandidateInit).
func (ri *RelayIn) AddICECandidate(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%w: candidate: %v", ErrBadSDP, err)
	}
	ri.mu.Lock()
	if ri.pc.RemoteDescription() == nil {
		if len(ri.pending) < maxPendingCandidates {
			ri.pending = append(ri.pending, c)
		}
		ri.mu.Unlock()
		return nil
	}
	ri.mu.Unlock()
	return ri.pc.AddICECandidate(c)
}

// AddParticipant makes a remote participant visible in the local room; its
// tracks arrive on the leg. Adding one that exists updates nothing.
func (ri *RelayIn) AddParticipant(id, name string) error {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.closed {
		return ErrClosed
	}
	if ri.parts[id] != nil {
		return nil
	}
	p, err := ri.newRemote(id, name)
	if err != nil {
		return err
	}
	ri.parts[id] = p
	return nil
}

// newRemote builds and starts a remote participant (ri.mu held).
func (ri *RelayIn) newRemote(id, name string) (*Participant, error) {
	r, err := ri.sfu.acquireRoom(ri.room.id)
	if err != nil {
		return nil, err
	}
	p := &Participant{room: r, id: id, key: remoteKeyPrefix + ri.peer + "/" + id, name: name, sink: nopSink{}, remote: true, origin: ri.peer}
	p.pub = &Publisher{part: p, pc: ri.pc, shared: true, tracks: map[string]*PublishedTrack{}, mutedHint: map[string]bool{}}
	if err := p.Start(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// RemoveParticipant takes a remote participant out of the local room.
func (ri *RelayIn) RemoveParticipant(id string) {
	ri.mu.Lock()
	p := ri.parts[id]
	delete(ri.parts, id)
	ri.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

// Participants lists the remote participants' ids.
func (ri *RelayIn) Participants() []string {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	out := make([]string, 0, len(ri.parts))
	for id := range ri.parts {
		out = append(out, id)
	}
	return out
}

// Tracks describes a remote participant's relayed tracks.
func (ri *RelayIn) Tracks(id string) []wire.TrackInfo {
	ri.mu.Lock()
	p := ri.parts[id]
	ri.mu.Unlock()
	if p == nil {
		return []wire.TrackInfo{}
	}
	return p.Tracks()
}

// SetMuted records a remote track's mute state (also before it arrives).
func (ri *RelayIn) SetMuted(id, trackID string, muted bool) {
	ri.mu.Lock()
	p := ri.parts[id]
	ri.mu.Unlock()
	if p == nil {
		return
	}
	p.pub.mu.Lock()
	p.pub.mutedHint[trackID] = muted
	t := p.pub.tracks[trackID]
	p.pub.mu.Unlock()
	if t != nil {
		t.setMuted(muted)
	}
}

// RemoveTrack ends a remote track (its publisher stopped it upstream).
func (ri *RelayIn) RemoveTrack(id, trackID string) {
	ri.mu.Lock()
	p := ri.parts[id]
	ri.mu.Unlock()
	if p == nil {
		return
	}
	if t := p.pub.track(trackID); t != nil {
		t.stopReceivers() // the readers end and unpublish the track
	}
}

// Stats sums what arrived on the leg.
func (ri *RelayIn) Stats(now time.Time) LegStats {
	var ls LegStats
	ri.mu.Lock()
	ps := make([]*Participant, 0, len(ri.parts))
	for _, p := range ri.parts {
		ps = append(ps, p)
	}
	ri.mu.Unlock()
	for _, p := range ps {
		for _, t := range p.pub.trackList() {
			ls.Tracks++
			t.mu.Lock()
			ls2 := t.layers
			t.mu.Unlock()
			for _, l := range ls2 {
				if l != nil {
					ls.Packets += l.stats.packets.Load()
					ls.Bytes += l.stats.bytes.Load()
					ls.Bitrate += l.stats.bitrate.rate.Load() * 8
				}
			}
		}
	}
	return ls
}

func (ri *RelayIn) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	rt, ok := parseRelayTrackID(remote.ID())
	pid := remote.StreamID()
	if !ok || pid == "" {
		ri.sfu.log.Warn("sfu: relay track with an unexpected id", "peer", ri.peer, "id", remote.ID(), "stream", pid)
		_ = recv.Stop()
		return
	}
	ri.mu.Lock()
	if ri.closed {
		ri.mu.Unlock()
		_ = recv.Stop()
		return
	}
	p := ri.parts[pid]
	if p == nil {
		// The participant's announcement precedes its tracks on the leg's
		// socket; a track without one still gets a participant, so media
		// is never dropped for want of a name.
		var err error
		if p, err = ri.newRemote(pid, pid); err != nil {
			ri.mu.Unlock()
			_ = recv.Stop()
			return
		}
		ri.parts[pid] = p
	}
	ri.mu.Unlock()
	p.pub.addRelayTrack(remote, recv, rt)
}

// Close removes the remote participants and closes the leg's
// PeerConnection. Idempotent.
func (ri *RelayIn) Close() {
	ri.mu.Lock()
	if ri.closed {
		ri.mu.Unlock()
		return
	}
	ri.closed = true
	ps := ri.parts
	ri.parts = map[string]*Participant{}
	ri.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	_ = ri.pc.Close()
	ri.sfu.release(ri.room)
}

// nopSink is the sink of remote participants: what the local room says to
// them is not theirs to hear (their own edge tells them).
type nopSink struct{}

func (nopSink) SubscriberOffer(string)                                {}
func (nopSink) Candidate(string, *webrtc.ICECandidateInit)            {}
func (nopSink) TrackPublished(wire.TrackInfo)                         {}
func (nopSink) TrackUnpublished(string, string)                       {}
func (nopSink) ActiveSpeakers([]string)                               {}
func (nopSink) ConnectionQuality(participantID string, score float64) {}
