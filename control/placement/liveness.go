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
// the same command, closes the participations that lived on them, and tells
// the surviving edges of those rooms.
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-check:
		}
		now := s.cfg.Now()
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
		}
	}
}

func (s *Service) markDown(ctx context.Context, e *state.Edge, why string, now time.Time) error {
	var rooms []string
	s.node.FSM().Read(func(st *state.Store) { rooms = st.EdgeRooms(e.ID) })
	s.log.Warn("edge is down; re-placing its rooms", "edge", e.ID, "region", e.Region, "why", why, "rooms", len(rooms))
	if _, _, err := s.node.Apply(ctx, state.CmdMarkEdgeDown, state.MarkEdgeDown{ID: e.ID, At: now.UTC(), Reason: why}); err != nil {
		return err
	}
	if err := s.closeParticipations(ctx, e.ID, now.UTC()); err != nil {
		return err
	}
	s.pushRooms(rooms)
	return nil
}

func (s *Service) closeParticipations(ctx context.Context, edgeID string, at time.Time) error {
	type p struct{ room, pid string }
	var list []p
	s.node.FSM().Read(func(st *state.Store) {
		for _, ss := range st.OngoingSessions() {
			for _, sp := range ss.Participants {
				if sp.Active() && sp.EdgeID == edgeID {
					list = append(list, p{ss.RoomID, sp.ParticipantID})
				}
			}
		}
	})
	for _, x := range list {
		evIDs, err := s.newIDs(4)
		if err != nil {
			return err
		}
		if _, _, err := s.node.Apply(ctx, state.CmdParticipantLeave, state.ParticipantLeave{EventID: "edge-down-" + evIDs[3], RoomID: x.room,
			ParticipantID: x.pid, EdgeID: edgeID, Reason: "edge-failed", At: at, IDs: evIDs[:3]}); err != nil {
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
