package cluster_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// TestBarrierWhenLeadershipIsLost: consistent reads run on the leader
// without pause while it loses its quorum. The read barrier in flight then
// fails inside raft (ErrLeadershipLost/ErrNotLeader); that must reach the
// caller as ErrNoLeader — a 503 with Retry-After through the API — not as
// an internal error (the chaos suite saw 500s during leader changes).
func TestBarrierWhenLeadershipIsLost(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	leader := c.Leader()
	node := c.Node(leader).Node()
	url := c.Node(leader).URL() + "/v2/rooms?consistent=true"
	token := c.Token()

	barrierErr := make(chan error, 1)
	go func() {
		for {
			if err := node.Barrier(context.Background()); err != nil {
				barrierErr <- err
				return
			}
		}
	}()
	type answer struct {
		status     int
		retryAfter string
		err        error
	}
	httpAnswer := make(chan answer, 1)
	go func() {
		for {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				httpAnswer <- answer{err: err}
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				httpAnswer <- answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // both loops are running
	for _, f := range c.Followers() {
		c.Stop(f)
	}
	select {
	case err := <-barrierErr:
		if !errors.Is(err, cluster.ErrNoLeader) {
			t.Errorf("barrier on a leader that lost its quorum: %v, want ErrNoLeader", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("barrier still running 30 s after the quorum was lost")
	}
	select {
	case a := <-httpAnswer:
		if a.err != nil || a.status != http.StatusServiceUnavailable || a.retryAfter == "" {
			t.Errorf("consistent read on a leader that lost its quorum: %d (Retry-After %q) %v, want 503 with Retry-After", a.status, a.retryAfter, a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consistent read still running 30 s after the quorum was lost")
	}
}
