// Package signaltest is a pion WebRTC client that speaks Meridian's signaling
// protocol over a real WebSocket: join with a ticket or resume token,
// publish synthetic VP8 (optionally simulcast q/h/f) and Opus, subscribe to
// everything the edge offers and count what arrives per track. Tests, the
// end-to-end suite and the load generator share it.
package signaltest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// Config configures a Client.
type Config struct {
	// URL of the edge's signaling endpoint, ws://host:port/rtc.
	URL string
	// Origin header to send ("" sends none).
	Origin string
	// Net replaces the network stack of both PeerConnections (LossyNet).
	Net transport.Net
	// PingInterval sends pings (0: never).
	PingInterval time.Duration
	// Logf receives debug lines; nil is silent.
	Logf func(format string, args ...any)
}

// ProtocolError is an `error` frame from the edge.
type ProtocolError struct{ Code, Message string }

func (e *ProtocolError) Error() string { return "edge error " + e.Code + ": " + e.Message }

// RemovedError is a `removed` frame from the edge.
type RemovedError struct{ Reason string }

func (e *RemovedError) Error() string { return "removed: " + e.Reason }

// ErrClosed is returned once the socket has closed.
var ErrClosed = errors.New("signaltest: connection closed")

// Client is one participant. All methods are safe for concurrent use.
type Client struct {
	cfg Config
	api *webrtc.API
	ws  *fws.Conn

	wmu sync.Mutex // serialises socket writes

	pub *webrtc.PeerConnection
	sub *webrtc.PeerConnection

	mu          sync.Mutex
	msgs        []wire.Envelope
	notify      chan struct{} // closed and replaced on every new message
	wsClosed    bool
	pendingPub  []webrtc.ICECandidateInit
	pendingSub  []webrtc.ICECandidateInit
	remote      map[string]*remoteTrack // by participant/track
	local       []*localTrack
	joined      *wire.Joined
	rtcpStats   RTCPCounters
	closeOnce   sync.Once
	closing     chan struct{}
	wg          sync.WaitGroup
	publishMu   sync.Mutex
	audioLevel  uint8
	pubNegoOnce bool
}

// RTCPCounters counts feedback the client's publisher received from the edge.
type RTCPCounters struct {
	PLIs, FIRs, NACKs, NACKedPackets int
}

func newAPI(cfg Config) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// Dial opens the WebSocket and creates both PeerConnections. Call Join or
// Resume next, and Close when done.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	api, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if cfg.Origin != "" {
		h.Set("Origin", cfg.Origin)
	}
	ws, resp, err := fws.DefaultDialer.DialContext(ctx, cfg.URL, h)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("signaltest: dial %s: %w (HTTP %d)", cfg.URL, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("signaltest: dial %s: %w", cfg.URL, err)
	}
	c := &Client{
		cfg: cfg, api: api, ws: ws, notify: make(chan struct{}),
		remote: map[string]*remoteTrack{}, closing: make(chan struct{}), audioLevel: 127,
	}
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		_ = ws.Close()
		return nil, err
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		_ = c.pub.Close()
		_ = ws.Close()
		return nil, err
	}
	c.pub.OnICECandidate(func(cand *webrtc.ICECandidate) { c.sendCandidate(wire.TargetPublisher, cand) })
	c.sub.OnICECandidate(func(cand *webrtc.ICECandidate) { c.sendCandidate(wire.TargetSubscriber, cand) })
	c.sub.OnTrack(c.onTrack)
	c.wg.Add(1)
	go c.readLoop()
	if cfg.PingInterval > 0 {
		c.wg.Add(1)
		go c.pingLoop()
	}
	return c, nil
}

func (c *Client) logf(format string, args ...any) {
	if c.cfg.Logf != nil {
		c.cfg.Logf(format, args...)
	}
}

// Send writes one message.
func (c *Client) Send(typ string, data any) error {
	b, err := wire.Marshal(typ, data)
	if err != nil {
		return err
	}
	return c.SendText(b)
}

// SendRaw writes an envelope as is (tests send malformed bodies with it).
func (c *Client) SendRaw(env wire.Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return c.SendText(b)
}

// SendText writes an arbitrary text frame.
func (c *Client) SendText(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(fws.TextMessage, b)
}

