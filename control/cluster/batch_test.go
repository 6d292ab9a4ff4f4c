package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/metrictest"
)

const batchMetric = "meridian_raft_write_batch_requests"

// createMany creates rooms from many goroutines at once through the given
// nodes and checks that every write was answered with its own room (a
// batch hands each request the result of its own position) and that every
// node can serve every room back afterwards. It returns how many it wrote.
func createMany(t *testing.T, c *clustertest.Cluster, via []int, prefix string) int {
	t.Helper()
	const writers, each = 24, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	var roomIDs []string
	for w := range writers {
		for i := range each {
			roomIDs = append(roomIDs, fmt.Sprintf("%s%02d-%04d-zz", prefix, w, i))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := c.Node(via[w%len(via)]).Node()
			for i := range each {
				roomID := fmt.Sprintf("%s%02d-%04d-zz", prefix, w, i)
				room := state.Room{ID: fmt.Sprintf("%s%02d%04d%014d", prefix, w, i, 0), RoomID: roomID, UserID: "u1", APIKey: "k1"}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				raw, _, err := node.Apply(ctx, state.CmdCreateRoom, state.CreateRoom{Room: room})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("create %s through %s: %v", roomID, node.ID(), err)
					continue
				}
				var res state.CreateRoomResult
				if err := json.Unmarshal(raw, &res); err != nil || res.Room == nil || res.Room.RoomID != roomID || !res.Created {
					errs <- fmt.Errorf("create %s through %s was answered with %s", roomID, node.ID(), raw)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for i, srv := range c.Nodes() {
		clustertest.Eventually(t, 10*time.Second, func() string {
			missing := ""
			srv.Node().FSM().Read(func(s *state.Store) {
				for _, id := range roomIDs {
					if _, ok := s.RoomByRoomID(id); !ok {
						missing = id
						return
					}
				}
			})
			if missing != "" {
				return fmt.Sprintf("node%d does not have room %s", i, missing)
			}
			return ""
		})
	}
	return len(roomIDs)
}

// batches reads the batch-size histograms of every node (whichever led):
// proposals and the requests they carried.
func batches(t *testing.T, c *clustertest.Cluster) (proposals uint64, requests float64) {
	t.Helper()
	for _, srv := range c.Nodes() {
		p, r, _ := metrictest.Observed(t, srv.Registry(), batchMetric, nil)
		proposals, requests = proposals+p, requests+r
	}
	return proposals, requests
}

func everyServerHas(t *testing.T, c *clustertest.Cluster, feature string) {
	t.Helper()
	clustertest.Eventually(t, 10*time.Second, func() string {
		lead := c.Node(c.Leader()).Node()
		msg := ""
		lead.FSM().Read(func(s *state.Store) {
			for i := range c.Nodes() {
				row, ok := s.Node(fmt.Sprintf("node%d", i))
				if !ok || !slices.Contains(row.Features, feature) {
					msg = fmt.Sprintf("node%d has not registered %q on the leader", i, feature)
					return
				}
			}
		})
		return msg
	})
}

// TestWritesGroupedUnderLoad: with many writers at once, the leader
// proposes room creates together (fewer proposals than writes), through it
// and through followers alike, and every write still gets its own answer.
func TestWritesGroupedUnderLoad(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	everyServerHas(t, c, cluster.FeatureWriteBatch)
	time.Sleep(1100 * time.Millisecond) // past the leader's cached feature check
	leader := c.Leader()
	p0, r0 := batches(t, c)
	n := createMany(t, c, append([]int{leader}, c.Followers()...), "g")
	p1, r1 := batches(t, c)
	proposals, requests := p1-p0, r1-r0
	t.Logf("%d writes in %d proposals", n, proposals)
	// A write whose leader was lost is proposed again where the leader is
	// now, so the proposals may carry more than n.
	if int(requests) < n {
		t.Fatalf("the leaders' proposals carried %v writes; %d were made", requests, n)
	}
	if proposals >= uint64(requests) {
		t.Fatalf("%v writes went out in %d proposals: nothing was grouped", requests, proposals)
	}
}

// TestWritesNotGroupedUntilEveryServerCanApplyThem: while one server has
// not registered the feature (an older binary in a rolling upgrade), every
// write goes out as an entry of its own; once it has, writes are grouped.
func TestWritesNotGroupedUntilEveryServerCanApplyThem(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		if i == 2 {
			cfg.Cluster.Features = []string{} // stands in for a binary from before write batching
		}
	}})
	// node2's row exists (the others may register it when it joins or
	// leads), without the feature.
	time.Sleep(1100 * time.Millisecond)
	p0, r0 := batches(t, c)
	n := createMany(t, c, []int{c.Leader()}, "o")
	p1, r1 := batches(t, c)
	if int(r1-r0) < n || p1-p0 != uint64(r1-r0) {
		t.Fatalf("with node2 unable to apply batches, %d writes went out in %d proposals carrying %v", n, p1-p0, r1-r0)
	}

	// node2 is upgraded: it registers the feature.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := c.Node(c.Leader()).Node().Apply(ctx, state.CmdRegisterNode, state.RegisterNode{Node: state.Node{ID: "node2", Features: []string{cluster.FeatureWriteBatch}}}); err != nil {
		t.Fatal(err)
	}
	everyServerHas(t, c, cluster.FeatureWriteBatch)
	time.Sleep(1100 * time.Millisecond)
	p0, r0 = batches(t, c)
	createMany(t, c, []int{c.Leader()}, "u")
	p1, r1 = batches(t, c)
	if p1-p0 >= uint64(r1-r0) {
		t.Fatalf("after node2 registered the feature, %v writes still went out in %d proposals", r1-r0, p1-p0)
	}
}

