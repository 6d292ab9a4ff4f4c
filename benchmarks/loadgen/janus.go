package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/pion/webrtc/v4"
)

// Janus (https://janus.conf.meetecho.com) through its VideoRoom plugin and
// its WebSocket transport, the way janus.js drives it from a browser: one
// Janus session and one plugin handle per participant, each on its own
// WebSocket ("janus-protocol"), keepalives, trickled ICE candidates. The
// publisher joins with `joinandconfigure` and an offer; a subscriber joins
// with `join` (ptype subscriber, the publisher's feed), answers Janus's
// offer and sends `start`. Same webrtc.API, tracks and sink as every other
// server, so only Janus differs between rows.

// janusServer creates VideoRoom rooms and remembers each room's publisher
// feed, which subscribers ask for.
type janusServer struct {
	url   string // ws://host:port of the WebSocket transport
	mu    sync.Mutex
	feeds map[string]uint64
}

func newJanusServer(url string) *janusServer {
	url = strings.TrimRight(url, "/")
	if rest, ok := strings.CutPrefix(url, "http"); ok {
		url = "ws" + rest
	}
	return &janusServer{url: url, feeds: map[string]uint64{}}
}

func (s *janusServer) newRoom(ctx context.Context) (string, error) {
	c, err := dialJanus(ctx, s.url, "room-admin")
	if err != nil {
		return "", err
	}
	defer c.close()
	room := 1 + rand.Uint64N(1<<31)
	// One publisher; the codecs the generator sends; the header extensions
	// a browser room uses (audio level, transport-wide sequence numbers for
	// the subscribers' transport-cc feedback); no bitrate cap (0).
	data, _, err := c.message(ctx, map[string]any{
		"request": "create", "room": room, "publishers": 1, "permanent": false,
		"audiocodec": "opus", "videocodec": "vp8", "bitrate": 0,
		"audiolevel_ext": true, "transport_wide_cc_ext": true, "notify_joining": false,
	}, nil, nil)
	if err != nil {
		return "", fmt.Errorf("janus create room: %w", err)
	}
	if v := data.str("videoroom"); v != "created" {
		return "", fmt.Errorf("janus create room: answer %q", v)
	}
	return strconv.FormatUint(room, 10), nil
}

func (s *janusServer) publish(ctx context.Context, api *webrtc.API, room string, tracks ...webrtc.TrackLocal) (participant, []*webrtc.RTPSender, error) {
	roomID, err := strconv.ParseUint(room, 10, 64)
	if err != nil {
		return nil, nil, err
	}
	c, err := dialJanus(ctx, s.url, "pub")
	if err != nil {
		return nil, nil, err
	}
	senders, feed, err := func() ([]*webrtc.RTPSender, uint64, error) {
		pc, err := c.newPC(api)
		if err != nil {
			return nil, 0, err
		}
		var senders []*webrtc.RTPSender
		for _, t := range tracks {
			tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				return nil, 0, err
			}
			senders = append(senders, tr.Sender())
		}
		offer, err := pc.CreateOffer(nil)
		if err != nil {
			return nil, 0, err
		}
		if err := pc.SetLocalDescription(offer); err != nil {
			return nil, 0, err
		}
		data, jsep, err := c.message(ctx, map[string]any{
			"request": "joinandconfigure", "ptype": "publisher", "room": roomID, "display": "pub",
		}, &janusJSEP{Type: "offer", SDP: offer.SDP}, c.flushCandidates)
		if err != nil {
			return nil, 0, fmt.Errorf("janus publisher join: %w", err)
		}
		if data.str("videoroom") != "joined" || jsep == nil || jsep.Type != "answer" {
			return nil, 0, fmt.Errorf("janus publisher join: unexpected answer %s", data)
		}
		if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: jsep.SDP}); err != nil {
			return nil, 0, err
		}
		if err := waitConnected(ctx, pc); err != nil {
			return nil, 0, err
		}
		return senders, data.uint("id"), nil
	}()
	if err != nil {
		c.close()
		return nil, nil, err
	}
	s.mu.Lock()
	s.feeds[room] = feed
	s.mu.Unlock()
	return c, senders, nil
}

func (s *janusServer) subscribe(ctx context.Context, api *webrtc.API, room, pid string) (participant, error) {
	roomID, err := strconv.ParseUint(room, 10, 64)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	feed, ok := s.feeds[room]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("janus: room %s has no publisher", room)
	}
	c, err := dialJanus(ctx, s.url, pid)
	if err != nil {
		return nil, err
	}
	if err := c.subscribe(ctx, api, roomID, feed); err != nil {
		c.close()
		return nil, fmt.Errorf("%s: %w", pid, err)
	}
	return c, nil
}

