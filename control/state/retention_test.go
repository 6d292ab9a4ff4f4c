package state

import (
	"errors"
	"testing"
	"time"
)

// TestPurgeExpired: a purge removes exactly the listed records that are
// expired at its cutoff (ended sessions with their stats, leg stats and
// audit; finished deliveries; edge event ids), leaves tombstones, keeps
// counters right, never removes an ongoing session or a pending delivery,
// and later drops its tombstones.
func TestPurgeExpired(t *testing.T) {
	w := &world{f: newTestFSM(t)}
	w.room(t, "u1", "room-aaaa-aaaa", true)
	w.room(t, "u1", "room-bbbb-bbbb", true)
	// The old session, with stats, leg stats and an audit.
	if _, err := w.f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "old-join", RoomID: "room-aaaa-aaaa", ParticipantID: "p", EdgeID: "e1", At: t0,
		NewSessionID: w.id(), IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	w.f.apply(CmdAppendStats, AppendStats{Samples: []RoomSample{{RoomID: "room-aaaa-aaaa", Sample: StatsSample{ParticipantID: "p", Time: t0}}},
		Legs: []RoomLegSample{{RoomID: "room-aaaa-aaaa", Leg: LegSample{EdgeID: "e1", Time: t0}}}})
	if _, err := w.f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "old-leave", RoomID: "room-aaaa-aaaa", ParticipantID: "p", EdgeID: "e1", At: t0.Add(time.Minute),
		IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	w.f.Read(func(s *Store) {
		ss := s.Sessions(SessionFilter{UserID: "u1"})[0]
		if _, ok := s.SessionAudit(ss.ID); !ok || s.SessionStats(ss.ID) == nil || s.SessionLegStats(ss.ID) == nil {
			t.Fatal("the old session has no stats or audit to remove")
		}
	})
	if _, err := w.f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "late-join", RoomID: "room-aaaa-aaaa", ParticipantID: "q", EdgeID: "e1", At: t0.Add(time.Hour),
		NewSessionID: w.id(), IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	w.f.apply(CmdAppendStats, AppendStats{Samples: []RoomSample{{RoomID: "room-aaaa-aaaa", Sample: StatsSample{ParticipantID: "q", Time: t0.Add(time.Hour)}}},
		Legs: []RoomLegSample{{RoomID: "room-aaaa-aaaa", Leg: LegSample{EdgeID: "e1", Time: t0.Add(time.Hour)}}}})
	if _, err := w.f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "late-leave", RoomID: "room-aaaa-aaaa", ParticipantID: "q", EdgeID: "e1", At: t0.Add(2 * time.Hour),
		IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	w.session(t, "room-bbbb-bbbb", t0, time.Time{}) // old but ongoing
	var old, late *Session
	var pending []*Delivery
	w.f.Read(func(s *Store) {
		ended := s.Sessions(SessionFilter{UserID: "u1", Status: "ended"})
		late, old = ended[0], ended[1]
		pending = s.PendingDeliveries(0)
	})
	// Finish every delivery of the old session at t0+1m, and one of the
	// late session's at t0+3h; the rest stay pending.
	for _, d := range pending {
		done := t0.Add(time.Minute)
		if d.SessionID != old.ID && d.EventType != "session-ended" {
			if d.EventType != "participant-joined" || d.CreatedAt.Before(t0.Add(time.Hour)) {
				continue
			}
			done = t0.Add(3 * time.Hour)
		}
		if _, err := w.f.apply(CmdRecordDelivery, RecordDelivery{ID: d.ID, Status: DeliveryDelivered, Attempts: 1, DoneAt: &done, AttemptedAt: done}); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := t0.Add(90 * time.Minute)
	var c PurgeExpired
	w.f.Read(func(s *Store) { c = s.Expired(cutoff, MaxPurgeBatch) })
	if len(c.Sessions) != 1 || c.Sessions[0] != old.ID {
		t.Fatalf("expired sessions %v, want only %s", c.Sessions, old.ID)
	}
	if len(c.Deliveries) == 0 || len(c.Seen) == 0 {
		t.Fatalf("expected expired deliveries and event ids: %+v", c)
	}
	// The leader may list more than is expired by the time Apply runs (or
	// than it should): Apply keeps whatever is not expired at the cutoff.
	var notExpired []string
	w.f.Read(func(s *Store) {
		for _, d := range allRows[*Delivery](s, tOutbox) {
			if d.Status == DeliveryPending || !d.finishedAt().Before(cutoff) {
				notExpired = append(notExpired, d.ID)
			}
		}
		if ss, ok := s.OngoingSession(one[*Room](s, tRooms, "roomId", "room-bbbb-bbbb").ID); ok {
			c.Sessions = append(c.Sessions, ss.ID)
		}
	})
	c.Sessions = append(c.Sessions, late.ID)
	c.Deliveries = append(c.Deliveries, notExpired...)
	at := t0.Add(100 * 24 * time.Hour)

	bad := c
	bad.At, bad.Cutoff = cutoff, at
	before := persist(t, w.f.FSM)
	if _, err := w.f.apply(CmdPurgeExpired, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cutoff after the purge time: %v", err)
	}
	big := PurgeExpired{At: at, Cutoff: cutoff, Seen: make([]string, MaxPurgeBatch+1)}
	if _, err := w.f.apply(CmdPurgeExpired, big); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized batch: %v", err)
	}
	if after := persist(t, w.f.FSM); len(after) != len(before) {
		t.Fatal("a refused purge changed the state")
	}

	c.At, c.Cutoff = at, cutoff
	v, err := w.f.apply(CmdPurgeExpired, c)
	if err != nil {
		t.Fatal(err)
	}
	res := v.(*PurgeResult)
	w.f.Read(func(s *Store) {
		if res.Sessions != 1 || s.session(old.ID) != nil {
			t.Fatalf("purge removed %d sessions; old session still there: %v", res.Sessions, s.session(old.ID) != nil)
		}
		if s.session(late.ID) == nil || len(s.OngoingSessions()) != 1 {
			t.Fatal("a session that had not expired was removed")
		}
		if s.SessionStats(old.ID) != nil || s.SessionLegStats(old.ID) != nil {
			t.Fatal("stats of a removed session stayed")
		}
		if _, ok := s.SessionAudit(old.ID); ok {
			t.Fatal("audit of a removed session stayed")
		}
		if s.SessionStats(late.ID) == nil || s.SessionLegStats(late.ID) == nil {
			t.Fatal("stats of a kept session were removed")
		}
		for _, id := range notExpired {
			if s.delivery(id) == nil {
				t.Fatalf("delivery %s (pending or finished after the cutoff) was removed", id)
			}
		}
		if res.Deliveries != len(c.Deliveries)-len(notExpired) {
			t.Fatalf("removed %d deliveries, want %d", res.Deliveries, len(c.Deliveries)-len(notExpired))
		}
		tomb, ok := s.Removed("u1", KindSession, old.ID)
		if !ok || !tomb.RemovedAt.Equal(at) || tomb.RoomID != "room-aaaa-aaaa" {
			t.Fatalf("tombstone %+v", tomb)
		}
		if _, ok := s.Removed("u2", KindSession, old.ID); ok {
			t.Fatal("another project sees the tombstone")
		}
		if _, ok := s.Removed("u1", KindSession, late.ID); ok {
			t.Fatal("tombstone for a kept session")
		}
		if one[*seenRow](s, tSeen, "id", "late-leave") == nil || one[*seenRow](s, tSeen, "id", "late-join") != nil {
			t.Fatal("edge event ids: the one before the cutoff must go, the one after it stay")
		}
		checkCounters(t, s)
		checkLists(t, s)
	})
	// One retention period after the removal the tombstones go too.
	w.f.Read(func(s *Store) { c = s.Expired(at.Add(time.Second), MaxPurgeBatch) })
	if len(c.Tombstones) != 1+res.Deliveries {
		t.Fatalf("expired tombstones %d, want %d", len(c.Tombstones), 1+res.Deliveries)
	}
	c.At, c.Cutoff = at.Add(100*24*time.Hour), at.Add(time.Second)
	if _, err := w.f.apply(CmdPurgeExpired, c); err != nil {
		t.Fatal(err)
	}
	w.f.Read(func(s *Store) {
		if _, ok := s.Removed("u1", KindSession, old.ID); ok {
			t.Fatal("tombstone outlived its period")
		}
		checkCounters(t, s)
	})
}

