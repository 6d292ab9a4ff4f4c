package cascade_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/metrictest"
	"github.com/meridian-video/meridian/shared/porttest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// control stands in for the control plane: it signs join and relay tickets.
type control struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newControl(t *testing.T) *control {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &control{pub: pub, priv: priv}
}

// edge is one edge assembled as edgenode does it: SFU, signaling, cascade.
type edge struct {
	id, region string
	key        ed25519.PrivateKey
	sfu        *sfu.SFU
	sig        *signal.Server
	casc       *cascade.Manager
	addr       string
	reg        *prometheus.Registry
	events     chan edgeapi.Event
}

// startEdge starts an edge; opts are func(*sfu.Config),
// func(*signal.Config) or func(*cascade.Config), applied after the test
// defaults.
func startEdge(t *testing.T, ctl *control, id, region string, opts ...any) *edge {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sc := sfu.DefaultConfig()
	sc.IncludeLoopbackCandidate = true
	sc.Logger = quiet
	for _, o := range opts {
		if o, ok := o.(func(*sfu.Config)); ok {
			o(&sc)
		}
	}
	media, err := sfu.New(sc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := signal.DefaultConfig()
	cfg.EdgeID, cfg.Region = id, region
	cfg.AllowedOrigins = []string{"*"}
	cfg.InternalToken = "internal"
	cfg.TicketKey = func() ed25519.PublicKey { return ctl.pub }
	cfg.Logger = quiet
	cfg.RemoteGrace = 300 * time.Millisecond
	for _, o := range opts {
		switch o := o.(type) {
		case func(*sfu.Config), func(*cascade.Config):
		case func(*signal.Config):
			o(&cfg)
		default:
			t.Fatalf("startEdge: option of type %T", o)
		}
	}
	sig, err := signal.New(cfg, media)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	e := &edge{id: id, region: region, key: key, sfu: media, sig: sig, reg: prometheus.NewRegistry(), events: make(chan edgeapi.Event, 100)}
	cc := cascade.DefaultConfig()
	cc.EdgeID, cc.Region, cc.Key = id, region, key
	cc.TicketKey = func() ed25519.PublicKey { return ctl.pub }
	cc.SFU, cc.Members = media, sig
	cc.Logger = quiet
	cc.Registerer = e.reg
	cc.IdleTimeout = 3 * time.Second
	cc.Report = func(ev edgeapi.Event) {
		select {
		case e.events <- ev:
		default:
		}
	}
	for _, o := range opts {
		if o, ok := o.(func(*cascade.Config)); ok {
			o(&cc)
		}
	}
	e.casc, err = cascade.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	sig.SetCascade(e.casc)
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	sig.Register(app)
	e.casc.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = app.Listener(ln) }()
	t.Cleanup(func() {
		_ = sig.Close()
		_ = e.casc.Close()
		_ = app.ShutdownWithTimeout(5 * time.Second)
		<-done
		_ = media.Close()
	})
	return e
}

func (e *edge) relayEdge() ticket.RelayEdge {
	return ticket.RelayEdge{ID: e.id, Region: e.region, Key: e.key.Public().(ed25519.PublicKey)}
}

// link tells two edges they serve room together, as a placement push would.
func (ctl *control) link(t *testing.T, room string, epoch uint64, allowed []string, edges ...*edge) {
	t.Helper()
	now := time.Now()
	for _, e := range edges {
		rp := edgeapi.RoomPeers{RoomID: room, Epoch: epoch, Member: true, Peers: []edgeapi.Peer{}}
		for _, o := range edges {
			if o == e {
				continue
			}
			tok, err := ticket.SignRelay(ctl.priv, ticket.RelayClaims{RoomID: room, Epoch: epoch, Edges: []ticket.RelayEdge{e.relayEdge(), o.relayEdge()},
				AllowedRegions: allowed, IssuedAt: now.Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix()})
			if err != nil {
				t.Fatal(err)
			}
			rp.Peers = append(rp.Peers, edgeapi.Peer{EdgeID: o.id, Region: o.region, URL: "http://" + o.addr, RelayTicket: tok})
		}
		e.casc.SetPeers(rp)
	}
}

func (ctl *control) join(t *testing.T, e *edge, room, pid string, perms ticket.Permissions, opts ...func(*ticket.Claims)) *signaltest.Client {
	t.Helper()
	c, lobby, err := ctl.try(t, e, room, pid, perms, opts...)
	if err != nil {
		t.Fatalf("join %s on %s: %v", pid, e.id, err)
	}
	if lobby {
		t.Fatalf("join %s on %s: put in the lobby", pid, e.id)
	}
	return c
}

