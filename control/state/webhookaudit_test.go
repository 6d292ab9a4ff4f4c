package state

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// sessionDeliveryTypes lists the event types of a session's deliveries.
func sessionDeliveryTypes(f *testFSM, sessionID string) string {
	var types []string
	f.Read(func(s *Store) {
		for _, d := range s.SessionDeliveries(sessionID) {
			types = append(types, d.EventType)
		}
	})
	return strings.Join(types, " ")
}

// twoSessions runs two one-participant sessions in room abcd-efgh-ijkl.
func twoSessions(t *testing.T, f *testFSM) (first, second string) {
	t.Helper()
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "")
	first, second = "111111111111111111111111", "222222222222222222222222"
	for i, sid := range []string{first, second} {
		at := t0.Add(time.Duration(i) * time.Hour)
		ev := sid[:4]
		if _, err := f.apply(CmdParticipantJoin, ParticipantJoin{EventID: ev + "j", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: at,
			NewSessionID: sid, NewDocID: "d" + sid[1:], IDs: []string{ev + "1", ev + "2"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.apply(CmdParticipantLeave, ParticipantLeave{EventID: ev + "l", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: at.Add(time.Minute),
			IDs: []string{ev + "3", ev + "4"}}); err != nil {
			t.Fatal(err)
		}
	}
	return first, second
}

// TestSessionEndedDeliveryHasSessionID: the session-ended delivery carries
// its session's id like the session's other events, so the session's audit
// (SessionDeliveries) and the delivery log show it. One stored without it
// (by an older version, restored from its snapshot) still counts, and is
// shown with the id of its body.
func TestSessionEndedDeliveryHasSessionID(t *testing.T) {
	f := newTestFSM(t)
	first, second := twoSessions(t, f)
	const want = "session-started participant-joined participant-left session-ended"
	for _, sid := range []string{first, second} {
		if got := sessionDeliveryTypes(f, sid); got != want {
			t.Fatalf("session %s's deliveries: %s, want %s", sid, got, want)
		}
	}
	f.Read(func(s *Store) {
		for _, sid := range []string{first, second} {
			rows := all[*Delivery](s.iter(tOutbox, "session", false, sid))
			if len(rows) != 4 || rows[3].EventType != "session-ended" || rows[3].SessionID != sid {
				t.Fatalf("session %s: the stored session-ended delivery does not carry the session id (%d indexed)", sid, len(rows))
			}
		}
	})
	var ended []*Delivery
	f.Read(func(s *Store) {
		ended, _ = s.DeliveriesPage(DeliveryFilter{UserID: "u1", EventType: "session-ended"}, Page{Limit: 10})
	})
	if len(ended) != 2 || ended[0].SessionID != second || ended[1].SessionID != first {
		t.Fatalf("session-ended deliveries in the log: %+v", ended)
	}

	// An older version's snapshot: session-ended stored without the id.
	var snap map[string]json.RawMessage
	if err := json.Unmarshal(persist(t, f.FSM), &snap); err != nil {
		t.Fatal(err)
	}
	var outbox []map[string]any
	if err := json.Unmarshal(snap["outbox"], &outbox); err != nil {
		t.Fatal(err)
	}
	stripped := 0
	for _, d := range outbox {
		if d["eventType"] == "session-ended" {
			delete(d, "sessionId")
			stripped++
		}
	}
	if stripped != 2 {
		t.Fatalf("%d session-ended rows in the snapshot", stripped)
	}
	snap["outbox"], _ = json.Marshal(outbox)
	b, _ := json.Marshal(snap)
	old := &testFSM{FSM: restoreBytes(t, b), t: t}
	old.Read(func(s *Store) {
		if n := len(all[*Delivery](s.iter(tOutbox, "session", false, first))); n != 3 {
			t.Fatalf("restored: the session index holds %d of the first session's deliveries, want 3 (not session-ended)", n)
		}
	})
	for _, sid := range []string{first, second} {
		if got := sessionDeliveryTypes(old, sid); got != want {
			t.Fatalf("restored: session %s's deliveries: %s, want %s", sid, got, want)
		}
	}
	old.Read(func(s *Store) {
		page, _ := s.DeliveriesPage(DeliveryFilter{UserID: "u1", EventType: "session-ended"}, Page{Limit: 10})
		if len(page) != 2 || page[0].SessionID != second || page[1].SessionID != first {
			t.Fatalf("restored: session-ended deliveries in the log: %+v", page)
		}
		if d, ok := s.Delivery("u1", page[1].ID); !ok || d.SessionID != first {
			t.Fatalf("restored: delivery %+v", d)
		}
	})
}

// TestLateOutcomeAfterGone: a 410 Gone fails what is queued for its
// endpoint; an attempt at one of those that was already under way reports
// later, and its outcome is recorded as it was (attempt count, status code),
// without a retry. One that never started stays failed without attempts.
func TestLateOutcomeAfterGone(t *testing.T) {
	f := newTestFSM(t)
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "")
	f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "e1", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: t0, NewSessionID: "111111111111111111111111", IDs: []string{"a", "b"}})
	f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "e2", RoomID: "abcd-efgh-ijkl", ParticipantID: "p2", At: t0, IDs: []string{"c"}})
	f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "e3", RoomID: "abcd-efgh-ijkl", ParticipantID: "p3", At: t0, IDs: []string{"d"}})
	var pending []*Delivery
	f.Read(func(s *Store) { pending = s.PendingDeliveries(0) })
	if len(pending) != 4 {
		t.Fatalf("%d deliveries queued, want 4", len(pending))
	}
	gone, delivered, retried, untried := pending[0], pending[1], pending[2], pending[3]
	done := t0.Add(time.Second)
	record := func(c RecordDelivery) *Delivery {
		t.Helper()
		v, err := f.apply(CmdRecordDelivery, c)
		if err != nil {
			t.Fatal(err)
		}
		return v.(*Delivery)
	}
	record(RecordDelivery{ID: gone.ID, AttemptedAt: t0, Status: DeliveryFailed, Attempts: 1, LastStatus: 410, EndpointGone: true, DoneAt: &done, LastError: "HTTP 410 Gone"})
	f.Read(func(s *Store) {
		for _, d := range []*Delivery{delivered, retried, untried} {
			if d, _ := s.Delivery("u1", d.ID); d.Status != DeliveryFailed || d.Attempts != 0 || d.LastError != goneSweepError {
				t.Fatalf("after the 410: %+v", d)
			}
		}
	})

	// Attempts that were in flight when the 410 came report now.
	got := record(RecordDelivery{ID: delivered.ID, AttemptedAt: t0, Status: DeliveryDelivered, Attempts: 1, LastStatus: 200, LatencyMs: 7, DoneAt: &done, SentFrom: "node0"})
	if got.Status != DeliveryDelivered || got.Attempts != 1 || got.LastStatus != 200 || got.LastError != "" || got.LastAttempt == nil || got.SentFrom != "node0" {
		t.Fatalf("an in-flight attempt that was delivered: %+v", got)
	}
	next := done.Add(5 * time.Second)
	got = record(RecordDelivery{ID: retried.ID, AttemptedAt: t0, Status: DeliveryPending, Attempts: 1, LastStatus: 503, LastError: "HTTP 503", NextAttempt: next})
	if got.Status != DeliveryFailed || got.Attempts != 1 || got.LastStatus != 503 || got.DoneAt == nil || !got.DoneAt.Equal(done) ||
		!strings.HasPrefix(got.LastError, "HTTP 503") || !strings.Contains(got.LastError, "410 Gone") {
		t.Fatalf("an in-flight attempt that would have been retried: %+v", got)
	}
	f.Read(func(s *Store) {
		if slices.ContainsFunc(s.PendingDeliveries(0), func(d *Delivery) bool { return d.ID == retried.ID }) {
			t.Fatal("the delivery is pending again after its endpoint answered 410")
		}
	})
	// Stale reports still change nothing: a repeat, and one for the 410.
	if v := record(RecordDelivery{ID: retried.ID, AttemptedAt: t0, Status: DeliveryDelivered, Attempts: 1, LastStatus: 200}); v.Status != DeliveryFailed || v.LastStatus != 503 {
		t.Fatalf("a repeated report overwrote the outcome: %+v", v)
	}
	if v := record(RecordDelivery{ID: gone.ID, Status: DeliveryDelivered, Attempts: 1}); v.Status != DeliveryFailed || v.LastStatus != 410 {
		t.Fatalf("a stale report overwrote the 410: %+v", v)
	}
	f.Read(func(s *Store) {
		if d, _ := s.Delivery("u1", untried.ID); d.Status != DeliveryFailed || d.Attempts != 0 || d.LastError != goneSweepError {
			t.Fatalf("never attempted: %+v", d)
		}
	})
}