func (c *Client) sendCandidate(target string, cand *webrtc.ICECandidate) {
	var raw json.RawMessage = []byte("null")
	if cand != nil {
		b, err := json.Marshal(cand.ToJSON())
		if err != nil {
			return
		}
		raw = b
	}
	_ = c.Send(wire.TypeCandidate, wire.Candidate{Target: target, Candidate: raw})
}

func (c *Client) pingLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
			if c.Send(wire.TypePing, nil) != nil {
				return
			}
		}
	}
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer func() {
		c.mu.Lock()
		c.wsClosed = true
		close(c.notify)
		c.notify = make(chan struct{})
		c.mu.Unlock()
	}()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var env wire.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			c.logf("signaltest: bad frame %q", data)
			continue
		}
		c.logf("signaltest: <- %s", env.Type)
		switch env.Type {
		case wire.TypeOffer:
			c.handleOffer(env)
		case wire.TypeCandidate:
			c.handleCandidate(env)
		case wire.TypeJoined:
			var j wire.Joined
			if json.Unmarshal(env.Data, &j) == nil {
				c.mu.Lock()
				c.joined = &j
				c.mu.Unlock()
			}
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, env)
		close(c.notify)
		c.notify = make(chan struct{})
		c.mu.Unlock()
	}
}

func (c *Client) handleOffer(env wire.Envelope) {
	var d wire.SDP
	if err := json.Unmarshal(env.Data, &d); err != nil || d.Target != wire.TargetSubscriber {
		return
	}
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: d.SDP}); err != nil {
		c.logf("signaltest: subscriber offer: %v", err)
		return
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err == nil {
		err = c.sub.SetLocalDescription(ans)
	}
	if err != nil {
		c.logf("signaltest: subscriber answer: %v", err)
		return
	}
	_ = c.Send(wire.TypeAnswer, wire.SDP{Target: wire.TargetSubscriber, SDP: ans.SDP})
	c.mu.Lock()
	pend := c.pendingSub
	c.pendingSub = nil
	c.mu.Unlock()
	for _, p := range pend {
		_ = c.sub.AddICECandidate(p)
	}
}

func (c *Client) handleCandidate(env wire.Envelope) {
	var d wire.Candidate
	if err := json.Unmarshal(env.Data, &d); err != nil || len(d.Candidate) == 0 || string(d.Candidate) == "null" {
		return
	}
	var init webrtc.ICECandidateInit
	if err := json.Unmarshal(d.Candidate, &init); err != nil {
		return
	}
	pc, pending := c.pub, &c.pendingPub
	if d.Target == wire.TargetSubscriber {
		pc, pending = c.sub, &c.pendingSub
	}
	c.mu.Lock()
	if pc.RemoteDescription() == nil {
		*pending = append(*pending, init)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = pc.AddICECandidate(init)
}

// Messages returns every message received so far, oldest first.
func (c *Client) Messages() []wire.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]wire.Envelope(nil), c.msgs...)
}

// WaitFor waits for a message of type typ (any type if "") for which match
// (nil: any) returns true, looking at every message received so far first.
func (c *Client) WaitFor(ctx context.Context, typ string, match func(wire.Envelope) bool) (wire.Envelope, error) {
	return c.waitFrom(ctx, 0, typ, match)
}

// mark returns the number of messages received so far (for waitFrom).
func (c *Client) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *Client) waitFrom(ctx context.Context, seen int, typ string, match func(wire.Envelope) bool) (wire.Envelope, error) {
	for {
		c.mu.Lock()
		msgs := c.msgs[seen:]
		seen = len(c.msgs)
		ch, closed := c.notify, c.wsClosed
		c.mu.Unlock()
		for _, m := range msgs {
			if (typ == "" || m.Type == typ) && (match == nil || match(m)) {
				return m, nil
			}
		}
		if closed {
			return wire.Envelope{}, ErrClosed
		}
		select {
		case <-ctx.Done():
			return wire.Envelope{}, fmt.Errorf("signaltest: waiting for %q: %w", typ, ctx.Err())
		case <-ch:
		}
	}
}

// Decode unmarshals a message body.
func Decode[T any](env wire.Envelope) (T, error) {
	var v T
	err := json.Unmarshal(env.Data, &v)
	return v, err
}

