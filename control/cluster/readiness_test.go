package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// TestRestartAnswersOnlyWhenCaughtUp: a node restarted with a long log
// answers every API call with 503 + Retry-After until it has replayed it,
// then with the complete state — never "unknown apikey" or a missing room.
func TestRestartAnswersOnlyWhenCaughtUp(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Persist: true})
	var last string
	for i := 0; i < 1500; i++ {
		last = createRoom(t, c, 0, fmt.Sprintf("r-%d", i))
	}
	c.Stop(0)
	start := time.Now()
	c.Restart(0)
	tok := c.Token()
	var early, ok int
	replaying := map[string]int{} // answers naming the replay's progress, by route
	for time.Since(start) < 20*time.Second {
		r := c.Do(0, "GET", "/v2/rooms/"+last, tok, nil)
		switch {
		case r.Status == 503 && r.Header.Get("Retry-After") != "":
			early++
			if strings.Contains(string(r.Body), "replaying its log (applied ") {
				replaying["api"]++
			}
			// /healthz says the same while the node starts.
			if h := c.Do(0, "GET", "/healthz", "", nil); h.Status == 503 && strings.Contains(string(h.Body), "replaying its log (applied ") {
				replaying["healthz"]++
			}
			continue
		case r.Status == 200:
			ok++
		default:
			t.Fatalf("%v after restart: %d %s (only 503 with Retry-After, or the room, are acceptable)", time.Since(start), r.Status, r.Body)
		}
		if ok == 1 {
			t.Logf("serving %v after restart (%d early requests got 503)", time.Since(start).Round(time.Millisecond), early)
			if n := roomCount(c, 0); n != 1500 {
				t.Fatalf("ready with %d of 1500 rooms", n)
			}
		}
		if ok >= 20 {
			t.Logf("answers naming the replay's progress: %v", replaying)
			if replaying["api"] == 0 || replaying["healthz"] == 0 {
				t.Fatalf("while replaying, the API and /healthz should both name its progress: %v of %d early answers", replaying, early)
			}
			return
		}
	}
	t.Fatalf("node not serving 20 s after restart (%d early answers)", early)
}

// TestReadyWhenTheLogEndsWithoutACommand: barriers (consistent reads, a new
// leader's first step) and election no-ops never reach the FSM, so a node
// whose log ends with one has applied less than its last index. Restarted
// with such a log and no further writes, it must still become ready (it has
// applied every command there is).
func TestReadyWhenTheLogEndsWithoutACommand(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Persist: true})
	f := c.Followers()[0]
	createRoom(t, c, f, "through-a-follower")
	// A consistent read through the follower: the leader appends a barrier.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Node(f).Node().Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		st := c.Node(f).Node().Stats()
		if st["last_log_index"] == st["commit_index"] && st["commit_index"] != fmt.Sprint(c.Node(f).Node().FSM().AppliedIndex()) {
			return ""
		}
		return fmt.Sprintf("waiting for a non-command tail: last %s commit %s applied %d", st["last_log_index"], st["commit_index"], c.Node(f).Node().FSM().AppliedIndex())
	})
	c.Stop(f)
	c.Restart(f)
	clustertest.Eventually(t, 15*time.Second, func() string {
		if !c.Node(f).Ready() {
			applied, target := c.Node(f).Node().Progress()
			return fmt.Sprintf("restarted node%d not ready: applied %d of %d", f, applied, target)
		}
		return ""
	})
	if r := c.Do(f, "GET", "/v2/rooms/through-a-follower", c.Token(), nil); r.Status != 200 {
		t.Fatalf("restarted node: %d %s", r.Status, r.Body)
	}
}
