package cluster_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

func createRoom(t *testing.T, c *clustertest.Cluster, node int, custom string) string {
	t.Helper()
	r := c.Do(node, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": custom})
	if r.Status != 200 {
		t.Fatalf("create room on node%d: %d %s", node, r.Status, r.Body)
	}
	var room struct{ RoomID string }
	r.JSON(t, &room)
	return room.RoomID
}

func roomCount(c *clustertest.Cluster, i int) int {
	n := 0
	c.Node(i).Node().FSM().Read(func(s *state.Store) { n = s.RoomCount() })
	return n
}

// TestClusterAgreesAndSurvivesLeaderLoss: three nodes agree on state; a write
// on a follower succeeds (forwarded); killing the leader elects a new one,
// leader loops run on exactly one node, and writes continue.
func TestClusterAgreesAndSurvivesLeaderLoss(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	leader := c.Leader()
	follower := c.Followers()[0]

	createRoom(t, c, leader, "on-leader")
	id := createRoom(t, c, follower, "on-follower")
	// Read-your-write on the follower that took the write.
	if r := c.Do(follower, "GET", "/v2/rooms/"+id, c.Token(), nil); r.Status != 200 {
		t.Fatalf("follower cannot read its own write: %d %s", r.Status, r.Body)
	}
	clustertest.Eventually(t, 5*time.Second, func() string {
		for i := range c.Nodes() {
			if n := roomCount(c, i); n != 2 {
				return fmt.Sprintf("node%d has %d rooms", i, n)
			}
		}
		return ""
	})

	// A survivor's /healthz during the election names it, and does not
	// call a node that has served for a while "starting".
	survivor := c.Followers()[0]
	old := c.KillLeader()
	elected := make(chan struct{})
	healthz := make(chan map[string]int, 1)
	go func() {
		seen := map[string]int{}
		defer func() { healthz <- seen }()
		for {
			select {
			case <-elected:
				return
			default:
			}
			if r, err := clustertest.TryDo(c.Node(survivor).URL(), "GET", "/healthz", "", nil); err == nil && r.Status != 200 {
				var e struct{ Message string }
				_ = json.Unmarshal(r.Body, &e)
				seen[e.Message]++
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	newLeader := c.Leader()
	close(elected)
	for msg, n := range <-healthz {
		t.Logf("survivor's /healthz during the election: 503 %q ×%d", msg, n)
		if strings.Contains(msg, "starting") {
			t.Errorf("a node that has served for a while answered /healthz %q during an election", msg)
		}
	}
	if newLeader == old {
		t.Fatal("dead node still leader")
	}
	for _, i := range c.Followers() {
		if c.Node(i).Node().LeaderLoopsRunning() {
			t.Fatalf("follower node%d still runs leader loops", i)
		}
	}
	for i, n := range c.Nodes() {
		if n == nil {
			continue
		}
		createRoom(t, c, i, fmt.Sprintf("after-failover-%d", i))
	}
	if r := c.Do(newLeader, "GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz after failover: %d %s", r.Status, r.Body)
	}
}

// TestRestartedNodeCatchesUpFromSnapshot: a node that was down while many
// writes happened (and the log was compacted) restores from a snapshot plus
// the log tail and serves the same state.
func TestRestartedNodeCatchesUpFromSnapshot(t *testing.T) {
	for _, store := range []string{cluster.LogStoreWAL, cluster.LogStoreBolt} {
		t.Run(store, func(t *testing.T) { restartedNodeCatchesUpFromSnapshot(t, store) })
	}
}

func restartedNodeCatchesUpFromSnapshot(t *testing.T, store string) {
	c := clustertest.New(t, 3, clustertest.Options{Persist: true, SnapshotThreshold: 8, Configure: func(i int, cfg *server.Config) {
		cfg.Cluster.LogStore = store
		// Small segments, so compaction really drops the entries the
		// stopped node misses (the WAL keeps its open segment readable).
		cfg.Cluster.WALSegmentBytes = 4096
	}})
	victim := c.Followers()[0]
	c.Stop(victim)
	var alive int
	for i, n := range c.Nodes() {
		if n != nil {
			alive = i
		}
	}
	for i := 0; i < 30; i++ {
		createRoom(t, c, alive, fmt.Sprintf("room-%d", i))
	}
	for i, n := range c.Nodes() {
		if n != nil {
			if err := n.Node().Snapshot(); err != nil {
				t.Fatalf("snapshot node%d: %v", i, err)
			}
		}
	}
	var before uint64
	if st := c.Node(alive).Node().Stats(); st != nil {
		fmt.Sscan(st["last_snapshot_index"], &before)
	}
	if before == 0 {
		t.Fatal("leader took no snapshot")
	}
	c.Restart(victim)
	// Through the API the test reads next: the node answers 503 until it
	// has applied what was committed when it started, which can be a few
	// entries after the snapshot's rooms are all there.
	clustertest.Eventually(t, 10*time.Second, func() string {
		r := c.Do(victim, "GET", "/v2/rooms?perPage=100", c.Token(), nil)
		if r.Status != 200 {
			return fmt.Sprintf("list on restarted node: %d %s", r.Status, r.Body)
		}
		var page struct {
			PageInfo struct{ Total int } `json:"pageInfo"`
			Data     []json.RawMessage   `json:"data"`
		}
		r.JSON(t, &page)
		if page.PageInfo.Total != 30 || len(page.Data) != 30 {
			return fmt.Sprintf("restarted node lists %d rooms (total %d) of 30", len(page.Data), page.PageInfo.Total)
		}
		return ""
	})
	// The victim stopped before any room existed and had no snapshot of its
	// own, so its rooms can only come from the log (compacted away) or from
	// the leader's snapshot. (raft records the installed snapshot's index
	// only after the FSM restored it, so the stats could lag the rooms.)
	if n := c.Node(victim).Node().FSM().Restores(); n == 0 {
		t.Fatal("restarted node caught up without installing a snapshot")
	}
	// And it takes writes again.
	createRoom(t, c, victim, "after-restart")
}

// TestJoinAddsAVoter: a fourth node joins through a follower, becomes a voter,
// receives the existing state and accepts writes.
func TestJoinAddsAVoter(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	createRoom(t, c, 0, "before-join")
	via := c.Followers()[0]
	n := c.AddNode(via)
	clustertest.Eventually(t, 10*time.Second, func() string {
		if got := roomCount(c, n); got != 1 {
			return fmt.Sprintf("joined node has %d rooms", got)
		}
		return ""
	})
	servers, err := c.Node(c.Leader()).Node().Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 4 || servers[3].Suffrage.String() != "Voter" {
		t.Fatalf("configuration after join: %+v", servers)
	}
	c.WaitReady()
	createRoom(t, c, n, "via-new-node")
}
