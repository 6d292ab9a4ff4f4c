package gossip

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/shared/metrictest"
)

// threePools starts a, b, c; b and c join through a as their seed.
func threePools(t *testing.T, region string) (pools []*Pool, metas []*metaSource) {
	t.Helper()
	ma, mb, mc := newMetaSource("a", 1), newMetaSource("b", 2), newMetaSource("c", 3)
	ca := localConfig("a", region)
	ca.Meta = ma.fn()
	a := startPool(t, ca)
	cb := localConfig("b", region, a.LocalAddr())
	cb.Meta = mb.fn()
	cc := localConfig("c", region, a.LocalAddr())
	cc.Meta = mc.fn()
	b, c := startPool(t, cb), startPool(t, cc)
	pools = []*Pool{a, b, c}
	eventually(t, 5*time.Second, "three pools alive", func() (bool, string) {
		return allSee(pools, ids(pools...), StateAlive)
	})
	return pools, []*metaSource{ma, mb, mc}
}

func TestPoolThreeJoinAndMeta(t *testing.T) {
	pools, metas := threePools(t, "eu")
	for _, p := range pools {
		ms := p.Members()
		if len(ms) != 3 || ms[0].ID != "a" || ms[1].ID != "b" || ms[2].ID != "c" {
			t.Fatalf("%s: Members() = %+v, want a, b, c sorted", p.cfg.NodeID, ms)
		}
	}
	// Each sees the others' meta, from their Meta func.
	eventually(t, 3*time.Second, "meta seen", func() (bool, string) {
		for _, p := range pools {
			for i, q := range pools {
				m, _ := p.Member(q.cfg.NodeID)
				want := metas[i].get()
				want.ID, want.Region = q.cfg.NodeID, q.cfg.Region
				if m.Meta != want || m.Region != testRegion("eu") || m.Addr != q.LocalAddr() {
					return false, fmt.Sprintf("%s sees %s as %+v, want meta %+v at %s", p.cfg.NodeID, q.cfg.NodeID, m, want, q.LocalAddr())
				}
				if m.Incarnation == 0 {
					return false, "no generation"
				}
			}
		}
		return true, ""
	})

	// A load change propagates, and Changes() fires.
	a := pools[0]
	drain(a.Changes())
	before, _ := a.Member("c")
	m := metas[2].get()
	m.Load.Participants, m.Load.CPU, m.Draining = 77, 0.9, true
	metas[2].set(m)
	eventually(t, 3*time.Second, "load update", func() (bool, string) {
		for _, p := range pools[:2] {
			got, _ := p.Member("c")
			if got.Meta.Load.Participants != 77 || got.Meta.Load.CPU != 0.9 || !got.Meta.Draining {
				return false, fmt.Sprintf("%s sees c load %+v draining %v", p.cfg.NodeID, got.Meta.Load, got.Meta.Draining)
			}
		}
		return true, ""
	})
	after, _ := a.Member("c")
	if after.Incarnation <= before.Incarnation {
		t.Errorf("generation %d -> %d, want it to grow", before.Incarnation, after.Incarnation)
	}
	select {
	case <-a.Changes():
	default:
		t.Error("Changes() did not fire for a meta update")
	}
}

func TestPoolMetaTooLargeKeepsLastGood(t *testing.T) {
	reg := prometheus.NewRegistry()
	ms := newMetaSource("a", 5)
	ca := localConfig("a", "eu")
	ca.Meta = ms.fn()
	ca.Registerer = reg
	a := startPool(t, ca)
	b := startPool(t, localConfig("b", "eu", a.LocalAddr()))
	eventually(t, 5*time.Second, "b sees a's meta", func() (bool, string) {
		m, _ := b.Member("a")
		return m.Meta.Load.Participants == 5, fmt.Sprintf("b sees a as %+v", m)
	})
	good := append([]byte(nil), (delegate{a}).NodeMeta(MetaMaxSize)...)

	bad := ms.get()
	bad.InternalURL = "https://" + strings.Repeat("x", 480) + ":1" // over 512 bytes encoded
	bad.Load.Participants = 6
	ms.set(bad)
	eventually(t, 3*time.Second, "meta error counted", func() (bool, string) {
		n := a.metaErrors.Load()
		return n >= 2, fmt.Sprintf("%d meta errors", n)
	})
	if got := (delegate{a}).NodeMeta(MetaMaxSize); string(got) != string(good) {
		t.Fatalf("NodeMeta changed after a refused meta:\n got %q\nwant %q", got, good)
	}
	if v := metrictest.Value(t, reg, "meridian_gossip_meta_errors_total", nil); v < 2 {
		t.Errorf("meridian_gossip_meta_errors_total = %v", v)
	}
	if m, _ := b.Member("a"); m.Meta.Load.Participants != 5 || m.State != StateAlive {
		t.Errorf("b sees a as %+v, want the last good meta", m)
	}

	// A good meta again is published.
	bad.InternalURL = "http://127.0.0.1:1"
	ms.set(bad)
	eventually(t, 3*time.Second, "b sees the new meta", func() (bool, string) {
		m, _ := b.Member("a")
		return m.Meta.Load.Participants == 6, fmt.Sprintf("b sees a as %+v", m)
	})
}

