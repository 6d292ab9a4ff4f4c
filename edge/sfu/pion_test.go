package sfu

// Test harness: real pion PeerConnections on loopback talking to a real SFU
// through its Go API (the signaling layer is replaced by direct calls).
// Publishers send synthetic VP8 whose payload carries the layer and the
// publisher's own sequence number, so a subscriber can check every packet
// it receives, retransmissions included, against what was published.

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/wait"
)

// eventually polls cond (it returns "" when satisfied, or why not) until it
// holds or d passes: a bounded wait, never a timing assertion.
func eventually(t testing.TB, d time.Duration, cond func() string) {
	t.Helper()
	wait.Until(t, d, cond)
}

func quietPion() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	return f
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.IncludeLoopbackCandidate = true
	cfg.PionLoggerFactory = quietPion()
	return cfg
}

func newTestSFU(t testing.TB, cfg Config) *SFU {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testSink hands what the SFU says to a test client.
type testSink struct {
	offers chan string
	mu     sync.Mutex
	cand   map[string]func(webrtc.ICECandidateInit)
}

func newTestSink() *testSink {
	return &testSink{offers: make(chan string, 16), cand: map[string]func(webrtc.ICECandidateInit){}}
}

func (s *testSink) onCandidate(target string, fn func(webrtc.ICECandidateInit)) {
	s.mu.Lock()
	s.cand[target] = fn
	s.mu.Unlock()
}

func (s *testSink) SubscriberOffer(sdp string) { s.offers <- sdp }
func (s *testSink) Candidate(target string, c *webrtc.ICECandidateInit) {
	s.mu.Lock()
	fn := s.cand[target]
	s.mu.Unlock()
	if fn != nil && c != nil {
		fn(*c)
	}
}
func (s *testSink) TrackPublished(wire.TrackInfo)     {}
func (s *testSink) TrackUnpublished(string, string)   {}
func (s *testSink) ActiveSpeakers([]string)           {}
func (s *testSink) ConnectionQuality(string, float64) {}

// clientOpts chooses what a test client's PeerConnections do, like a browser.
type clientOpts struct {
	nack, reports, twcc bool
	// net replaces the client's sockets (injected loss).
	net transport.Net
	// srtpProfiles and dtlsSuites narrow what the client's DTLS offers
	// (nil: pion's defaults); dtlsServer makes it answer as the DTLS server.
	srtpProfiles []dtls.SRTPProtectionProfile
	dtlsSuites   []dtls.CipherSuiteID
	dtlsServer   bool
	// noCryptex: the client declares no RTP header encryption (RFC 9335).
	noCryptex bool
}

var browserLike = clientOpts{nack: true, reports: true, twcc: true}

func clientAPI(t testing.TB, o clientOpts) *webrtc.API {
	t.Helper()
	api, err := newClientAPI(o)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func newClientAPI(o clientOpts) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if o.nack {
		if err := webrtc.ConfigureNack(m, reg); err != nil {
			return nil, err
		}
	}
	if o.reports {
		if err := webrtc.ConfigureRTCPReports(reg); err != nil {
			return nil, err
		}
	}
	if o.twcc {
		if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
			return nil, err
		}
	}
	se := webrtc.SettingEngine{LoggerFactory: quietPion()}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if o.net != nil {
		se.SetNet(o.net)
	}
	if o.srtpProfiles != nil {
		se.SetSRTPProtectionProfiles(o.srtpProfiles...)
	}
	if o.dtlsSuites != nil {
		se.SetDTLSCipherSuites(o.dtlsSuites...)
	}
	if o.dtlsServer {
		if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
			return nil, err
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// ---- publisher ----

// Synthetic VP8: payload descriptor (S bit, partition 0), a key or delta
// frame tag, then a tag the subscriber checks: 'M', layer, publisher seq.
const tagLen = 4

func vp8Payload(buf []byte, key bool, layer int, seq uint16, size int) []byte {
	buf = buf[:0]
	if key {
		// frame tag (key), start code, 1280x720
		buf = append(buf, 0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02)
	} else {
		buf = append(buf, 0x10, 0x11, 0x02, 0x00)
	}
	buf = append(buf, 'M', byte(layer), byte(seq>>8), byte(seq))
	for len(buf) < size {
		buf = append(buf, byte(len(buf)))
	}
	return buf
}

// payloadTag returns the layer and publisher sequence number a synthetic
// payload carries.
func payloadTag(p []byte) (layer int, seq uint16, ok bool) {
	i, _ := vp8Header(p)
	if i == 0 || len(p) < i+1 {
		return 0, 0, false
	}
	off := i + 3 // delta frame tag
	if p[i]&0x01 == 0 {
		off = i + 10 // key frame tag + start code + size
	}
	if len(p) < off+tagLen || p[off] != 'M' {
		return 0, 0, false
	}
	return int(p[off+1]), binary.BigEndian.Uint16(p[off+2:]), true
}

type testPublisher struct {
	t      testing.TB
	part   *Participant
	pc     *webrtc.PeerConnection
	tracks []*webrtc.TrackLocalStaticRTP // one per layer
	audio  *webrtc.TrackLocalStaticRTP
	sender *webrtc.RTPSender
	rids   []string

	midExt, ridExt uint8
	mid            string

	keyReq [nLayers]atomic.Bool
	plis   [nLayers]atomic.Int64 // keyframe requests received per layer
	ssrcs  [nLayers]uint32

	mu  sync.Mutex
	seq [nLayers]uint16
	ts  [nLayers]uint32

	stop chan struct{}
	wg   sync.WaitGroup
}

type pubOpts struct {
	simulcast bool
	audio     bool
	// Generated media: frames/s, packets per frame and payload size; 0
	// frames/s sends nothing (the test drives sendFrame itself).
	fps, pktsPerFrame, size int
	keyEvery                int // frames between unrequested key frames (0: only on request)
	// noNACK: the publisher does not answer NACKs (no retransmissions,
	// so every packet reaches the edge once, in the order sent, or never).
	noNACK bool
}

func startPublisher(t testing.TB, s *SFU, room, id string, o pubOpts) *testPublisher {
	t.Helper()
	sink := newTestSink()
	part, err := s.Join(room, ParticipantConfig{ID: id, CanPublish: true, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := part.Start(); err != nil {
		t.Fatal(err)
	}
	co := browserLike
	co.nack = !o.noNACK
	pc, err := clientAPI(t, co).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPublisher{t: t, part: part, pc: pc, stop: make(chan struct{})}
	p.rids = []string{""}
	if o.simulcast {
		p.rids = []string{"q", "h", "f"}
	}
	for _, rid := range p.rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera", opts...)
		if err != nil {
			t.Fatal(err)
		}
		p.tracks = append(p.tracks, tr)
	}
	tr, err := pc.AddTransceiverFromTrack(p.tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range p.tracks[1:] {
		if err := tr.Sender().AddEncoding(extra); err != nil {
			t.Fatal(err)
		}
	}
	p.sender = tr.Sender()
	if o.audio {
		if p.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "camera"); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(p.audio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	negotiatePublisher(t, pc, part, sink)
	params := p.sender.GetParameters()
	if o.simulcast {
		for _, e := range params.HeaderExtensions {
			switch e.URI {
			case sdp.SDESMidURI:
				p.midExt = uint8(e.ID)
			case sdp.SDESRTPStreamIDURI:
				p.ridExt = uint8(e.ID)
			}
		}
		p.mid = tr.Mid()
	}
	for i, e := range params.Encodings {
		p.ssrcs[i] = uint32(e.SSRC)
		p.seq[i] = uint16(1000 * (i + 1))
		p.ts[i] = uint32(100000 * (i + 1))
		p.keyReq[i].Store(true)
	}
	for _, rid := range p.rids {
		p.wg.Add(1)
		go p.readRTCP(rid)
	}
	if o.fps > 0 {
		p.wg.Add(1)
		go p.generate(o)
	}
	t.Cleanup(p.close)
	return p
}

func candidateJSON(c webrtc.ICECandidateInit) []byte {
	b, _ := json.Marshal(c)
	return b
}

func (p *testPublisher) readRTCP(rid string) {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		var n int
		var err error
		if rid == "" {
			n, _, err = p.sender.Read(buf)
		} else {
			n, _, err = p.sender.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		for _, pk := range pkts {
			var ssrc uint32
			switch pk := pk.(type) {
			case *rtcp.PictureLossIndication:
				ssrc = pk.MediaSSRC
			case *rtcp.FullIntraRequest:
				ssrc = pk.MediaSSRC
			default:
				continue
			}
			for i := range p.rids {
				if p.ssrcs[i] == ssrc {
					p.plis[i].Add(1)
					p.keyReq[i].Store(true)
				}
			}
		}
	}
}

// sendFrame sends one frame of every layer (a key frame where one was
// requested or key is set) and returns the first publisher sequence number
// used per layer.
func (p *testPublisher) sendFrame(pktsPerFrame, size int, key bool) {
	buf := make([]byte, 0, 1500)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, tr := range p.tracks {
		k := p.keyReq[i].Swap(false) || key
		p.ts[i] += 3000
		for j := 0; j < pktsPerFrame; j++ {
			pl := vp8Payload(buf, k && j == 0, i, p.seq[i], size)
			if j > 0 {
				pl[0] &^= 0x10 // continuation of the frame: not a start
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, Marker: j == pktsPerFrame-1, SequenceNumber: p.seq[i], Timestamp: p.ts[i]}, Payload: pl}
			p.seq[i]++
			if p.ridExt != 0 {
				// pion leaves the simulcast identification to the writer.
				_ = pkt.Header.SetExtension(p.midExt, []byte(p.mid))
				_ = pkt.Header.SetExtension(p.ridExt, []byte(p.rids[i]))
			}
			_ = tr.WriteRTP(&pkt)
		}
	}
}

func (p *testPublisher) generate(o pubOpts) {
	defer p.wg.Done()
	tick := time.NewTicker(time.Second / time.Duration(o.fps))
	defer tick.Stop()
	var aseq uint16
	var ats uint32
	for n := 1; ; n++ {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.sendFrame(o.pktsPerFrame, o.size, o.keyEvery > 0 && n%o.keyEvery == 0)
		if p.audio != nil {
			aseq++
			ats += 960
			_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: ats}, Payload: make([]byte, 80)})
		}
	}
}

func (p *testPublisher) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	_ = p.pc.Close()
	p.wg.Wait()
	p.part.Close()
}

