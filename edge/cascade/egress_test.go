package cascade_test

import (
	"slices"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// The edge assembles these through optional interfaces: keep them met.
var (
	_ cascade.EgressMembers = (*signal.Server)(nil)
	_ interface {
		LocalEgress(string, wire.EgressState)
	} = (*cascade.Manager)(nil)
)

// expectEgress waits until c has received exactly the egress-state
// messages want, in order.
func expectEgress(t *testing.T, c *signaltest.Client, who string, want ...wire.EgressState) {
	t.Helper()
	var got []wire.EgressState
	signaltest.Eventually(t, 10*time.Second, func() string {
		got = got[:0]
		for _, env := range c.Messages() {
			if env.Type == wire.TypeEgressState {
				st, err := signaltest.Decode[wire.EgressState](env)
				if err != nil {
					return err.Error()
				}
				got = append(got, st)
			}
		}
		if !slices.Equal(got, want) {
			return signaltest.Reasonf("%s got egress-state %v, want %v", who, got, want)
		}
		return ""
	})
}

// TestCascadeEgressState: a recording or live stream run by one edge of a
// room is shown to the room's participants on the other edge too — on
// every change, in joined for a late joiner, and through a leg set up
// after the job started — and no longer once that edge's leg is gone.
func TestCascadeEgressState(t *testing.T) {
	ctl := newControl(t)
	a := startEdge(t, ctl, "paris-1", "eu-west")
	b := startEdge(t, ctl, "montreal-1", "ca-east")
	ctl.link(t, "r-egress", 10, nil, a, b)
	alice := ctl.join(t, a, "r-egress", "alice", all)
	bob := ctl.join(t, b, "r-egress", "bob", all)
	waitFor(t, bob, wire.TypeParticipantJoined, about("alice"))
	waitFor(t, alice, wire.TypeParticipantJoined, about("bob"))

	// A's job records the room: both edges' participants see it.
	off := wire.EgressState{}
	rec := wire.EgressState{Recording: true}
	a.sig.SetEgress("r-egress", "", rec)
	expectEgress(t, alice, "alice", rec)
	expectEgress(t, bob, "bob", rec)

	// B streams too: merged on both sides.
	both := wire.EgressState{Recording: true, Streaming: true}
	b.sig.SetEgress("r-egress", "", wire.EgressState{Streaming: true})
	expectEgress(t, alice, "alice", rec, both)
	expectEgress(t, bob, "bob", rec, both)

	// A late joiner on B gets it in joined.
	carol := ctl.join(t, b, "r-egress", "carol", all)
	if j := carol.Joined(); j.Egress != both {
		t.Fatalf("carol's joined on B says %+v, want %+v", j.Egress, both)
	}

	// A's recording ends, then B's stream.
	live := wire.EgressState{Streaming: true}
	a.sig.SetEgress("r-egress", "", off)
	expectEgress(t, alice, "alice", rec, both, live)
	expectEgress(t, bob, "bob", rec, both, live)
	b.sig.SetEgress("r-egress", "", off)
	expectEgress(t, alice, "alice", rec, both, live, off)
	expectEgress(t, bob, "bob", rec, both, live, off)
	expectEgress(t, carol, "carol", live, off)

	// A job that started before the legs exist: the welcome carries it.
	c := startEdge(t, ctl, "lyon-1", "eu-west")
	c.sig.SetEgress("r-egress", "", rec)
	ctl.link(t, "r-egress", 11, nil, a, b, c)
	dave := ctl.join(t, c, "r-egress", "dave", all)
	if j := dave.Joined(); j.Egress != rec {
		t.Fatalf("dave's joined on C says %+v, want %+v", j.Egress, rec)
	}
	expectEgress(t, alice, "alice", rec, both, live, off, rec)
	expectEgress(t, bob, "bob", rec, both, live, off, rec)

	// C goes away: its recording is no longer claimed on A and B.
	if err := c.casc.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.sig.Close()
	expectEgress(t, alice, "alice", rec, both, live, off, rec, off)
	expectEgress(t, bob, "bob", rec, both, live, off, rec, off)
	expectEgress(t, dave, "dave")
}
