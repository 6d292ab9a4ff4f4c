package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// Config configures the media plane of one edge. Build it with DefaultConfig
// and adjust; New calls Validate.
type Config struct {
	// UDPMuxPort, when non-zero, makes every PeerConnection share the
	// edge's media sockets on port UDPMuxPort (the production setting: one
	// firewall rule): one socket on UDPMuxAddr, or one per local address
	// when UDPMuxAddr is empty. When zero and UDPPortMin/UDPPortMax are
	// set, each PeerConnection gets ephemeral ports of its own from that
	// range. When all three are zero, the PeerConnections share sockets on
	// ports the system picks. Shared sockets are what lets a packet's
	// fan-out leave in a few sendmmsg calls (batchconn.go).
	UDPMuxPort int
	// UDPMuxAddr is the one address the shared socket binds ("" = a
	// socket on every local address).
	UDPMuxAddr string
	UDPPortMin uint16
	UDPPortMax uint16
	// RelayPortMin and RelayPortMax bound the ports of cascade legs (edge
	// to edge) when the edge's connections share sockets (UDPMuxPort set,
	// or no UDPPortMin/UDPPortMax): two legs between the same two edges
	// (one each way, or one per room) would share one address pair on the
	// mux, which tells connections apart by remote address only, so legs
	// get sockets of their own. Both zero: any ephemeral port.
	RelayPortMin uint16
	RelayPortMax uint16
	// RelayNet, when set, is the network cascade legs' sockets are opened
	// through (tests put a lossy one there to exercise NACKs on the leg
	// hop). Legs need sockets of their own for it: not with UDPPortMin set
	// and no UDPMuxPort.
	RelayNet transport.Net

	// IncludeLoopbackCandidate gathers 127.0.0.1 candidates (tests, single-host dev).
	IncludeLoopbackCandidate bool
	// PionSendPath keeps subscribers' RTP on pion's send path (RTPSender,
	// SRTP session, ICE connection) instead of the edge's direct SRTP on
	// the shared sockets (srtpdirect.go): for comparison and diagnosis.
	PionSendPath bool
	// DisableMDNS stops gathering and resolving .local candidates.
	DisableMDNS bool
	// NAT1To1IPs replaces host candidate addresses with these public IPs
	// (an edge behind a 1:1 NAT, e.g. a cloud VM).
	NAT1To1IPs []string

	// EnableH264 offers H264 (constrained baseline, packetization-mode=1)
	// next to VP8.
	EnableH264 bool

	// InitialBitrate, MinBitrate and MaxBitrate bound each subscriber's
	// bandwidth estimate (bit/s).
	InitialBitrate int
	MinBitrate     int
	MaxBitrate     int

	// KeyframeInterval is the minimum time between two keyframe requests
	// (PLI) sent to a publisher for one published stream.
	KeyframeInterval time.Duration
	// SpeakerInterval is how often a room re-evaluates its active speakers
	// (and the most often it emits an active-speaker event).
	SpeakerInterval time.Duration
	// QualityInterval is how often connection-quality events are emitted.
	QualityInterval time.Duration
	// Tick is the room's housekeeping period (deferred keyframe requests,
	// rates, layer selection).
	Tick time.Duration

	// Now is the clock for housekeeping (not used per packet). Nil: time.Now.
	Now func() time.Time
	// Logger receives SFU logs. Nil: slog.Default().
	Logger *slog.Logger
	// PionLoggerFactory is handed to pion. Nil: pion's default (warnings on stderr).
	PionLoggerFactory logging.LoggerFactory
}