// Join sends `join {ticket, name}` and waits for the outcome: the Joined
// body, or lobby=true (then call WaitJoined), or a *ProtocolError /
// *RemovedError.
func (c *Client) Join(ctx context.Context, ticket, name string) (joined *wire.Joined, lobby bool, err error) {
	return c.JoinWithProof(ctx, ticket, name, "")
}

// JoinWithProof is Join for a participant that was admitted before (it
// moves to this edge, or joins afresh): `join {ticket, resumeToken}`, the
// resume token of its last `joined` proving it is that participant, so a
// guest who may only ask to join is not put in the lobby again. An empty
// token is Join.
func (c *Client) JoinWithProof(ctx context.Context, ticket, name, resumeToken string) (joined *wire.Joined, lobby bool, err error) {
	from := c.mark()
	if err := c.Send(wire.TypeJoin, wire.Join{Ticket: ticket, ResumeToken: resumeToken, Name: name}); err != nil {
		return nil, false, err
	}
	return c.awaitAdmission(ctx, from, true)
}

// Resume sends `join {resumeToken}` on this (new) connection.
func (c *Client) Resume(ctx context.Context, token string) (*wire.Joined, error) {
	from := c.mark()
	if err := c.Send(wire.TypeJoin, wire.Join{ResumeToken: token}); err != nil {
		return nil, err
	}
	j, _, err := c.awaitAdmission(ctx, from, false)
	return j, err
}

// WaitJoined waits for `joined` after a lobby, or the denial.
func (c *Client) WaitJoined(ctx context.Context) (*wire.Joined, error) {
	from := 0
	for i, m := range c.Messages() {
		if m.Type == wire.TypeLobby {
			from = i + 1
		}
	}
	j, _, err := c.awaitAdmission(ctx, from, false)
	return j, err
}

// sessionErrors answer one message of an open session; they do not end an admission.
var sessionErrors = map[string]bool{
	wire.CodeBadRequest: true, wire.CodeUnknownType: true, wire.CodeForbidden: true,
	wire.CodeNotFound: true, wire.CodeBadSDP: true,
}

func (c *Client) awaitAdmission(ctx context.Context, from int, lobbyOK bool) (*wire.Joined, bool, error) {
	env, err := c.waitFrom(ctx, from, "", func(e wire.Envelope) bool {
		switch e.Type {
		case wire.TypeError:
			if from > 0 && !lobbyOK {
				er, _ := Decode[wire.Error](e)
				return !sessionErrors[er.Code]
			}
			return true
		case wire.TypeJoined, wire.TypeRemoved:
			return true
		case wire.TypeLobby:
			return lobbyOK
		}
		return false
	})
	if err != nil {
		return nil, false, err
	}
	switch env.Type {
	case wire.TypeJoined:
		j, err := Decode[wire.Joined](env)
		return &j, false, err
	case wire.TypeLobby:
		return nil, true, nil
	case wire.TypeRemoved:
		r, _ := Decode[wire.Removed](env)
		return nil, false, &RemovedError{Reason: r.Reason}
	default:
		e, _ := Decode[wire.Error](env)
		return nil, false, &ProtocolError{Code: e.Code, Message: e.Message}
	}
}

// Joined returns the last `joined` body received.
func (c *Client) Joined() *wire.Joined {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined
}

// Closed reports whether the edge closed the socket.
func (c *Client) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wsClosed
}

// RTCP returns the feedback counters of the publisher connection.
func (c *Client) RTCP() RTCPCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rtcpStats
}

// Connected reports whether the given PeerConnection ("publisher" or
// "subscriber") is connected.
func (c *Client) Connected(target string) bool {
	pc := c.pub
	if target == wire.TargetSubscriber {
		pc = c.sub
	}
	return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
}

// DropSocket closes the WebSocket without `leave` (a network blip); media
// generators and PeerConnections keep running until Close.
func (c *Client) DropSocket() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.Close()
}

// Leave sends `leave`.
func (c *Client) Leave() error { return c.Send(wire.TypeLeave, nil) }

// Close stops media, both PeerConnections and the socket, and waits for
// every goroutine of the client.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.wmu.Lock()
		_ = c.ws.Close()
		c.wmu.Unlock()
		_ = c.pub.Close()
		_ = c.sub.Close()
	})
	c.wg.Wait()
}
