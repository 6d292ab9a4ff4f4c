package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/shared/metrictest"
)

func stat(c *clustertest.Cluster, node int, name string) uint64 {
	v, _ := strconv.ParseUint(c.Node(node).Node().Stats()[name], 10, 64)
	return v
}

// createRooms creates n rooms through node with 8 clients at once and
// returns how many were acknowledged.
func createRooms(t *testing.T, c *clustertest.Cluster, node, n int, prefix string) int {
	t.Helper()
	tok := c.Token()
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				r := c.Do(node, "POST", "/v2/rooms", tok, map[string]any{"customRoomId": fmt.Sprintf("%s-%d", prefix, i)})
				if r.Status == 200 {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(ok.Load())
}

// watchForStaleAnswers lists rooms on node until it has answered 200 with
// all want rooms 20 times, and fails the test on any other answer than
// that or a 503 with Retry-After: a node must never serve a state it knows
// to be behind. It returns how many 503s it saw.
func watchForStaleAnswers(t *testing.T, c *clustertest.Cluster, node, want int) (notYet int, lastRefusal string) {
	t.Helper()
	tok := c.Token()
	deadline := time.Now().Add(60 * time.Second)
	for ok := 0; ok < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("node%d not serving 60 s after it could catch up (%d answers 503, last %s)", node, notYet, lastRefusal)
		}
		r := c.Do(node, "GET", "/v2/rooms?page=1&perPage=1", tok, nil)
		switch {
		case r.Status == 503 && r.Header.Get("Retry-After") != "":
			notYet++
			lastRefusal = string(r.Body)
			time.Sleep(time.Millisecond)
		case r.Status == 200:
			var page struct {
				PageInfo struct{ Total int }
			}
			r.JSON(t, &page)
			if page.PageInfo.Total != want {
				t.Fatalf("node%d answered 200 with %d rooms of the %d the cluster acknowledged (after %d answers 503): it served a state it knew to be behind",
					node, page.PageInfo.Total, want, notYet)
			}
			ok++
		default:
			t.Fatalf("node%d: %d %s (only 503 with Retry-After, or the complete list, are acceptable)", node, r.Status, r.Body)
		}
	}
	return notYet, lastRefusal
}

// A follower whose disk was full missed what the cluster committed
// meanwhile. Once it can write again it must not answer from the state it
// had (a list short of acknowledged rooms, /healthz 200) while it catches
// up: 503 naming the catch-up, then the complete state.
func TestFollowerBackFromAFullDiskServesOnlyWhenCaughtUp(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Persist: true})
	c.WaitReady()
	leader, f := c.Leader(), c.Followers()[0]
	fn := c.Node(f).Node()
	// Served once: the API's start-up gate is open on it.
	if r := c.Do(f, "GET", "/v2/rooms?page=1&perPage=1", c.Token(), nil); r.Status != 200 {
		t.Fatalf("follower before the fault: %d %s", r.Status, r.Body)
	}

	cluster.InjectStorageFault(fn, diskFull)
	created := createRooms(t, c, leader, 3000, "while-full")
	// It stored none of it: its API and /healthz say so rather than
	// answer from what it has.
	for _, path := range []string{"/v2/rooms?page=1&perPage=1", "/healthz"} {
		if r := c.Do(f, "GET", path, c.Token(), nil); r.Status != 503 || !strings.Contains(string(r.Body), "cannot write its Raft log") && !strings.Contains(string(r.Body), "catching up with the leader") {
			t.Fatalf("GET %s on a follower with a full disk: %d %s", path, r.Status, r.Body)
		}
	}
	missed := stat(c, leader, "commit_index") - stat(c, f, "last_log_index")
	if missed < 100 {
		t.Fatalf("the follower missed only %d entries: nothing to catch up", missed)
	}
	if v := metrictest.Value(t, c.Node(f).Registry(), behindMetric, nil); v != 1 {
		t.Fatalf("%s on the follower that missed %d entries: %v", behindMetric, missed, v)
	}

	cluster.InjectStorageFault(fn, nil)
	notYet, refusal := watchForStaleAnswers(t, c, f, created)
	t.Logf("%d acknowledged rooms, %d log entries missed; %d answers 503 while catching up (last: %s)", created, missed, notYet, refusal)
	if notYet > 0 && !strings.Contains(refusal, "catching up with the leader") && !strings.Contains(refusal, "cannot write its Raft log") {
		t.Fatalf("the 503s did not say why: %s", refusal)
	}
	if h := c.Do(f, "GET", "/healthz", "", nil); h.Status != 200 {
		t.Fatalf("/healthz after catching up: %d %s", h.Status, h.Body)
	}
	if fn.Behind() != nil {
		t.Fatalf("still behind after catching up: %+v", fn.Behind())
	}
	for i := range c.Nodes() {
		if v := metrictest.Value(t, c.Node(i).Registry(), behindMetric, nil); v != 0 {
			t.Fatalf("%s on node%d after the catch-up: %v", behindMetric, i, v)
		}
	}
}