// DefaultConfig returns production defaults: shared media sockets on ports
// the system picks, mDNS off, no loopback candidates.
func DefaultConfig() Config {
	return Config{
		DisableMDNS:      true,
		InitialBitrate:   1_000_000,
		MinBitrate:       100_000,
		MaxBitrate:       8_000_000,
		KeyframeInterval: time.Second,
		SpeakerInterval:  500 * time.Millisecond,
		QualityInterval:  5 * time.Second,
		Tick:             100 * time.Millisecond,
	}
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	if c.UDPMuxPort < 0 || c.UDPMuxPort > 65535 {
		return fmt.Errorf("sfu: UDPMuxPort %d out of range", c.UDPMuxPort)
	}
	if c.RelayNet != nil && c.UDPMuxPort == 0 && c.UDPPortMin != 0 {
		return errors.New("sfu: RelayNet needs legs on sockets of their own (UDPMuxPort set, or no UDPPortMin/UDPPortMax)")
	}
	if c.UDPPortMin > c.UDPPortMax {
		return fmt.Errorf("sfu: UDPPortMin %d > UDPPortMax %d", c.UDPPortMin, c.UDPPortMax)
	}
	if (c.UDPPortMin == 0) != (c.UDPPortMax == 0) {
		return errors.New("sfu: UDPPortMin and UDPPortMax must be set together")
	}
	if c.UDPMuxPort != 0 && c.UDPPortMin != 0 {
		return errors.New("sfu: set either UDPMuxPort or UDPPortMin/UDPPortMax, not both")
	}
	if c.RelayPortMin > c.RelayPortMax || (c.RelayPortMin == 0) != (c.RelayPortMax == 0) {
		return errors.New("sfu: RelayPortMin and RelayPortMax must be set together, min <= max")
	}
	if c.UDPMuxAddr != "" {
		if _, err := netip.ParseAddr(c.UDPMuxAddr); err != nil {
			return fmt.Errorf("sfu: UDPMuxAddr: %w", err)
		}
	}
	for _, ip := range c.NAT1To1IPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("sfu: NAT1To1IPs: %w", err)
		}
	}
	if c.InitialBitrate <= 0 || c.MinBitrate <= 0 || c.MaxBitrate < c.MinBitrate {
		return errors.New("sfu: bitrates must be positive and MinBitrate <= MaxBitrate")
	}
	if c.InitialBitrate < c.MinBitrate || c.InitialBitrate > c.MaxBitrate {
		return errors.New("sfu: InitialBitrate must lie in [MinBitrate, MaxBitrate]")
	}
	if c.KeyframeInterval <= 0 || c.SpeakerInterval <= 0 || c.QualityInterval <= 0 || c.Tick <= 0 {
		return errors.New("sfu: KeyframeInterval, SpeakerInterval, QualityInterval and Tick must be positive")
	}
	return nil
}

// Header extension URIs we negotiate.
const (
	audioLevelURI = sdp.AudioLevelURI
)

// mediaAPI is what an edge builds its PeerConnections with: one
// webrtc.API for the connections it receives on (publishers, the far end
// of cascade legs) and one for those it sends on (subscribers, relay
// subscribers), sharing the media engine setup and the sockets.
//
// The receive side keeps pion's interceptors: the NACK generator, receiver
// reports and transport-cc feedback act once per published packet. The
// send side has none: every interceptor there runs once per packet per
// subscriber, and pion's (NACK responder copying every packet, gcc with a
// map per packet, report counters under a lock) cost more than the
// forwarding itself. The SFU does their work with shared state instead:
// one retransmission buffer per published layer (retx.go), transport-wide
// sequence numbers and a small estimator per subscriber (bwe.go), sender
// reports from the forwarders' counters once a second (reports.go).
type mediaAPI struct {
	recv, send *webrtc.API
	udpMux     ice.UDPMux
	// batch batches the mux sockets' sends during fan-outs (nil without
	// a mux).
	batch *sendBatcher
	// net is what the mux sockets were opened through (nil without a mux).
	net transport.Net
	// rtcp routes subscribers' RTCP to forwarders (shared with relay).
	rtcp *rtcpRouter
	// relay builds cascade legs' PeerConnections: the same media and
	// interceptors, but sockets of their own (never the mux); nil when
	// there is no mux (then recv and send serve legs too).
	relay *mediaAPI
	// sendSE and sendME build a subscriber connection's own API when the
	// mux is on: its DTLS key log and ServerHello hook are per connection
	// (direct SRTP, srtpdirect.go).
	sendSE       webrtc.SettingEngine
	sendME       *webrtc.MediaEngine
	pionSendPath bool
	// cert is the DTLS certificate of every connection (shared with relay).
	cert *dtlsCertificate
}