// TestWebhookOriginsAnnounced: a node announces itself before its first
// attempt at one of a session's deliveries, so the audit lists it even when
// it dies during that attempt (no outcome recorded) and another node sends
// the delivery again; outcomes from announced nodes extend their entries,
// and a node is announced once per session.
func TestWebhookOriginsAnnounced(t *testing.T) {
	f := newTestFSM(t)
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "")
	const sid = "111111111111111111111111"
	f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "e1", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: t0, NewSessionID: sid, IDs: []string{"a", "b"}})
	var pending []*Delivery
	f.Read(func(s *Store) { pending = s.PendingDeliveries(0) })
	started, joined := pending[0], pending[1]
	need := func(id, node string) bool {
		var v bool
		f.Read(func(s *Store) { v = s.WebhookStartNeeded(id, node) })
		return v
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	// Node a announces, sends, and dies before recording the outcome.
	if !need(started.ID, "a") {
		t.Fatal("node a need not announce its first attempt")
	}
	f.apply(CmdRecordDelivery, RecordDelivery{ID: started.ID, Starting: true, Attempts: 0, AttemptedAt: at(1), SentFrom: "a", SentFromRegion: "eu-west"})
	if need(started.ID, "a") || need(joined.ID, "a") {
		t.Fatal("node a must announce itself once per session")
	}
	// Node b leads next: announces, sends the same attempt again, records.
	if !need(started.ID, "b") {
		t.Fatal("node b need not announce its first attempt")
	}
	f.apply(CmdRecordDelivery, RecordDelivery{ID: started.ID, Starting: true, Attempts: 0, AttemptedAt: at(5), SentFrom: "b", SentFromRegion: "eu-central"})
	done := at(6)
	f.apply(CmdRecordDelivery, RecordDelivery{ID: started.ID, AttemptedAt: at(5), Status: DeliveryDelivered, Attempts: 1, LastStatus: 200, DoneAt: &done, SentFrom: "b", SentFromRegion: "eu-central"})
	f.apply(CmdRecordDelivery, RecordDelivery{ID: joined.ID, AttemptedAt: at(7), Status: DeliveryDelivered, Attempts: 1, LastStatus: 200, DoneAt: &done, SentFrom: "b", SentFromRegion: "eu-central"})
	// A stale announcement (wrong count) and one of a finished delivery change nothing.
	f.apply(CmdRecordDelivery, RecordDelivery{ID: joined.ID, Starting: true, Attempts: 0, AttemptedAt: at(9), SentFrom: "c"})
	f.apply(CmdRecordDelivery, RecordDelivery{ID: started.ID, Starting: true, Attempts: 1, AttemptedAt: at(9), SentFrom: "c"})

	var origins []WebhookOrigin
	f.Read(func(s *Store) { origins = s.SessionWebhookOrigins(sid) })
	wantOrigins := []WebhookOrigin{
		{NodeID: "a", Region: "eu-west", First: at(1), Last: at(1), Attempts: 1},
		{NodeID: "b", Region: "eu-central", First: at(5), Last: at(7), Attempts: 2},
	}
	if !slices.Equal(origins, wantOrigins) {
		t.Fatalf("webhook origins:\n got %+v\nwant %+v", origins, wantOrigins)
	}
	// The delivery itself was recorded once, by b.
	f.Read(func(s *Store) {
		if d, _ := s.Delivery("u1", started.ID); d.Attempts != 1 || d.SentFrom != "b" || d.Status != DeliveryDelivered {
			t.Fatalf("delivery %+v", d)
		}
	})
	// The audit survives a snapshot.
	g := restoreBytes(t, persist(t, f.FSM))
	g.Read(func(s *Store) { origins = s.SessionWebhookOrigins(sid) })
	if !slices.Equal(origins, wantOrigins) {
		t.Fatalf("after a restore:\n got %+v\nwant %+v", origins, wantOrigins)
	}
}

