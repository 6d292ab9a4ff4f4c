package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Config configures the media plane of one edge. Build it with DefaultConfig
// and adjust; New calls Validate.
type Config struct {
	// UDPMuxPort, when non-zero, makes every PeerConnection share one UDP
	// socket on UDPMuxAddr:UDPMuxPort (the production setting: one firewall
	// rule). When zero, each PeerConnection gets ephemeral ports from
	// [UDPPortMin, UDPPortMax] (both zero: any port).
	UDPMuxPort int
	// UDPMuxAddr is the address the mux socket binds ("" = all interfaces).
	UDPMuxAddr string
	UDPPortMin uint16
	UDPPortMax uint16
	// RelayPortMin and RelayPortMax bound the ports of cascade legs (edge
	// to edge) when UDPMuxPort is set: two legs between the same two edges
	// (one each way, or one per room) would share one address pair on the
	// mux, which tells connections apart by remote address only, so legs
	// get sockets of their own. Both zero: any ephemeral port.
	RelayPortMin uint16
	RelayPortMax uint16

	// IncludeLoopbackCandidate gathers 127.0.0.1 candidates (tests, single-host dev).
	IncludeLoopbackCandidate bool
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

// DefaultConfig returns production defaults: ephemeral UDP ports, mDNS off,
// no loopback candidates.
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
	muxPC      net.PacketConn
	// relay builds cascade legs' PeerConnections: the same media and
	// interceptors, but sockets of their own (never the mux); nil when
	// there is no mux (then recv and send serve legs too).
	relay *mediaAPI
}

func videoFeedback() []webrtc.RTCPFeedback {
	return []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
		{Type: "nack"}, {Type: "nack", Parameter: "pli"},
		{Type: webrtc.TypeRTCPFBTransportCC},
	}
}

func buildAPI(cfg Config) (*mediaAPI, error) {
	ma, err := buildOneAPI(cfg)
	if err != nil || cfg.UDPMuxPort == 0 {
		return ma, err
	}
	rc := cfg
	rc.UDPMuxPort, rc.UDPPortMin, rc.UDPPortMax = 0, cfg.RelayPortMin, cfg.RelayPortMax
	if ma.relay, err = buildOneAPI(rc); err != nil {
		_ = ma.close()
		return nil, err
	}
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

func buildOneAPI(cfg Config) (*mediaAPI, error) {
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
	ma := &mediaAPI{}
	se := webrtc.SettingEngine{}
	if cfg.PionLoggerFactory != nil {
		se.LoggerFactory = cfg.PionLoggerFactory
	}
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
	switch {
	case cfg.UDPMuxPort != 0:
		ip := net.IPv4zero
		if cfg.UDPMuxAddr != "" {
			ip = net.ParseIP(cfg.UDPMuxAddr)
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: cfg.UDPMuxPort})
		if err != nil {
			return nil, fmt.Errorf("sfu: UDP mux port %d: %w", cfg.UDPMuxPort, err)
		}
		ma.muxPC = conn
		ma.udpMux = webrtc.NewICEUDPMux(nil, conn)
		se.SetICEUDPMux(ma.udpMux)
	case cfg.UDPPortMin != 0:
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("sfu: UDP port range: %w", err)
		}
	}
	ma.recv = webrtc.NewAPI(webrtc.WithMediaEngine(recvME), webrtc.WithInterceptorRegistry(recvReg), webrtc.WithSettingEngine(se))
	ma.send = webrtc.NewAPI(webrtc.WithMediaEngine(sendME), webrtc.WithInterceptorRegistry(&interceptor.Registry{}), webrtc.WithSettingEngine(se))
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
	return api.NewPeerConnection(webrtc.Configuration{SDPSemantics: webrtc.SDPSemanticsUnifiedPlan})
}

func (ma *mediaAPI) close() error {
	var err error
	if ma.udpMux != nil {
		err = ma.udpMux.Close()
	}
	if ma.muxPC != nil {
		if cerr := ma.muxPC.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
	}
	return err
}