// track returns the SFU's published video track once it exists.
func (p *testPublisher) videoTrack(t testing.TB) *PublishedTrack {
	t.Helper()
	var tr *PublishedTrack
	eventually(t, 10*time.Second, func() string {
		if tr = p.part.pub.track("video"); tr == nil {
			return "video track not published yet"
		}
		return ""
	})
	return tr
}

// ---- subscriber ----

// recvPacket is one RTP packet a test subscriber received.
type recvPacket struct {
	seq    uint16
	ts     uint32
	ssrc   uint32
	layer  int
	pubSeq uint16
	tagged bool
	key    bool
}

type recvTrack struct {
	kind string
	pkts []recvPacket
}

type testSubscriber struct {
	t    testing.TB
	part *Participant
	pc   *webrtc.PeerConnection

	mu        sync.Mutex
	tracks    map[string]*recvTrack // by kind
	offers    []string              // every offer the edge sent, in order
	answerErr error                 // the first error answering one
	wg        sync.WaitGroup
	done      chan struct{}
	closed    bool
}

// startSubscriber joins room as a subscribe-only participant whose client
// answers the edge's offers (joinSubscriber, then attachSubscriber).
func startSubscriber(t testing.TB, s *SFU, room, id string, o clientOpts) *testSubscriber {
	t.Helper()
	part, sink := joinSubscriber(t, s, room, id)
	return attachSubscriber(t, part, sink, o)
}