// TestWebhookOriginsWithoutAnnouncements: attempts recorded without
// announcements (by versions before them) are credited to the node of each
// delivery's last attempt, counting deliveries, as the audit always did.
func TestWebhookOriginsWithoutAnnouncements(t *testing.T) {
	f := newTestFSM(t)
	first, _ := twoSessions(t, f)
	var pending []*Delivery
	f.Read(func(s *Store) { pending = s.SessionDeliveries(first) })
	for i, d := range pending {
		at := t0.Add(time.Duration(i) * time.Second)
		node := []string{"a", "b"}[i%2]
		f.apply(CmdRecordDelivery, RecordDelivery{ID: d.ID, AttemptedAt: at, Status: DeliveryDelivered, Attempts: 1, LastStatus: 200, DoneAt: &at, SentFrom: node, SentFromRegion: "r-" + node})
	}
	var origins []WebhookOrigin
	f.Read(func(s *Store) { origins = s.SessionWebhookOrigins(first) })
	want := []WebhookOrigin{
		{NodeID: "a", Region: "r-a", First: t0, Last: t0.Add(2 * time.Second), Attempts: 2},
		{NodeID: "b", Region: "r-b", First: t0.Add(time.Second), Last: t0.Add(3 * time.Second), Attempts: 2}, // the last one is session-ended
	}
	if !slices.Equal(origins, want) {
		t.Fatalf("webhook origins:\n got %+v\nwant %+v", origins, want)
	}
}
