package state

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// world is a store with several projects, rooms, sessions (ties in start
// time included) and deliveries in every status, built through Apply.
type world struct {
	f    *testFSM
	next int
}

func (w *world) id() string {
	w.next++
	return fmt.Sprintf("%024x", w.next)
}

func (w *world) room(t *testing.T, user, roomID string, hook bool) {
	t.Helper()
	r := Room{ID: w.id(), RoomID: roomID, UserID: user, APIKey: "key-" + user, CreatedAt: t0}
	if hook {
		r.Webhook = &RoomWebhook{EndPoint: "https://hooks.example/" + user}
	}
	if _, err := w.f.apply(CmdCreateRoom, CreateRoom{Room: r}); err != nil {
		t.Fatal(err)
	}
}

// session runs one session in a room: p joins at start, and leaves at end
// unless end is zero (the session stays ongoing).
func (w *world) session(t *testing.T, roomID string, start, end time.Time) {
	t.Helper()
	if _, err := w.f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "j" + w.id(), RoomID: roomID, ParticipantID: "p", Name: "P", EdgeID: "e1", At: start,
		NewSessionID: w.id(), NewDocID: w.id(), IDs: []string{w.id(), w.id()}}); err != nil {
		t.Fatal(err)
	}
	if !end.IsZero() {
		if _, err := w.f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "l" + w.id(), RoomID: roomID, ParticipantID: "p", EdgeID: "e1", At: end,
			IDs: []string{w.id(), w.id()}}); err != nil {
			t.Fatal(err)
		}
	}
}

func buildWorld(t *testing.T) *world {
	t.Helper()
	w := &world{f: newTestFSM(t)}
	for i := 0; i < 12; i++ {
		w.room(t, "u1", fmt.Sprintf("u1aa-room-%04d", i), i%3 != 0)
	}
	for i := 0; i < 5; i++ {
		w.room(t, "u2", fmt.Sprintf("u2aa-room-%04d", i), true)
	}
	// Sessions: three rounds over u1's rooms; rounds share start times
	// across rooms (ties broken by creation), the last round stays open in
	// every other room.
	for round := 0; round < 3; round++ {
		for i := 0; i < 12; i++ {
			start := t0.Add(time.Duration(round)*time.Hour + time.Duration(i%4)*time.Minute)
			end := start.Add(10 * time.Minute)
			if round == 2 && i%2 == 0 {
				end = time.Time{}
			}
			w.session(t, fmt.Sprintf("u1aa-room-%04d", i), start, end)
		}
	}
	for i := 0; i < 5; i++ {
		w.session(t, fmt.Sprintf("u2aa-room-%04d", i), t0, t0.Add(time.Minute))
	}
	// Deliveries in every status.
	var pending []*Delivery
	w.f.Read(func(s *Store) { pending = s.PendingDeliveries(0) })
	done := t0.Add(2 * time.Hour)
	for i, d := range pending {
		switch i % 3 {
		case 0:
			w.f.apply(CmdRecordDelivery, RecordDelivery{ID: d.ID, Status: DeliveryDelivered, Attempts: 1, DoneAt: &done, AttemptedAt: done})
		case 1:
			w.f.apply(CmdRecordDelivery, RecordDelivery{ID: d.ID, Status: DeliveryFailed, Attempts: 1, DoneAt: &done, AttemptedAt: done})
		}
	}
	return w
}

// allRows walks a table's primary index (the test's brute-force reference).
func allRows[T any](s *Store, table string) []T { return all[T](s.iter(table, "id", false)) }

func wantSessions(s *Store, f SessionFilter) []*Session {
	var out []*Session
	for _, ss := range allRows[*Session](s, tSessions) {
		if ss.UserID != f.UserID || f.RoomDocID != "" && ss.RoomDocID != f.RoomDocID || f.Status != "" && ss.Status() != f.Status ||
			f.StartAfter != nil && ss.Start.Before(*f.StartAfter) || f.StartBefore != nil && ss.Start.After(*f.StartBefore) {
			continue
		}
		out = append(out, ss)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.After(out[j].Start)
		}
		return out[i].CreateIndex > out[j].CreateIndex
	})
	return out
}

