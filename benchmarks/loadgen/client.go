package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// The load generator's client speaks docs/signaling.md like signaltest.Client,
// but is built for hundreds of receivers in one process on one core:
//
//   - one webrtc.API (MediaEngine, interceptor registry, SettingEngine) for
//     every PeerConnection instead of one per client;
//   - receive-only participants create only the subscriber PeerConnection;
//   - the per-packet path is TrackRemote.Read into a reused buffer plus a
//     few atomics (no rtp.Unmarshal, no map, no mutex, no allocation of ours);
//   - RTCP feedback a browser would send (receiver reports, transport-cc) is
//     optional (-feedback), since each interceptor adds per-packet work here.

const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// newAPI builds the one webrtc.API all clients of this process share.
func newAPI(feedback string, verbose bool) (*webrtc.API, error) {
	return newAPIWith(feedback, verbose, nil)
}

// newAPIWith is newAPI with a last say on the SettingEngine (probeAPI: a
// timestamping socket).
func newAPIWith(feedback string, verbose bool, tweak func(*webrtc.SettingEngine)) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range []struct {
		p webrtc.RTPCodecParameters
		k webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}},
		}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
	} {
		if err := m.RegisterCodec(c.p, c.k); err != nil {
			return nil, err
		}
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	for _, f := range strings.Split(feedback, ",") {
		switch strings.TrimSpace(f) {
		case "", "none":
		case "rr":
			if err := webrtc.ConfigureRTCPReports(reg); err != nil {
				return nil, err
			}
		case "twcc":
			if err := webrtc.ConfigureTWCCSender(m, reg); err != nil {
				return nil, err
			}
		case "nack":
			if err := webrtc.ConfigureNack(m, reg); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown -feedback %q (none, rr, twcc, nack)", f)
		}
	}
	se := webrtc.SettingEngine{}
	if !verbose {
		// Closing hundreds of PeerConnections makes pion log harmless
		// "closed pipe" errors.
		lf := logging.NewDefaultLoggerFactory()
		lf.DefaultLogLevel = logging.LogLevelDisabled
		se.LoggerFactory = lf
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	if tweak != nil {
		tweak(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// client is one participant: a signaling socket and the PeerConnection(s)
// it needs.
type client struct {
	api  *webrtc.API
	ws   *fws.Conn
	wmu  sync.Mutex
	name string

	pub, sub *webrtc.PeerConnection
	// sink counts what the subscriber PeerConnection receives.
	sink

	mu         sync.Mutex
	pendingSub []webrtc.ICECandidateInit
	pendingPub []webrtc.ICECandidateInit

	joined   chan struct{}
	pubAns   chan string
	failed   chan error
	failOnce sync.Once
	// lost is closed on the first failure (socket closed, error, removed):
	// the cascade failover watches it after the join.
	lost    chan struct{}
	lostErr error // set before lost is closed
	// Session errors (answers to one message) seen after `joined`.
	isJoined    atomic.Bool
	sessionErrs atomic.Int64
	lastSessErr atomic.Value // string
	closing     chan struct{}
	wg          sync.WaitGroup
	// onRTCP receives RTCP sent to the publisher PC (keyframe requests).
	onRTCP func([]byte)
}

func dialClient(ctx context.Context, api *webrtc.API, url, name string) (*client, error) {
	d := *fws.DefaultDialer
	d.HandshakeTimeout = 10 * time.Second
	ws, resp, err := d.DialContext(ctx, url, http.Header{})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c := &client{api: api, ws: ws, name: name, joined: make(chan struct{}, 1), pubAns: make(chan string, 1),
		failed: make(chan error, 1), lost: make(chan struct{}), closing: make(chan struct{})}
	c.wg.Add(1)
	go c.readLoop()
	return c, nil
}

func (c *client) fail(err error) {
	c.failOnce.Do(func() { c.lostErr = err; c.failed <- err; close(c.lost) })
}

func (c *client) send(typ string, data any) error {
	b, err := wire.Marshal(typ, data)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(fws.TextMessage, b)
}

func (c *client) sendCandidate(target string, cand *webrtc.ICECandidate) {
	var raw json.RawMessage = []byte("null")
	if cand != nil {
		b, err := json.Marshal(cand.ToJSON())
		if err != nil {
			return
		}
		raw = b
	}
	_ = c.send(wire.TypeCandidate, wire.Candidate{Target: target, Candidate: raw})
}

// sessionErrors answer one message of an open session; they do not end it
// (as in edge/signal/signaltest).
var sessionErrors = map[string]bool{
	wire.CodeBadRequest: true, wire.CodeUnknownType: true, wire.CodeForbidden: true,
	wire.CodeNotFound: true, wire.CodeBadSDP: true,
}

// readLoop drains every frame the edge sends (room events included: a
// client that stops reading would be dropped by the edge) and acts on the
// few that matter here.
func (c *client) readLoop() {
	defer c.wg.Done()
	var msg bytes.Buffer // reused: no allocation per message
	for {
		msg.Reset()
		_, r, err := c.ws.NextReader()
		if err == nil {
			_, err = msg.ReadFrom(r)
		}
		if err != nil {
			select {
			case <-c.closing:
			default:
				c.fail(fmt.Errorf("%s: socket closed: %w", c.name, err))
			}
			return
		}
		data := msg.Bytes()
		var env wire.Envelope
		if json.Unmarshal(data, &env) != nil {
			continue
		}
		switch env.Type {
		case wire.TypeJoined:
			var j wire.Joined // the room snapshot, decoded as a client's SDK does
			if err := json.Unmarshal(env.Data, &j); err != nil {
				c.fail(fmt.Errorf("%s: joined: %w", c.name, err))
				return
			}
			c.gotJoined()
		case wire.TypeOffer:
			var d wire.SDP
			if json.Unmarshal(env.Data, &d) == nil && d.Target == wire.TargetSubscriber {
				if err := c.answer(d.SDP); err != nil {
					c.fail(fmt.Errorf("%s: subscriber answer: %w", c.name, err))
				}
			}
		case wire.TypeAnswer:
			var d wire.SDP
			if json.Unmarshal(env.Data, &d) == nil && d.Target == wire.TargetPublisher {
				select {
				case c.pubAns <- d.SDP:
				default:
				}
			}
		case wire.TypeCandidate:
			c.candidate(env.Data)
		case wire.TypeError:
			// After `joined`, session errors answer one message and do not
			// end the session (docs/signaling.md); count them.
			var e wire.Error
			_ = json.Unmarshal(env.Data, &e)
			if c.isJoined.Load() && sessionErrors[e.Code] {
				c.sessionErrs.Add(1)
				c.lastSessErr.Store(string(env.Data))
				continue
			}
			c.fail(fmt.Errorf("%s: %s %s", c.name, env.Type, env.Data))
		case wire.TypeRemoved:
			c.fail(fmt.Errorf("%s: %s %s", c.name, env.Type, env.Data))
		default:
			// Presence, quality and track events: nothing here uses them,
			// but a client decodes them (the SDK keeps the room's state),
			// as the LiveKit and Janus joiners decode theirs.
			if err := decodeRoomEvent(env.Type, env.Data); err != nil {
				c.fail(fmt.Errorf("%s: %s: %w", c.name, env.Type, err))
				return
			}
		}
	}
}

// roomEventTypes gives each room event the wire type it decodes into.
var roomEventTypes = map[string]func() any{
	wire.TypeParticipantJoined: func() any { return &wire.Participant{} },
	wire.TypeParticipantLeft:   func() any { return &wire.ParticipantLeft{} },
	wire.TypeConnectionQuality: func() any { return &wire.ConnectionQuality{} },
	wire.TypeTrackPublished:    func() any { return &wire.TrackInfo{} },
	wire.TypeTrackUnpublished:  func() any { return &wire.TrackUnpublished{} },
	wire.TypeActiveSpeaker:     func() any { return &wire.ActiveSpeaker{} },
	wire.TypeMute:              func() any { return &wire.Mute{} },
	wire.TypeEgressState:       func() any { return &wire.EgressState{} },
}

// decodeRoomEvent decodes a room event into its wire type; types it does
// not know are left alone.
func decodeRoomEvent(typ string, data json.RawMessage) error {
	newValue, ok := roomEventTypes[typ]
	if !ok {
		return nil
	}
	return json.Unmarshal(data, newValue())
}

// gotJoined hands `joined` to join.
func (c *client) gotJoined() {
	c.isJoined.Store(true)
	select {
	case c.joined <- struct{}{}:
	default:
	}
}

func (c *client) candidate(data json.RawMessage) {
	var d wire.Candidate
	if json.Unmarshal(data, &d) != nil || len(d.Candidate) == 0 || string(d.Candidate) == "null" {
		return
	}
	var init webrtc.ICECandidateInit
	if json.Unmarshal(d.Candidate, &init) != nil {
		return
	}
	c.mu.Lock()
	pc, pending := c.pub, &c.pendingPub
	if d.Target == wire.TargetSubscriber {
		pc, pending = c.sub, &c.pendingSub
	}
	if pc == nil || pc.RemoteDescription() == nil {
		*pending = append(*pending, init)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = pc.AddICECandidate(init)
}

// join sends the ticket and waits for `joined`.
func (c *client) join(ctx context.Context, ticket string) error {
	if err := c.send(wire.TypeJoin, wire.Join{Ticket: ticket, Name: c.name}); err != nil {
		return err
	}
	select {
	case <-c.joined:
		return nil
	case err := <-c.failed:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for joined: %w", c.name, ctx.Err())
	}
}

// answer handles the edge's subscriber offer (the first creates the PC).
func (c *client) answer(sdp string) error {
	c.mu.Lock()
	if c.sub == nil {
		pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			c.mu.Unlock()
			return err
		}
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) { c.sendCandidate(wire.TargetSubscriber, cand) })
		pc.OnTrack(c.onTrack)
		c.sub = pc
	}
	pc := c.sub
	c.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	if err := c.send(wire.TypeAnswer, wire.SDP{Target: wire.TargetSubscriber, SDP: ans.SDP}); err != nil {
		return err
	}
	c.mu.Lock()
	pend := c.pendingSub
	c.pendingSub = nil
	c.mu.Unlock()
	for _, p := range pend {
		_ = pc.AddICECandidate(p)
	}
	return nil
}

// publish negotiates the publisher PC with the given tracks.
func (c *client) publish(ctx context.Context, tracks ...webrtc.TrackLocal) ([]*webrtc.RTPSender, error) {
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) { c.sendCandidate(wire.TargetPublisher, cand) })
	c.mu.Lock()
	c.pub = pc
	c.mu.Unlock()
	var senders []*webrtc.RTPSender
	for _, t := range tracks {
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		senders = append(senders, tr.Sender())
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	if err := c.send(wire.TypeOffer, wire.SDP{Target: wire.TargetPublisher, SDP: offer.SDP}); err != nil {
		return nil, err
	}
	var sdp string
	select {
	case sdp = <-c.pubAns:
	case err := <-c.failed:
		return nil, err
	case <-ctx.Done():
		return nil, fmt.Errorf("publisher answer: %w", ctx.Err())
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return nil, err
	}
	c.mu.Lock()
	pend := c.pendingPub
	c.pendingPub = nil
	c.mu.Unlock()
	for _, p := range pend {
		_ = pc.AddICECandidate(p)
	}
	return senders, nil
}

// waitConnected waits until pc is connected.
func waitConnected(ctx context.Context, pc *webrtc.PeerConnection) error {
	for pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		select {
		case <-ctx.Done():
			return errors.New("publisher PeerConnection did not connect")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// close leaves politely and releases everything.
func (c *client) close() {
	select {
	case <-c.closing:
		return
	default:
	}
	close(c.closing)
	_ = c.send(wire.TypeLeave, struct{}{})
	c.wmu.Lock()
	_ = c.ws.Close()
	c.wmu.Unlock()
	c.mu.Lock()
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	if pub != nil {
		_ = pub.Close()
	}
	if sub != nil {
		_ = sub.Close()
	}
	c.wg.Wait()
	c.readers.Wait()
}