func videoFeedback() []webrtc.RTCPFeedback {
	return []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
		{Type: "nack"}, {Type: "nack", Parameter: "pli"},
		{Type: webrtc.TypeRTCPFBTransportCC},
	}
}

func buildAPI(cfg Config) (*mediaAPI, error) {
	router := newRTCPRouter()
	ma, err := buildOneAPI(cfg, false, router)
	if err != nil {
		return ma, err
	}
	ma.cert = newDTLSCertificate()
	if ma.udpMux == nil {
		return ma, nil
	}
	rc := cfg
	rc.UDPMuxPort, rc.UDPPortMin, rc.UDPPortMax = 0, cfg.RelayPortMin, cfg.RelayPortMax
	if ma.relay, err = buildOneAPI(rc, true, router); err != nil {
		_ = ma.close()
		return nil, err
	}
	ma.relay.cert = ma.cert
	return ma, nil
}

// newRelayPeerConnection creates a cascade leg's PeerConnection (sending:
// the relay subscriber upstream; receiving: RelayIn downstream).
func (ma *mediaAPI) newRelayPeerConnection(sending bool) (*webrtc.PeerConnection, error) {
	if ma.relay != nil {
		return ma.relay.newPeerConnection(sending)
	}
	return ma.newPeerConnection(sending)
}

// buildOneAPI builds the APIs on one socket setup; noMux gives every
// PeerConnection sockets of its own (cascade legs).
func buildOneAPI(cfg Config, noMux bool, router *rtcpRouter) (*mediaAPI, error) {
	recvReg, err := receiveInterceptors()
	if err != nil {
		return nil, err
	}
	recvME, err := mediaEngine(cfg)
	if err != nil {
		return nil, err
	}
	sendME, err := mediaEngine(cfg)
	if err != nil {
		return nil, err
	}
	ma := &mediaAPI{rtcp: router}
	se := webrtc.SettingEngine{}
	se.LoggerFactory = newSharedLoggers(cfg.PionLoggerFactory)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopbackCandidate)
	if cfg.DisableMDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if len(cfg.NAT1To1IPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        append([]string(nil), cfg.NAT1To1IPs...),
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("sfu: NAT1To1IPs: %w", err)
		}
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	// The edge is the controlling ICE agent of the connections it offers
	// (subscribers, cascade legs), and a client behind a NAT first shows
	// up as a peer-reflexive candidate: pion waits 1 s before it nominates
	// such a pair (0.5 s for server-reflexive ones) in case a better one
	// comes. An edge has nothing better to wait for, and the wait was a
	// second of every join to first media (docs/multi-edge.md, "Join to
	// media"). Relayed pairs keep pion's 2 s: a TURN path should not win
	// over a direct one that is a moment late.
	se.SetSrflxAcceptanceMinWait(0)
	se.SetPrflxAcceptanceMinWait(0)
	// AES-128-GCM first: authenticated encryption in one pass with AES-NI,
	// and 10 AES rounds instead of AES-256's 14 (pion's default order puts
	// 256 first). The edge is the DTLS server of subscriber connections
	// (it offers; browsers answer "active"), so its order decides there.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	if cfg.UDPMuxPort != 0 || (cfg.UDPPortMin == 0 && !noMux) {
		if err := ma.listenMux(cfg); err != nil {
			return nil, err
		}
		se.SetICEUDPMux(ma.udpMux)
		// With the mux, an ICE agent gathers its host candidates from the
		// mux's sockets and has no STUN or TURN servers, so it never
		// enumerates interfaces or opens sockets through its Net; without
		// one set, pion builds a stdnet.Net per agent, which keeps a copy
		// of the interface table (about 7 kB per PeerConnection).
		se.SetNet(ma.net)
	} else if cfg.UDPPortMin != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("sfu: UDP port range: %w", err)
		}
	}
	if noMux && cfg.RelayNet != nil {
		se.SetNet(cfg.RelayNet)
	}
	ma.recv = webrtc.NewAPI(webrtc.WithMediaEngine(recvME), webrtc.WithInterceptorRegistry(recvReg), webrtc.WithSettingEngine(se))
	sendSE := se
	sendSE.BufferFactory = router.bufferFactory
	// Nudged connectivity passes ping unanswered pairs too (icenudge.go).
	sendSE.SetICEMaxBindingRequests(uint16(pionMaxBindingRequests + len(nudgeDelays)))
	ma.send = webrtc.NewAPI(webrtc.WithMediaEngine(sendME), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(sendSE))
	ma.sendSE, ma.sendME, ma.pionSendPath = sendSE, sendME, cfg.PionSendPath
	return ma, nil
}

