package cascade_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// legState is the meridian_cascade_legs state of e's leg to/from peer
// ("connected", "connecting", "idle", "events"), or "" without one.
func legState(t *testing.T, e *edge, peer, direction string) string {
	t.Helper()
	for _, st := range []string{"connected", "connecting", "idle", "events"} {
		if gauge(t, e.reg, "meridian_cascade_legs", map[string]string{"peer": peer, "direction": direction, "state": st}) == 1 {
			return st
		}
	}
	return ""
}

func waitLeg(t *testing.T, e *edge, peer, direction, want string) {
	t.Helper()
	signaltest.Eventually(t, 15*time.Second, func() string {
		if got := legState(t, e, peer, direction); got != want {
			return signaltest.Reasonf("%s's %s leg with %s is %q, want %q", e.id, direction, peer, got, want)
		}
		return ""
	})
}

// relayedIn reports whether e's SFU room has pid relayed in from another edge.
func relayedIn(e *edge, room, pid string) bool {
	r := e.sfu.Room(room)
	if r == nil {
		return false
	}
	for _, m := range r.Members() {
		if m.ID == pid && m.Remote {
			return true
		}
	}
	return false
}

func receivesVideo(t *testing.T, c *signaltest.Client, from string) {
	t.Helper()
	signaltest.Eventually(t, 15*time.Second, func() string {
		if v, _ := received(c, from, "video"); v < 10 {
			return signaltest.Reasonf("%d video packets from %s", v, from)
		}
		return ""
	})
}

// TestCascadeLegCarriesMediaOnlyForSubscribers: an edge pulls another
// edge's tracks only while it has a participant that subscribes (or an
// egress job); with participants that only publish it gets the room's
// events and nothing else — no relay PeerConnection stuck "connecting"
// for lack of tracks (docs/benchmarks.md, cascade finding 4), no media
// nobody watches. The legs switch both ways as subscribers come and go,
// without the far edge's recording indicator flickering.
func TestCascadeLegCarriesMediaOnlyForSubscribers(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "paris-1", "eu-west")
	b := startEdge(t, ctl, "montreal-1", "ca-east")
	ctl.link(t, "r-need", 7, nil, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	publishOnly := ticket.Permissions{Publish: true}
	pub := signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}

	// alice only publishes on A; bob watches on B, pete only publishes there.
	alice := ctl.join(t, a, "r-need", "alice", publishOnly)
	if err := alice.Publish(ctx, pub); err != nil {
		t.Fatal(err)
	}
	bobAt := time.Now()
	bob := ctl.join(t, b, "r-need", "bob", ticket.Permissions{Subscribe: true})
	pete := ctl.join(t, b, "r-need", "pete", publishOnly)
	if err := pete.Publish(ctx, pub); err != nil {
		t.Fatal(err)
	}
	receivesVideo(t, bob, "alice")
	t.Logf("first subscriber on an edge with no leg yet: 10 video packets %v after the join", time.Since(bobAt).Round(time.Millisecond))
	// A records the room: B's participants are told over the leg.
	rec := wire.EgressState{Recording: true}
	a.sig.SetEgress("r-need", "", rec)
	expectEgress(t, pete, "pete", rec)
	waitLeg(t, b, "paris-1", "in", "connected")
	waitLeg(t, a, "montreal-1", "out", "connected")
	// Nobody on A subscribes: A takes B's room events, not pete's media.
	waitLeg(t, a, "montreal-1", "in", "events")
	waitLeg(t, b, "paris-1", "out", "events")
	waitFor(t, alice, wire.TypeParticipantJoined, about("pete"))
	if relayedIn(a, "r-need", "pete") {
		t.Fatal("pete's tracks are relayed into paris-1, where nobody subscribes")
	}

	// The last subscriber on B leaves (pete stays): B's leg from A stops
	// carrying media; pete still hears the room's events.
	if err := bob.Leave(); err != nil {
		t.Fatal(err)
	}
	waitLeg(t, b, "paris-1", "in", "events")
	waitLeg(t, a, "montreal-1", "out", "events")
	signaltest.Eventually(t, 10*time.Second, func() string {
		if relayedIn(b, "r-need", "alice") {
			return "alice's tracks still relayed into montreal-1"
		}
		return ""
	})
	for _, li := range a.casc.Legs() {
		if li.Direction == "out" && li.Stats.Tracks != 0 {
			t.Fatalf("paris-1 still sends %d tracks to %s", li.Stats.Tracks, li.PeerEdgeID)
		}
	}
	carolAt := time.Now()
	carol := ctl.join(t, a, "r-need", "carol", ticket.Permissions{Subscribe: true})
	waitFor(t, pete, wire.TypeParticipantJoined, about("carol"))

	// carol subscribes on A: A pulls pete's media now.
	receivesVideo(t, carol, "pete")
	t.Logf("first subscriber on an events-only edge: 10 video packets %v after the join (leg set up again with media)", time.Since(carolAt).Round(time.Millisecond))
	waitLeg(t, a, "montreal-1", "in", "connected")
	waitLeg(t, b, "paris-1", "out", "connected")

	// A subscriber on B again: the media leg from A comes back.
	daveAt := time.Now()
	dave := ctl.join(t, b, "r-need", "dave", ticket.Permissions{Subscribe: true})
	receivesVideo(t, dave, "alice")
	t.Logf("and again on the other edge: %v", time.Since(daveAt).Round(time.Millisecond))
	waitLeg(t, b, "paris-1", "in", "connected")
	waitLeg(t, a, "montreal-1", "out", "connected")
	if legs := b.casc.Legs(); len(legs) != 2 {
		t.Fatalf("montreal-1 legs %+v, want one each way", legs)
	}
	// Two mode switches of B's leg, and pete never saw the recording
	// indicator go off and on.
	expectEgress(t, pete, "pete", rec)
	expectEgress(t, dave, "dave")
	if j := dave.Joined(); j.Egress != rec {
		t.Fatalf("dave's joined says %+v, want %+v", j.Egress, rec)
	}

	// Nobody left on B: no leg from B at all.
	for _, c := range []*signaltest.Client{pete, dave} {
		if err := c.Leave(); err != nil {
			t.Fatal(err)
		}
	}
	waitLeg(t, b, "paris-1", "in", "")
	waitLeg(t, a, "montreal-1", "out", "")
}