// subscribe joins as subscriber to feed and answers Janus's offer.
func (c *janusConn) subscribe(ctx context.Context, api *webrtc.API, room, feed uint64) error {
	data, jsep, err := c.message(ctx, map[string]any{
		"request": "join", "ptype": "subscriber", "room": room,
		"streams": []map[string]any{{"feed": feed}},
	}, nil, nil)
	if err != nil {
		return fmt.Errorf("janus subscriber join: %w", err)
	}
	if data.str("videoroom") != "attached" || jsep == nil || jsep.Type != "offer" {
		return fmt.Errorf("janus subscriber join: unexpected answer %s", data)
	}
	pc, err := c.newPC(api)
	if err != nil {
		return err
	}
	pc.OnTrack(c.onTrack)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: jsep.SDP}); err != nil {
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	data, _, err = c.message(ctx, map[string]any{"request": "start"}, &janusJSEP{Type: "answer", SDP: ans.SDP}, c.flushCandidates)
	if err != nil {
		return fmt.Errorf("janus start: %w", err)
	}
	if data.str("started") != "ok" {
		return fmt.Errorf("janus start: unexpected answer %s", data)
	}
	return nil
}

type janusJSEP struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// janusMsg is every message Janus sends on the WebSocket transport (the
// fields this client reads).
type janusMsg struct {
	Janus       string `json:"janus"`
	Transaction string `json:"transaction"`
	Data        struct {
		ID uint64 `json:"id"`
	} `json:"data"`
	Error *struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	} `json:"error"`
	PluginData struct {
		Data pluginData `json:"data"`
	} `json:"plugindata"`
	JSEP      *janusJSEP      `json:"jsep"`
	Candidate json.RawMessage `json:"candidate"`
}

// pluginData is the VideoRoom's answer object.
type pluginData map[string]json.RawMessage

func (d pluginData) str(k string) string {
	var s string
	_ = json.Unmarshal(d[k], &s)
	return s
}

func (d pluginData) uint(k string) uint64 {
	var n uint64
	_ = json.Unmarshal(d[k], &n)
	return n
}

func (d pluginData) String() string {
	b, _ := json.Marshal(map[string]json.RawMessage(d))
	return string(b)
}

// janusConn is one participant: a WebSocket, a Janus session with one
// VideoRoom handle, and at most one PeerConnection.
type janusConn struct {
	sink
	name            string
	ws              *fws.Conn
	wmu             sync.Mutex
	session, handle uint64
	txn             atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan janusMsg
	pc      *webrtc.PeerConnection
	// Local candidates wait until the offer or answer they belong to has
	// been sent (Janus would queue them, but the order stays the one
	// janus.js produces on a fast link).
	candReady bool
	cands     []*webrtc.ICECandidate

	closing chan struct{}
	wg      sync.WaitGroup
}

// janusKeepalive is below Janus's default session_timeout (60 s).
const janusKeepalive = 25 * time.Second

// dialJanus opens the WebSocket, creates a session and attaches a VideoRoom
// handle.
func dialJanus(ctx context.Context, url, name string) (*janusConn, error) {
	d := *fws.DefaultDialer
	d.HandshakeTimeout = 10 * time.Second
	d.Subprotocols = []string{"janus-protocol"}
	ws, resp, err := d.DialContext(ctx, url, http.Header{})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c := &janusConn{name: name, ws: ws, pending: map[string]chan janusMsg{}, closing: make(chan struct{})}
	c.wg.Add(1)
	go c.readLoop()
	m, err := c.call(ctx, map[string]any{"janus": "create"}, nil)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("janus create session: %w", err)
	}
	c.session = m.Data.ID
	m, err = c.call(ctx, map[string]any{"janus": "attach", "plugin": "janus.plugin.videoroom"}, nil)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("janus attach: %w", err)
	}
	c.handle = m.Data.ID
	c.wg.Add(1)
	go c.keepalive()
	return c, nil
}