// mediaEngine registers the codecs and header extensions an edge
// negotiates (the same for both directions).
func mediaEngine(cfg Config) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	codecs := []struct {
		p webrtc.RTPCodecParameters
		k webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}},
		}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFeedback(),
		}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
	}
	if cfg.EnableH264 {
		codecs = append(codecs, struct {
			p webrtc.RTPCodecParameters
			k webrtc.RTPCodecType
		}{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			RTCPFeedback: videoFeedback(),
		}, PayloadType: 102}, webrtc.RTPCodecTypeVideo})
	}
	for _, c := range codecs {
		if err := m.RegisterCodec(c.p, c.k); err != nil {
			return nil, fmt.Errorf("sfu: register codec %s: %w", c.p.MimeType, err)
		}
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// transport-cc both ways: the receive side sends feedback on what
	// publishers send (their browsers' estimators need it), the send side
	// stamps what it forwards and reads the subscribers' feedback.
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, k); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// receiveInterceptors are pion's interceptors for the connections an edge
// receives on: the NACK generator (loss from publishers), receiver reports
// and transport-cc feedback. They run once per published packet.
func receiveInterceptors() (*interceptor.Registry, error) {
	reg := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	reg.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	reg.Add(rr)
	fb, err := twcc.NewSenderInterceptor()
	if err != nil {
		return nil, err
	}
	reg.Add(fb)
	return reg, nil
}

// newPeerConnection creates a PeerConnection for receiving (publishers) or
// sending (subscribers).
func (ma *mediaAPI) newPeerConnection(sending bool) (*webrtc.PeerConnection, error) {
	api := ma.recv
	if sending {
		api = ma.send
	}
	conf, err := ma.cert.configuration()
	if err != nil {
		return nil, err
	}
	return api.NewPeerConnection(conf)
}

// newSubscriberPeerConnection creates a client's subscriber connection.
// On the mux it gets an API of its own whose DTLS key log and ServerHello
// hook fill secrets, so its RTP can skip pion's send path (srtpdirect.go);
// secrets is nil without a mux.
func (ma *mediaAPI) newSubscriberPeerConnection() (*webrtc.PeerConnection, *dtlsSecrets, error) {
	if ma.batch == nil || ma.pionSendPath {
		pc, err := ma.newPeerConnection(true)
		return pc, nil, err
	}
	sec := &dtlsSecrets{}
	se := ma.sendSE
	se.SetDTLSKeyLogWriter(sec)
	se.SetDTLSServerHelloMessageHook(sec.serverHello)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(ma.sendME), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(se))
	conf, err := ma.cert.configuration()
	if err != nil {
		return nil, nil, err
	}
	pc, err := api.NewPeerConnection(conf)
	return pc, sec, err
}

// muxBuffer is the kernel buffer asked for each media socket: it carries
// every subscriber's media, and a key frame fanned out to hundreds is a
// burst (capped by net.core.{r,w}mem_max).
const muxBuffer = 4 << 20

