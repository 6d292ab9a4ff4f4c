package gossip

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestCoarsenSteps(t *testing.T) {
	for _, tc := range []struct {
		raw, prev, want int64
		step            int64
	}{
		{raw: 250, prev: 0, want: 250, step: cpuStepMilli},                         // first publication rounds
		{raw: 262, prev: 0, want: 250, step: cpuStepMilli},                         // to the nearest step
		{raw: 30, prev: 0, want: 0, step: cpuStepMilli},                            // within the band of 0
		{raw: 337, prev: 300, want: 300, step: cpuStepMilli},                       // 37 <= 37.5: kept
		{raw: 263, prev: 300, want: 300, step: cpuStepMilli},                       // both ways
		{raw: 338, prev: 300, want: 350, step: cpuStepMilli},                       // beyond: next step
		{raw: 1_180_000, prev: 1_000_000, want: 1_000_000, step: egressStep},       // 180k <= 187.5k
		{raw: 1_190_000, prev: 1_000_000, want: 1_250_000, step: egressStep},       // 190k: next step
		{raw: 120_000_000, prev: 1_000_000, want: 120_000_000, step: egressStep},   // a jump lands on its step
		{raw: 120_100_000, prev: 120_000_000, want: 120_000_000, step: egressStep}, // noise on a large value
	} {
		if got := coarseStep(tc.raw, tc.prev, tc.step); got != tc.want {
			t.Errorf("coarseStep(%d, prev %d, step %d) = %d, want %d", tc.raw, tc.prev, tc.step, got, tc.want)
		}
	}
	// A CPU sitting on a rounding boundary does not flip the meta.
	prev := wireMeta{ID: "a", Region: "r"}
	prev = coarsen(wireMeta{ID: "a", Region: "r", CPUMilli: 324, EgressBps: 1_124_000}, prev)
	for i, raw := range []int64{326, 324, 327, 323} {
		next := coarsen(wireMeta{ID: "a", Region: "r", CPUMilli: raw, EgressBps: 1_126_000 - int64(i%2)*2000}, prev)
		if next != prev {
			t.Errorf("raw CPU %d: meta %+v changed from %+v", raw, next, prev)
		}
	}
}

func TestUrgent(t *testing.T) {
	base := wireMeta{ID: "a", Region: "r", InternalURL: "http://a", Capacity: 10, Participants: 5, Tracks: 10, Rooms: 1, CPUMilli: 300, EgressBps: 1e6, Gen: 3}
	for _, tc := range []struct {
		name string
		edit func(*wireMeta)
		want bool
	}{
		{"participants", func(w *wireMeta) { w.Participants = 6 }, false},
		{"tracks, rooms, cpu, egress", func(w *wireMeta) { w.Tracks, w.Rooms, w.CPUMilli, w.EgressBps = 1, 2, 900, 9e6 }, false},
		{"draining", func(w *wireMeta) { w.Draining = true }, true},
		{"capacity", func(w *wireMeta) { w.Capacity = 20 }, true},
		{"url", func(w *wireMeta) { w.InternalURL = "http://b" }, true},
		{"becomes full", func(w *wireMeta) { w.Participants = 10 }, true},
	} {
		next := base
		tc.edit(&next)
		if got := urgent(next, base); got != tc.want {
			t.Errorf("%s: urgent = %v, want %v", tc.name, got, tc.want)
		}
	}
	full := base
	full.Participants = 12
	if next := base; urgent(next, full) {
		t.Error("no longer full: urgent, want it to wait like any load change")
	}
}

// TestPoolLoadChangesRateLimited changes a's load at every meta tick (in
// the Meta func itself, so ticks are counted, not timed): a publishes at
// most once per MetaMinInterval's ticks, peers still get the newest load,
// and draining is published at the first tick that sees it.
func TestPoolLoadChangesRateLimited(t *testing.T) {
	ms := newMetaSource("a", 5)
	var calls, churn atomic.Int64
	ca := localConfig("a", "eu")
	ca.Meta = func() Meta {
		calls.Add(1)
		m := ms.get()
		if churn.Load() != 0 {
			m.Load.Participants++
			ms.set(m)
		}
		return m
	}
	ca.MetaMinInterval = 500 * time.Millisecond // 5 ticks of 100 ms
	ca.MetaRefresh = 10 * time.Second
	a := startPool(t, ca)
	b := startPool(t, localConfig("b", "eu", a.LocalAddr()))
	eventually(t, 5*time.Second, "b sees a", func() (bool, string) {
		m, _ := b.Member("a")
		return m.Meta.Load.Participants == 5, fmt.Sprintf("b sees a as %+v", m)
	})
	gen := func() uint32 { m, _ := a.Member("a"); return m.Incarnation }

	g0, c0 := gen(), calls.Load()
	churn.Store(1)
	time.Sleep(2 * time.Second)
	churn.Store(0)
	pubs, ticks := int(gen()-g0), int(calls.Load()-c0)
	t.Logf("load changed at each of %d meta ticks: %d publications (at most one per %d ticks)", ticks, pubs, a.minTicks)
	if pubs <= 0 || pubs > ticks/a.minTicks+1 {
		t.Errorf("%d publications for %d ticks that each changed the load, want 1..%d", pubs, ticks, ticks/a.minTicks+1)
	}
	want := ms.get().Load.Participants
	eventually(t, 3*time.Second, "newest load reaches b", func() (bool, string) {
		m, _ := b.Member("a")
		return m.Meta.Load.Participants == want, fmt.Sprintf("b sees %d participants, want %d", m.Meta.Load.Participants, want)
	})

	// Right after a load publication, draining is not held back.
	m := ms.get()
	m.Load.Participants++
	ms.set(m)
	eventually(t, 3*time.Second, "load published", func() (bool, string) {
		got, _ := a.Member("a")
		return got.Meta.Load.Participants == m.Load.Participants, "not yet"
	})
	m.Draining = true
	ms.set(m)
	c1 := calls.Load()
	eventually(t, 3*time.Second, "a publishes draining", func() (bool, string) {
		got, _ := a.Member("a")
		return got.Meta.Draining, "not yet"
	})
	if n := calls.Load() - c1; n > 2 {
		t.Errorf("draining published after %d meta ticks, want the first (a load change waits %d)", n, a.minTicks)
	}
	eventually(t, 3*time.Second, "draining reaches b", func() (bool, string) {
		got, _ := b.Member("a")
		return got.Meta.Draining, "b does not see a draining"
	})
}
