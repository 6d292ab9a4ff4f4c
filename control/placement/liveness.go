package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// leaderHeardFrom wakes the leader's liveness check at once when an edge
// reports a region peer suspect, dead or left, so the verdict of gossip
// (seconds) is not delayed by the check's period.
func (s *Service) leaderHeardFrom(hb edgeapi.Heartbeat) {
	if !s.node.IsLeader() {
		return
	}
	for _, m := range hb.Pool {
		if m.State != edgeapi.MemberAlive {
			s.nudge()
			return
		}
	}
}

func (s *Service) nudge() {
	s.mu.Lock()
	ch := s.check
	s.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// verdictLocked is why an edge is to be marked down ("" = it is fine).
//
// The edge's own heartbeats come first. While they are on time (heard
// within LateAfter, counted from when this node became leader at the
// earliest, so a new leader first gives every edge a chance to report) the
// edge is running and reaches the control plane: a region peer's word that
// it is dead does not take it down. Two edges whose gossip is cut from each
// other each report the other dead; believing them would end both edges'
// meetings, and the edges would register again and be marked down again,
// round after round. Once its heartbeats are late, a live peer's report
// that it is dead or left marks it down at once, and so does a suspicion
// that no live peer contradicts (a killed edge: late 2-3 s after the kill,
// suspect after 1-2 s). A suspicion must also be newer than the edge's last
// heartbeat (a reporter that died suspecting it is not believed over the
// edge's own later word); one that another peer contradicts is a probe
// lost on a busy host, and an edge cut off from the control plane only
// must keep its meetings. An edge silent for DownAfter that no peer
// vouches for is down too.
func (s *Service) verdictLocked(e *state.Edge, now, leaderSince time.Time) string {
	heard := leaderSince
	var lastBeat time.Time
	if le := s.live[e.ID]; le != nil {
		lastBeat = le.seen
		if le.seen.After(heard) {
			heard = le.seen
		}
	}
	quiet := now.Sub(heard)
	if quiet < s.cfg.LateAfter {
		return ""
	}
	vouched, suspectedBy := false, ""
	for reporter, rl := range s.live {
		if reporter == e.ID || now.Sub(rl.seen) >= s.cfg.DownAfter {
			continue
		}
		for _, m := range rl.pool {
			if m.ID != e.ID {
				continue
			}
			switch m.State {
			case edgeapi.MemberSuspect:
				if rl.seen.After(lastBeat) {
					suspectedBy = reporter
				}
			case edgeapi.MemberDead:
				return fmt.Sprintf("dead according to region peer %s, no heartbeat for %s", reporter, quiet.Round(time.Millisecond))
			case edgeapi.MemberLeft:
				return fmt.Sprintf("left its region's pool (reported by %s), no heartbeat for %s", reporter, quiet.Round(time.Millisecond))
			case edgeapi.MemberAlive:
				vouched = true
			}
		}
	}
	if suspectedBy != "" && !vouched {
		return fmt.Sprintf("suspected by region peer %s, no heartbeat for %s", suspectedBy, quiet.Round(time.Millisecond))
	}
	if quiet < s.cfg.DownAfter {
		return ""
	}
	if vouched {
		// Cut off from the control plane but alive to its region: its
		// meetings go on; it is not used for new joins (usable() skips
		// silent edges) until it reports again.
		return ""
	}
	return "missed heartbeats"
}

// LivenessLoop is leader-only: it marks edges down (silent, or dead by
// their region's gossip), which removes them from every room placement in
// the same command and tells the surviving edges of those rooms; once an
// edge has been down for RejoinGrace, it closes the participations still
// recorded on it.
func (s *Service) LivenessLoop(ctx context.Context) error {
	started := s.cfg.Now()
	check := make(chan struct{}, 1)
	s.mu.Lock()
	s.check = check
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.check == check {
			s.check = nil
		}
		s.mu.Unlock()
	}()
	t := time.NewTicker(max(s.cfg.HeartbeatEvery/2, 50*time.Millisecond))
	defer t.Stop()
	// stranded: edges marked down whose participations are still to be
	// closed. A new leader starts with every edge that is down (its
	// predecessor may have died within an edge's grace); the first sweep
	// finds nothing to close on those long settled.
	stranded := map[string]bool{}
	s.node.FSM().Read(func(st *state.Store) {
		for _, e := range st.Edges() {
			if !e.Up {
				stranded[e.ID] = true
			}
		}
	})
	for {
		now := s.cfg.Now()
		if len(stranded) > 0 {
			if err := s.closeStranded(ctx, stranded, now); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-check:
		}
		now = s.cfg.Now()
		var edges []*state.Edge
		s.node.FSM().Read(func(st *state.Store) { edges = st.Edges() })
		for _, e := range edges {
			if !e.Up {
				continue
			}
			s.mu.Lock()
			why := s.verdictLocked(e, now, started)
			s.mu.Unlock()
			if why == "" {
				continue
			}
			if err := s.markDown(ctx, e, why, now); err != nil {
				return err
			}
			stranded[e.ID] = true
		}
	}
}

