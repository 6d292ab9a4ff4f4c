package state

import (
	"slices"
	"time"
)

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
	// Webhooks are the control nodes that sent the session's webhook
	// deliveries (see WebhookOrigin). Older versions kept none: the
	// deliveries' last-attempt nodes stand in for them
	// (Store.SessionWebhookOrigins).
	Webhooks []WebhookOrigin `json:"webhooks,omitempty"`
}

// WebhookOrigin is a control node that made attempts at a session's
// webhook deliveries. The dispatcher announces a node before its first
// attempt at one of the session's deliveries (RecordDelivery with
// Starting), so a node that died during that attempt, before its outcome
// could be recorded, is listed all the same; the outcomes it records later
// extend the entry.
type WebhookOrigin struct {
	NodeID string    `json:"nodeId"`
	Region string    `json:"region,omitempty"`
	First  time.Time `json:"first"` // start of its first attempt
	Last   time.Time `json:"last"`  // start of its latest attempt
	// Attempts counts the attempts the store knows the node started: every
	// recorded outcome, and the announced attempt until its outcome is
	// recorded (or for good, when it never is). An attempt cut off by the
	// node's death after the first one of the session is not counted.
	Attempts int `json:"attempts"`
	// Announced is the attempt ("<delivery id>#<n>") announced and counted
	// but whose outcome is not recorded yet.
	Announced string `json:"announced,omitempty"`
}

func (a *Audit) clone() *Audit {
	c := *a
	c.Hops = append([]AuditHop(nil), a.Hops...)
	c.Webhooks = append([]WebhookOrigin(nil), a.Webhooks...)
	return &c
}

func attemptKey(deliveryID string, attempt int) string { return deliveryID + "#" + itoa(attempt) }

// noteWebhookStart lists node among the session's webhook origins before
// it makes attempt number attempt at delivery id.
func (s *Store) noteWebhookStart(sessionID, node, region, id string, attempt int, at time.Time) {
	a := &Audit{SessionID: sessionID}
	if cur := s.audit(sessionID); cur != nil {
		a = cur.clone()
	}
	i := slices.IndexFunc(a.Webhooks, func(w WebhookOrigin) bool { return w.NodeID == node })
	if i < 0 {
		a.Webhooks = append(a.Webhooks, WebhookOrigin{NodeID: node, Region: region, First: at})
		i = len(a.Webhooks) - 1
	}
	w := &a.Webhooks[i]
	if w.Region == "" {
		w.Region = region
	}
	if at.Before(w.First) {
		w.First = at
	}
	if at.After(w.Last) {
		w.Last = at
	}
	w.Attempts++
	w.Announced = attemptKey(id, attempt)
	s.put(tAudits, a)
}

// noteWebhookOutcome extends node's entry among the session's webhook
// origins with a recorded attempt. A node without an entry (its attempts
// predate announcements) is left to the deliveries' last-attempt nodes.
func (s *Store) noteWebhookOutcome(sessionID, node, id string, attempt int, at time.Time) {
	cur := s.audit(sessionID)
	if cur == nil {
		return
	}
	i := slices.IndexFunc(cur.Webhooks, func(w WebhookOrigin) bool { return w.NodeID == node })
	if i < 0 {
		return
	}
	a := cur.clone()
	w := &a.Webhooks[i]
	if w.Announced == attemptKey(id, attempt) {
		w.Announced = "" // counted when announced
	} else {
		w.Attempts++
	}
	if at.After(w.Last) {
		w.Last = at
	}
	if !at.IsZero() && at.Before(w.First) {
		w.First = at
	}
	s.put(tAudits, a)
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