func wantDeliveries(s *Store, f DeliveryFilter) []*Delivery {
	var out []*Delivery
	for _, d := range allRows[*Delivery](s, tOutbox) {
		if d.UserID != f.UserID || f.RoomID != "" && d.RoomID != f.RoomID || f.Status != "" && d.Status != f.Status ||
			f.EventType != "" && d.EventType != f.EventType || f.URL != "" && d.URL != f.URL {
			continue
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return outboxPos(out[i]) > outboxPos(out[j]) })
	return out
}

func wantRooms(s *Store, user string) []*Room {
	var out []*Room
	for _, r := range allRows[*Room](s, tRooms) {
		if r.UserID == user {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex > out[j].CreateIndex })
	return out
}

func ids[T any](rows []T, id func(T) string) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, id(r))
	}
	return out
}

// checkPages compares every page of a list (several page sizes, one page
// past the end) with the reference list.
func checkPages[T any](t *testing.T, name string, want []T, id func(T) string, page func(Page) ([]T, int)) {
	t.Helper()
	for _, per := range []int{1, 3, 7, 20} {
		for pg := 1; (pg-1)*per <= len(want)+per; pg++ {
			p := PageOf(pg, per)
			got, total := page(p)
			if total != len(want) {
				t.Fatalf("%s perPage=%d page=%d: total %d, want %d", name, per, pg, total, len(want))
			}
			lo, hi := min(p.Offset, len(want)), min(p.Offset+per, len(want))
			if g, w := ids(got, id), ids(want[lo:hi], id); !reflect.DeepEqual(g, w) {
				t.Fatalf("%s perPage=%d page=%d:\n got %v\nwant %v", name, per, pg, g, w)
			}
		}
	}
}

func roomID(r *Room) string        { return r.ID }
func sessionID(ss *Session) string { return ss.ID }
func deliveryID(d *Delivery) string {
	return d.ID
}

// checkLists compares every list the API offers with a brute-force walk of
// the whole table, page by page, and every counter with a recount.
func checkLists(t *testing.T, s *Store) {
	t.Helper()
	for _, user := range []string{"u1", "u2", "nobody"} {
		checkPages(t, "rooms "+user, wantRooms(s, user), roomID, func(p Page) ([]*Room, int) { return s.RoomsPage(user, p) })
		filters := []SessionFilter{{UserID: user}, {UserID: user, Status: "ongoing"}, {UserID: user, Status: "ended"}}
		after, before := t0.Add(time.Hour), t0.Add(time.Hour+2*time.Minute)
		filters = append(filters, SessionFilter{UserID: user, StartAfter: &after}, SessionFilter{UserID: user, StartBefore: &before},
			SessionFilter{UserID: user, StartAfter: &after, StartBefore: &before}, SessionFilter{UserID: user, Status: "ended", StartAfter: &after, StartBefore: &before})
		for _, r := range wantRooms(s, user)[:min(3, len(wantRooms(s, user)))] {
			filters = append(filters, SessionFilter{UserID: user, RoomDocID: r.ID}, SessionFilter{UserID: user, RoomDocID: r.ID, Status: "ended"},
				SessionFilter{UserID: user, RoomDocID: r.ID, Status: "ongoing"}, SessionFilter{UserID: user, RoomDocID: r.ID, StartBefore: &before},
				// another project asking for this room's sessions sees none
				SessionFilter{UserID: user + "-other", RoomDocID: r.ID}, SessionFilter{UserID: user + "-other", RoomDocID: r.ID, Status: "ended"})
		}
		for _, f := range filters {
			checkPages(t, fmt.Sprintf("sessions %+v", f), wantSessions(s, f), sessionID, func(p Page) ([]*Session, int) { return s.SessionsPage(f, p) })
		}
		dfs := []DeliveryFilter{{UserID: user}, {UserID: user, EventType: "participant-left"}, {UserID: user, URL: "https://hooks.example/" + user}}
		for _, st := range []string{DeliveryPending, DeliveryDelivered, DeliveryFailed} {
			dfs = append(dfs, DeliveryFilter{UserID: user, Status: st}, DeliveryFilter{UserID: user, Status: st, EventType: "session-ended"})
		}
		dfs = append(dfs, DeliveryFilter{UserID: user, EventType: "participant-left", URL: "https://hooks.example/" + user},
			DeliveryFilter{UserID: user, EventType: "session-ended", URL: "https://hooks.example/nowhere"})
		for _, r := range wantRooms(s, user)[:min(2, len(wantRooms(s, user)))] {
			dfs = append(dfs, DeliveryFilter{UserID: user, RoomID: r.RoomID}, DeliveryFilter{UserID: user, RoomID: r.RoomID, Status: DeliveryDelivered},
				DeliveryFilter{UserID: user, RoomID: r.RoomID, EventType: "participant-left"})
			// another project asking for this room's deliveries sees none
			dfs = append(dfs, DeliveryFilter{UserID: user + "-other", RoomID: r.RoomID})
		}
		for _, f := range dfs {
			checkPages(t, fmt.Sprintf("deliveries %+v", f), wantDeliveries(s, f), deliveryID, func(p Page) ([]*Delivery, int) { return s.DeliveriesPage(f, p) })
		}
	}
	checkSessionDeliveries(t, s)
	checkCounters(t, s)
}