// listenMux opens the edge's media sockets: one per local address (or the
// one UDPMuxAddr names), all on UDPMuxPort (0: a port the system picks for
// each), shared by every PeerConnection through pion's UDP mux, and
// writing through the send batcher.
//
// One socket per address, not one on the wildcard address: pion gathers a
// host candidate per local address, and with a single wildcard socket
// they all share one muxed connection whose readers (one per candidate)
// then race for its packets and reorder them.
func (ma *mediaAPI) listenMux(cfg Config) error {
	ma.batch = &sendBatcher{}
	mn, err := newMediaNet(ma.batch)
	if err != nil {
		return err
	}
	ma.net = mn
	log := newSharedLoggers(cfg.PionLoggerFactory).NewLogger("ice")
	if cfg.UDPMuxAddr != "" {
		conn, err := mn.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(cfg.UDPMuxAddr), Port: cfg.UDPMuxPort})
		if err != nil {
			return fmt.Errorf("sfu: UDP mux %s:%d: %w", cfg.UDPMuxAddr, cfg.UDPMuxPort, err)
		}
		_ = conn.SetReadBuffer(muxBuffer)
		_ = conn.SetWriteBuffer(muxBuffer)
		ma.udpMux = ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: log, UDPConn: conn, Net: mn})
		return nil
	}
	m, err := listenEveryAddress(cfg, mn, log)
	if err != nil {
		return fmt.Errorf("sfu: UDP mux port %d: %w", cfg.UDPMuxPort, err)
	}
	ma.udpMux = m
	return nil
}

// maxSkippedAddrs bounds how many local addresses listenEveryAddress
// leaves out before it gives up.
const maxSkippedAddrs = 16

// listenEveryAddress opens a mux socket on every local address pion would
// gather a host candidate for (its own enumeration and filters), leaving
// out addresses that cannot be bound. Interfaces come and go while an
// edge starts (containers, VPNs, veth pairs of network namespaces; an IPv6
// address still in duplicate address detection), and pion's constructor
// fails as a whole when one bind fails. Fails only when no address is
// left.
func listenEveryAddress(cfg Config, mn transport.Net, log logging.LeveledLogger) (*ice.MultiUDPMuxDefault, error) {
	skip := map[netip.Addr]bool{}
	var lastErr error
	for {
		opts := []ice.UDPMuxFromPortOption{
			ice.UDPMuxFromPortWithNet(mn), ice.UDPMuxFromPortWithLogger(log),
			ice.UDPMuxFromPortWithReadBufferSize(muxBuffer), ice.UDPMuxFromPortWithWriteBufferSize(muxBuffer),
			ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4, ice.NetworkTypeUDP6),
			ice.UDPMuxFromPortWithIPFilter(func(ip net.IP) bool {
				a, _ := netip.AddrFromSlice(ip)
				return !skip[a.Unmap()]
			}),
		}
		if cfg.IncludeLoopbackCandidate {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		m, err := ice.NewMultiUDPMuxFromPort(cfg.UDPMuxPort, opts...)
		if err == nil {
			if len(m.GetListenAddresses()) == 0 {
				_ = m.Close()
				if lastErr != nil {
					return nil, fmt.Errorf("no local address could be bound: %w", lastErr)
				}
				return nil, errors.New("no local address to listen on")
			}
			return m, nil
		}
		var oe *net.OpError
		ua, ok := (*net.UDPAddr)(nil), errors.As(err, &oe) && oe.Op == "listen"
		if ok {
			ua, ok = oe.Addr.(*net.UDPAddr)
		}
		if !ok || len(skip) >= maxSkippedAddrs {
			return nil, err
		}
		a, _ := netip.AddrFromSlice(ua.IP)
		if skip[a.Unmap()] {
			return nil, err
		}
		skip[a.Unmap()], lastErr = true, err
		log.Warnf("media socket: leaving out %s: %v", ua.IP, oe.Err)
	}
}

func (ma *mediaAPI) close() error {
	var err error
	if ma.udpMux != nil {
		err = ma.udpMux.Close()
	}
	if ma.relay != nil {
		if rerr := ma.relay.close(); err == nil {
			err = rerr
		}
	}
	return err
}
