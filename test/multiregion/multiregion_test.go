package multiregion

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

// oneWay is the simulated one-way latency between eu-west and ca-east
// (Paris–Montréal is about 5,500 km: ~40 ms one way on fibre).
const oneWay = 40 * time.Millisecond

// TestMultiRegion runs a meeting across two regions on real processes:
// three `meridian control` nodes bootstrapped together, edges paris-1 and
// paris-2 (eu-west) and montreal-1 and montreal-2 (ca-east) in a network
// namespace behind a WAN relay that delays inter-region media by oneWay.
// alice and bob join near eu-west, carol and dave near ca-east, through
// the join API, and then:
//
//   - media: everyone receives fresh audio and video from everyone, and
//     the cascade between the regions crosses the relay; for each pair of
//     clients on two edges, the time from both being connected to the
//     first far-side audio and video is logged (p50, max), and a pair
//     that never gets one fails the test;
//   - latency: one-way media latency between the clients, with and without
//     the WAN delay, shows the cascade hop adds oneWay;
//   - edge-kill: the eu-west edge serving alice and bob is killed (-9);
//     they come back on the other eu-west edge by themselves and
//     carol/dave receive them again; the control plane stops offering the
//     dead edge;
//   - leader-kill: the control-plane leader is killed (-9); media keeps
//     flowing without a gap; new joins work again through the survivors;
//   - partition: the ca-east edge serving carol and dave cannot reach the
//     control plane for 8 s; the meeting goes on;
//   - drain: that edge gets SIGTERM; carol and dave move to the other
//     ca-east edge, the process exits, and the meeting goes on.
//
// Thresholds: media within 20 s of the joins; the relay adds oneWay once;
// back in media ≤ 15 s p95 after an edge kill (25 s at most); the dead
// edge offered ≤ 10 s; no media gap > 2 s on a leader kill or a control
// plane partition; joins back ≤ 8 s after a leader kill.
func TestMultiRegion(t *testing.T) {
	needNetNS(t)
	testStart := time.Now()
	w := startWorld(t, oneWay, 3,
		edgeSpec{"paris-1", "eu-west"}, edgeSpec{"paris-2", "eu-west"},
		edgeSpec{"montreal-1", "ca-east"}, edgeSpec{"montreal-2", "ca-east"})
	t.Logf("deployment up (3 control nodes, 4 edges, gossip pools formed) in %v", time.Since(testStart).Round(10*time.Millisecond))
	defer w.checkNoCrash()
	defer func() {
		if t.Failed() {
			t.Logf("relay byte counters:%s", w.wan.Summary())
			w.logCascadeMetrics()
		}
	}()

	room, err := w.createRoom(w.cl.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	everyone := []string{"alice", "bob", "carol", "dave"}
	eu, ca := []string{"alice", "bob"}, []string{"carol", "dave"}
	regionOf := map[string]string{"alice": "eu-west", "bob": "eu-west", "carol": "ca-east", "dave": "ca-east"}
	sess := map[string]*signaltest.Session{}
	watch := map[string]*connWatch{}
	firstJoin := time.Now()
	for i, pid := range everyone {
		sess[pid] = w.session(room, pid, regionOf[pid], i%len(w.cl.Nodes))
		watch[pid] = watchConnected(sess[pid].Client())
		t.Cleanup(watch[pid].close)
	}
	m := newMeter(t, sess)
	euHome, caHome := sess["alice"].EdgeID(), sess["carol"].EdgeID()
	euOther := map[string]string{"paris-1": "paris-2", "paris-2": "paris-1"}[euHome]
	caOther := map[string]string{"montreal-1": "montreal-2", "montreal-2": "montreal-1"}[caHome]

	ok := t.Run("media", func(t *testing.T) {
		if euOther == "" || sess["bob"].EdgeID() != euHome {
			t.Fatalf("alice on %s, bob on %s: want both on one eu-west edge", euHome, sess["bob"].EdgeID())
		}
		if caOther == "" || sess["dave"].EdgeID() != caHome {
			t.Fatalf("carol on %s, dave on %s: want both on one ca-east edge", caHome, sess["dave"].EdgeID())
		}
		// Not eventually: when media never comes, the pairs below say
		// which streams are missing before the test stops.
		notYet := m.hears(nil, everyone, everyone)
		for end := time.Now().Add(20 * time.Second); notYet != "" && time.Now().Before(end); notYet = m.hears(nil, everyone, everyone) {
			time.Sleep(50 * time.Millisecond)
		}
		if notYet == "" {
			t.Logf("everyone hears everyone %v after the first join (alice %s, bob %s, carol %s, dave %s)",
				time.Since(firstJoin).Round(10*time.Millisecond), euHome, sess["bob"].EdgeID(), caHome, sess["dave"].EdgeID())
		}
		// Join to media per pair on two edges (the promise: within 2 s of
		// both being connected), measured from the later of the two
		// clients' first PeerConnection reaching "connected" to the last
		// of the four first far-side packets (audio and video, both ways).
		for _, pid := range everyone {
			t.Logf("%s connected: %s", pid, watch[pid])
		}
		pairs := joinToMedia(sess, watch, eu, ca)
		for _, pd := range pairs {
			if pd.missing != "" {
				t.Errorf("%s and %s (on two edges): %s", pd.a, pd.b, pd.missing)
				continue
			}
			t.Logf("join to media %s+%s: %v after both were connected: %s", pd.a, pd.b, pd.took.Round(time.Millisecond), pd.detail)
		}
		if notYet != "" {
			t.Fatalf("not everyone hears everyone 20 s after the joins: %s", notYet)
		}
		p50, worst := summarise(pairs)
		t.Logf("join to media across two edges (%s, %s) over %d pairs: p50 %v, max %v after both clients were connected (promise: 2 s)",
			euHome, caHome, len(pairs), p50.Round(time.Millisecond), worst.Round(time.Millisecond))
		// For comparison, the same on one edge (no cascade).
		for _, pd := range append(joinToMedia(sess, watch, eu[:1], eu[1:]), joinToMedia(sess, watch, ca[:1], ca[1:])...) {
			if pd.missing == "" {
				t.Logf("join to media on one edge %s+%s: %v: %s", pd.a, pd.b, pd.took.Round(time.Millisecond), pd.detail)
			}
		}
		// The cascade between the two regions really crosses the relay.
		before := [2]uint64{w.wan.Bytes(euHome, caHome), w.wan.Bytes(caHome, euHome)}
		time.Sleep(time.Second)
		after := [2]uint64{w.wan.Bytes(euHome, caHome), w.wan.Bytes(caHome, euHome)}
		rate := [2]uint64{after[0] - before[0], after[1] - before[1]}
		t.Logf("relay carried %s→%s %d kB/s, %s→%s %d kB/s (totals:%s)", euHome, caHome, rate[0]/1000, caHome, euHome, rate[1]/1000, w.wan.Summary())
		// Two participants' audio and video each way: tens of kB/s.
		if rate[0] < 10_000 || rate[1] < 10_000 {
			t.Fatalf("the relay between %s and %s carried only %v B/s: the cascade does not cross the simulated WAN", euHome, caHome, rate)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("latency", func(t *testing.T) {
		// One-way latency between the participants' sockets, with the WAN
		// delay and without it (see probeNet).
		measure := func() map[string]time.Duration {
			out := map[string]time.Duration{}
			for _, from := range []string{"alice", "carol"} {
				to := map[string]receiver{}
				for _, pid := range everyone {
					if pid != from {
						to[pid] = receiver{net: w.probes[pid], ssrcs: func() []uint32 {
							var out []uint32
							for _, tr := range sess[pid].Client().Tracks() {
								if tr.ParticipantID == from && tr.Kind == "audio" {
									out = append(out, tr.SSRCs...)
								}
							}
							return out
						}}
					}
				}
				for pid, d := range oneWayLatency(w.probes[from], to, 3) {
					out[from+">"+pid] = d
				}
			}
			return out
		}
		avg := func(m map[string]time.Duration, keys ...string) time.Duration {
			var sum time.Duration
			for _, k := range keys {
				d, ok := m[k]
				if !ok {
					t.Fatalf("no latency measured for %s: %v", k, m)
				}
				sum += d
			}
			return sum / time.Duration(len(keys))
		}
		cross := []string{"alice>carol", "alice>dave", "carol>alice", "carol>bob"}
		same := []string{"alice>bob", "carol>dave"}
		on := measure()
		// The cascade's own RTT gauge (from RTCP receiver reports on the leg
		// paris sends to montreal), read while the WAN delay is on: it must
		// exist and see the delay (a round trip crosses it twice), and be in
		// seconds (a value in milliseconds would read as minutes).
		var rtt time.Duration
		var rttOK bool
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if rtt, rttOK = w.cascadeRTT(euHome, caHome); rttOK && rtt >= oneWay {
				break
			}
		}
		switch {
		case !rttOK:
			t.Errorf("meridian_cascade_rtt_seconds{peer=%q} is absent on %s: no RTT is known on its outgoing leg", caHome, euHome)
		case rtt < oneWay || rtt > time.Second:
			t.Errorf("meridian_cascade_rtt_seconds{peer=%q} on %s reads %v across a WAN of %v each way", caHome, euHome, rtt, oneWay)
		default:
			t.Logf("meridian_cascade_rtt_seconds{peer=%q} on %s: %v (2 × %v expected)", caHome, euHome, rtt, oneWay)
		}
		w.wan.SetDelay(0)
		off := measure()
		w.wan.SetDelay(oneWay)
		for _, k := range append(append([]string(nil), same...), cross...) {
			t.Logf("one-way media latency %-12s %7v with the WAN delay, %7v without", k, on[k].Round(100*time.Microsecond), off[k].Round(100*time.Microsecond))
		}
		crossOn, sameOn, crossOff, sameOff := avg(on, cross...), avg(on, same...), avg(off, cross...), avg(off, same...)
		added := (crossOn - sameOn) - (crossOff - sameOff)
		t.Logf("cross-region minus same-region latency: %v with a %v one-way WAN delay, %v without: the cascade hop adds %v one way",
			(crossOn - sameOn).Round(100*time.Microsecond), oneWay, (crossOff - sameOff).Round(100*time.Microsecond), added.Round(100*time.Microsecond))
		// Once across the WAN: about oneWay; not zero, not twice.
		if added < oneWay-15*time.Millisecond || added > 2*oneWay-15*time.Millisecond {
			t.Errorf("the cascade hop adds %v one way, want about %v: media does not cross the simulated WAN once", added, oneWay)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("edge-kill", func(t *testing.T) {
		base := m.snapshot()
		oldClient := map[string]*signaltest.Client{}
		for _, pid := range everyone {
			oldClient[pid] = sess[pid].Client()
		}
		killed := time.Now()
		w.edges[euHome].Kill(t)

		// The control plane stops offering the dead edge.
		var gone time.Duration
		var wg sync.WaitGroup
		stop := make(chan struct{})
		defer func() { close(stop); wg.Wait() }()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(killed) < 20*time.Second {
				select {
				case <-stop:
					return
				default:
				}
				ids, err := w.nearest(w.cl.Nodes[len(w.cl.Nodes)-1], "eu-west")
				if err == nil && !slices.Contains(ids, euHome) && slices.Contains(ids, euOther) {
					gone = time.Since(killed)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()

		// alice and bob come back on the other eu-west edge; carol and dave
		// receive them again and they receive carol and dave.
		back := map[string]time.Duration{}
		eventually(t, 25*time.Second, func() string {
			var wait []string
			for _, pid := range everyone {
				if _, done := back[pid]; done {
					continue
				}
				var why string
				if slices.Contains(eu, pid) {
					if e := sess[pid].EdgeID(); e != euOther {
						why = fmt.Sprintf("%s on %s (err %v)", pid, e, sess[pid].Err())
					} else if r := m.hears(base, ca, []string{pid}); r != "" {
						why = r
					} else {
						why = m.hearsOnCurrent([]string{pid}, ca)
					}
				} else {
					why = m.hears(base, []string{pid}, eu)
				}
				if why == "" {
					back[pid] = time.Since(killed)
				} else {
					wait = append(wait, why)
				}
			}
			return strings.Join(wait, "; ")
		})
		wg.Wait()
		for _, pid := range ca {
			if e := sess[pid].EdgeID(); e != caHome {
				t.Errorf("%s moved from %s to %s although its edge did not fail", pid, caHome, e)
			}
		}
		var all []time.Duration
		for _, pid := range everyone {
			all = append(all, back[pid])
			t.Logf("%s: media flowing again %v after the kill", pid, back[pid].Round(10*time.Millisecond))
		}
		for _, pid := range eu {
			for _, r := range sess[pid].Rejoins() {
				t.Logf("%s rejoined %s → %s (%s): noticed %v after the kill, rejoin took %v", pid, r.From, r.To, r.Reason,
					r.At.Sub(killed).Round(time.Millisecond), r.Took.Round(time.Millisecond))
			}
			if len(sess[pid].Rejoins()) == 0 || sess[pid].Client() == oldClient[pid] {
				t.Fatalf("%s never rejoined", pid)
			}
		}
		p95 := percentile(all, 0.95)
		t.Logf("kill → media again: p95 %v, max %v (target ≤ 15 s)", p95.Round(10*time.Millisecond), slices.Max(all).Round(10*time.Millisecond))
		if p95 > 15*time.Second {
			t.Errorf("p95 kill → media again %v is above the 15 s target", p95)
		}
		if gone == 0 {
			t.Fatalf("GET /v2/edges/nearest?region=eu-west still offers the dead %s (or not %s) 20 s after the kill", euHome, euOther)
		}
		t.Logf("control plane stopped offering %s %v after the kill", euHome, gone.Round(10*time.Millisecond))
		if gone > 10*time.Second {
			t.Fatalf("the dead edge was offered for %v (limit 10 s)", gone)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("leader-kill", func(t *testing.T) {
		leader := w.cl.Leader(t, 5*time.Second)
		base := m.snapshot()
		m.resetGaps()
		killed := time.Now()
		leader.Kill(t)
		survivors := w.cl.Live()

		// New joins (a new room and a first join: both Raft writes) through
		// each survivor.
		joinOK := map[string]time.Duration{}
		var jmu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range survivors {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Since(killed) < 15*time.Second; i++ {
					if err := w.probeJoin(c, fmt.Sprintf("probe-%s-%d", c.ID, i), "eu-west"); err == nil {
						jmu.Lock()
						joinOK[c.ID] = time.Since(killed)
						jmu.Unlock()
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
		}
		// Media keeps flowing meanwhile.
		time.Sleep(5 * time.Second)
		k, gap := m.worstGap(everyone)
		if r := m.hears(base, everyone, everyone); r != "" {
			t.Errorf("after the leader kill: %s", r)
		}
		t.Logf("leader %s killed: longest media gap over the next 5 s: %v (%s ← %s %s)", leader.ID, gap.Round(10*time.Millisecond), k.to, k.from, k.kind)
		if gap > 2*time.Second {
			t.Errorf("media stalled %v (%s ← %s %s) after the leader kill", gap, k.to, k.from, k.kind)
		}
		wg.Wait()
		newLeader := w.cl.Leader(t, 5*time.Second)
		t.Logf("new leader %s", newLeader.ID)
		for _, c := range survivors {
			d, ok := joinOK[c.ID]
			if !ok {
				t.Fatalf("no new join through %s within 15 s of the leader kill", c.ID)
			}
			t.Logf("new room + join through %s works again %v after the kill", c.ID, d.Round(10*time.Millisecond))
			if d > 8*time.Second {
				t.Errorf("joins through %s came back after %v (target ~5 s)", c.ID, d)
			}
		}
	})
	if !ok {
		return
	}

	ok = t.Run("partition", func(t *testing.T) {
		// caHome loses the control plane (its requests hang) while its
		// region peer, the cascade and the clients still reach it: its
		// meeting must go on.
		const cut = 8 * time.Second // longer than the control plane's DownAfter (5 s)
		base := m.snapshot()
		m.resetGaps()
		for _, p := range w.ctl[caHome] {
			p.Cut()
		}
		cutAt := time.Now()
		offered, samples := 0, 0
		var droppedAt time.Duration
		for time.Since(cutAt) < cut {
			if ids, err := w.nearest(w.cl.Live()[0], "ca-east"); err == nil {
				samples++
				if slices.Contains(ids, caHome) {
					offered++
				} else if droppedAt == 0 {
					droppedAt = time.Since(cutAt)
				}
			}
			time.Sleep(250 * time.Millisecond)
		}
		k, gap := m.worstGap(everyone)
		r := m.hears(base, everyone, everyone)
		attempts := 0
		for _, p := range w.ctl[caHome] {
			attempts += p.Refused()
			p.Heal()
		}
		t.Logf("%s cut off from the control plane for %v (%d connection attempts left unanswered): longest media gap %v (%s ← %s %s); "+
			"the control plane offered it in %d of %d samples (first left out after %v)",
			caHome, cut, attempts, gap.Round(10*time.Millisecond), k.to, k.from, k.kind, offered, samples, droppedAt.Round(10*time.Millisecond))
		if attempts == 0 {
			t.Errorf("%s never tried to reach the control plane during the cut: the partition was not exercised", caHome)
		}
		if r != "" {
			t.Errorf("during the partition: %s", r)
		}
		if gap > 2*time.Second {
			t.Errorf("media stalled %v (%s ← %s %s) while %s was cut off from the control plane", gap, k.to, k.from, k.kind, caHome)
		}
		back := eventually(t, 15*time.Second, func() string {
			ids, err := w.nearest(w.cl.Live()[0], "ca-east")
			if err != nil {
				return err.Error()
			}
			if !slices.Contains(ids, caHome) {
				return fmt.Sprintf("%s not offered after the partition healed: %v", caHome, ids)
			}
			return ""
		})
		t.Logf("%s offered after the partition healed (%v)", caHome, back.Round(10*time.Millisecond))
		if e := sess["carol"].EdgeID(); e != caHome || sess["dave"].EdgeID() != caHome {
			t.Fatalf("carol on %s, dave on %s: they left %s during its partition", e, sess["dave"].EdgeID(), caHome)
		}
	})
	if !ok {
		return
	}

	t.Run("drain", func(t *testing.T) {
		if e := sess["carol"].EdgeID(); e != caHome || sess["dave"].EdgeID() != caHome {
			t.Fatalf("carol on %s, dave on %s: expected both still on %s", e, sess["dave"].EdgeID(), caHome)
		}
		start := time.Now()
		drained := w.edges[caHome]
		if err := drained.Term(); err != nil {
			t.Fatal(err)
		}
		moved := eventually(t, 25*time.Second, func() string {
			for _, pid := range ca {
				if e := sess[pid].EdgeID(); e != caOther {
					return fmt.Sprintf("%s still on %s (err %v)", pid, e, sess[pid].Err())
				}
			}
			return ""
		})
		// Fresh media both ways on the new edge (the old clients have left).
		base := m.snapshot()
		inMedia := moved + eventually(t, 10*time.Second, func() string {
			if r := m.hearsOnCurrent(ca, eu); r != "" {
				return r
			}
			return m.hears(base, eu, ca)
		})
		t.Logf("carol and dave on %s %v after SIGTERM to %s, in media with alice and bob after %v",
			caOther, moved.Round(10*time.Millisecond), caHome, inMedia.Round(10*time.Millisecond))
		for _, pid := range ca {
			rs := sess[pid].Rejoins()
			if len(rs) == 0 || rs[len(rs)-1].Reason != "reconnect-requested" {
				t.Errorf("%s moved without being asked to reconnect: %+v", pid, rs)
			}
			for _, r := range rs {
				t.Logf("%s rejoined %s → %s (%s) %v after SIGTERM, took %v", pid, r.From, r.To, r.Reason, r.At.Sub(start).Round(time.Millisecond), r.Took.Round(time.Millisecond))
			}
		}
		select {
		case <-drained.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s has not exited 30 s after SIGTERM", caHome)
		}
		took := drained.EndedAt().Sub(start)
		_, exitErr := drained.Exited()
		t.Logf("%s exited about %v after SIGTERM (exit: %v)", caHome, took.Round(10*time.Millisecond), exitErr)
		if exitErr != nil {
			t.Errorf("%s exited with %v after the drain", caHome, exitErr)
		}
		// The meeting goes on without the drained edge.
		base = m.snapshot()
		eventually(t, 10*time.Second, func() string { return m.hears(base, everyone, everyone) })
	})
	t.Logf("total %v", time.Since(testStart).Round(100*time.Millisecond))
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(idx, len(s)-1))]
}
