package placement

import (
	"math"
	"sort"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/state"
)

var _ api.EdgeStatusService = (*Service)(nil)

// EdgeStatus lists every registered edge, by region then id, with the load
// of its last heartbeat to this node (the leader hears every edge: the
// other nodes forward what they receive).
func (s *Service) EdgeStatus() []api.EdgeStatus {
	var edges []*state.Edge
	s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
	out := make([]api.EdgeStatus, 0, len(edges))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range edges {
		v := api.EdgeStatus{ID: e.ID, Region: e.Region, Up: e.Up, Draining: e.Draining, Capacity: e.Capacity, SignalURL: e.SignalURL,
			Version: e.Version, TURNURLs: e.TURNURLs}
		if l, ok := s.live[e.ID]; ok {
			v.Participants, v.Tracks, v.Rooms, v.CPU, v.EgressBps = l.load.Participants, l.load.Tracks, l.load.Rooms, l.load.CPU, l.load.EgressBps
			v.Draining = v.Draining || l.draining
			seen := l.seen.UTC().Format("2006-01-02T15:04:05.000Z")
			v.LastHeartbeat = &seen
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
	return out
}