func TestPoolCrashSeenSuspectThenDead(t *testing.T) {
	pools, _ := threePools(t, "eu")
	a, b, c := pools[0], pools[1], pools[2]
	drain(a.Changes())

	// Record every state a and b report for c, polling faster than the
	// suspicion lasts.
	var mu sync.Mutex
	history := map[string][]State{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range []*Pool{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last State
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				if m, _ := p.Member("c"); m.State != last {
					last = m.State
					mu.Lock()
					history[p.cfg.NodeID] = append(history[p.cfg.NodeID], m.State)
					mu.Unlock()
				}
			}
		}()
	}

	killed := time.Now()
	if err := c.Close(); err != nil { // no Leave: a crash
		t.Fatal(err)
	}
	eventually(t, 6*time.Second, "c dead on a and b", func() (bool, string) {
		return allSee([]*Pool{a, b}, []string{"c"}, StateDead)
	})
	took := time.Since(killed)
	close(stop)
	wg.Wait()
	for _, p := range []*Pool{a, b} { // the recorder may not have polled since
		m, _ := p.Member("c")
		if h := history[p.cfg.NodeID]; len(h) == 0 || h[len(h)-1] != m.State {
			history[p.cfg.NodeID] = append(h, m.State)
		}
	}

	suspected := 0
	for _, id := range []string{"a", "b"} {
		h := history[id]
		t.Logf("%s saw c: %v", id, h)
		if h[len(h)-1] != StateDead {
			t.Errorf("%s: last state %s", id, h[len(h)-1])
		}
		for i, s := range h {
			if s == StateSuspect && i+1 < len(h) && h[i+1] == StateDead {
				suspected++
				break
			}
		}
	}
	t.Logf("c declared dead by both after %v (local timers)", took.Round(time.Millisecond))
	// Suspicion is each node's own probe result, so one of the two may
	// see the death before its own probe fails; at least one must have seen
	// suspect then dead.
	if suspected == 0 {
		t.Errorf("nobody saw c suspect before dead: %v", history)
	}
	select {
	case <-a.Changes():
	default:
		t.Error("Changes() did not fire")
	}
	if m, _ := a.Member("c"); m.Since.Before(killed) {
		t.Errorf("Since %v is before the crash %v", m.Since, killed)
	}
}

