package placement

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// TestEdgeStatusFallsBackToRegionPeers: an edge that does not heartbeat to
// this node shows the load its region peer's gossip reports (as the join
// path uses it), and an edge nobody reported shows no source, so its zero
// load reads as unknown rather than idle.
func TestEdgeStatusFallsBackToRegionPeers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := testService(now)
	s.noteHeartbeat(edgeapi.Heartbeat{EdgeID: "paris-1", Load: edgeapi.Load{Participants: 7, Rooms: 2, Tracks: 14}, Pool: []edgeapi.PoolMember{
		{ID: "paris-2", State: edgeapi.MemberAlive, Load: edgeapi.Load{Participants: 3, Rooms: 1, Tracks: 6, CPU: 0.25}, Draining: true},
		{ID: "paris-3", State: edgeapi.MemberSuspect, Load: edgeapi.Load{Participants: 9}},
	}})
	edges := []*state.Edge{edge("paris-1", "eu-west", 10), edge("paris-2", "eu-west", 10), edge("paris-3", "eu-west", 10), edge("sanjose-1", "us-west", 10)}
	out, missing := s.statusOf(edges)
	if !missing || len(out) != 4 {
		t.Fatalf("status %+v missing=%v", out, missing)
	}
	got := map[string]string{}
	for _, e := range out {
		got[e.ID] = e.LoadFrom
		switch e.ID {
		case "paris-1":
			if e.Participants != 7 || e.Rooms != 2 || e.Tracks != 14 || e.Load != 0.7 || e.LastHeartbeat == nil {
				t.Errorf("paris-1 (own heartbeat): %+v", e)
			}
		case "paris-2":
			if e.Participants != 3 || e.Rooms != 1 || e.Tracks != 6 || e.CPU != 0.25 || e.Load != 0.3 || !e.Draining || e.LastHeartbeat != nil {
				t.Errorf("paris-2 (region peer's report): %+v", e)
			}
		default:
			if e.Participants != 0 || e.LastHeartbeat != nil {
				t.Errorf("%s (reported by nobody): %+v", e.ID, e)
			}
		}
	}
	want := map[string]string{"paris-1": "heartbeat", "paris-2": "region-peer", "paris-3": "", "sanjose-1": ""}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s: loadFrom %q, want %q", id, got[id], w)
		}
	}
	// Once the edge's own heartbeats are late, its peer's report is the
	// fresher word; with no peer either, its last report is shown as stale.
	s.cfg.Now = func() time.Time { return now.Add(s.cfg.DownAfter) }
	s.noteHeartbeat(edgeapi.Heartbeat{EdgeID: "paris-2", Pool: []edgeapi.PoolMember{{ID: "paris-1", State: edgeapi.MemberAlive, Load: edgeapi.Load{Participants: 5}}}})
	s.live["paris-2"].seen = now // paris-2 is late too
	out, _ = s.statusOf(edges[:2])
	if out[0].LoadFrom != "heartbeat (stale)" || out[0].Participants != 7 {
		t.Errorf("paris-1, late, no fresh peer: %+v", out[0])
	}
	s.live["paris-2"].seen = now.Add(s.cfg.DownAfter)
	out, _ = s.statusOf(edges[:2])
	if out[0].LoadFrom != "region-peer" || out[0].Participants != 5 {
		t.Errorf("paris-1, late, fresh peer: %+v", out[0])
	}
}