// checkSessionDeliveries holds each session's deliveries (its audit view)
// to a walk of the log, and says how many sessions have any.
func checkSessionDeliveries(t *testing.T, s *Store) int {
	t.Helper()
	withDeliveries := 0
	for _, ss := range allRows[*Session](s, tSessions) {
		var want []*Delivery
		for _, d := range allRows[*Delivery](s, tOutbox) {
			if d.SessionID == ss.ID {
				want = append(want, d)
			}
		}
		slices.SortFunc(want, func(a, b *Delivery) int { return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Sub, b.Sub)) })
		if got, want := ids(s.SessionDeliveries(ss.ID), deliveryID), ids(want, deliveryID); !slices.Equal(got, want) {
			t.Fatalf("session %s's deliveries: %v, want %v", ss.ID, got, want)
		}
		if len(want) > 0 {
			withDeliveries++
		}
	}
	return withDeliveries
}

// checkCounters recounts every counter from the tables.
func checkCounters(t *testing.T, s *Store) {
	t.Helper()
	want := map[string]int{}
	add := func(keys []string) {
		for _, k := range keys {
			want[k]++
		}
	}
	for _, r := range allRows[*Room](s, tRooms) {
		add(roomCounters(r))
	}
	for _, ss := range allRows[*Session](s, tSessions) {
		add(sessionCounters(ss))
	}
	for _, d := range allRows[*Delivery](s, tOutbox) {
		add(deliveryCounters(d))
	}
	for _, r := range allRows[*requestRecord](s, tRequests) {
		add([]string{requestsCounter(r.Key)})
	}
	for _, j := range allRows[*Job](s, tJobs) {
		add(jobCounters(j))
	}
	got := map[string]int{}
	for _, c := range allRows[*counter](s, tCounters) {
		got[c.Key] = c.N
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("counters differ from the tables:\n got %v\nwant %v", got, want)
	}
}

// TestListsAreIndexWalks: every page of every list (rooms, sessions by
// project/status/room/date, deliveries by project/status/room/event/url)
// equals the brute-force answer, with totals, before and after retention
// deletes rows from the middle of the lists, and after a restore.
func TestListsAreIndexWalks(t *testing.T) {
	w := buildWorld(t)
	w.f.Read(func(s *Store) {
		checkLists(t, s)
		if n := checkSessionDeliveries(t, s); n < 10 {
			t.Fatalf("only %d sessions have deliveries: too few to test", n)
		}
	})

	// Deactivating rooms changes no list's membership.
	if _, err := w.f.apply(CmdDeactivateRoom, DeactivateRoom{UserID: "u1", RoomID: "u1aa-room-0000", At: t0.Add(3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	w.f.Read(func(s *Store) { checkLists(t, s) })

	// Retention removes the first round's sessions and the finished
	// deliveries: holes in the middle of the orderings.
	var c PurgeExpired
	w.f.Read(func(s *Store) { c = s.Expired(t0.Add(30*time.Minute), MaxPurgeBatch) })
	c.At, c.Cutoff = t0.Add(48*time.Hour), t0.Add(30*time.Minute)
	if len(c.Sessions) == 0 {
		t.Fatal("nothing expired")
	}
	if _, err := w.f.apply(CmdPurgeExpired, c); err != nil {
		t.Fatal(err)
	}
	w.f.Read(func(s *Store) { checkLists(t, s) })

	g := restoreBytes(t, persist(t, w.f.FSM))
	g.Read(func(s *Store) { checkLists(t, s) })
}

// TestFailedCommandChangesNothing: a command refused halfway leaves no
// trace of its first half (the write transaction is aborted).
func TestFailedCommandChangesNothing(t *testing.T) {
	w := &world{f: newTestFSM(t)}
	w.room(t, "u1", "room-aaaa-aaaa", true)
	before := persist(t, w.f.FSM)
	_, err := w.f.apply(CmdEnqueueEvents, EnqueueEvents{Events: []EnqueueEvent{
		{RoomID: "room-aaaa-aaaa", EventID: "ev1", EventType: "recording-started", Data: json.RawMessage(`{}`), At: t0},
		{RoomID: "no-such-room", EventID: "ev2", EventType: "recording-started", Data: json.RawMessage(`{}`), At: t0},
	}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("enqueue into a missing room: %v", err)
	}
	_, err = w.f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "join-1", RoomID: "no-such-room", ParticipantID: "p", At: t0, NewSessionID: w.id()})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("join a missing room: %v", err)
	}
	after := persist(t, w.f.FSM)
	// Only the applied index moved.
	var a, b map[string]json.RawMessage
	json.Unmarshal(before, &a)
	json.Unmarshal(after, &b)
	delete(a, "appliedIndex")
	delete(b, "appliedIndex")
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("a refused command changed the state:\nbefore %s\nafter  %s", before, after)
	}
}

