package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// nackHistory is the per-stream resend buffer of the NACK responder (packets).
const nackHistory = 256

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

// mediaAPI is the one webrtc.API of an edge plus what was built with it.
type mediaAPI struct {
	api    *webrtc.API
	udpMux ice.UDPMux
	muxPC  net.PacketConn
	// relay builds cascade legs' PeerConnections: the same media and
	// interceptors, but sockets of their own (never the mux); nil when
	// there is no mux (then api serves legs too).
	relay *mediaAPI

	// estimators maps a PeerConnection id to its bandwidth estimator; the
	// cc interceptor factory fills it synchronously inside NewPeerConnection.
	estimators sync.Map // string → cc.BandwidthEstimator
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

// newRelayPeerConnection creates a cascade leg's PeerConnection.
func (ma *mediaAPI) newRelayPeerConnection() (*webrtc.PeerConnection, cc.BandwidthEstimator, error) {
	if ma.relay != nil {
		return ma.relay.newPeerConnection()
	}
	return ma.newPeerConnection()
}

func buildOneAPI(cfg Config) (*mediaAPI, error) {
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

	ma := &mediaAPI{}
	reg := &interceptor.Registry{}
	// Congestion control first, so the NACK responder can limit resends by
	// the target bitrate. The NoOp pacer writes immediately: layer
	// selection, not a queue, keeps a subscriber under its estimate.
	ccf, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(
			gcc.SendSideBWEInitialBitrate(cfg.InitialBitrate),
			gcc.SendSideBWEMinBitrate(cfg.MinBitrate),
			gcc.SendSideBWEMaxBitrate(cfg.MaxBitrate),
			gcc.SendSideBWEPacer(gcc.NewNoOpPacer()),
		)
	})
	if err != nil {
		return nil, err
	}
	ccf.OnNewPeerConnection(func(id string, e cc.BandwidthEstimator) { ma.estimators.Store(id, e) })
	reg.Add(ccf)
	// NACK generator (acts on publisher PCs' remote streams) and responder
	// (acts on subscriber PCs' local streams); each PC gets its own chain.
	// The responder keeps a copy of every packet it sent; pion's default of
	// 1024 packets per stream is ~1.5 MB per video subscriber. 256 packets
	// (over a second of video at our rates) covers loss recovery on any
	// path where retransmission is still useful.
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	resp, err := nack.NewResponderInterceptor(nack.ResponderSize(nackHistory))
	if err != nil {
		return nil, err
	}
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTPCodecTypeVideo)
	m.RegisterFeedback(webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"}, webrtc.RTPCodecTypeVideo)
	reg.Add(resp)
	reg.Add(gen)
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, err
	}
	// transport-cc on what we send (feeds gcc) and feedback for what we receive.
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(m, reg); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
		return nil, err
	}

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
	ma.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	return ma, nil
}

// newPeerConnection creates a PeerConnection and returns its bandwidth estimator.
func (ma *mediaAPI) newPeerConnection() (*webrtc.PeerConnection, cc.BandwidthEstimator, error) {
	pc, err := ma.api.NewPeerConnection(webrtc.Configuration{SDPSemantics: webrtc.SDPSemanticsUnifiedPlan})
	if err != nil {
		return nil, nil, err
	}
	var est cc.BandwidthEstimator
	if v, ok := ma.estimators.LoadAndDelete(pc.ID()); ok {
		est, _ = v.(cc.BandwidthEstimator)
	}
	return pc, est, nil
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
