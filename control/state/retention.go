package state

import (
	"fmt"
	"time"
)

// Retention: with an operator's retention period set, the leader finds
// ended sessions (with their participant timelines, stats, leg stats and
// audit), finished webhook deliveries and edge event ids that are older
// than the period, and proposes PurgeExpired commands that list them, a
// small batch at a time. Apply re-checks every listed record against the
// cutoff the command carries (never the clock), so every replica removes
// exactly the same rows, and a record that changed since the leader looked
// (a redelivered delivery) stays. Pending deliveries are never removed.
//
// A removed session or delivery leaves a tombstone, so a lookup can say
// "removed by retention" rather than "not found" (ids are random: nothing
// else could tell the two apart). Tombstones are a few dozen bytes and are
// themselves dropped one retention period after the removal.

// Tombstone kinds.
const (
	KindSession  = "session"
	KindDelivery = "delivery"
)

// Tombstone records that retention removed a record.
type Tombstone struct {
	Kind      string    `json:"kind"`
	ID        string    `json:"id"`
	UserID    string    `json:"userId"`
	RoomID    string    `json:"roomId"`    // public room id (room-scoped tokens)
	RemovedAt time.Time `json:"removedAt"` // the purge command's time
	Index     uint64    `json:"index"`
}

// TombstoneRef names a tombstone.
type TombstoneRef struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// MaxPurgeBatch bounds what one PurgeExpired command may list, so one
// command stays a small log entry and a short Apply.
const MaxPurgeBatch = 2000

// PurgeExpired removes records that expired before Cutoff. At is the
// leader's clock when it chose them (tombstones carry it).
type PurgeExpired struct {
	At         time.Time      `json:"at"`
	Cutoff     time.Time      `json:"cutoff"`
	Sessions   []string       `json:"sessions,omitempty"`
	Deliveries []string       `json:"deliveries,omitempty"`
	Seen       []string       `json:"seen,omitempty"`
	Tombstones []TombstoneRef `json:"tombstones,omitempty"`
}

// Len is the number of records the command lists.
func (c *PurgeExpired) Len() int {
	return len(c.Sessions) + len(c.Deliveries) + len(c.Seen) + len(c.Tombstones)
}

// PurgeResult says how many listed records were removed.
type PurgeResult struct {
	Sessions   int `json:"sessions"`
	Deliveries int `json:"deliveries"`
	Seen       int `json:"seen"`
	Tombstones int `json:"tombstones"`
}

func init() {
	register(CmdPurgeExpired, applyPurgeExpired)
}

func applyPurgeExpired(s *Store, index uint64, c *PurgeExpired) (any, error) {
	if c.Cutoff.After(c.At) {
		return nil, errf(CodeInvalid, "retention cutoff %s is after the purge time %s", c.Cutoff, c.At)
	}
	if n := c.Len(); n > MaxPurgeBatch {
		return nil, errf(CodeInvalid, "a purge lists at most %d records, got %d", MaxPurgeBatch, n)
	}
	var res PurgeResult
	for _, id := range c.Sessions {
		ss := s.session(id)
		if ss == nil || ss.End == nil || !ss.End.Before(c.Cutoff) {
			continue
		}
		s.deleteSession(ss)
		s.putTombstone(&Tombstone{Kind: KindSession, ID: ss.ID, UserID: ss.UserID, RoomID: ss.RoomID, RemovedAt: c.At, Index: index})
		res.Sessions++
	}
	for _, id := range c.Deliveries {
		d := s.delivery(id)
		if d == nil || d.Status == DeliveryPending || !d.finishedAt().Before(c.Cutoff) {
			continue
		}
		s.recount(deliveryCounters(d), nil)
		s.del(tOutbox, d)
		s.putTombstone(&Tombstone{Kind: KindDelivery, ID: d.ID, UserID: d.UserID, RoomID: d.RoomID, RemovedAt: c.At, Index: index})
		res.Deliveries++
	}
	for _, id := range c.Seen {
		if r := one[*seenRow](s, tSeen, "id", id); r != nil && r.At.Before(c.Cutoff) {
			s.del(tSeen, r)
			res.Seen++
		}
	}
	for _, ref := range c.Tombstones {
		if t := s.tombstone(ref.Kind, ref.ID); t != nil && t.RemovedAt.Before(c.Cutoff) {
			s.del(tTombstones, t)
			res.Tombstones++
		}
	}
	if res.Sessions > 0 {
		s.bump("sessions", index)
		s.bump("stats", index)
	}
	if res.Deliveries > 0 {
		s.bump("outbox", index)
	}
	s.bump("tombstones", index)
	return &res, nil
}

// deleteSession removes an ended session and everything recorded about it.
func (s *Store) deleteSession(ss *Session) {
	s.recount(sessionCounters(ss), nil)
	s.del(tSessions, ss)
	if r := one[*statsRow](s, tStats, "id", ss.ID); r != nil {
		s.del(tStats, r)
	}
	if r := one[*legRow](s, tLegs, "id", ss.ID); r != nil {
		s.del(tLegs, r)
	}
	if a := s.audit(ss.ID); a != nil {
		s.del(tAudits, a)
	}
}

func (s *Store) putTombstone(t *Tombstone) {
	t.UserID, t.RoomID = intern(t.UserID), intern(t.RoomID)
	s.put(tTombstones, t)
}

func (s *Store) tombstone(kind, id string) *Tombstone {
	return one[*Tombstone](s, tTombstones, "id", kind, id)
}

// Removed returns the tombstone of a project's session or delivery (kind)
// that retention removed.
func (s *Store) Removed(userID, kind, id string) (*Tombstone, bool) {
	t := s.tombstone(kind, id)
	if t == nil || t.UserID != userID {
		return nil, false
	}
	c := *t
	return &c, true
}

// Expired lists up to limit records that expired before cutoff, oldest
// first: ended sessions, then finished deliveries, edge event ids and
// tombstones. Each kind is an index walk that stops at the cutoff.
func (s *Store) Expired(cutoff time.Time, limit int) PurgeExpired {
	if limit > MaxPurgeBatch {
		limit = MaxPurgeBatch
	}
	c := PurgeExpired{Cutoff: cutoff}
	left := func() bool { return c.Len() < limit }
	it := s.iter(tSessions, "ended", false)
	for v := it.Next(); v != nil && left(); v = it.Next() {
		ss := v.(*Session)
		if !ss.End.Before(cutoff) {
			break
		}
		c.Sessions = append(c.Sessions, ss.ID)
	}
	it = s.iter(tOutbox, "finished", false)
	for v := it.Next(); v != nil && left(); v = it.Next() {
		d := v.(*Delivery)
		if !d.finishedAt().Before(cutoff) {
			break
		}
		c.Deliveries = append(c.Deliveries, d.ID)
	}
	it = s.iter(tSeen, "at", false)
	for v := it.Next(); v != nil && left(); v = it.Next() {
		r := v.(*seenRow)
		if !r.At.Before(cutoff) {
			break
		}
		c.Seen = append(c.Seen, r.ID)
	}
	it = s.iter(tTombstones, "removed", false)
	for v := it.Next(); v != nil && left(); v = it.Next() {
		t := v.(*Tombstone)
		if !t.RemovedAt.Before(cutoff) {
			break
		}
		c.Tombstones = append(c.Tombstones, TombstoneRef{Kind: t.Kind, ID: t.ID})
	}
	return c
}

// RemovedMessage is the API's wording for a record retention removed.
func RemovedMessage(kind, id string, at time.Time) string {
	return fmt.Sprintf("%s %q was removed by the retention policy on %s", kind, id, at.UTC().Format(time.RFC3339))
}