const behindMetric = "meridian_raft_behind_leader"

// A follower restarted after missing writes replays its own log in an
// instant, but the cluster committed more while it was down: it is ready
// only once it has applied what the leader tells it is committed — many
// entries (found missing at once) or a few (found only by waiting for the
// leader's commit index before it first answers).
func TestRestartedFollowerWaitsForWhatItMissed(t *testing.T) {
	for _, missed := range []int{3000, 20} {
		t.Run(fmt.Sprintf("%d-rooms", missed), func(t *testing.T) {
			c := clustertest.New(t, 3, clustertest.Options{Persist: true})
			c.WaitReady()
			leader, f := c.Leader(), c.Followers()[0]
			c.Stop(f)
			created := createRooms(t, c, leader, missed, "while-down")
			c.Restart(f)
			notYet, refusal := watchForStaleAnswers(t, c, f, created)
			t.Logf("%d rooms created while it was down; %d answers 503 after the restart (last: %s)", created, notYet, refusal)
			applied, target := c.Node(f).Node().Progress()
			if applied < target {
				t.Fatalf("serving with %d of %d applied", applied, target)
			}
		})
	}
}

// A follower that keeps up with a steady stream of writes is never called
// behind: the watch must not flap on the ordinary delay between a commit
// and its apply.
func TestFollowerInStepIsNeverBehind(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	c.WaitReady()
	leader := c.Leader()
	stop := make(chan struct{})
	var flagged atomic.Pointer[string]
	var wg sync.WaitGroup
	// The leader too: its gap check must not fire in step.
	for _, f := range append(c.Followers(), leader) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if b := c.Node(f).Node().Behind(); b != nil {
					s := "node" + strconv.Itoa(f) + ": " + b.Error()
					flagged.Store(&s)
				}
			}
		}()
	}
	created := createRooms(t, c, leader, 2000, "steady")
	// Nor in an idle cluster, which commits nothing for longer than the
	// silence a follower tolerates: the leader still tells it its commit
	// index.
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	if s := flagged.Load(); s != nil {
		t.Fatalf("a node in step was called behind during %d creates and 3 idle seconds: %s", created, *s)
	}
}

// A follower that hears the leader again after a silence (a pause, a
// partition) is behind until a sample finds it in step: the first news it
// handles may be an AppendEntries queued during the silence, whose commit
// index is old (a paused follower's reads, answered when it resumes, are
// test/chaos's TestPausedFollowerServesNoStaleRead).
func TestFollowerHeardAfterASilenceIsBehindUntilInStep(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	c.WaitReady()
	fn := c.Node(c.Followers()[0]).Node()
	// As if it had heard nothing for five seconds: the leader's next
	// AppendEntries (every 50–100 ms) ends the silence.
	cluster.MoveLeaderCommitHeard(fn, -5*time.Second)
	clustertest.Eventually(t, 5*time.Second, func() string {
		b := fn.Behind()
		if b != nil && !b.Since.IsZero() && b.Unheard >= 5*time.Second {
			t.Logf("after the silence: %v", b)
			return ""
		}
		return fmt.Sprintf("no catch-up verdict after the silence: %v", b)
	})
	clustertest.Eventually(t, 5*time.Second, func() string {
		if b := fn.Behind(); b != nil {
			return "still behind: " + b.Error()
		}
		return ""
	})
}

