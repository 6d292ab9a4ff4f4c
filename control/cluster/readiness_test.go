package cluster_test

import (
	"fmt"
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
	for time.Since(start) < 20*time.Second {
		r := c.Do(0, "GET", "/v2/rooms/"+last, tok, nil)
		switch {
		case r.Status == 503 && r.Header.Get("Retry-After") != "":
			early++
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
			return
		}
	}
	t.Fatalf("node not serving 20 s after restart (%d early answers)", early)
}
