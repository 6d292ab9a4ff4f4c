package signal_test

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// egressStates lists the egress-state messages c received, in order.
func egressStates(t *testing.T, c *signaltest.Client) []wire.EgressState {
	t.Helper()
	var out []wire.EgressState
	for _, m := range c.Messages() {
		if m.Type == wire.TypeEgressState {
			st, err := signaltest.Decode[wire.EgressState](m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, st)
		}
	}
	return out
}

func isState(want wire.EgressState) func(wire.Envelope) bool {
	return func(m wire.Envelope) bool {
		st, _ := signaltest.Decode[wire.EgressState](m)
		return st == want
	}
}

// A room's recording/streaming state reaches its participants on every
// change (once per change, not per job), late joiners in joined, and
// only that room's participants.
func TestEgressState(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	alice := e.Join(t, "rec", "alice", nil)
	bob := e.Join(t, "rec", "bob", nil)
	other := e.Join(t, "elsewhere", "carol", nil)
	if j := alice.Joined(); j.Egress != (wire.EgressState{}) {
		t.Fatalf("joined before any job says %+v", j.Egress)
	}

	rec := wire.EgressState{Recording: true}
	e.Server.SetEgress("rec", "", rec)
	waitMsg(t, alice, wire.TypeEgressState, isState(rec))
	waitMsg(t, bob, wire.TypeEgressState, isState(rec))
	e.Server.SetEgress("rec", "", rec) // no change: nothing sent

	// A late joiner gets the state in joined.
	dave := e.Join(t, "rec", "dave", nil)
	if j := dave.Joined(); j.Egress != rec {
		t.Fatalf("late joiner's joined says %+v, want %+v", j.Egress, rec)
	}

	// Another source (a cascade peer) streaming: merged.
	both := wire.EgressState{Recording: true, Streaming: true}
	e.Server.SetEgress("rec", "edge-b", wire.EgressState{Streaming: true})
	waitMsg(t, dave, wire.TypeEgressState, isState(both))
	e.Server.SetEgress("rec", "", wire.EgressState{})
	live := wire.EgressState{Streaming: true}
	waitMsg(t, alice, wire.TypeEgressState, isState(live))
	e.Server.SetEgress("rec", "edge-b", wire.EgressState{})
	waitMsg(t, alice, wire.TypeEgressState, isState(wire.EgressState{}))
	waitMsg(t, bob, wire.TypeEgressState, isState(wire.EgressState{}))
	if got := e.Server.Egress("rec"); got != (wire.EgressState{}) {
		t.Fatalf("room state after every source ended: %+v", got)
	}

	want := []wire.EgressState{rec, both, live, {}}
	signaltest.Eventually(t, 5*time.Second, func() string {
		if got := egressStates(t, alice); len(got) != len(want) {
			return signaltest.Reasonf("alice got %v, want %v", got, want)
		}
		return ""
	})
	for i, st := range egressStates(t, alice) {
		if st != want[i] {
			t.Fatalf("alice's egress-state #%d = %+v, want %+v (all: %v)", i, st, want[i], egressStates(t, alice))
		}
	}
	if got := egressStates(t, other); len(got) != 0 {
		t.Fatalf("a participant of another room got %v", got)
	}
}
