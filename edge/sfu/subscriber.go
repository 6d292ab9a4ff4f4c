package sfu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// Subscriber owns the PeerConnection a participant receives on (the edge
// offers). Track changes are batched: at most one offer is outstanding, and
// changes made meanwhile go into the next one. One goroutine (run) owns
// negotiation; one goroutine per RTPSender drains RTCP.
type Subscriber struct {
	part *Participant
	pc   *webrtc.PeerConnection
	// twcc numbers what the forwarders send and turns the subscriber's
	// transport-cc feedback into the bandwidth estimate.
	twcc *twccSender
	// lastReports is when sender reports were last sent (room goroutine).
	lastReports time.Time

	// connected is set once ICE+DTLS are up; forwarders start (at a
	// keyframe) only then, as packets written earlier are lost.
	connected atomic.Bool
	// onState, when set, hears the PeerConnection's state changes.
	onState atomic.Pointer[func(webrtc.PeerConnectionState)]

	// secrets lets the connection's RTP skip pion's send path
	// (srtpdirect.go); direct is set, once, just before connected.
	secrets    *dtlsSecrets
	direct     atomic.Pointer[directSender]
	directOnce sync.Once
	// nudging and nudges: connectivity passes asked of pion while ICE
	// checks (icenudge.go).
	nudging atomic.Bool
	nudges  atomic.Uint32

	wg sync.WaitGroup // the negotiation goroutine, while one runs

	mu       sync.Mutex
	downs    map[string]*down // by publisher id + "/" + track id
	toAdd    []*down
	toRemove []*down
	awaiting bool // an offer is outstanding
	opened   bool // the first offer went out (the transport is being set up)
	held     bool // negotiation held until the participant is announced
	dirty    bool // changes may need an offer
	running  bool // a negotiation goroutine is running
	pending  []webrtc.ICECandidateInit
	closed   bool
}

type down struct {
	key    string
	f      *Forwarder
	sender *webrtc.RTPSender // set by negotiate once added to the PC
	rtcp   *senderRTCP       // its RTCP handler; rtcp.ssrc is the SSRC it sends on
}

func newSubscriber(part *Participant) (*Subscriber, error) {
	media := part.room.sfu.media
	var (
		pc      *webrtc.PeerConnection
		secrets *dtlsSecrets
		err     error
	)
	if part.relay {
		pc, err = media.newRelayPeerConnection(true)
	} else {
		pc, secrets, err = media.newSubscriberPeerConnection()
	}
	if err != nil {
		return nil, fmt.Errorf("sfu: subscriber peer connection: %w", err)
	}
	cfg := part.room.sfu.cfg
	s := &Subscriber{
		part: part, pc: pc, twcc: newTWCCSender(cfg.InitialBitrate, cfg.MinBitrate, cfg.MaxBitrate),
		downs: make(map[string]*down), held: true,
		secrets: secrets,
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { part.sendCandidate(TargetSubscriber, c) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			// pion runs state handlers on goroutines of their own: the
			// Once orders the switch before connected in all of them.
			s.directOnce.Do(s.enableDirect)
			if !s.connected.Swap(true) {
				for _, f := range s.forwarders() {
					f.connectedNow()
				}
			}
		}
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			// ICE gave up (no consent from the client for pion's failed
			// timeout) or the connection closed: direct SRTP stops sending.
			if d := s.direct.Load(); d != nil {
				d.stop()
			}
		}
		if fn := s.onState.Load(); fn != nil {
			(*fn)(st)
		}
	})
	return s, nil
}

// trackKey is the public name of a track ("participantId/trackId").
func trackKey(t *PublishedTrack) string { return t.info.ParticipantID + "/" + t.info.TrackID }

// downKey names a subscriber's forwarder of t: by the publisher's room key,
// so a participant relayed from two edges for a moment (it is moving) never
// makes one of its tracks hide the other.
func downKey(t *PublishedTrack) string { return t.pub.part.key + "/" + t.info.TrackID }

// poke notes that negotiation may be needed and starts the negotiation
// goroutine unless one runs: a subscriber whose tracks do not change has
// no goroutine of its own.
func (s *Subscriber) poke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirty = true
	if s.running || s.closed {
		return
	}
	s.running = true
	s.wg.Add(1)
	go s.run()
}

// release lets negotiation start (after the client got `joined`).
func (s *Subscriber) release() {
	s.mu.Lock()
	s.held = false
	s.mu.Unlock()
	s.poke()
}

