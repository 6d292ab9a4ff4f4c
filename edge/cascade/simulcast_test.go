package cascade_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestCascadeSimulcastLayersPerSubscriber: every layer crosses the leg, so
// two subscribers on the far edge get different layers of one publisher,
// with continuous sequence numbers across a switch; keyframe requests from
// the far edge are coalesced before they reach the publisher.
func TestCascadeSimulcastLayersPerSubscriber(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "a", "eu-west")
	b := startEdge(t, ctl, "b", "eu-central")
	ctl.link(t, "rs", 3, []string{"eu-west", "eu-central"}, a, b)
	alice := ctl.join(t, a, "rs", "alice", all)
	bob := ctl.join(t, b, "rs", "bob", ticket.Permissions{Subscribe: true})
	carol := ctl.join(t, b, "rs", "carol", ticket.Permissions{Subscribe: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := alice.Publish(ctx, signaltest.PublishOptions{Video: true, Simulcast: true}); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	signaltest.Eventually(t, 15*time.Second, func() string {
		bv, _ := received(bob, "alice", "video")
		cv, _ := received(carol, "alice", "video")
		if bv < 30 || cv < 30 {
			return signaltest.Reasonf("bob %d, carol %d video packets", bv, cv)
		}
		return ""
	})
	for _, li := range a.casc.Legs() {
		if li.Direction == "out" && li.Stats.Tracks != 1 {
			t.Fatalf("leg a→b relays %d tracks, want alice's video once", li.Stats.Tracks)
		}
	}
	if err := bob.Send(wire.TypeSetLayer, wire.SetLayer{TrackID: "video", Layer: "q"}); err != nil {
		t.Fatal(err)
	}
	if err := carol.Send(wire.TypeSetLayer, wire.SetLayer{TrackID: "video", Layer: "f"}); err != nil {
		t.Fatal(err)
	}
	onLayer := func(c *signaltest.Client, layer byte) func() string {
		var base int
		return func() string {
			st, _ := c.Track("alice", "video")
			if st.LastLayer != layer {
				base = st.Layers[layer]
				return signaltest.Reasonf("forwarded %q, want %q (%v)", st.LastLayer, layer, st.Layers)
			}
			if st.Layers[layer] < base+20 {
				return signaltest.Reasonf("only %d packets of %q", st.Layers[layer]-base, layer)
			}
			return ""
		}
	}
	signaltest.Eventually(t, 15*time.Second, onLayer(bob, 'q'))
	signaltest.Eventually(t, 15*time.Second, onLayer(carol, 'f'))
	if err := bob.Send(wire.TypeSetLayer, wire.SetLayer{TrackID: "video", Layer: "h"}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 15*time.Second, onLayer(bob, 'h'))
	for _, c := range []*signaltest.Client{bob, carol} {
		st, _ := c.Track("alice", "video")
		if len(st.SSRCs) != 1 || st.TimestampBackwards != 0 {
			t.Fatalf("%+v: SSRC changed or timestamps went back", st)
		}
		for _, s := range st.Switches {
			if s.SeqStep != 1 {
				t.Fatalf("switch %c→%c jumped sequence numbers by %d", s.From, s.To, s.SeqStep)
			}
		}
	}
	// Keyframes were asked for by two subscribers on b for three layer
	// changes, and coalesced on both hops: the publisher hears at most a
	// few per second per layer.
	plis := alice.RTCP().PLIs + alice.RTCP().FIRs
	elapsed := time.Since(published).Seconds()
	t.Logf("publisher received %d keyframe requests", plis)
	if plis == 0 || float64(plis) > 3*elapsed*1.5 {
		t.Fatalf("publisher got %d keyframe requests", plis)
	}
}

// TestCascadeLegRefusals: a leg is set up only with a relay ticket the
// control plane signed for this pair and room, from an edge that proves it
// holds the named key, when both regions are allowed.
func TestCascadeLegRefusals(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "a", "eu-west")
	_, impostorKey, _ := ed25519.GenerateKey(rand.Reader)
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	bKeyPub, bKey, _ := ed25519.GenerateKey(rand.Reader)
	b := ticket.RelayEdge{ID: "b", Region: "eu-central", Key: bKeyPub}
	now := time.Now()
	sign := func(key ed25519.PrivateKey, c ticket.RelayClaims) string {
		tok, err := ticket.SignRelay(key, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := ticket.RelayClaims{RoomID: "r", Epoch: 1, Edges: []ticket.RelayEdge{a.relayEdge(), b}, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()}
	usOnly := good
	usOnly.AllowedRegions = []string{"us-east", "eu-central"}
	otherPair := good
	otherPair.Edges = []ticket.RelayEdge{{ID: "c", Region: "eu-west", Key: bKeyPub}, b}
	expired := good
	expired.IssuedAt, expired.ExpiresAt = now.Add(-2*time.Minute).Unix(), now.Add(-time.Minute).Unix()
	cases := []struct {
		name, ticket, room string
		key                ed25519.PrivateKey
		want               string
	}{
		{"forged ticket", sign(forger, good), "r", bKey, "ticket"},
		{"expired ticket", sign(ctl.priv, expired), "r", bKey, "ticket"},
		{"region not allowed for the room", sign(ctl.priv, usOnly), "r", bKey, "ticket"},
		{"ticket for another pair", sign(ctl.priv, otherPair), "r", bKey, "ticket"},
		{"ticket for another room", sign(ctl.priv, good), "other", bKey, "ticket"},
		{"impostor without b's key", sign(ctl.priv, good), "r", impostorKey, "proof"},
		{"the real b", sign(ctl.priv, good), "r", bKey, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws, _, err := fws.DefaultDialer.Dial("ws://"+a.addr+edgeapi.CascadePath, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			var env wire.Envelope
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if err := ws.ReadJSON(&env); err != nil || env.Type != edgeapi.CascadeChallenge {
				t.Fatalf("challenge: %v %+v", err, env)
			}
			ch, _ := signaltest.Decode[edgeapi.CascadeChallengeMsg](env)
			proof := ed25519.Sign(tc.key, ticket.ProofMessage("r", "b", "a", ch.Nonce))
			hello, _ := encodeEnv(edgeapi.CascadeHello, edgeapi.CascadeHelloMsg{Ticket: tc.ticket, RoomID: tc.room, EdgeID: "b", Nonce: "n", Proof: proof})
			if err := ws.WriteMessage(fws.TextMessage, hello); err != nil {
				t.Fatal(err)
			}
			if err := ws.ReadJSON(&env); err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if tc.want == "" {
				if env.Type != edgeapi.CascadeWelcome {
					t.Fatalf("got %s %s, want welcome", env.Type, env.Data)
				}
				w, _ := signaltest.Decode[edgeapi.CascadeWelcomeMsg](env)
				if ticket.VerifyProof(a.relayEdge(), "r", "b", "n", w.Proof) != nil {
					t.Fatal("a's welcome does not prove a's identity")
				}
				return
			}
			e, _ := signaltest.Decode[wire.Error](env)
			if env.Type != edgeapi.CascadeClose || e.Code != tc.want {
				t.Fatalf("got %s %s, want close %q", env.Type, env.Data, tc.want)
			}
			if _, _, err := ws.ReadMessage(); err == nil {
				t.Fatal("socket stayed open after a refusal")
			}
		})
	}
	if v := gauge(t, a.reg, "meridian_cascade_refused_total", map[string]string{"reason": "proof"}); v != 1 {
		t.Fatalf("refused{proof} = %v", v)
	}
	if v := gauge(t, a.reg, "meridian_cascade_refused_total", map[string]string{"reason": "ticket"}); v != 5 {
		t.Fatalf("refused{ticket} = %v", v)
	}
}