// joinSubscriber joins and starts a subscribe-only participant whose
// client is not there yet: the SFU subscribes it to the room's tracks,
// but holds its negotiation until attachSubscriber calls Ready (as the
// edge does until the client is told `joined`).
func joinSubscriber(t testing.TB, s *SFU, room, id string) (*Participant, *testSink) {
	t.Helper()
	sink := newTestSink()
	part, err := s.Join(room, ParticipantConfig{ID: id, CanSubscribe: true, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(part.Close)
	if err := part.Start(); err != nil {
		t.Fatal(err)
	}
	return part, sink
}

// attachSubscriber gives part a pion client that behaves like the
// signaling client: it trickles candidates both ways (the edge's wait
// until the client has an offer to add them to) and answers every offer
// the edge sends until the subscriber closes, or until its own
// PeerConnection fails to take an offer (then it answers nothing more and
// the test misses the media it expects). The first error, the client's or
// the edge's HandleAnswer, is kept for negotiation. It releases the held
// negotiation (Ready).
func attachSubscriber(t testing.TB, part *Participant, sink *testSink, o clientOpts) *testSubscriber {
	t.Helper()
	conf := webrtc.Configuration{}
	if o.noCryptex {
		conf.RTPHeaderEncryptionPolicy = webrtc.RTPHeaderEncryptionPolicyDisable
	}
	pc, err := clientAPI(t, o).NewPeerConnection(conf)
	if err != nil {
		t.Fatal(err)
	}
	c := &testSubscriber{t: t, part: part, pc: pc, tracks: map[string]*recvTrack{}, done: make(chan struct{})}
	var pend []webrtc.ICECandidateInit
	var pmu sync.Mutex
	sink.onCandidate(TargetSubscriber, func(cand webrtc.ICECandidateInit) {
		pmu.Lock()
		defer pmu.Unlock()
		if pc.RemoteDescription() == nil {
			pend = append(pend, cand)
			return
		}
		_ = pc.AddICECandidate(cand)
	})
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			_ = part.AddICECandidate(TargetSubscriber, candidateJSON(cand.ToJSON()))
		}
	})
	pc.OnTrack(c.onTrack)
	fail := func(err error) {
		c.mu.Lock()
		if c.answerErr == nil {
			c.answerErr = err
		}
		c.mu.Unlock()
	}
	// answer reports whether the client can go on: after its own
	// PeerConnection refused an offer it cannot answer another.
	answer := func(sdp string) bool {
		c.mu.Lock()
		c.offers = append(c.offers, sdp)
		c.mu.Unlock()
		pmu.Lock()
		err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
		for _, cand := range pend {
			_ = pc.AddICECandidate(cand)
		}
		pend = nil
		pmu.Unlock()
		var ans webrtc.SessionDescription
		if err == nil {
			ans, err = pc.CreateAnswer(nil)
		}
		if err == nil {
			err = pc.SetLocalDescription(ans)
		}
		if err != nil {
			fail(err)
			return false
		}
		if err := part.HandleAnswer(ans.SDP); err != nil {
			fail(err) // the edge's side: its next offer may still work
		}
		return true
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case <-c.done:
				return
			case sdp := <-sink.offers:
				if !answer(sdp) {
					return
				}
			}
		}
	}()
	part.Ready()
	t.Cleanup(c.close)
	return c
}