// TestExpiredBatches: the leader's candidate list stops at the limit and at
// the cutoff, oldest first, and successive purges drain everything.
func TestExpiredBatches(t *testing.T) {
	w := &world{f: newTestFSM(t)}
	w.room(t, "u1", "room-aaaa-aaaa", false)
	for i := 0; i < 25; i++ {
		start := t0.Add(time.Duration(i) * time.Hour)
		w.session(t, "room-aaaa-aaaa", start, start.Add(time.Minute))
	}
	cutoff := t0.Add(20 * time.Hour) // sessions 0..19 ended before it
	removed := 0
	for round := 0; ; round++ {
		var c PurgeExpired
		w.f.Read(func(s *Store) { c = s.Expired(cutoff, 7) })
		if c.Len() > 7 {
			t.Fatalf("batch of %d over the limit", c.Len())
		}
		if c.Len() == 0 {
			break
		}
		c.At, c.Cutoff = cutoff, cutoff
		v, err := w.f.apply(CmdPurgeExpired, c)
		if err != nil {
			t.Fatal(err)
		}
		removed += v.(*PurgeResult).Sessions
		if round > 20 {
			t.Fatal("purges do not converge")
		}
	}
	w.f.Read(func(s *Store) {
		left := s.Sessions(SessionFilter{UserID: "u1"})
		if removed != 20 || len(left) != 5 || left[4].Start != t0.Add(20*time.Hour) {
			t.Fatalf("removed %d, left %d (oldest %v)", removed, len(left), left[len(left)-1].Start)
		}
		checkCounters(t, s)
	})
}