// send writes a request with transaction t ("" picks the next number).
func (c *janusConn) send(msg map[string]any, t string) error {
	if t == "" {
		t = c.nextTxn()
	}
	msg["transaction"] = t
	if c.session != 0 {
		msg["session_id"] = c.session
	}
	switch msg["janus"] {
	case "message", "trickle":
		msg["handle_id"] = c.handle
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteMessage(fws.TextMessage, b)
}

func (c *janusConn) nextTxn() string { return strconv.FormatUint(c.txn.Add(1), 10) }

// call sends a request and waits for its outcome: "success", or for an
// asynchronous plugin request the "event" that follows the "ack". sent
// runs once the request is on the wire.
func (c *janusConn) call(ctx context.Context, msg map[string]any, sent func()) (janusMsg, error) {
	ch := make(chan janusMsg, 4)
	// Register before writing: the answer can arrive before send returns.
	t := c.nextTxn()
	c.mu.Lock()
	c.pending[t] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, t)
		c.mu.Unlock()
	}()
	if err := c.send(msg, t); err != nil {
		return janusMsg{}, err
	}
	if sent != nil {
		sent()
	}
	for {
		select {
		case m := <-ch:
			switch m.Janus {
			case "ack":
				continue
			case "error":
				if m.Error != nil {
					return m, fmt.Errorf("janus error %d: %s", m.Error.Code, m.Error.Reason)
				}
				return m, errors.New("janus error")
			case "success", "event":
				if code, ok := m.PluginData.Data["error_code"]; ok {
					return m, fmt.Errorf("videoroom error %s: %s", code, m.PluginData.Data.str("error"))
				}
				return m, nil
			}
		case <-c.closing:
			return janusMsg{}, fmt.Errorf("%s: connection closed", c.name)
		case <-ctx.Done():
			return janusMsg{}, fmt.Errorf("%s: waiting for janus: %w", c.name, ctx.Err())
		}
	}
}

// message sends a VideoRoom request (with an SDP when jsep is set) and
// returns the plugin's answer and Janus's SDP, if any.
func (c *janusConn) message(ctx context.Context, body map[string]any, jsep *janusJSEP, sent func()) (pluginData, *janusJSEP, error) {
	msg := map[string]any{"janus": "message", "body": body}
	if jsep != nil {
		msg["jsep"] = jsep
	}
	m, err := c.call(ctx, msg, sent)
	if err != nil {
		return nil, nil, err
	}
	return m.PluginData.Data, m.JSEP, nil
}

func (c *janusConn) readLoop() {
	defer c.wg.Done()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var m janusMsg
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		if m.Janus == "trickle" {
			c.remoteCandidate(m.Candidate)
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.Transaction]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
		// webrtcup, media, slowlink, hangup: nothing to do here; the
		// measurement sees what arrives.
	}
}

func (c *janusConn) keepalive() {
	defer c.wg.Done()
	t := time.NewTicker(janusKeepalive)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
			_ = c.send(map[string]any{"janus": "keepalive"}, "")
		}
	}
}

// newPC creates the participant's PeerConnection, trickling its candidates.
func (c *janusConn) newPC(api *webrtc.API) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		c.mu.Lock()
		if !c.candReady {
			c.cands = append(c.cands, cand)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.trickle(cand)
	})
	c.mu.Lock()
	c.pc = pc
	c.mu.Unlock()
	return pc, nil
}

func (c *janusConn) flushCandidates() {
	c.mu.Lock()
	c.candReady = true
	cands := c.cands
	c.cands = nil
	c.mu.Unlock()
	for _, cand := range cands {
		c.trickle(cand)
	}
}

// trickle sends one local candidate, or "completed" for nil.
func (c *janusConn) trickle(cand *webrtc.ICECandidate) {
	var v any = map[string]any{"completed": true}
	if cand != nil {
		v = cand.ToJSON()
	}
	_ = c.send(map[string]any{"janus": "trickle", "candidate": v}, "")
}

// remoteCandidate adds a candidate Janus trickles (only with full_trickle;
// by default its SDP carries them).
func (c *janusConn) remoteCandidate(raw json.RawMessage) {
	var init webrtc.ICECandidateInit
	if json.Unmarshal(raw, &init) != nil || init.Candidate == "" {
		return
	}
	c.mu.Lock()
	pc := c.pc
	c.mu.Unlock()
	if pc != nil {
		_ = pc.AddICECandidate(init)
	}
}

// close destroys the session (Janus tears down the handle and its
// PeerConnection) and releases everything.
func (c *janusConn) close() {
	select {
	case <-c.closing:
		return
	default:
	}
	if c.session != 0 {
		_ = c.send(map[string]any{"janus": "destroy"}, "")
	}
	close(c.closing)
	c.wmu.Lock()
	_ = c.ws.Close()
	c.wmu.Unlock()
	c.mu.Lock()
	pc := c.pc
	c.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
	c.wg.Wait()
	c.readers.Wait()
}