// TestRoomsShareWebhookConfigSafely: rooms with the same webhook config
// share one copy in memory (the ≤ 2 KB per room budget), yet a room with
// the same endpoint but other events keeps its own events, a room read from
// the store is the caller's to change, and a restored store answers alike.
func TestRoomsShareWebhookConfigSafely(t *testing.T) {
	f := newTestFSM(t)
	create := func(id, roomID string, events ...string) {
		t.Helper()
		if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: id, RoomID: roomID, UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0,
			Webhook: &RoomWebhook{EndPoint: "https://hooks.example/x", Events: events}}}); err != nil {
			t.Fatal(err)
		}
	}
	create("aaaaaaaaaaaaaaaaaaaaaaaa", "room-aaaa-aaaa", "session-started", "session-ended")
	create("bbbbbbbbbbbbbbbbbbbbbbbb", "room-bbbb-bbbb", "session-started", "session-ended")
	create("cccccccccccccccccccccccc", "room-cccc-cccc", "participant-joined")
	check := func(fsm *FSM) {
		t.Helper()
		fsm.Read(func(s *Store) {
			a, _ := s.Room("u1", "room-aaaa-aaaa")
			a.Webhook.Events[0], a.Webhook.EndPoint = "changed", "https://elsewhere.example/"
			for ref, want := range map[string][]string{"room-aaaa-aaaa": {"session-started", "session-ended"}, "room-bbbb-bbbb": {"session-started", "session-ended"},
				"room-cccc-cccc": {"participant-joined"}} {
				r, _ := s.Room("u1", ref)
				if r.Webhook.EndPoint != "https://hooks.example/x" || !reflect.DeepEqual(r.Webhook.Events, want) {
					t.Errorf("%s: webhook %+v, want events %v", ref, r.Webhook, want)
				}
			}
		})
	}
	check(f.FSM)
	check(restoreBytes(t, persist(t, f.FSM)))
}

// TestCreateResultIsTheCallersToChange: a create answers with the room it
// stored, which the state machine copies only where the result leaves it as
// a value (a request's result is encoded instead): changing what a create
// returned, created or found by its customRoomId, leaves the store as it was.
func TestCreateResultIsTheCallersToChange(t *testing.T) {
	f := newTestFSM(t)
	created := mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "my-room")
	v, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "bbbbbbbbbbbbbbbbbbbbbbbb", RoomID: "zzzz-zzzz-zzzz", CustomRoomID: "my-room", UserID: "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	found := v.(*CreateRoomResult).Room
	f.Read(func(s *Store) {
		want, _ := s.Room("u1", "abcd-efgh-ijkl")
		for _, r := range []*Room{created, found} {
			r.Disabled, r.MaxParticipants, r.Webhook.EndPoint, r.Webhook.Events[0] = true, 7, "https://elsewhere.example/", "changed"
		}
		got, _ := s.Room("u1", "abcd-efgh-ijkl")
		if !reflect.DeepEqual(got, want) || got.Webhook.EndPoint != "https://hooks.example/x" || got.Webhook.Events[0] != "participant-*" {
			t.Errorf("the store changed with a create's result: %+v (webhook %+v), was %+v", got, got.Webhook, want)
		}
	})
}

