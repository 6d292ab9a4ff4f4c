package placement

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

func testService(now time.Time) *Service {
	cfg := DefaultConfig()
	cfg.Catalog = geo.NewCatalog()
	cfg.Now = func() time.Time { return now }
	cfg.LateAfter = 3 * cfg.HeartbeatEvery // what New derives
	return &Service{cfg: cfg, live: map[string]*liveEdge{}}
}

func edge(id, region string, capacity int) *state.Edge {
	return &state.Edge{ID: id, Region: region, Up: true, Capacity: capacity}
}

// TestDecide: where a joiner goes, given where the room already is.
func TestDecide(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	edges := []*state.Edge{edge("paris-1", "eu-west", 10), edge("paris-2", "eu-west", 10), edge("frankfurt-1", "eu-central", 10),
		edge("montreal-1", "ca-east", 10), edge("sanjose-1", "us-west", 10)}
	placed := func(ids ...string) *state.Placement {
		p := &state.Placement{RoomID: "r", Epoch: 5}
		for _, id := range ids {
			p.Edges = append(p.Edges, state.RoomEdge{EdgeID: id})
		}
		return p
	}
	cases := []struct {
		name      string
		placement *state.Placement
		region    string
		loads     map[string]int // participants per edge (heartbeats)
		avoid     []string
		want      []string // acceptable choices
	}{
		{"first joiner: nearest edge becomes home", nil, "eu-west", nil, nil, []string{"paris-1", "paris-2"}},
		{"same region: the edge already serving", placed("paris-2"), "eu-west", nil, nil, []string{"paris-2"}},
		{"near region (Frankfurt→Paris ≈ 480 km): stays on the serving edge", placed("paris-1"), "eu-central", nil, nil, []string{"paris-1"}},
		{"far joiner gets an edge near them", placed("paris-1"), "ca-east", nil, nil, []string{"montreal-1"}},
		{"far joiner prefers the room's edge in its region", placed("paris-1", "sanjose-1"), "us-west", nil, nil, []string{"sanjose-1"}},
		{"full serving edge: spill to the same region", placed("paris-1"), "eu-west", map[string]int{"paris-1": 10}, nil, []string{"paris-2"}},
		{"less loaded edge of the region for a new room", nil, "eu-west", map[string]int{"paris-1": 6, "paris-2": 1}, nil, []string{"paris-2"}},
		{"avoided edge (client just lost it)", placed("paris-1"), "eu-west", nil, []string{"paris-1"}, []string{"paris-2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testService(now)
			for id, n := range tc.loads {
				s.live[id] = &liveEdge{seen: now, load: edgeapi.Load{Participants: n}}
			}
			loc := geo.Location{Region: tc.region}
			r := s.cfg.Catalog.Lookup(tc.region)
			loc.Lat, loc.Lon = r.Lat, r.Lon
			v := joinView{edges: edges, placement: tc.placement}
			for i := 0; i < 20; i++ { // ties are broken at random: every draw must be acceptable
				cands := s.candidates(v, nil, loc, tc.avoid, now)
				got := s.decide(cands).edge.ID
				if !contains(tc.want, got) {
					t.Fatalf("chose %s, want one of %v", got, tc.want)
				}
			}
		})
	}
}

// TestUsable: which edges take joiners, from heartbeats and gossip reports.
func TestUsable(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := testService(now)
	stale := now.Add(-time.Minute)
	s.live["quiet"] = &liveEdge{seen: stale}
	s.live["vouched"] = &liveEdge{seen: stale}
	s.live["reporter"] = &liveEdge{seen: now, pool: []edgeapi.PoolMember{
		{ID: "vouched", State: edgeapi.MemberAlive, Load: edgeapi.Load{Participants: 3}},
		{ID: "suspect", State: edgeapi.MemberSuspect},
		{ID: "full-by-gossip", State: edgeapi.MemberAlive, Load: edgeapi.Load{Participants: 10}},
	}}
	s.live["draining"] = &liveEdge{seen: now, draining: true}
	// A reporter that died (its last heartbeat still within DownAfter)
	// suspected these two; one has heartbeated since, the other is dead to
	// its region.
	s.live["dead-reporter"] = &liveEdge{seen: now.Add(-time.Second), pool: []edgeapi.PoolMember{
		{ID: "heard-since", State: edgeapi.MemberSuspect},
		{ID: "dead-to-region", State: edgeapi.MemberDead},
	}}
	s.live["heard-since"] = &liveEdge{seen: now}
	// Dead to its region but heartbeating on time: a gossip fault between
	// it and its peers, not a dead edge; it keeps taking joiners.
	s.live["dead-to-region"] = &liveEdge{seen: now}
	// Dead to its region and its heartbeats late (not yet DownAfter): killed.
	s.live["dead-and-late"] = &liveEdge{seen: now.Add(-4 * time.Second)}
	s.live["dead-reporter"].pool = append(s.live["dead-reporter"].pool, edgeapi.PoolMember{ID: "dead-and-late", State: edgeapi.MemberDead})
	cases := []struct {
		e    *state.Edge
		want bool
		load float64
	}{
		{edge("never-heard", "eu-west", 10), true, 0},
		{edge("quiet", "eu-west", 10), false, 0},
		{edge("vouched", "eu-west", 10), true, 0.3},
		{edge("suspect", "eu-west", 10), false, 0},
		{edge("heard-since", "eu-west", 10), true, 0},
		{edge("dead-to-region", "eu-west", 10), true, 0},
		{edge("dead-and-late", "eu-west", 10), false, 0},
		{edge("full-by-gossip", "eu-west", 10), false, 0},
		{edge("draining", "eu-west", 10), false, 0},
		{&state.Edge{ID: "down", Region: "eu-west", Up: false}, false, 0},
		{&state.Edge{ID: "marked-draining", Region: "eu-west", Up: true, Draining: true}, false, 0},
	}
	for _, tc := range cases {
		load, ok := s.usable(tc.e, now)
		if ok != tc.want || (ok && load != tc.load) {
			t.Errorf("%s: usable=%v load=%v, want %v %v", tc.e.ID, ok, load, tc.want, tc.load)
		}
	}
}

