package placement_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

const edgeToken = "edge-token-for-status-tests"

// TestEdgeStatusThroughAFollower: an edge talks to one follower; the
// console reading /admin/v1/edges through the other follower sees its
// load (the leader's view, which every node forwards heartbeats to), not
// an edge that is up with nobody on it.
func TestEdgeStatusThroughAFollower(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(_ int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		pc.HeartbeatEvery, pc.DownAfter = time.Second, time.Minute // nothing goes stale during the test
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
	f := c.Followers()
	talks, reads := f[0], f[1]
	load := edgeapi.Load{Participants: 7, Rooms: 2, Tracks: 14, CPU: 0.5, EgressBps: 3_000_000}
	reg := edgeapi.Register{EdgeID: "paris-1", Region: "eu-west", SignalURL: "ws://127.0.0.1:1/rtc", InternalURL: "http://127.0.0.1:1", Capacity: 10, Load: load}
	if r := c.Do(talks, "POST", "/internal/v1/edges/register", "Bearer "+edgeToken, reg); r.Status != 200 {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	if r := c.Do(talks, "POST", "/internal/v1/edges/heartbeat", "Bearer "+edgeToken, edgeapi.Heartbeat{EdgeID: "paris-1", Load: load}); r.Status != 200 {
		t.Fatalf("heartbeat: %d %s", r.Status, r.Body)
	}
	type status struct {
		ID                          string
		Up                          bool
		Participants, Rooms, Tracks int
		Load                        float64
		LoadFrom                    string
		LastHeartbeat               *string
	}
	read := func(node int) (status, string) {
		var out struct{ Data []status }
		r := c.Do(node, "GET", "/admin/v1/edges?consistent=true", "Bearer "+c.AdminToken, nil)
		r.JSON(t, &out)
		if r.Status != 200 || len(out.Data) != 1 {
			return status{}, fmt.Sprintf("edges through node%d: %d %s", node, r.Status, r.Body)
		}
		return out.Data[0], ""
	}
	// The registration reaches the reading follower through Raft.
	var got status
	clustertest.Eventually(t, 10*time.Second, func() string {
		var msg string
		got, msg = read(reads)
		return msg
	})
	if !got.Up || got.Participants != 7 || got.Rooms != 2 || got.Tracks != 14 || got.Load != 0.7 || got.LoadFrom != "leader" || got.LastHeartbeat == nil {
		t.Fatalf("through the follower the edge does not talk to: %+v", got)
	}
	if got, msg := read(talks); msg != "" || got.Participants != 7 || got.LoadFrom != "heartbeat" {
		t.Fatalf("through the follower it talks to: %+v %s", got, msg)
	}
	// The leader's view is for control nodes only.
	if r := c.Do(reads, "POST", "/internal/v1/edges/status", "Bearer "+edgeToken, map[string]any{}); r.Status != 401 {
		t.Fatalf("edge token on the node-to-node status route: %d %s", r.Status, r.Body)
	}
}

// An edge calling without a token and one calling with the wrong token are
// told which (an operator's typo in --edge-token looked like a missing
// flag), and neither registers anything.
func TestEdgeTokenErrorsSayWhatIsWrong(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(_ int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
	c.WaitReady()
	reg := edgeapi.Register{EdgeID: "paris-1", Region: "eu-west", SignalURL: "ws://127.0.0.1:1/rtc", InternalURL: "http://127.0.0.1:1", Capacity: 10}
	for _, tc := range []struct{ authz, want string }{
		{"", "edge token required"},
		{"Basic abc", "edge token required"},
		{"Bearer " + edgeToken + "x", "wrong edge token"},
	} {
		r := c.Do(0, "POST", "/internal/v1/edges/register", tc.authz, reg)
		if r.Status != 401 || !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("register with %q: %d %s, want 401 saying %q", tc.authz, r.Status, r.Body, tc.want)
		}
	}
	var out struct{ Data []any }
	r := c.Do(0, "GET", "/admin/v1/edges?consistent=true", "Bearer "+c.AdminToken, nil)
	r.JSON(t, &out)
	if r.Status != 200 || len(out.Data) != 0 {
		t.Fatalf("edges after refused registrations: %d %s", r.Status, r.Body)
	}
	if r := c.Do(0, "POST", "/internal/v1/edges/register", "Bearer "+edgeToken, reg); r.Status != 200 {
		t.Fatalf("register with the right token: %d %s", r.Status, r.Body)
	}
}
