package cascade_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestLobbyAcrossEdges: someone who may only ask to join waits in the lobby
// of the edge nearest to them; the room's moderators are on other edges.
// The request reaches them over the cascade (also a moderator who arrives
// on a third edge afterwards), and their admit or deny is carried out
// where the asker waits; once decided, the request is gone everywhere.
func TestLobbyAcrossEdges(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "paris-1", "eu-west")
	b := startEdge(t, ctl, "montreal-1", "ca-east")
	ctl.link(t, "r1", 10, nil, a, b)
	mod := ticket.Permissions{Publish: true, Subscribe: true, Moderate: true}
	ask := ticket.Permissions{Publish: true, Subscribe: true, AskJoin: true}

	ctl.join(t, a, "r1", "alice", all) // no moderator on paris-1
	bob := ctl.join(t, b, "r1", "bob", mod)
	waitFor(t, bob, wire.TypeParticipantJoined, about("alice"))

	wait := func(c *signaltest.Client) (*wire.Joined, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.WaitJoined(ctx)
	}
	withdrawn := func(m *signaltest.Client, pid string) {
		t.Helper()
		waitFor(t, m, wire.TypeLobbyWithdrawn, about(pid))
	}
	decide := func(m *signaltest.Client, pid string, admit bool) {
		t.Helper()
		if err := m.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: pid, Admit: admit}); err != nil {
			t.Fatal(err)
		}
	}

	// Admitted from another edge.
	carol, lobby := ctl.connect(t, a, "r1", "carol", ask)
	if !lobby {
		t.Fatal("carol (ask to join) was not put in the lobby")
	}
	waitFor(t, bob, wire.TypeLobbyRequest, about("carol"))
	decide(bob, "carol", true)
	if j, err := wait(carol); err != nil || j.ParticipantID != "carol" {
		t.Fatalf("carol after bob's admit: %+v %v", j, err)
	}
	waitFor(t, bob, wire.TypeParticipantJoined, about("carol"))
	withdrawn(bob, "carol")

	// Denied from another edge.
	dave, _ := ctl.connect(t, a, "r1", "dave", ask)
	waitFor(t, bob, wire.TypeLobbyRequest, about("dave"))
	decide(bob, "dave", false)
	var removed *signaltest.RemovedError
	if _, err := wait(dave); !errors.As(err, &removed) || removed.Reason != wire.ReasonDenied {
		t.Fatalf("dave after bob's deny: %v, want removed (denied)", err)
	}
	withdrawn(bob, "dave")

	// Decided requests are gone from the other edge too: deciding again
	// finds nobody waiting.
	notFound := func() int {
		n := 0
		for _, env := range bob.Messages() {
			if e, _ := signaltest.Decode[wire.Error](env); env.Type == wire.TypeError && e.Code == wire.CodeNotFound {
				n++
			}
		}
		return n
	}
	for i, pid := range []string{"carol", "dave"} {
		decide(bob, pid, true)
		signaltest.Eventually(t, 10*time.Second, func() string {
			if n := notFound(); n != i+1 {
				return signaltest.Reasonf("%d not-found errors after deciding again for %s, want %d", n, pid, i+1)
			}
			return ""
		})
	}

	// A moderator who arrives later, on a third edge, is asked too (the
	// leg's welcome lists who waits) and decides.
	eve, _ := ctl.connect(t, a, "r1", "eve", ask)
	c := startEdge(t, ctl, "frankfurt-1", "eu-central")
	ctl.link(t, "r1", 11, nil, a, b, c)
	erin := ctl.join(t, c, "r1", "erin", mod)
	waitFor(t, erin, wire.TypeLobbyRequest, about("eve"))
	decide(erin, "eve", true)
	if j, err := wait(eve); err != nil || j.ParticipantID != "eve" {
		t.Fatalf("eve after erin's admit: %+v %v", j, err)
	}
	waitFor(t, bob, wire.TypeParticipantJoined, about("eve"))
	withdrawn(bob, "eve") // decided by erin, on another edge

	// When the asker's edge goes away, so does its request: a decision
	// for it finds nobody waiting instead of vanishing.
	ctl.connect(t, a, "r1", "frank", ask)
	waitFor(t, bob, wire.TypeLobbyRequest, about("frank"))
	before := notFound()
	_ = a.casc.Close()
	withdrawn(bob, "frank")
	signaltest.Eventually(t, 10*time.Second, func() string {
		decide(bob, "frank", true)
		time.Sleep(100 * time.Millisecond)
		if n := notFound(); n == before {
			return signaltest.Reasonf("paris-1's cascade closed, still no not-found for frank")
		}
		return ""
	})
	// Nor is a moderator who arrives now asked about it. (The requests a
	// moderator is asked at join come right behind its joined, in order.)
	gina := ctl.join(t, b, "r1", "gina", mod)
	if err := gina.Send(wire.TypePing, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, gina, wire.TypePong, nil)
	for _, env := range gina.Messages() {
		if env.Type == wire.TypeLobbyRequest {
			t.Fatalf("gina, joining after paris-1's cascade closed, was asked: %s", env.Data)
		}
	}
}