// negotiation returns the offers the edge sent so far and the first error
// answering one (nil if none).
func (c *testSubscriber) negotiation() ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.offers...), c.answerErr
}

func (c *testSubscriber) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	kind := tr.Kind().String()
	c.mu.Lock()
	rt := c.tracks[kind]
	if rt == nil {
		rt = &recvTrack{kind: kind}
		c.tracks[kind] = rt
	}
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 1500)
		var pkt rtp.Packet
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if pkt.Unmarshal(buf[:n]) != nil {
				continue
			}
			rp := recvPacket{seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC}
			rp.layer, rp.pubSeq, rp.tagged = payloadTag(pkt.Payload)
			rp.key = isVP8Keyframe(pkt.Payload)
			c.mu.Lock()
			rt.pkts = append(rt.pkts, rp)
			c.mu.Unlock()
		}
	}()
}

// received returns a copy of what arrived on the track of kind.
func (c *testSubscriber) received(kind string) []recvPacket {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt := c.tracks[kind]; rt != nil {
		return append([]recvPacket(nil), rt.pkts...)
	}
	return nil
}

func (c *testSubscriber) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	c.part.Close()
	_ = c.pc.Close()
	c.wg.Wait()
}

// ---- injected loss on the receiving side ----

// dropNet is a transport.Net whose sockets drop chosen incoming RTP packets
// before pion sees them (so its NACK generator notices the gap). drop is
// called with the RTP header of every incoming RTP packet (SRTP leaves the
// header in clear) and must be safe for concurrent use.
type dropNet struct {
	*stdnet.Net
	drop func(h *rtp.Header) bool
}

