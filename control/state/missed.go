package state

import "time"

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
// reads: an edge's oldest connection normally predates one or two of them.
const missedWalk = 16

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
	if ss := s.ongoingSession(r.ID); ss != nil && !ss.Start.After(since) {
		// The usual heartbeat: the session that is on began before the
		// edge's oldest ticket was issued, so every earlier one ended
		// before it; only this one's removals can be news.
		out.Removed = removedSince(ss, edgeID, since, nil)
		return out
	}
	it := s.iter(tSessions, "room", true, r.ID)
	for n := 0; n < missedWalk; n++ {
		raw := it.Next()
		if raw == nil {
			break
		}
		ss := raw.(*Session)
		if ss.RoomDocID != r.ID || ss.End != nil && !ss.End.After(since) {
			break // sessions that ended before the edge's oldest ticket
		}
		out.Removed = removedSince(ss, edgeID, since, out.Removed)
		if ss.End != nil && (ss.EndReason == ReasonEndedByAPI || ss.EndReason == ReasonDeactivated) {
			// A close covers every ticket issued before it, and every
			// older session's removals with them.
			out.ClosedAt = *ss.End
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
