package gossip

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"
)

func TestPoolTrafficCounted(t *testing.T) {
	pools, _ := threePools(t, "eu")
	// A push/pull (TCP) happens at join; let UDP probes and gossip run.
	time.Sleep(time.Second)
	var sent, recv [3]uint64
	for i, p := range pools {
		sent[i], recv[i] = p.Traffic()
	}
	time.Sleep(time.Second)
	var totalSent, totalRecv uint64
	for i, p := range pools {
		s, r := p.Traffic()
		if s <= sent[i] || r <= recv[i] {
			t.Errorf("%s: traffic did not grow: sent %d -> %d, received %d -> %d", p.cfg.NodeID, sent[i], s, recv[i], r)
		}
		totalSent += s
		totalRecv += r
		t.Logf("%s: sent %d B, received %d B", p.cfg.NodeID, s, r)
	}
	// Every byte sent by one member is received by another: the totals
	// match up to what is in flight while the counters are read.
	diff := math.Abs(float64(totalSent)-float64(totalRecv)) / float64(totalSent)
	if diff > 0.15 { // UDP may drop under load; a missing direction is far off
		t.Errorf("sent %d B in total, received %d B: %.1f%% apart", totalSent, totalRecv, 100*diff)
	}
}

// TestPoolTraffic10LAN measures gossip bandwidth per edge in a 10-node pool
// with production timers on loopback, with static load and with load
// changing at every meta tick, and then how long the pool takes to declare
// a killed member dead. Run with -v to see the numbers.
func TestPoolTraffic10LAN(t *testing.T) {
	if testing.Short() {
		t.Skip("~40 s with production timers")
	}
	const n = 10
	const window = 10 * time.Second
	pools := make([]*Pool, n)
	metas := make([]*metaSource, n)
	for i := range n {
		id := fmt.Sprintf("edge-%02d", i)
		cfg := localConfig(id, "eu-central")
		cfg.Timers = TimersLAN
		cfg.MetaEvery = DefaultConfig().MetaEvery
		cfg.MetaRefresh = DefaultConfig().MetaRefresh
		if i > 0 {
			cfg.Seeds = []string{pools[0].LocalAddr()}
		}
		metas[i] = newMetaSource(id, 10+i)
		cfg.Meta = metas[i].fn()
		pools[i] = startPool(t, cfg)
	}
	eventually(t, 40*time.Second, "10 alive" /* > PushPullInterval: anti-entropy repairs a missed join broadcast */, func() (bool, string) {
		return allSee(pools, ids(pools...), StateAlive)
	})
	time.Sleep(2 * time.Second) // let the join burst settle

	measure := func(name string, tick func(round int)) {
		var s0, r0 [n]uint64
		for i, p := range pools {
			s0[i], r0[i] = p.Traffic()
		}
		start := time.Now()
		for round := 0; time.Since(start) < window; round++ {
			tick(round)
			time.Sleep(100 * time.Millisecond)
		}
		secs := time.Since(start).Seconds()
		var sumS, sumR, maxS float64
		for i, p := range pools {
			s, r := p.Traffic()
			ks := float64(s-s0[i]) * 8 / 1000 / secs
			kr := float64(r-r0[i]) * 8 / 1000 / secs
			sumS += ks
			sumR += kr
			maxS = max(maxS, ks)
		}
		t.Logf("%s: per edge sent %.1f kbit/s, received %.1f kbit/s (max sent %.1f) over %.1f s, 10 edges, lan timers",
			name, sumS/n, sumR/n, maxS, secs)
		if sumS == 0 || sumR == 0 || math.Abs(sumS-sumR)/sumS > 0.15 {
			t.Errorf("%s: sent %.1f, received %.1f kbit/s in total: not counted, or not matching", name, sumS, sumR)
		}
		if maxS > 200 {
			t.Errorf("%s: an edge sent %.1f kbit/s, bound 200", name, maxS)
		}
	}
	measure("static load", func(int) {})
	measure("load changing every meta tick", func(round int) {
		for i, ms := range metas {
			m := ms.get()
			m.Load.Participants = 10 + i + round
			m.Load.CPU = float64((round*7+i)%100) / 100
			m.Load.EgressBps = int64(1e6 + round*12345)
			ms.set(m)
		}
	})

	// Kill three edges one after the other (no Leave: a crash).
	alive := pools
	for range 3 {
		victim := alive[len(alive)-1]
		alive = alive[:len(alive)-1]
		killed := time.Now()
		if err := victim.Close(); err != nil {
			t.Fatal(err)
		}
		var firstSuspect time.Duration
		eventually(t, 15*time.Second, "victim dead everywhere", func() (bool, string) {
			if firstSuspect == 0 {
				for _, p := range alive {
					if m, _ := p.Member(victim.cfg.NodeID); m.State == StateSuspect {
						firstSuspect = time.Since(killed)
					}
				}
			}
			return allSee(alive, []string{victim.cfg.NodeID}, StateDead)
		})
		t.Logf("killed %s in a pool of %d: first suspect after %v, dead on all %d peers after %v (lan timers)",
			victim.cfg.NodeID, len(alive)+1, firstSuspect.Round(10*time.Millisecond), len(alive),
			time.Since(killed).Round(10*time.Millisecond))
	}
}

// TestPoolNoGoroutineLeak starts, joins, leaves and closes pools and checks
// that the goroutine count comes back.
func TestPoolNoGoroutineLeak(t *testing.T) {
	settle := func() int {
		// Earlier tests' memberlists exit asynchronously.
		prev := -1
		for range 50 {
			n := runtime.NumGoroutine()
			if n == prev {
				return n
			}
			prev = n
			time.Sleep(50 * time.Millisecond)
		}
		return prev
	}
	before := settle()

	a, err := New(localConfig("a", "eu"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(localConfig("b", "eu", a.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(localConfig("c", "eu", a.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	pools := []*Pool{a, b, c}
	eventually(t, 5*time.Second, "three alive", func() (bool, string) {
		return allSee(pools, ids(pools...), StateAlive)
	})
	during := runtime.NumGoroutine()
	if err := c.Leave(time.Second); err != nil {
		t.Error(err)
	}
	for _, p := range pools {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	}
	const tolerance = 2
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := runtime.NumGoroutine()
		if after <= before+tolerance {
			t.Logf("goroutines: %d before, %d with 3 pools, %d after Close", before, during, after)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after Close\n%s", before, after, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