func TestPoolLeaveSeenAsLeft(t *testing.T) {
	pools, _ := threePools(t, "eu")
	a, b, c := pools[0], pools[1], pools[2]
	drain(a.Changes())
	if err := b.Leave(time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	eventually(t, 3*time.Second, "b left on a, c and itself", func() (bool, string) {
		return allSee([]*Pool{a, b, c}, []string{"b"}, StateLeft)
	})
	select {
	case <-a.Changes():
	default:
		t.Error("Changes() did not fire")
	}
	if err := b.Join(a.LocalAddr()); !errors.Is(err, ErrLeft) {
		t.Errorf("Join after Leave: %v, want ErrLeft", err)
	}
	if err := b.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// Still left, not dead, once b is gone.
	time.Sleep(time.Second)
	if ok, why := allSee([]*Pool{a, c}, []string{"b"}, StateLeft); !ok {
		t.Error(why)
	}
}

func TestPoolRefusesOtherRegion(t *testing.T) {
	a := startPool(t, localConfig("a", "eu"))
	b := startPool(t, localConfig("b", "eu", a.LocalAddr()))
	eventually(t, 5*time.Second, "a and b", func() (bool, string) {
		return allSee([]*Pool{a, b}, []string{"a", "b"}, StateAlive)
	})

	x := startPool(t, localConfig("x", "us"))
	if err := x.Join(a.LocalAddr()); err == nil {
		t.Fatal("a member of region us joined a pool of region eu")
	} else {
		t.Logf("refused: %v", err)
	}
	// A background joiner keeps trying; nobody ever lists the other.
	y := startPool(t, localConfig("y", "us", a.LocalAddr(), b.LocalAddr()))
	time.Sleep(time.Second)
	for _, p := range []*Pool{a, b} {
		for _, id := range []string{"x", "y"} {
			if m, ok := p.Member(id); ok {
				t.Errorf("%s lists %s: %+v", p.cfg.NodeID, id, m)
			}
		}
	}
	for _, p := range []*Pool{x, y} {
		if ms := p.Members(); len(ms) != 1 {
			t.Errorf("%s lists %+v, want only itself", p.cfg.NodeID, ms)
		}
	}
	if a.refused.Load() == 0 {
		t.Error("no refusal counted on a")
	}
}

func TestDelegateChecksRegion(t *testing.T) {
	d := delegate{&Pool{cfg: Config{NodeID: "a", Region: "eu"}}}
	good, _ := EncodeMeta(Meta{ID: "b", Region: "eu"})
	other, _ := EncodeMeta(Meta{ID: "b", Region: "us"})
	for name, tc := range map[string]struct {
		node memberlist.Node
		ok   bool
	}{
		"same region":  {memberlist.Node{Name: "b", Meta: good}, true},
		"other region": {memberlist.Node{Name: "b", Meta: other}, false},
		"no meta":      {memberlist.Node{Name: "b"}, false},
		"id mismatch":  {memberlist.Node{Name: "c", Meta: good}, false},
	} {
		if err := d.NotifyAlive(&tc.node); (err == nil) != tc.ok {
			t.Errorf("NotifyAlive %s: %v", name, err)
		}
		peers := []*memberlist.Node{{Name: "a", Meta: must(EncodeMeta(Meta{ID: "a", Region: "eu"}))}, &tc.node}
		if err := d.NotifyMerge(peers); (err == nil) != tc.ok {
			t.Errorf("NotifyMerge %s: %v", name, err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestPoolEncryption(t *testing.T) {
	key1 := []byte("0123456789abcdef0123456789abcdef")
	key2 := []byte("fedcba9876543210")
	ca := localConfig("a", "eu")
	ca.SecretKey = key1
	a := startPool(t, ca)

	cw := localConfig("wrong", "eu")
	cw.SecretKey = key2
	wrong := startPool(t, cw)
	if err := wrong.Join(a.LocalAddr()); err == nil {
		t.Error("a node with another key joined")
	}
	plain := startPool(t, localConfig("plain", "eu"))
	if err := plain.Join(a.LocalAddr()); err == nil {
		t.Error("a node without a key joined an encrypted pool")
	}

	cr := localConfig("right", "eu")
	cr.SecretKey = key1
	right := startPool(t, cr)
	if err := right.Join(a.LocalAddr()); err != nil {
		t.Fatalf("same key: %v", err)
	}
	eventually(t, 3*time.Second, "right joined", func() (bool, string) {
		return allSee([]*Pool{a, right}, []string{"a", "right"}, StateAlive)
	})
	time.Sleep(500 * time.Millisecond)
	for _, id := range []string{"wrong", "plain"} {
		if m, ok := a.Member(id); ok {
			t.Errorf("a lists %s: %+v", id, m)
		}
	}
}

func TestPoolSeedsRetriedUntilUpAndWhenAlone(t *testing.T) {
	// Find a free port, then start b with it as seed before anybody
	// listens there.
	probe := startPool(t, localConfig("probe", "eu"))
	seed := probe.LocalAddr()
	port, err := strconv.Atoi(seed[strings.LastIndexByte(seed, ':')+1:])
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}
	b := startPool(t, localConfig("b", "eu", seed))
	time.Sleep(300 * time.Millisecond) // a few failed attempts

	startA := func() *Pool {
		ca := localConfig("a", "eu")
		ca.BindPort = port
		return startPool(t, ca)
	}
	a := startA()
	eventually(t, 5*time.Second, "b joined a once a was up", func() (bool, string) {
		return allSee([]*Pool{a, b}, []string{"a", "b"}, StateAlive)
	})

	// a crashes; b is alone, so it joins the seed again when a is back.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a dead", func() (bool, string) { return sees(b, "a", StateDead) })
	// memberlist keeps gossiping to a dead member for GossipToTheDeadTime,
	// which would reconnect them without the joiner: restart after it.
	time.Sleep(timersFor(TimersLocal).toTheDead + 500*time.Millisecond)
	a2 := startA() // no seeds: only b's joiner can bring them together
	eventually(t, 10*time.Second, "b rejoined a2", func() (bool, string) {
		return allSee([]*Pool{a2, b}, []string{"a", "b"}, StateAlive)
	})
}

func TestPoolMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ca := localConfig("a", "eu")
	ca.Registerer = reg
	a := startPool(t, ca)
	b := startPool(t, localConfig("b", "eu", a.LocalAddr()))
	eventually(t, 5*time.Second, "two alive", func() (bool, string) {
		return allSee([]*Pool{a, b}, []string{"a", "b"}, StateAlive)
	})
	if v := metrictest.Value(t, reg, "meridian_gossip_members", map[string]string{"state": "alive"}); v != 2 {
		t.Errorf("members{alive} = %v", v)
	}
	for _, s := range []string{"suspect", "dead", "left"} {
		if v := metrictest.Value(t, reg, "meridian_gossip_members", map[string]string{"state": s}); v != 0 {
			t.Errorf("members{%s} = %v", s, v)
		}
	}
	sent, recv := a.Traffic()
	if v := metrictest.Value(t, reg, "meridian_gossip_bytes_total", map[string]string{"direction": "sent"}); v < float64(sent) || v == 0 {
		t.Errorf("bytes{sent} = %v, Traffic %d", v, sent)
	}
	if v := metrictest.Value(t, reg, "meridian_gossip_bytes_total", map[string]string{"direction": "received"}); v < float64(recv) || v == 0 {
		t.Errorf("bytes{received} = %v, Traffic %d", v, recv)
	}
	// A second pool on the same registry is refused; Close unregisters.
	c2 := localConfig("a2", "eu")
	c2.Registerer = reg
	if _, err := New(c2); err == nil {
		t.Error("two pools registered on one registry")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	mfs, _ := reg.Gather()
	if len(mfs) != 0 {
		t.Errorf("metrics left after Close: %d families", len(mfs))
	}
}

func TestPoolCloseIdempotentAndAfterClose(t *testing.T) {
	a := startPool(t, localConfig("a", "eu"))
	b := startPool(t, localConfig("b", "eu", a.LocalAddr()))
	eventually(t, 5*time.Second, "two alive", func() (bool, string) {
		return allSee([]*Pool{a, b}, []string{"a", "b"}, StateAlive)
	})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	if err := b.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Close: %v, want ErrClosed", err)
	}
	if err := b.Join(a.LocalAddr()); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: %v, want ErrClosed", err)
	}
	_ = b.Members() // still readable
}

// TestPoolCallbacksNeverBlock never reads Changes(): memberlist's callbacks
// must not wait for a reader, and the member map stays current.
func TestPoolCallbacksNeverBlock(t *testing.T) {
	pools, metas := threePools(t, "eu") // nobody reads Changes()
	for round := 1; round <= 5; round++ {
		m := metas[1].get()
		m.Load.Rooms = 100 + round
		metas[1].set(m)
		eventually(t, 3*time.Second, "update seen", func() (bool, string) {
			for _, p := range pools {
				got, _ := p.Member("b")
				if got.Meta.Load.Rooms != 100+round {
					return false, fmt.Sprintf("%s sees b rooms %d, want %d", p.cfg.NodeID, got.Meta.Load.Rooms, 100+round)
				}
			}
			return true, ""
		})
	}
	if err := pools[2].Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 6*time.Second, "c dead", func() (bool, string) {
		return allSee(pools[:2], []string{"c"}, StateDead)
	})
	for _, p := range pools {
		if n := len(p.Changes()); n != 1 {
			t.Errorf("%s: %d pending nudges, want exactly 1 (coalesced)", p.cfg.NodeID, n)
		}
	}
}