// A leader whose process did not run for seconds (SIGSTOP, a frozen VM)
// may have been replaced meanwhile, yet on waking Raft still calls it
// leader until its lease check or its successor's term reaches it: it must
// answer 503 from then until a quorum confirms it leads, which a healthy
// cluster does within a round of heartbeats (test/chaos pauses a real
// leader process).
func TestLeaderAfterAGapServesOnlyOnceConfirmed(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	c.WaitReady()
	leader := c.Leader()
	ln := c.Node(leader).Node()
	clustertest.Eventually(t, 5*time.Second, func() string {
		if b := ln.Behind(); b != nil {
			return "the leader is behind before the gap: " + b.Error()
		}
		return ""
	})
	cluster.SimulateLeaderGap(ln, 3*time.Second)
	b := ln.Behind()
	if b == nil || b.Unheard < 3*time.Second || !strings.Contains(b.Error(), "until a quorum confirms it still leads") {
		t.Fatalf("a leader that did not run for 3 s: Behind() = %v, want the unconfirmed leader's verdict", b)
	}
	if r := c.Do(leader, "GET", "/v2/rooms?page=1&perPage=1", c.Token(), nil); r.Status != 200 && (r.Status != 503 || r.Header.Get("Retry-After") == "") {
		t.Fatalf("list through the leader during the gap: %d %s, want 503 with Retry-After (or 200 once confirmed)", r.Status, r.Body)
	}
	clustertest.Eventually(t, 5*time.Second, func() string {
		if b := ln.Behind(); b != nil {
			return "still unconfirmed: " + b.Error()
		}
		return ""
	})
	if got := c.Leader(); got != leader {
		t.Fatalf("leadership moved from node%d to node%d: the gap was simulated, the cluster healthy", leader, got)
	}
}

// A follower that rejects an append (here its disk is full for a moment)
// must get the entries again once it can store them. The leader's
// pipelined replication used to wait for ever, now and then, after a
// rejected append (third_party/raft, change 5): that follower got no entry
// again and the leader could not shut down. Each round gives the race a
// chance; twenty rounds found it in most runs without the fix.
func TestReplicationResumesAfterEveryRejectedAppend(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Persist: true})
	c.WaitReady()
	leader, f := c.Leader(), c.Followers()[0]
	fn := c.Node(f).Node()
	for round := 0; round < 20; round++ {
		cluster.InjectStorageFault(fn, diskFull)
		createRooms(t, c, leader, 40, fmt.Sprintf("round%d", round))
		cluster.InjectStorageFault(fn, nil)
		createRooms(t, c, leader, 8, fmt.Sprintf("after%d", round))
		want := stat(c, leader, "commit_index")
		clustertest.Eventually(t, 15*time.Second, func() string {
			if got := stat(c, f, "applied_index"); got < want {
				return fmt.Sprintf("round %d: the follower applied %d of %d: replication to it stalled", round, got, want)
			}
			return ""
		})
	}
}