func (s *Service) markDown(ctx context.Context, e *state.Edge, why string, now time.Time) error {
	var rooms []string
	s.node.FSM().Read(func(st *state.Store) { rooms = st.EdgeRooms(e.ID) })
	s.log.Warn("edge is down; re-placing its rooms", "edge", e.ID, "region", e.Region, "why", why, "rooms", len(rooms), "rejoinGrace", s.cfg.RejoinGrace)
	if _, _, err := s.node.Apply(ctx, state.CmdMarkEdgeDown, state.MarkEdgeDown{ID: e.ID, At: now.UTC(), Reason: why}); err != nil {
		return err
	}
	s.pushRooms(rooms)
	return nil
}

// closeStranded closes the participations recorded on the stranded edges
// that have been down for RejoinGrace, and forgets those edges. Closing
// them at once would report everyone who is only moving as gone: a
// participant whose edge stalls notices it itself (no media, a dead
// socket) and joins another edge, often after the control plane declared
// the edge down, and its session would record a participant-left and a
// participant-joined for it, or end and start again when it was alone.
// Within the grace such a join is a move (the open interval is kept), and
// a participant that never comes back leaves at the moment its edge was
// declared down. An edge that registered again in the meantime reports
// its own participants (docs/multi-edge.md, "Failover and drain").
func (s *Service) closeStranded(ctx context.Context, stranded map[string]bool, now time.Time) error {
	type p struct {
		room, pid, edge string
		at              time.Time
	}
	var list []p
	due := map[string]time.Time{}
	s.node.FSM().Read(func(st *state.Store) {
		for id := range stranded {
			e, ok := st.Edge(id)
			switch {
			case !ok || e.Up:
				delete(stranded, id)
			case !now.Before(e.ChangedAt.Add(s.cfg.RejoinGrace)):
				due[id] = e.ChangedAt.UTC()
				delete(stranded, id)
			}
		}
		if len(due) == 0 {
			return
		}
		for _, sp := range st.ActiveOnEdges(func(id string) bool { _, ok := due[id]; return ok }) {
			// A join reported after the edge was declared down (its event
			// queued behind the stall) began after this time: the FSM
			// ends such an interval at its start.
			list = append(list, p{sp.RoomID, sp.ParticipantID, sp.EdgeID, due[sp.EdgeID]})
		}
	})
	for _, x := range list {
		evIDs, err := s.newIDs(4)
		if err != nil {
			return err
		}
		if _, _, err := s.node.Apply(ctx, state.CmdParticipantLeave, state.ParticipantLeave{EventID: "edge-down-" + evIDs[3], RoomID: x.room,
			ParticipantID: x.pid, EdgeID: x.edge, Reason: "edge-failed", At: x.at, IDs: evIDs[:3]}); err != nil {
			var se *state.Error
			if !errors.As(err, &se) {
				return err
			}
		}
	}
	return nil
}

// RepairLoop is leader-only: it drops from each placement the edges that
// no longer have anyone in the room (no active participant recorded there,
// none reported in the edge's last heartbeat, reservation over), so legs
// are torn down and the room does not stay spread after people leave.
func (s *Service) RepairLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.RepairEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.repairOnce(ctx); err != nil {
			return err
		}
	}
}

func (s *Service) repairOnce(ctx context.Context) error {
	now := s.cfg.Now()
	type drop struct {
		room   string
		epoch  uint64
		remove []string
	}
	var drops []drop
	s.node.FSM().Read(func(st *state.Store) {
		for _, p := range st.Placements() {
			busy := map[string]bool{}
			if r, ok := st.RoomByRoomID(p.RoomID); ok {
				if ss, ok := st.OngoingSession(r.ID); ok {
					for _, sp := range ss.Participants {
						if sp.Active() {
							busy[sp.EdgeID] = true
						}
					}
				}
			}
			var remove []string
			for _, re := range p.Edges {
				if busy[re.EdgeID] || now.Before(re.ReservedUntil) || s.reportsRoom(re.EdgeID, p.RoomID, now) {
					continue
				}
				remove = append(remove, re.EdgeID)
			}
			if len(remove) > 0 {
				drops = append(drops, drop{p.RoomID, p.Epoch, remove})
			}
		}
	})
	for _, d := range drops {
		_, _, err := s.node.Apply(ctx, state.CmdUnplaceRoomEdges, state.UnplaceRoomEdges{RoomID: d.room, ExpectEpoch: d.epoch, Remove: d.remove, At: now.UTC()})
		var se *state.Error
		if errors.As(err, &se) {
			continue // changed meanwhile: next round
		}
		if err != nil {
			return err
		}
		s.pushRooms([]string{d.room})
	}
	return nil
}

// reportsRoom: the edge's last fresh heartbeat listed the room.
func (s *Service) reportsRoom(edgeID, roomID string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	le := s.live[edgeID]
	return le != nil && now.Sub(le.seen) < s.cfg.DownAfter && slices.ContainsFunc(le.rooms, func(r edgeapi.RoomEpoch) bool { return r.RoomID == roomID })
}
