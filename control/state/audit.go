package state

import "time"

// Audit hop kinds.
const (
	HopEdge    = "edge"    // an edge's SFU carried participants' media
	HopTURN    = "turn"    // an edge's TURN server relayed a participant
	HopCascade = "cascade" // a relay leg carried media between two edges
)

// AuditHop is one place that carried a session's media, with the first and
// last time it was seen doing so.
type AuditHop struct {
	Kind       string    `json:"kind"`
	EdgeID     string    `json:"edgeId"`
	Region     string    `json:"region"`
	PeerEdgeID string    `json:"peerEdgeId,omitempty"`
	PeerRegion string    `json:"peerRegion,omitempty"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
	Count      int       `json:"count"`
}

// Audit is the sovereignty record of one session.
type Audit struct {
	SessionID string     `json:"sessionId"`
	Hops      []AuditHop `json:"hops"`
}

func (a *Audit) clone() *Audit {
	c := *a
	c.Hops = append([]AuditHop(nil), a.Hops...)
	return &c
}

// RecordAudit adds hops an edge observed (TURN allocations, cascade legs) to
// the room's ongoing session; reports for a room without one are dropped.
type RecordAudit struct {
	RoomID string     `json:"roomId"`
	Hops   []AuditHop `json:"hops"`
}

func init() {
	register(CmdRecordAudit, func(s *Store, index uint64, c *RecordAudit) (any, error) {
		r := s.roomByRoomID(c.RoomID)
		if r == nil {
			return nil, errf(CodeNotFound, "room %q not found", c.RoomID)
		}
		ss := s.ongoingSession(r.ID)
		if ss == nil {
			return nil, nil
		}
		for _, h := range c.Hops {
			if h.Kind != HopTURN && h.Kind != HopCascade && h.Kind != HopEdge {
				continue
			}
			s.noteHop(ss.ID, h)
		}
		s.bump("sessions", index)
		return nil, nil
	})
}

func (s *Store) audit(sessionID string) *Audit { return one[*Audit](s, tAudits, "id", sessionID) }

// noteHop merges h into the session's audit: one entry per (kind, edge,
// peer), widening its time span.
func (s *Store) noteHop(sessionID string, h AuditHop) {
	a := &Audit{SessionID: sessionID}
	if cur := s.audit(sessionID); cur != nil {
		a = cur.clone()
	}
	defer s.put(tAudits, a)
	if h.Last.IsZero() {
		h.Last = h.First
	}
	for i := range a.Hops {
		e := &a.Hops[i]
		if e.Kind == h.Kind && e.EdgeID == h.EdgeID && e.PeerEdgeID == h.PeerEdgeID {
			if !h.First.IsZero() && (e.First.IsZero() || h.First.Before(e.First)) {
				e.First = h.First
			}
			if h.Last.After(e.Last) {
				e.Last = h.Last
			}
			if e.Region == "" {
				e.Region = h.Region
			}
			if e.PeerRegion == "" {
				e.PeerRegion = h.PeerRegion
			}
			e.Count++
			return
		}
	}
	h.Count = 1
	a.Hops = append(a.Hops, h)
}

// touchHop extends an existing hop's last time (a participant left an edge).
func (s *Store) touchHop(sessionID, kind, edgeID string, at time.Time) {
	cur := s.audit(sessionID)
	if cur == nil {
		return
	}
	var a *Audit
	for i := range cur.Hops {
		if e := &cur.Hops[i]; e.Kind == kind && e.EdgeID == edgeID && at.After(e.Last) {
			if a == nil {
				a = cur.clone()
			}
			a.Hops[i].Last = at
		}
	}
	if a != nil {
		s.put(tAudits, a)
	}
}

// SessionAudit returns the audit record of a session.
func (s *Store) SessionAudit(sessionID string) (*Audit, bool) {
	a := s.audit(sessionID)
	if a == nil {
		return nil, false
	}
	return a.clone(), true
}