// TestMaxParticipantsCountsTheWholeRoom: a room's maxParticipants caps
// the room, not each of its edges. With two on two edges, a third is
// refused on either (also when a moderator admits them from the lobby),
// while someone already in the room who moves to another edge is not.
func TestMaxParticipantsCountsTheWholeRoom(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "paris-1", "eu-west")
	b := startEdge(t, ctl, "montreal-1", "ca-east")
	ctl.link(t, "r1", 10, nil, a, b)
	two := func(c *ticket.Claims) { c.MaxParticipants = 2 }
	mod := ticket.Permissions{Subscribe: true, Moderate: true}

	ctl.join(t, a, "r1", "alice", all, two)
	bob := ctl.join(t, b, "r1", "bob", mod, two)
	waitFor(t, bob, wire.TypeParticipantJoined, about("alice"))
	for _, e := range []*edge{a, b} {
		signaltest.Eventually(t, 10*time.Second, func() string {
			_, _, err := ctl.try(t, e, "r1", "carol", all, two)
			var pe *signaltest.ProtocolError
			if !errors.As(err, &pe) || pe.Code != wire.CodeRoomFull {
				return signaltest.Reasonf("carol on %s: %v, want room-full", e.id, err)
			}
			return ""
		})
	}
	// From the lobby: bob (on the other edge) admits dave; the room is full.
	dave, lobby, err := ctl.try(t, a, "r1", "dave", ticket.Permissions{Subscribe: true, AskJoin: true}, two)
	if err != nil || !lobby {
		t.Fatalf("dave: lobby=%v %v", lobby, err)
	}
	waitFor(t, bob, wire.TypeLobbyRequest, about("dave"))
	if err := bob.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "dave", Admit: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pe *signaltest.ProtocolError
	if _, err := dave.WaitJoined(ctx); !errors.As(err, &pe) || pe.Code != wire.CodeRoomFull {
		t.Fatalf("dave admitted into a full room: %v, want room-full", err)
	}
	// alice moves to montreal-1 (as after a failover): still two people.
	ctl.join(t, b, "r1", "alice", all, two)
}

// TestLobbyKeptOverALegRedial: a leg that redials to switch between room
// events only and media (here: the first subscriber arrives on the
// moderator's edge) keeps who waits in the other edge's lobby, so the
// moderator is neither told the request was withdrawn nor asked again,
// and can still admit the guest through the new connection.
func TestLobbyKeptOverALegRedial(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "paris-1", "eu-west")
	b := startEdge(t, ctl, "montreal-1", "ca-east")
	ctl.link(t, "r-redial", 7, nil, a, b)
	ctl.join(t, a, "r-redial", "alice", ticket.Permissions{Publish: true})
	bob := ctl.join(t, b, "r-redial", "bob", ticket.Permissions{Publish: true, Moderate: true}) // moderates, subscribes to nothing
	waitLeg(t, b, "paris-1", "in", "events")
	carol, lobby := ctl.connect(t, a, "r-redial", "carol", ticket.Permissions{Publish: true, Subscribe: true, AskJoin: true})
	if !lobby {
		t.Fatal("carol (ask to join) was not put in the lobby")
	}
	waitFor(t, bob, wire.TypeLobbyRequest, about("carol"))
	seen := len(bob.Messages())

	// A subscriber on montreal-1: its leg from paris-1 redials with media.
	ctl.join(t, b, "r-redial", "dave", ticket.Permissions{Subscribe: true})
	signaltest.Eventually(t, 15*time.Second, func() string {
		if st := legState(t, b, "paris-1", "in"); st != "idle" && st != "connected" {
			return signaltest.Reasonf("montreal-1's leg from paris-1 is %q, want it carrying media (idle: no track yet)", st)
		}
		return ""
	})
	time.Sleep(time.Second) // the new connection's welcome is in by now
	for _, env := range bob.Messages()[seen:] {
		if (env.Type == wire.TypeLobbyWithdrawn || env.Type == wire.TypeLobbyRequest) && about("carol")(env) {
			t.Errorf("bob was told %s %s over the redial", env.Type, env.Data)
		}
	}
	if err := bob.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "carol", Admit: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if j, err := carol.WaitJoined(ctx); err != nil || j.ParticipantID != "carol" {
		t.Fatalf("carol after bob's admit through the new connection: %+v %v", j, err)
	}
}