// subscribe adds a forwarder for t (idempotent). A relay subscriber gets
// one forwarder per simulcast layer, so the far edge can choose layers per
// subscriber itself.
func (s *Subscriber) subscribe(t *PublishedTrack) {
	layers := []int{autoPick}
	if s.part.relay {
		if t.pub.part.remote {
			return
		}
		layers = []int{0}
		if t.simulcast {
			layers = []int{LayerQ, LayerH, LayerF}
		}
	}
	var added []*down
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for _, idx := range layers {
		key := downKey(t)
		if idx != autoPick {
			key += "|" + itoa(idx)
		}
		if s.downs[key] != nil {
			continue
		}
		d := &down{key: key, f: newForwarder(t, s, idx)}
		s.downs[key] = d
		s.toAdd = append(s.toAdd, d)
		added = append(added, d)
	}
	s.mu.Unlock()
	for _, d := range added {
		t.addForwarder(d.f)
	}
	if len(added) > 0 {
		s.poke()
	}
}

// unsubscribe removes t's forwarders.
func (s *Subscriber) unsubscribe(t *PublishedTrack) {
	var gone []*down
	s.mu.Lock()
	for key, d := range s.downs {
		if d.f.track == t {
			delete(s.downs, key)
			s.toRemove = append(s.toRemove, d)
			gone = append(gone, d)
		}
	}
	s.mu.Unlock()
	for _, d := range gone {
		t.removeForwarder(d.f)
		s.part.room.sfu.retire(d.f)
	}
	if len(gone) > 0 {
		s.poke()
	}
}

func (s *Subscriber) forwarder(key string) *Forwarder {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.downs[key]; d != nil {
		return d.f
	}
	return nil
}

func (s *Subscriber) forwarders() []*Forwarder {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Forwarder, 0, len(s.downs))
	for _, d := range s.downs {
		out = append(out, d.f)
	}
	return out
}

// run negotiates until nothing is left to do.
func (s *Subscriber) run() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if !s.dirty || s.closed {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.dirty = false
		s.mu.Unlock()
		s.negotiate()
	}
}

// negotiate applies queued changes and sends one offer.
func (s *Subscriber) negotiate() {
	s.mu.Lock()
	// A client's first offer goes out at once, tracks or not: its ICE and
	// DTLS then run while the others are still publishing, and their
	// tracks come later as a renegotiation of the connected transport.
	early := !s.opened && !s.part.relay
	if s.closed || s.awaiting || s.held || (len(s.toAdd) == 0 && len(s.toRemove) == 0 && !early) {
		s.mu.Unlock()
		return
	}
	adds, removes := s.toAdd, s.toRemove
	s.toAdd, s.toRemove = nil, nil
	s.mu.Unlock()

	router := s.part.room.sfu.media.rtcp
	changed := false
	for _, d := range removes {
		if d.sender != nil {
			_ = s.pc.RemoveTrack(d.sender)
			changed = true
		}
		if d.rtcp != nil {
			router.release(d.rtcp.ssrc)
		}
	}
	for _, d := range adds {
		s.mu.Lock()
		gone := s.downs[d.key] != d
		s.mu.Unlock()
		if gone {
			continue
		}
		h := &senderRTCP{s: s, f: d.f}
		ssrc := router.allocate(h)
		tr, err := s.pc.AddTransceiverFromTrack(d.f.dt, webrtc.RTPTransceiverInit{
			Direction:     webrtc.RTPTransceiverDirectionSendonly,
			SendEncodings: []webrtc.RTPEncodingParameters{{RTPCodingParameters: webrtc.RTPCodingParameters{SSRC: webrtc.SSRC(ssrc)}}},
		})
		if err != nil {
			router.release(ssrc)
			s.part.room.sfu.log.Warn("sfu: add track", "participant", s.part.id, "track", d.key, "err", err)
			continue
		}
		s.mu.Lock()
		d.sender, d.rtcp = tr.Sender(), h
		s.mu.Unlock()
		changed = true
	}
	if !changed && early {
		// Nothing to send yet: a receive-only audio section gives the offer
		// its ICE and DTLS parameters. Clients answer it inactive (they have
		// nothing to send), so it never carries media nor makes a remote
		// track; later offers keep it as it is. Rejected: a data channel —
		// an SCTP association per subscriber that nothing uses.
		if _, err := s.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio,
			webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			if s.pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
				s.part.room.sfu.log.Warn("sfu: subscriber transport", "participant", s.part.id, "err", err)
			}
			return
		}
		changed = true
	}
	if !changed {
		// Everything queued was undone before it reached the connection (a
		// track unpublished right after it was published, as when
		// participants move between edges). An offer now would change
		// nothing — and on a fresh connection it has no media section, hence
		// no ICE credentials: clients cannot answer it, and negotiation
		// would wait for that answer forever.
		return
	}
	offer, err := s.pc.CreateOffer(nil)
	if err == nil {
		err = s.pc.SetLocalDescription(offer)
	}
	if err != nil {
		if s.pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
			return // the participant is leaving: nothing to negotiate
		}
		s.part.room.sfu.log.Warn("sfu: subscriber offer", "participant", s.part.id, "err", err)
		return
	}
	s.mu.Lock()
	s.awaiting, s.opened = true, true
	s.mu.Unlock()
	s.part.sink.SubscriberOffer(offer.SDP)
}