// TestVerdict: when the leader marks an edge down. A region peer's report
// counts only once the edge's own heartbeats are late (LateAfter, 3 s
// here): a gossip fault between two edges that both reach the control
// plane takes neither down.
func TestVerdict(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	leaderSince := now.Add(-time.Hour)
	s := testService(now)
	late := now.Add(-4 * time.Second) // past LateAfter, within DownAfter
	s.live["a"] = &liveEdge{seen: now, pool: []edgeapi.PoolMember{{ID: "b", State: edgeapi.MemberDead}, {ID: "c", State: edgeapi.MemberAlive},
		{ID: "f", State: edgeapi.MemberDead}, {ID: "h", State: edgeapi.MemberLeft}, {ID: "i", State: edgeapi.MemberLeft},
		{ID: "j", State: edgeapi.MemberSuspect}, {ID: "l", State: edgeapi.MemberSuspect}, {ID: "m", State: edgeapi.MemberSuspect}}}
	// A reporter that went quiet (it died) suspecting k, which heartbeated after that.
	s.live["z"] = &liveEdge{seen: now.Add(-4500 * time.Millisecond), pool: []edgeapi.PoolMember{{ID: "k", State: edgeapi.MemberSuspect}}}
	// a and b: gossip cut between them, both heartbeating.
	s.live["b"] = &liveEdge{seen: now, pool: []edgeapi.PoolMember{{ID: "a", State: edgeapi.MemberDead}, {ID: "m", State: edgeapi.MemberAlive}}}
	s.live["c"] = &liveEdge{seen: now.Add(-time.Minute)}     // silent to us, alive to its region
	s.live["d"] = &liveEdge{seen: now.Add(-time.Minute)}     // silent, nobody vouches
	s.live["e"] = &liveEdge{seen: now.Add(-2 * time.Second)} // fine
	s.live["f"] = &liveEdge{seen: late}                      // late and dead to its region: killed
	s.live["g"] = &liveEdge{seen: late}                      // late, nobody reports: not yet
	s.live["h"] = &liveEdge{seen: now}                       // left by its peer's word, heartbeating (restarted)
	s.live["i"] = &liveEdge{seen: late}                      // left and late: gone
	s.live["j"] = &liveEdge{seen: late}                      // late and suspected now: killed, seen sooner than by "dead"
	s.live["k"] = &liveEdge{seen: late}                      // late, but the suspicion is older than its last heartbeat
	s.live["l"] = &liveEdge{seen: now}                       // suspected, heartbeating: a probe lost on a loaded host
	s.live["m"] = &liveEdge{seen: late}                      // late (cut off from us), suspected by a but alive to b: keeps its meetings
	cases := map[string]bool{"a": false, "b": false, "c": false, "d": true, "e": false, "f": true, "g": false, "h": false, "i": true,
		"j": true, "k": false, "l": false, "m": false, "never": true}
	for id, down := range cases {
		why := s.verdictLocked(&state.Edge{ID: id, Region: "eu-west", Up: true}, now, leaderSince)
		if (why != "") != down {
			t.Errorf("%s: verdict %q, want down=%v", id, why, down)
		}
	}
	// A new leader gives every edge LateAfter before believing its peers,
	// and DownAfter before calling it silent.
	for _, id := range []string{"d", "f", "never"} {
		if why := s.verdictLocked(&state.Edge{ID: id, Region: "eu-west", Up: true}, now, now.Add(-time.Second)); why != "" {
			t.Errorf("fresh leader marked %s down at once: %q", id, why)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestLateAfter: how late an edge's heartbeats must be before its peers'
// reports count, by default and when set.
func TestLateAfter(t *testing.T) {
	secrets := func() (*Secrets, error) { return nil, errors.New("unused") }
	for _, tc := range []struct {
		every, down, set, want time.Duration
	}{
		{time.Second, 5 * time.Second, 0, 3 * time.Second},                         // production: 3 periods
		{200 * time.Millisecond, 2 * time.Second, 0, time.Second},                  // short periods: half of DownAfter
		{50 * time.Millisecond, 100 * time.Millisecond, 0, 100 * time.Millisecond}, // never past DownAfter
		{time.Second, 5 * time.Second, 2 * time.Second, 2 * time.Second},           // set
		{time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second},           // set to DownAfter: peers never speed it up
	} {
		cfg := DefaultConfig()
		cfg.EdgeToken, cfg.Secrets = "t", secrets
		cfg.HeartbeatEvery, cfg.DownAfter, cfg.LateAfter = tc.every, tc.down, tc.set
		s, err := New(cfg, nil)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		s.Close()
		if s.cfg.LateAfter != tc.want {
			t.Errorf("heartbeat %v, DownAfter %v, LateAfter %v: got %v, want %v", tc.every, tc.down, tc.set, s.cfg.LateAfter, tc.want)
		}
	}
	for _, bad := range []time.Duration{time.Second, 500 * time.Millisecond, 6 * time.Second} {
		cfg := DefaultConfig()
		cfg.EdgeToken, cfg.Secrets, cfg.LateAfter = "t", secrets, bad
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "LateAfter") {
			t.Errorf("LateAfter %v accepted (heartbeat 1 s, DownAfter 5 s): %v", bad, err)
		}
	}
}