// Barriers (every consistent read appends one) and no-ops never reach the
// state machine, so a log can end with a thousand of them above the last
// command the followers applied. Those followers are in step, not behind:
// found by the chaos suite, where both followers answered 503 "1,001
// committed entries unapplied" for as long as nothing else was written.
func TestLogEndingInBarriersIsNotBehind(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	c.WaitReady()
	createRooms(t, c, c.Leader(), 20, "before-barriers")
	leader := c.Node(c.Leader()).Node()
	for i := 0; i < 1100; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := leader.Barrier(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range c.Followers() {
		clustertest.Eventually(t, 10*time.Second, func() string {
			if stat(c, f, "applied_index") < stat(c, c.Leader(), "commit_index") {
				return "the follower has not applied the barriers yet"
			}
			return ""
		})
	}
	time.Sleep(3 * cluster.LagSampleEvery)
	reads := map[int]uint64{}
	for _, f := range c.Followers() {
		if b := c.Node(f).Node().Behind(); b != nil {
			t.Fatalf("node%d, in step behind %d barriers, called behind: %v", f, stat(c, f, "applied_index")-c.Node(f).Node().FSM().AppliedIndex(), b)
		}
		if h := c.Do(f, "GET", "/healthz", "", nil); h.Status != 200 {
			t.Fatalf("node%d /healthz: %d %s", f, h.Status, h.Body)
		}
		reads[f] = cluster.CommandScanReads(c.Node(f).Node())
	}
	// The lag watch asks five times a second where the last command below
	// the leader's commit index is, which means reading the log back over
	// the barriers at its end. With consistent reads still coming, each
	// entry must be read about once, not again at every sample (it was
	// read twice per sample: a day of consistent reads on an idle cluster
	// would have had each follower read tens of thousands of entries five
	// times a second, until compaction).
	stop := time.Now().Add(5 * cluster.LagSampleEvery)
	added := 0
	for ; time.Now().Before(stop); added++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := leader.Barrier(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(cluster.LagSampleEvery)
	if added < 100 {
		t.Fatalf("only %d barriers in %v: too few to tell", added, 5*cluster.LagSampleEvery)
	}
	for _, f := range c.Followers() {
		if h := c.Do(f, "GET", "/healthz", "", nil); h.Status != 200 {
			t.Fatalf("node%d /healthz while barriers came: %d %s", f, h.Status, h.Body)
		}
		if n := cluster.CommandScanReads(c.Node(f).Node()) - reads[f]; n > uint64(2*added+50) {
			t.Errorf("node%d read %d log entries back while %d barriers were added", f, n, added)
		}
	}
}

// A write sent to a follower that is behind goes to the leader as ever;
// the follower answers it once it has applied it (read-your-writes), or at
// once with the leader's result while its log cannot be written, and never
// answers a read of it from the state it had: the room it just
// acknowledged is 200 or 503, never 404. A consistent read through it
// answers 503 rather than wait for an apply that cannot come.
func TestWriteThroughAFollowerThatIsBehind(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Persist: true})
	c.WaitReady()
	leader, f := c.Leader(), c.Followers()[0]
	fn := c.Node(f).Node()
	tok := c.Token()
	if r := c.Do(f, "GET", "/v2/rooms?page=1&perPage=1", tok, nil); r.Status != 200 { // its start-up gate open
		t.Fatalf("follower before the fault: %d %s", r.Status, r.Body)
	}

	cluster.InjectStorageFault(fn, diskFull)
	created := createRooms(t, c, leader, 2000, "while-full")
	// Its log cannot be written: the write is decided by the leader and
	// answered with the leader's result at once, not after the apply wait
	// (5 s) for an apply that cannot come.
	sent := time.Now()
	during := c.Do(f, "POST", "/v2/rooms", tok, map[string]any{"customRoomId": "through-a-full-follower"})
	if during.Status != 200 {
		t.Fatalf("write through a follower whose disk is full: %d %s", during.Status, during.Body)
	}
	if took := time.Since(sent); took >= 4*time.Second {
		t.Fatalf("write through a follower whose disk is full answered after %v: it waited for an apply its log cannot get", took)
	}
	// Acknowledged, but not applied here: a read of it on this node is
	// refused, not answered 404 from the state it has.
	var room struct{ RoomID string }
	during.JSON(t, &room)
	if r := c.Do(f, "GET", "/v2/rooms/"+room.RoomID, tok, nil); r.Status != 503 || !strings.Contains(string(r.Body), "cannot write its Raft log") && !strings.Contains(string(r.Body), "catching up") {
		t.Fatalf("GET through the full follower of the room it just acknowledged: %d %s", r.Status, r.Body)
	}
	// A consistent read waits for this node to apply what the leader
	// committed, which it cannot: refused at once through the API, and
	// bounded by the apply wait below it (it waited for ever).
	if r := c.Do(f, "GET", "/v2/rooms/"+room.RoomID+"?consistent=true", tok, nil); r.Status != 503 || !strings.Contains(string(r.Body), "cannot write its Raft log") {
		t.Fatalf("consistent GET through the full follower: %d %s", r.Status, r.Body)
	}
	barrier := make(chan error, 1)
	go func() { barrier <- fn.Barrier(context.Background()) }()
	select {
	case err := <-barrier:
		var lag *cluster.LagError
		if !errors.As(err, &lag) || lag.LeaderCommit <= lag.Applied {
			t.Fatalf("a consistent read's catch-up on a follower that cannot apply: %v, want a LagError", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a consistent read's catch-up on a follower that cannot apply still waits after 15 s (the apply wait is 5 s)")
	}
	cluster.InjectStorageFault(fn, nil)
	// Now it catches up, with thousands of entries to apply: this write
	// waits for that, then reads back here.
	after := c.Do(f, "POST", "/v2/rooms", tok, map[string]any{"customRoomId": "through-a-catching-up-follower"})
	if after.Status != 200 {
		t.Fatalf("write through a catching-up follower: %d %s", after.Status, after.Body)
	}
	for _, w := range []clustertest.Response{during, after} {
		var ack struct{ RoomID string }
		w.JSON(t, &ack)
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := c.Do(f, "GET", "/v2/rooms/"+ack.RoomID, tok, nil)
			if r.Status == 200 {
				break
			}
			if r.Status != 503 || !strings.Contains(string(r.Body), "catching up") && !strings.Contains(string(r.Body), "cannot write its Raft log") {
				t.Fatalf("GET of room %s just created through node%d: %d %s (only 200, or 503 while it catches up)", ack.RoomID, f, r.Status, r.Body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("node%d still refuses room %s 30 s after its disk came back: %s", f, ack.RoomID, r.Body)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	watchForStaleAnswers(t, c, f, created+2)
}
