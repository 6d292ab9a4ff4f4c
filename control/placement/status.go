package placement

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/state"
)

var _ api.EdgeStatusService = (*Service)(nil)

// Where an edge's load in EdgeStatus comes from.
const (
	loadFromHeartbeat = "heartbeat"   // the edge's own heartbeat to this node
	loadFromLeader    = "leader"      // the leader's view (every node forwards heartbeats to it)
	loadFromPeer      = "region-peer" // a region peer's gossip, in its heartbeat to this node
)

// statusPath is the node-to-node route a follower reads the leader's
// edge status from.
const statusPath = "/internal/v1/edges/status"

// EdgeStatus lists every registered edge, by region then id, with its
// latest load. An edge heartbeats to one control node, which forwards to
// the leader; so a follower often has not heard from an edge itself. For
// such edges it takes the leader's view, or, when the leader cannot be
// asked, the load a region peer's gossip reports (as the join path does,
// usable). An edge nobody reported has an empty LoadFrom and no
// LastHeartbeat: its zero load means "unknown", and the console says so.
func (s *Service) EdgeStatus(ctx context.Context) []api.EdgeStatus {
	out, missing := s.localStatus()
	if missing && !s.node.IsLeader() {
		var leader []api.EdgeStatus
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := s.node.ForwardHTTP(fctx, statusPath, struct{}{}, &leader); err != nil {
			s.log.Debug("edge status: leader's view unavailable", "err", err)
		}
		byID := make(map[string]api.EdgeStatus, len(leader))
		for _, e := range leader {
			byID[e.ID] = e
		}
		for i, e := range out {
			if e.LoadFrom == loadFromHeartbeat {
				continue
			}
			if l, ok := byID[e.ID]; ok && l.LoadFrom == loadFromHeartbeat {
				l.LoadFrom = loadFromLeader
				out[i] = l
			}
		}
	}
	return out
}

// localStatus is EdgeStatus from what this node heard: fresh heartbeats,
// else a region peer's report. missing: some edge had no fresh heartbeat
// here.
func (s *Service) localStatus() (out []api.EdgeStatus, missing bool) {
	var edges []*state.Edge
	s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
	return s.statusOf(edges)
}

func (s *Service) statusOf(edges []*state.Edge) (out []api.EdgeStatus, missing bool) {
	out = make([]api.EdgeStatus, 0, len(edges))
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range edges {
		v := api.EdgeStatus{ID: e.ID, Region: e.Region, Up: e.Up, Draining: e.Draining, Capacity: e.Capacity, SignalURL: e.SignalURL,
			Version: e.Version, TURNURLs: e.TURNURLs}
		l := s.live[e.ID]
		if l != nil {
			seen := l.seen.UTC().Format("2006-01-02T15:04:05.000Z")
			v.LastHeartbeat = &seen
			v.ClockOffsetMs = l.clockMs
		}
		switch pm, ok := s.poolReportLocked(e.ID, now); {
		case l != nil && now.Sub(l.seen) < s.cfg.DownAfter:
			v.Participants, v.Tracks, v.Rooms, v.CPU, v.EgressBps = l.load.Participants, l.load.Tracks, l.load.Rooms, l.load.CPU, l.load.EgressBps
			v.Draining = v.Draining || l.draining
			v.LoadFrom = loadFromHeartbeat
		case ok:
			v.Participants, v.Tracks, v.Rooms, v.CPU, v.EgressBps = pm.Load.Participants, pm.Load.Tracks, pm.Load.Rooms, pm.Load.CPU, pm.Load.EgressBps
			v.Draining = v.Draining || pm.Draining
			v.LoadFrom = loadFromPeer
			missing = true
		case l != nil:
			// Heard from it before, not lately: its last report, with its time.
			v.Participants, v.Tracks, v.Rooms, v.CPU, v.EgressBps = l.load.Participants, l.load.Tracks, l.load.Rooms, l.load.CPU, l.load.EgressBps
			v.LoadFrom = loadFromHeartbeat + " (stale)"
			missing = true
		default:
			missing = true
		}
		if e.Capacity > 0 {
			v.Load = math.Round(float64(v.Participants)/float64(e.Capacity)*1000) / 1000
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Region != out[j].Region {
			return out[i].Region < out[j].Region
		}
		return out[i].ID < out[j].ID
	})
	return out, missing
}

// localStatusRoute answers a follower's EdgeStatus with this node's own
// view (never forwarding again). Control nodes only: the cluster token.
func (s *Service) localStatusRoute(c *fiber.Ctx) error {
	if !api.HasClusterToken(c, s.cfg.ClusterToken) {
		return &api.Error{Status: fiber.StatusUnauthorized, Message: "cluster token required"}
	}
	out, _ := s.localStatus()
	return c.JSON(out)
}
