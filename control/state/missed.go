package state

import (
	"math"
	"time"
)

// Why sessions end and participants leave, as the API records them. Only
// these are orders an edge must carry out (MissedOrders); a session that
// ended because everybody left, or that the auto-close loop ended while it
// was empty, had nobody to disconnect.
const (
	ReasonEndedByAPI  = "ended-by-api"
	ReasonDeactivated = "room-deactivated"
	ReasonRemoved     = "removed"
)

// missedWalk bounds how many of a room's latest sessions MissedOrders
// reads when the room has an order newer than an edge's oldest ticket.
const missedWalk = 16

// isClose tells whether a session that ended for reason was closed by an
// order (rather than emptied).
func isClose(reason string) bool { return reason == ReasonEndedByAPI || reason == ReasonDeactivated }

// sessionLastOrder is the latest time recorded for ss's close or for a
// removal through the API of a participant still out; zero if none.
func sessionLastOrder(ss *Session) time.Time {
	var last time.Time
	if ss.End != nil && isClose(ss.EndReason) {
		last = *ss.End
	}
	for _, p := range ss.Participants {
		if p.Removed && !p.Active() {
			if end := p.Timelog[len(p.Timelog)-1].End; end != nil && end.After(last) {
				last = *end
			}
		}
	}
	return last
}

// orderSecond is at in Unix seconds rounded up, kept within a uint32
// (zero: none); a room's lastOrder is never earlier than the order.
func orderSecond(at time.Time) uint32 {
	sec := at.Unix()
	if at.Nanosecond() > 0 {
		sec++
	}
	return uint32(min(max(sec, 1), math.MaxUint32))
}

// noteOrder raises the room's lastOrder to at, in a new version of the
// room. The room's ModifyIndex stays: nothing the API shows changed.
//
// A room's lastOrder is the latest time recorded for a close or a removal
// through the API among its sessions, in Unix seconds rounded up: what lets
// MissedOrders answer the usual heartbeat with one lookup. It is derived
// from the sessions, so never persisted; a restore computes it again. Four
// bytes that fit the padding after Room.Disabled: a room stays in its
// 320-byte size class (TestRoomSize).
func (s *Store) noteOrder(roomDocID string, at time.Time) {
	cur := s.roomByID(roomDocID)
	if cur == nil || orderSecond(at) <= cur.lastOrder {
		return
	}
	r := cur.clone()
	r.lastOrder = orderSecond(at)
	s.putRoom(cur, r)
}

// Missed is what the control plane ordered for a room that an edge which
// has had somebody in the room since a given moment may not have carried
// out (the call telling it was lost).
type Missed struct {
	// Closed: the room was closed at ClosedAt (its session ended through the
	// API, or the room was deactivated then); zero if not.
	ClosedAt time.Time
	// Disabled: the room is deactivated, so nobody may be in it at all.
	Disabled bool
	// Removed are participants removed through the API while they were on
	// this edge, with the moment of each removal.
	Removed []MissedRemoval
}

// MissedRemoval is one participant removed through the API.
type MissedRemoval struct {
	ParticipantID string
	At            time.Time
}

// MissedOrders answers, from the replicated state alone, which closes and
// removals of a room an edge may have missed, given when the oldest ticket
// of its participants there was issued (since: an order concerns only
// tickets issued before it, and both are the control plane's times).
// Orders are sent to edges once, retried from the control node that made
// them; this is what makes them outlive that node: whichever node the edge
// next talks to repeats them (docs/multi-edge.md, "Orders to edges").
func (s *Store) MissedOrders(roomID, edgeID string, since time.Time) Missed {
	var out Missed
	r := s.roomByRoomID(roomID)
	if r == nil {
		return out
	}
	if r.Disabled {
		out.Disabled = true
		return out
	}
	if !time.Unix(int64(r.lastOrder), 0).After(since) {
		// The usual heartbeat: nothing was ordered since the edge's oldest
		// ticket was issued.
		return out
	}
	it := s.iter(tSessions, "room", true, r.ID)
	for n := 0; n < missedWalk; n++ {
		raw := it.Next()
		if raw == nil {
			break
		}
		ss := raw.(*Session)
		if ss.RoomDocID != r.ID {
			break
		}
		// A session's start and an emptied session's end are edges' event
		// times, which no comparison with since (the control plane's time)
		// may rest on: an edge running behind reports a session that began
		// after a close as if it began before the oldest ticket. The walk
		// stops at a close alone.
		out.Removed = removedSince(ss, edgeID, since, out.Removed)
		if ss.End != nil && isClose(ss.EndReason) {
			// A close covers every ticket issued before it, and every
			// older session's removals with them.
			if ss.End.After(since) {
				out.ClosedAt = *ss.End
			}
			break
		}
	}
	return out
}

// removedSince appends the participants of ss removed through the API
// while on edgeID after since, and not back.
func removedSince(ss *Session, edgeID string, since time.Time, out []MissedRemoval) []MissedRemoval {
	for _, p := range ss.Participants {
		if !p.Removed || p.EdgeID != edgeID || p.Active() {
			continue
		}
		if end := p.Timelog[len(p.Timelog)-1].End; end != nil && end.After(since) {
			out = append(out, MissedRemoval{ParticipantID: p.ParticipantID, At: *end})
		}
	}
	return out
}