// TestRoomsWithOneWebhookConfigShareIt: stored rooms with equal webhook
// configs point at one copy, created one by one, in one batch, or restored;
// another event list, or the same events in another order, is another copy.
func TestRoomsWithOneWebhookConfigShareIt(t *testing.T) {
	f := newTestFSM(t)
	hook := func(events ...string) *RoomWebhook {
		return &RoomWebhook{EndPoint: "https://hooks.example/shared", Events: events}
	}
	rooms := []Room{
		{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", RoomID: "aaaa-aaaa-aaaa", UserID: "u1", Webhook: hook("session-started", "session-ended")},
		{ID: "bbbbbbbbbbbbbbbbbbbbbbbb", RoomID: "bbbb-bbbb-bbbb", UserID: "u2", Webhook: hook("session-started", "session-ended")},
		{ID: "cccccccccccccccccccccccc", RoomID: "cccc-cccc-cccc", UserID: "u1", Webhook: hook("session-ended", "session-started")},
		{ID: "dddddddddddddddddddddddd", RoomID: "dddd-dddd-dddd", UserID: "u1", Webhook: hook("session-started", "session-ended")},
	}
	for _, r := range rooms[:2] {
		if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: r}); err != nil {
			t.Fatal(err)
		}
	}
	var batch []*raft.Log
	for _, r := range rooms[2:] {
		b, err := Encode(CmdCreateRoom, CreateRoom{Room: r})
		if err != nil {
			t.Fatal(err)
		}
		f.index++
		batch = append(batch, &raft.Log{Index: f.index, Type: raft.LogCommand, Data: b})
	}
	f.ApplyBatch(batch)
	check := func(fsm *FSM) {
		t.Helper()
		fsm.Read(func(s *Store) {
			a, b, c, d := s.roomByRoomID("aaaa-aaaa-aaaa"), s.roomByRoomID("bbbb-bbbb-bbbb"), s.roomByRoomID("cccc-cccc-cccc"), s.roomByRoomID("dddd-dddd-dddd")
			if a.Webhook != b.Webhook || a.Webhook != d.Webhook || a.Webhook == c.Webhook {
				t.Errorf("webhook configs %p %p %p %p: want the first, second and fourth shared, the third its own", a.Webhook, b.Webhook, c.Webhook, d.Webhook)
			}
			if !reflect.DeepEqual(c.Webhook.Events, []string{"session-ended", "session-started"}) {
				t.Errorf("third room's events %v", c.Webhook.Events)
			}
		})
	}
	check(f.FSM)
	check(restoreBytes(t, persist(t, f.FSM)))
}

// TestNonUniqueKeysHaveRoomForTheRowID: memdb appends the row's id key to a
// key of a non-unique index; the create path's two (a project's rooms, the
// request records' FIFO) are made with room for it, so the append writes in
// place instead of copying the key, and the keys are still keyOf's.
func TestNonUniqueKeysHaveRoomForTheRowID(t *testing.T) {
	room := &Room{ID: "64b0c2f1a9e4d3b2c1a0f9e8", RoomID: "abcd-efgh-ijkl", UserID: "u\x00\x01", CreateIndex: 7}
	rec := &requestRecord{ID: "r-0123456789abcdef0123456789abcdef", Key: true, Index: 9}
	for _, c := range []struct {
		table, id string
		row       any
		want      []byte
	}{
		{tRooms, room.ID, room, keyOf(room.UserID, room.CreateIndex)},
		{tRequests, rec.ID, rec, keyOf(rec.Key, rec.Index)},
	} {
		for name, ix := range dbSchema.Tables[c.table].Indexes {
			if ix.Unique {
				continue
			}
			_, k, err := ix.Indexer.(interface {
				FromObject(any) (bool, []byte, error)
			}).FromObject(c.row)
			if err != nil || !bytes.Equal(k, c.want) {
				t.Errorf("%s.%s key %q (%v), want %q", c.table, name, k, err, c.want)
			}
			if full := append(k, keyOf(c.id)...); &full[0] != &k[0] {
				t.Errorf("%s.%s: appending the row id copied the key (cap %d for %d+%d bytes)", c.table, name, cap(k), len(k), len(keyOf(c.id)))
			}
		}
	}
}