const lingerMetric = "meridian_raft_write_batch_lingers_total"

// lingers sums the linger counters of every node.
func lingers(t *testing.T, c *clustertest.Cluster) float64 {
	t.Helper()
	total := 0.0
	for _, srv := range c.Nodes() {
		total += metrictest.Value(t, srv.Registry(), lingerMetric, nil)
	}
	return total
}

// TestBatchLingersOnlyForWaitingWrites: one client writing at a time, through
// the leader or a follower, never has its write held back to fill a batch
// (each goes out alone, at once); many writing at once do have their
// waiting writes left to grow into larger batches, and every write is still
// answered with its own room.
func TestBatchLingersOnlyForWaitingWrites(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Cluster.BatchLinger = 20 * time.Millisecond
	}})
	everyServerHas(t, c, cluster.FeatureWriteBatch)
	time.Sleep(1100 * time.Millisecond) // past the leader's cached feature check
	leader, follower := c.Leader(), c.Followers()[0]

	p0, r0 := batches(t, c)
	l0 := lingers(t, c)
	for i := range 20 {
		createRoom(t, c, leader, fmt.Sprintf("seq-leader-%d", i))
		createRoom(t, c, follower, fmt.Sprintf("seq-follower-%d", i))
	}
	p1, r1 := batches(t, c)
	if l := lingers(t, c) - l0; l != 0 {
		t.Fatalf("one client writing at a time: %v batches lingered", l)
	}
	if r1-r0 < 40 || p1-p0 != uint64(r1-r0) {
		t.Fatalf("one client writing at a time: 40 writes went out in %d proposals carrying %v", p1-p0, r1-r0)
	}

	l1 := lingers(t, c)
	n := createMany(t, c, append([]int{leader}, c.Followers()...), "l")
	p2, r2 := batches(t, c)
	if l := lingers(t, c) - l1; l == 0 {
		t.Fatalf("%d concurrent writes in %d proposals, and no batch lingered", n, p2-p1)
	}
	if int(r2-r1) < n || p2-p1 >= uint64(r2-r1) {
		t.Fatalf("%v concurrent writes went out in %d proposals", r2-r1, p2-p1)
	}
}