// handleAnswer applies the client's answer to the last offer.
func (s *Subscriber) handleAnswer(sdp string) error {
	s.mu.Lock()
	if !s.awaiting {
		s.mu.Unlock()
		return fmt.Errorf("%w: no subscriber offer outstanding", ErrBadSDP)
	}
	s.mu.Unlock()
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	s.mu.Lock()
	s.awaiting = false
	pend := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, c := range pend {
		_ = s.pc.AddICECandidate(c)
	}
	s.scheduleNudges()
	s.poke()
	return nil
}

func (s *Subscriber) addCandidate(c webrtc.ICECandidateInit) error {
	s.mu.Lock()
	if s.pc.RemoteDescription() == nil {
		if len(s.pending) < maxPendingCandidates {
			s.pending = append(s.pending, c)
		}
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	return s.pc.AddICECandidate(c)
}

// senderRTCP acts on the RTCP about one sender's stream (rtcpRouter calls
// it on the PeerConnection's SRTCP goroutine, one packet at a time):
// keyframe requests, NACKs (answered from the track's retransmission
// buffers), receiver reports, and transport-cc feedback addressed to it
// (so each feedback message is counted once).
type senderRTCP struct {
	s    *Subscriber
	f    *Forwarder
	ssrc uint32
}

func (h *senderRTCP) keyframeRequest(ssrc uint32) {
	if ssrc == h.ssrc {
		h.f.RequestKeyframe()
	}
}

func (h *senderRTCP) nack(ssrc uint32, pid, blp uint16) {
	if ssrc == h.ssrc {
		h.f.retransmit(pid, blp)
	}
}

func (h *senderRTCP) report(b reportBlock) {
	if b.ssrc == h.ssrc {
		h.f.stats.onReport(rtcp.ReceptionReport{
			SSRC: b.ssrc, FractionLost: b.fractionLost, TotalLost: b.totalLost, LastSequenceNumber: b.highestSeq,
			Jitter: b.jitter, LastSenderReport: b.lsr, Delay: b.dlsr,
		}, time.Now(), h.f.track.codec.ClockRate)
	}
}

func (h *senderRTCP) transportCC(ssrc uint32, fci []byte) {
	if ssrc == h.ssrc {
		h.s.twcc.onFeedback(fci, monoNow())
	}
}

// Estimate is the subscriber's current bandwidth estimate in bit/s.
func (s *Subscriber) Estimate() int { return s.twcc.Estimate() }

// tick re-selects layers from the estimate and re-requests keyframes for
// forwarders that still wait (room housekeeping goroutine).
func (s *Subscriber) tick(now time.Time, selectLayers bool) {
	fs := s.forwarders()
	if now.Sub(s.lastReports) >= reportInterval {
		s.lastReports = now
		s.sendReports(fs, now)
	}
	for _, f := range fs {
		f.stats.bitrate.update(now, f.stats.bytes.Load())
		if f.waiting(time.Second) {
			f.waitingSince.Store(monoNow())
			f.RequestKeyframe()
		}
	}
	if selectLayers && !s.part.relay {
		selectLayersFor(fs, s.Estimate())
	}
}

// selectLayersFor shares the estimate between the auto simulcast forwarders
// (audio and non-simulcast video first) and picks for each the best layer
// whose measured bitrate fits its share.
func selectLayersFor(fs []*Forwarder, estimate int) {
	budget := float64(estimate)
	var auto []*Forwarder
	for _, f := range fs {
		if f.track.simulcast && f.pinned.Load() == autoPick {
			auto = append(auto, f)
			continue
		}
		budget -= f.stats.bitrate.rate.Load() * 8
	}
	if len(auto) == 0 {
		return
	}
	share := budget / float64(len(auto))
	for _, f := range auto {
		avail, rates := f.track.availableLayers()
		pick := -1
		for i := nLayers - 1; i >= 0; i-- {
			if avail[i] && (rates[i]*1.1 <= share || estimate == 0) {
				pick = i
				break
			}
		}
		if pick < 0 { // nothing fits: the lowest available
			for i := 0; i < nLayers; i++ {
				if avail[i] {
					pick = i
					break
				}
			}
		}
		if pick >= 0 {
			f.setTarget(pick)
		}
	}
}

func (s *Subscriber) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ds := make([]*down, 0, len(s.downs))
	for _, d := range s.downs {
		ds = append(ds, d)
	}
	s.downs = map[string]*down{}
	s.mu.Unlock()
	for _, d := range ds {
		d.f.track.removeForwarder(d.f)
		s.part.room.sfu.retire(d.f)
	}
	_ = s.pc.Close()
	s.wg.Wait()
	// Every sender's SSRC, including those already unsubscribed but not
	// yet renegotiated away.
	router := s.part.room.sfu.media.rtcp
	s.mu.Lock()
	for _, d := range append(ds, s.toRemove...) {
		if d.rtcp != nil {
			router.release(d.rtcp.ssrc)
		}
	}
	s.mu.Unlock()
}