func newDropNet(t testing.TB, drop func(h *rtp.Header) bool) *dropNet {
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return &dropNet{Net: n, drop: drop}
}

func (d *dropNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := d.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &dropConn{UDPConn: c, n: d}, nil
}

func (d *dropNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := d.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(transport.UDPConn)
	if !ok {
		return c, nil
	}
	return &dropConn{UDPConn: uc, n: d}, nil
}

type dropConn struct {
	transport.UDPConn
	n *dropNet
}

func (c *dropConn) dropped(b []byte) bool {
	// RFC 7983: 128..191 is RTP/RTCP; RTCP packet types are 192..223.
	if len(b) < 12 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) {
		return false
	}
	var h rtp.Header
	if _, err := h.Unmarshal(b); err != nil {
		return false
	}
	return c.n.drop(&h)
}

func (c *dropConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.UDPConn.ReadFrom(b)
		if err != nil || !c.dropped(b[:n]) {
			return n, a, err
		}
	}
}

func (c *dropConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	for {
		n, a, err := c.UDPConn.ReadFromUDP(b)
		if err != nil || !c.dropped(b[:n]) {
			return n, a, err
		}
	}
}

func (c *dropConn) ReadMsgUDP(b, oob []byte) (int, int, int, *net.UDPAddr, error) {
	for {
		n, oobn, flags, a, err := c.UDPConn.ReadMsgUDP(b, oob)
		if err != nil || !c.dropped(b[:n]) {
			return n, oobn, flags, a, err
		}
	}
}

func (c *dropConn) Read(b []byte) (int, error) {
	for {
		n, err := c.UDPConn.Read(b)
		if err != nil || !c.dropped(b[:n]) {
			return n, err
		}
	}
}

// negotiatePublisher runs the client's side of a publisher connection: it
// offers pc's send-only tracks to part, trickles candidates both ways
// (holding the edge's until the answer is set) and applies the answer.
func negotiatePublisher(t testing.TB, pc *webrtc.PeerConnection, part *Participant, sink *testSink) {
	t.Helper()
	var pend []webrtc.ICECandidateInit
	var pmu sync.Mutex
	sink.onCandidate(TargetPublisher, func(c webrtc.ICECandidateInit) {
		pmu.Lock()
		defer pmu.Unlock()
		if pc.RemoteDescription() == nil {
			pend = append(pend, c)
			return
		}
		_ = pc.AddICECandidate(c)
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = part.AddICECandidate(TargetPublisher, candidateJSON(c.ToJSON()))
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	ans, err := part.HandleOffer(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	pmu.Lock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
		pmu.Unlock()
		t.Fatal(err)
	}
	for _, c := range pend {
		_ = pc.AddICECandidate(c)
	}
	pmu.Unlock()
}