// connect joins pid with a fresh ticket for e; lobby: it waits in e's lobby.
func (ctl *control) connect(t *testing.T, e *edge, room, pid string, perms ticket.Permissions) (c *signaltest.Client, lobby bool) {
	t.Helper()
	c, lobby, err := ctl.try(t, e, room, pid, perms)
	if err != nil {
		t.Fatalf("join %s on %s: %v", pid, e.id, err)
	}
	return c, lobby
}

// try is connect that returns the join's error (opts adjust the ticket).
func (ctl *control) try(t *testing.T, e *edge, room, pid string, perms ticket.Permissions, opts ...func(*ticket.Claims)) (c *signaltest.Client, lobby bool, err error) {
	t.Helper()
	now := time.Now()
	claims := ticket.Claims{RoomID: room, ParticipantID: pid, ParticipantName: "N-" + pid, EdgeID: e.id, Permissions: perms,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()}
	for _, o := range opts {
		o(&claims)
	}
	tok, err := ticket.Sign(ctl.priv, claims)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err = signaltest.Dial(ctx, signaltest.Config{URL: "ws://" + e.addr + "/rtc", PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	_, lobby, err = c.Join(ctx, tok, "N-"+pid)
	return c, lobby, err
}

var all = ticket.Permissions{Publish: true, Subscribe: true}

func received(c *signaltest.Client, from, kind string) (packets, bytes int) {
	for _, tr := range c.Tracks() {
		if tr.ParticipantID == from && tr.Kind == kind {
			packets += tr.Packets
			bytes += tr.Bytes
		}
	}
	return
}

func waitFor(t *testing.T, c *signaltest.Client, typ string, match func(wire.Envelope) bool) wire.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := c.WaitFor(ctx, typ, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return env
}

func about(pid string) func(wire.Envelope) bool {
	return func(env wire.Envelope) bool { return strings.Contains(string(env.Data), `"`+pid+`"`) }
}

// TestCascadeOneMeetingAcrossTwoEdges: participants on two edges see and
// hear each other through one relay leg per direction that carries one copy
// of each track whatever the number of subscribers; room events (joins,
// mutes, active speaker, moderation, leaves) cross the leg.
func TestCascadeOneMeetingAcrossTwoEdges(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "paris-1", "eu-west")
	b := startEdge(t, ctl, "montreal-1", "ca-east")
	ctl.link(t, "r1", 10, nil, a, b)

	alice := ctl.join(t, a, "r1", "alice", all)
	bob := ctl.join(t, b, "r1", "bob", ticket.Permissions{Publish: true, Subscribe: true, Moderate: true})
	carol := ctl.join(t, b, "r1", "carol", ticket.Permissions{Subscribe: true})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Publish(ctx, signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	// Everyone learns about the other edge's participants.
	waitFor(t, bob, wire.TypeParticipantJoined, about("alice"))
	waitFor(t, alice, wire.TypeParticipantJoined, about("bob"))
	waitFor(t, alice, wire.TypeParticipantJoined, about("carol"))

	// Media both ways within the 2 s budget (plus slack for -race).
	var mediaAt time.Duration
	signaltest.Eventually(t, 10*time.Second, func() string {
		bv, _ := received(bob, "alice", "video")
		ba, _ := received(bob, "alice", "audio")
		cv, _ := received(carol, "alice", "video")
		av, _ := received(alice, "bob", "video")
		aa, _ := received(alice, "bob", "audio")
		if bv == 0 || ba == 0 || cv == 0 || av == 0 || aa == 0 {
			return signaltest.Reasonf("bob<-alice v%d a%d, carol<-alice v%d, alice<-bob v%d a%d", bv, ba, cv, av, aa)
		}
		return ""
	})
	mediaAt = time.Since(start)
	t.Logf("media across the cascade both ways %v after the joins", mediaAt)

	// One copy per (track, remote edge): two subscribers on B, and the leg
	// from A carries Alice's two tracks once.
	var out cascade.LegInfo
	for _, li := range a.casc.Legs() {
		if li.Direction == "out" && li.PeerEdgeID == "montreal-1" {
			out = li
		}
	}
	if out.Stats.Tracks != 2 || !out.Connected {
		t.Fatalf("leg paris-1 → montreal-1: %+v, want 2 tracks connected", out)
	}
	legBytes := func() int {
		for _, li := range a.casc.Legs() {
			if li.Direction == "out" && li.PeerEdgeID == "montreal-1" {
				return int(li.Stats.Bytes)
			}
		}
		return 0
	}
	subBytes := func(c *signaltest.Client) int {
		_, v := received(c, "alice", "video")
		_, a := received(c, "alice", "audio")
		return v + a
	}
	leg0, bob0, carol0 := legBytes(), subBytes(bob), subBytes(carol)
	time.Sleep(2 * time.Second)
	leg, bobGot, carolGot := legBytes()-leg0, subBytes(bob)-bob0, subBytes(carol)-carol0
	t.Logf("over 2 s: leg %d bytes; bob received %d, carol %d from alice", leg, bobGot, carolGot)
	if bobGot == 0 || carolGot == 0 || float64(leg) > 1.25*float64(max(bobGot, carolGot)) {
		t.Fatalf("the leg carried %d bytes while each subscriber received ~%d: not one copy per track", leg, max(bobGot, carolGot))
	}

	// Mutes cross the leg, with the participant named.
	if err := alice.Send(wire.TypeMute, wire.Mute{Kind: "audio", Muted: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bob, wire.TypeMute, func(env wire.Envelope) bool {
		m, _ := signaltest.Decode[wire.Mute](env)
		return m.ParticipantID == "alice" && m.Kind == "audio" && m.Muted
	})
	if err := alice.Send(wire.TypeMute, wire.Mute{Kind: "audio", Muted: false}); err != nil {
		t.Fatal(err)
	}

	// Active speaker: Alice speaks loudly on A; B detects it from the
	// audio levels carried over the leg.
	alice.SetAudioLevel(5)
	bob.SetAudioLevel(127)
	waitFor(t, carol, wire.TypeActiveSpeaker, func(env wire.Envelope) bool {
		s, _ := signaltest.Decode[wire.ActiveSpeaker](env)
		return len(s.ParticipantIDs) > 0 && s.ParticipantIDs[0] == "alice"
	})

	// Moderation from B reaches Alice on A.
	if err := bob.Send(wire.TypeMuteParticipant, wire.MuteParticipant{ParticipantID: "alice", Kind: "video"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice, wire.TypeMute, func(env wire.Envelope) bool {
		m, _ := signaltest.Decode[wire.Mute](env)
		return m.ParticipantID == "alice" && m.Kind == "video" && m.Muted
	})

	// Leg metrics name the remote edge.
	if v := gauge(t, a.reg, "meridian_cascade_legs", map[string]string{"peer": "montreal-1", "direction": "out", "state": "connected"}); v != 1 {
		t.Fatalf("meridian_cascade_legs{peer=montreal-1,out,connected} = %v", v)
	}
	// Round trip on the leg: the far end reads the sender reports and
	// answers with receiver reports that carry them.
	signaltest.Eventually(t, 10*time.Second, func() string {
		if v := gauge(t, a.reg, "meridian_cascade_rtt_seconds", map[string]string{"peer": "montreal-1"}); v <= 0 {
			return signaltest.Reasonf("meridian_cascade_rtt_seconds{peer=montreal-1} = %v", v)
		}
		return ""
	})
	if v := gauge(t, b.reg, "meridian_cascade_bytes_total", map[string]string{"peer": "paris-1", "direction": "in"}); v <= 0 {
		t.Fatalf("meridian_cascade_bytes_total{peer=paris-1,in} = %v", v)
	}
	sawUp := false
	for len(a.events) > 0 {
		if ev := <-a.events; ev.Kind == edgeapi.EventCascadeLegUp && ev.PeerEdgeID == "montreal-1" && ev.PeerRegion == "ca-east" {
			sawUp = true
		}
	}
	if !sawUp {
		t.Fatal("no cascade-leg-up event for the audit")
	}

	// A leave crosses the leg at once (no grace for an explicit leave).
	if err := alice.Leave(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, bob, wire.TypeParticipantLeft, about("alice"))
}

// gauge is the value of the sample of name with these labels (summed if
// several match), -1 if there is none.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := metrictest.Sum(t, reg, name, labels)
	if !ok {
		return -1
	}
	return v
}

func encodeEnv(typ string, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(wire.Envelope{Type: typ, Data: data})
}

// TestCascadeBothWaysWithOneMediaPort: edges that serve clients on a single
// UDP port (the production setting) still link both ways: the two legs
// between one pair of edges must not share that port's address pair.
func TestCascadeBothWaysWithOneMediaPort(t *testing.T) {
	ctl := newControl(t)
	mux := func(c *sfu.Config) { c.UDPMuxPort, c.UDPMuxAddr = porttest.Port(t), "127.0.0.1" }
	a := startEdge(t, ctl, "a", "eu-west", mux)
	b := startEdge(t, ctl, "b", "ca-east", mux)
	ctl.link(t, "rm", 1, nil, a, b)
	alice := ctl.join(t, a, "rm", "alice", all)
	bob := ctl.join(t, b, "rm", "bob", all)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, c := range []*signaltest.Client{alice, bob} {
		if err := c.Publish(ctx, signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	signaltest.Eventually(t, 15*time.Second, func() string {
		bv, _ := received(bob, "alice", "video")
		av, _ := received(alice, "bob", "video")
		if bv < 10 || av < 10 {
			return signaltest.Reasonf("bob<-alice %d, alice<-bob %d video packets", bv, av)
		}
		return ""
	})
}
