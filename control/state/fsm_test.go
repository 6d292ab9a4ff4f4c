package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type testFSM struct {
	*FSM
	index uint64
	t     *testing.T
	log   []*raft.Log // every entry applied, in order
}

func newTestFSM(t *testing.T) *testFSM { return &testFSM{FSM: NewFSM(nil), t: t} }

func (f *testFSM) apply(ct CommandType, body any) (any, error) {
	f.t.Helper()
	b, err := Encode(ct, body)
	if err != nil {
		f.t.Fatal(err)
	}
	f.index++
	l := &raft.Log{Index: f.index, Type: raft.LogCommand, Data: b}
	f.log = append(f.log, l)
	res := f.Apply(l)
	if res == nil {
		return nil, nil
	}
	r := res.(Result)
	return r.Value, r.Err
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func mustRoom(t *testing.T, f *testFSM, id, roomID, custom string) *Room {
	t.Helper()
	v, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: id, RoomID: roomID, CustomRoomID: custom, UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0,
		Webhook: &RoomWebhook{EndPoint: "https://hooks.example/x", Events: []string{"participant-*", "session*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return v.(*CreateRoomResult).Room
}

func TestCreateRoomIdempotentAndLookups(t *testing.T) {
	f := newTestFSM(t)
	r := mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "my-room")
	v, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "bbbbbbbbbbbbbbbbbbbbbbbb", RoomID: "zzzz-zzzz-zzzz", CustomRoomID: "my-room", UserID: "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	res := v.(*CreateRoomResult)
	if res.Created || res.Room.RoomID != r.RoomID {
		t.Fatalf("customRoomId create was not idempotent: %+v", res)
	}
	// Same custom id in another project is a different room.
	v, err = f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "cccccccccccccccccccccccc", RoomID: "yyyy-yyyy-yyyy", CustomRoomID: "my-room", UserID: "u2"}})
	if err != nil || !v.(*CreateRoomResult).Created {
		t.Fatalf("other project: %v %v", v, err)
	}
	if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "dddddddddddddddddddddddd", RoomID: "abcd-efgh-ijkl", UserID: "u1"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate roomId: %v", err)
	}
	f.Read(func(s *Store) {
		for _, ref := range []string{"abcd-efgh-ijkl", "my-room", "aaaaaaaaaaaaaaaaaaaaaaaa"} {
			if got, ok := s.Room("u1", ref); !ok || got.ID != r.ID {
				t.Errorf("lookup %q failed", ref)
			}
		}
		if _, ok := s.Room("u2", "abcd-efgh-ijkl"); ok {
			t.Error("room visible to another project")
		}
		if rooms, total := s.RoomsPage("u1", Page{Limit: 20}); len(rooms) != 1 || total != 1 {
			t.Errorf("u1 rooms = %d, total %d", len(rooms), total)
		}
	})
}

func TestDeactivateRejectsCustomID(t *testing.T) {
	f := newTestFSM(t)
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "my-room")
	if _, err := f.apply(CmdDeactivateRoom, DeactivateRoom{UserID: "u1", RoomID: "my-room", At: t0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("custom id: %v", err)
	}
	if _, err := f.apply(CmdDeactivateRoom, DeactivateRoom{UserID: "u1", RoomID: "nope-nope-nope", At: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	v, err := f.apply(CmdDeactivateRoom, DeactivateRoom{UserID: "u1", RoomID: "abcd-efgh-ijkl", At: t0})
	if err != nil || !v.(*Room).Disabled {
		t.Fatalf("deactivate: %v %v", v, err)
	}
}

func TestSessionLifecycleAndOutbox(t *testing.T) {
	f := newTestFSM(t)
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "")
	join := func(ev, pid string, at time.Time) {
		t.Helper()
		if _, err := f.apply(CmdParticipantJoin, ParticipantJoin{EventID: ev, RoomID: "abcd-efgh-ijkl", ParticipantID: pid, Name: "N" + pid, EdgeID: "e1", At: at,
			NewSessionID: "111111111111111111111111", NewDocID: "d" + pid, IDs: []string{ev + "a", ev + "b"}}); err != nil {
			t.Fatal(err)
		}
	}
	leave := func(ev, pid string, at time.Time) {
		t.Helper()
		if _, err := f.apply(CmdParticipantLeave, ParticipantLeave{EventID: ev, RoomID: "abcd-efgh-ijkl", ParticipantID: pid, At: at, IDs: []string{ev + "a", ev + "b"}}); err != nil {
			t.Fatal(err)
		}
	}
	join("e1", "p1", t0)
	join("e1", "p1", t0) // retried report: ignored
	join("e2", "p2", t0.Add(time.Second))
	leave("e3", "p1", t0.Add(2*time.Second))
	join("e4", "p1", t0.Add(3*time.Second)) // rejoin: second timelog entry
	leave("e5", "p1", t0.Add(4*time.Second))
	leave("e6", "p2", t0.Add(5*time.Second)) // last one out ends the session

	f.Read(func(s *Store) {
		ss, ok := s.Session("u1", "111111111111111111111111")
		if !ok || ss.Status() != "ended" || !ss.End.Equal(t0.Add(5*time.Second)) {
			t.Fatalf("session: %+v", ss)
		}
		if p := ss.participant("p1"); len(p.Timelog) != 2 || p.Active() {
			t.Fatalf("p1 timelog: %+v", p.Timelog)
		}
		var types []string
		for _, d := range s.PendingDeliveries(0) {
			types = append(types, d.EventType)
		}
		want := "session-started participant-joined participant-joined participant-left participant-joined participant-left participant-left session-ended"
		if got := strings.Join(types, " "); got != want {
			t.Fatalf("outbox:\n got %s\nwant %s", got, want)
		}
		d := s.PendingDeliveries(1)[0]
		if string(d.Body) != `{"webhookType":"session-started","data":{"sessionId":"111111111111111111111111","meetingId":"abcd-efgh-ijkl","start":"2026-11-23T10:00:00.000+00:00"}}` {
			t.Fatalf("body: %s", d.Body)
		}
	})
}

func TestEventFilterPatterns(t *testing.T) {
	cases := []struct {
		patterns []string
		event    string
		want     bool
	}{
		{nil, "session-started", true},
		{[]string{"*"}, "recording-started", true},
		{[]string{"recording-*"}, "recording-started", true},
		{[]string{"recording-*"}, "participant-recording-started", false},
		{[]string{"session*"}, "session-ended", true},
		{[]string{"participant-joined"}, "participant-left", false},
	}
	for _, c := range cases {
		if got := MatchEvent(c.patterns, c.event); got != c.want {
			t.Errorf("%v %s = %v", c.patterns, c.event, got)
		}
	}
}

func TestRefreshTokenSingleUse(t *testing.T) {
	f := newTestFSM(t)
	if _, err := f.apply(CmdUpsertAPIKey, UpsertAPIKey{APIKey: APIKey{Key: "k1", UserID: "u1", SecretEnc: []byte{1}, SecretHash: "h1", CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdPutRefreshToken, PutRefreshToken{Hash: "r1", Token: RefreshToken{APIKey: "k1", ExpiresAt: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	use := UseRefreshToken{Hash: "r1", Now: t0, Next: PutRefreshToken{Hash: "r2", Token: RefreshToken{ExpiresAt: t0.Add(2 * time.Hour)}}}
	if v, err := f.apply(CmdUseRefreshToken, use); err != nil || v.(string) != "k1" {
		t.Fatalf("first use: %v %v", v, err)
	}
	if _, err := f.apply(CmdUseRefreshToken, use); !errors.Is(err, ErrForbidden) {
		t.Fatalf("replay: %v", err)
	}
	if _, err := f.apply(CmdRevokeAPIKey, RevokeAPIKey{Key: "k1", At: t0}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(s *Store) {
		if s.RefreshTokenCount() != 0 {
			t.Fatal("revoking a key left its refresh tokens")
		}
		if _, ok := s.APIKeyBySecretHash("h1"); ok {
			t.Fatal("revoked key still found by secret")
		}
	})
}

func TestUnknownCommand(t *testing.T) {
	f := newTestFSM(t)
	f.index++
	if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: []byte{byte(0x7f | IgnoreUnknownFlag), '{', '}'}}); res != nil {
		t.Fatalf("ignorable unknown command returned %v", res)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("unknown command without the ignore bit did not panic")
		}
	}()
	f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: []byte{0x7f, '{', '}'}})
}

type memSink struct {
	bytes.Buffer
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

func TestSnapshotRoundTrip(t *testing.T) {
	f := newTestFSM(t)
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "c1")
	f.apply(CmdUpsertAPIKey, UpsertAPIKey{APIKey: APIKey{Key: "k1", UserID: "u1", SecretEnc: []byte{1}, SecretHash: "h1", CreatedAt: t0}})
	f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "e1", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: t0, NewSessionID: "111111111111111111111111", IDs: []string{"x", "y"}})
	f.apply(CmdUpsertEdge, UpsertEdge{Edge: Edge{ID: "edge1", Region: "local"}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := NewFSM(nil)
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	a, b := persist(t, f.FSM), persist(t, g)
	g.Read(func(s *Store) {
		if _, ok := s.Room("u1", "c1"); !ok {
			t.Error("custom id index not rebuilt")
		}
		if _, ok := s.APIKeyBySecretHash("h1"); !ok {
			t.Error("secret index not rebuilt")
		}
		if _, ok := s.OngoingSession("aaaaaaaaaaaaaaaaaaaaaaaa"); !ok {
			t.Error("ongoing session index not rebuilt")
		}
	})
	if !bytes.Equal(a, b) {
		t.Fatalf("restore differs:\n%s\n%s", a, b)
	}
}

// TestApplyIsDeterministic fails the build if the state machine reads the
// clock, randomness, the network or the filesystem.
func TestApplyIsDeterministic(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	banned := map[string]bool{"time.Now": true, "time.Since": true, "time.Until": true}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "math/rand" || p == "math/rand/v2" || p == "crypto/rand" || p == "net" || p == "os" || strings.HasPrefix(p, "net/") {
				t.Errorf("%s imports %s: Apply must be deterministic", name, p)
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && banned[id.Name+"."+sel.Sel.Name] {
					t.Errorf("%s: %s.%s in the state machine", fset.Position(sel.Pos()), id.Name, sel.Sel.Name)
				}
			}
			return true
		})
	}
}

func TestGoneEndpointStopsDeliveries(t *testing.T) {
	f := newTestFSM(t)
	// Other endpoints' deliveries, queued first, stay pending: another URL
	// of the project, and the same URL in another project.
	for i, o := range []struct{ user, url string }{{"u1", "https://hooks.example/other"}, {"u2", "https://hooks.example/x"}} {
		roomID := fmt.Sprintf("othr-room-%04d", i)
		if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: fmt.Sprintf("%024d", i+1), RoomID: roomID, UserID: o.user, APIKey: "k-" + o.user, CreatedAt: t0, UpdatedAt: t0,
			Webhook: &RoomWebhook{EndPoint: o.url, Events: []string{"participant-*", "session*"}}}}); err != nil {
			t.Fatal(err)
		}
		f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "o" + roomID, RoomID: roomID, ParticipantID: "p1", At: t0, NewSessionID: fmt.Sprintf("%024d", i+11), IDs: []string{"o1" + roomID, "o2" + roomID}})
	}
	var others int
	f.Read(func(s *Store) { others = len(s.PendingDeliveries(0)) })
	if others != 4 {
		t.Fatalf("%d deliveries queued for the other endpoints, want 4", others)
	}
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "")
	f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "e1", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: t0, NewSessionID: "111111111111111111111111", IDs: []string{"a", "b"}})
	var first *Delivery
	f.Read(func(s *Store) {
		first = s.PendingDeliveries(0)[others]
		if len(s.PendingDeliveries(0)) != others+2 || first.RoomID != "abcd-efgh-ijkl" {
			t.Fatalf("pending %d, first of the room's %+v", len(s.PendingDeliveries(0)), first)
		}
	})
	done := t0
	if _, err := f.apply(CmdRecordDelivery, RecordDelivery{ID: first.ID, Status: DeliveryFailed, Attempts: 1, LastStatus: 410, EndpointGone: true, DoneAt: &done}); err != nil {
		t.Fatal(err)
	}
	// A stale report (wrong attempt count) changes nothing.
	if v, _ := f.apply(CmdRecordDelivery, RecordDelivery{ID: first.ID, Status: DeliveryDelivered, Attempts: 1}); v.(*Delivery).Status != DeliveryFailed {
		t.Fatal("stale report overwrote the outcome")
	}
	f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "e2", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: t0, IDs: []string{"c", "d"}})
	f.Read(func(s *Store) {
		for _, d := range s.PendingDeliveries(0) {
			if d.UserID == "u1" && d.URL == "https://hooks.example/x" {
				t.Fatalf("delivery %s pending for an endpoint that answered 410", d.ID)
			}
		}
		if n := len(s.PendingDeliveries(0)); n != others {
			t.Fatalf("%d deliveries pending, want the other endpoints' %d", n, others)
		}
	})
}

// The token cache (control/auth) skips looking a key up while KeysVersion
// stays the same, so it must move with every committed change to a key and
// every restore, and only then.
func TestKeysVersionMovesWhenKeysChange(t *testing.T) {
	f := newTestFSM(t)
	last := f.KeysVersion()
	step := func(what string, wantMoved bool, ct CommandType, body any) {
		t.Helper()
		f.apply(ct, body)
		if moved := f.KeysVersion() != last; moved != wantMoved {
			t.Fatalf("%s: KeysVersion moved %v, want %v", what, moved, wantMoved)
		}
		last = f.KeysVersion()
	}
	k1 := APIKey{Key: "k1", UserID: "u1", SecretEnc: []byte{1}, SecretHash: "h1", CreatedAt: t0}
	step("a key created", true, CmdUpsertAPIKey, UpsertAPIKey{APIKey: k1})
	step("the same key upserted again (no change)", false, CmdUpsertAPIKey, UpsertAPIKey{APIKey: k1})
	step("a refused key (its secret is taken)", false, CmdUpsertAPIKey, UpsertAPIKey{APIKey: APIKey{Key: "k2", UserID: "u2", SecretEnc: []byte{2}, SecretHash: "h1", CreatedAt: t0}})
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "c1")
	if f.KeysVersion() != last {
		t.Fatal("a room create moved KeysVersion")
	}
	step("a key revoked", true, CmdRevokeAPIKey, RevokeAPIKey{Key: "k1", At: t0})
	step("a revoked key revoked again", false, CmdRevokeAPIKey, RevokeAPIKey{Key: "k1", At: t0})

	if err := f.Restore(io.NopCloser(bytes.NewReader(persistRaw(t, f.FSM)))); err != nil {
		t.Fatal(err)
	}
	if f.KeysVersion() == last {
		t.Fatal("a restore left KeysVersion where it was")
	}
}

// TestPruneDropsOnlyExpiredRefreshTokens: the prune removes exactly the
// tokens expired at its time (an expiry equal to it included), whatever
// order they were issued in, and keeps the rest usable.
func TestPruneDropsOnlyExpiredRefreshTokens(t *testing.T) {
	f := newTestFSM(t)
	if _, err := f.apply(CmdUpsertAPIKey, UpsertAPIKey{APIKey: APIKey{Key: "k1", UserID: "u1", SecretEnc: []byte{1}, SecretHash: "h1", CreatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	for i, minutes := range []int{50, 10, 70, 30, 60, 20, 61} {
		if _, err := f.apply(CmdPutRefreshToken, PutRefreshToken{Hash: fmt.Sprintf("r%d", i), Token: RefreshToken{APIKey: "k1", ExpiresAt: t0.Add(time.Duration(minutes) * time.Minute)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.apply(CmdPruneRefreshTokens, PruneRefreshTokens{Now: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(s *Store) {
		var left []string
		for _, rt := range allRows[*refreshRow](s, tRefresh) {
			left = append(left, rt.Hash)
		}
		if !slices.Equal(left, []string{"r2", "r6"}) {
			t.Fatalf("after the prune at 60 min: %v, want the tokens expiring at 70 and 61 min (r2, r6)", left)
		}
	})
}

// TestIntervalsNeverEndBeforeTheyBegin: a leave's time comes from another
// clock than its join's (an edge ahead of the control plane, the leader's
// sweep, an API call), and may precede it. The interval then ends at its
// start, its participant-left is dated then, and the session does not end
// before any of its participations.
func TestIntervalsNeverEndBeforeTheyBegin(t *testing.T) {
	f := newTestFSM(t)
	mustRoom(t, f, "aaaaaaaaaaaaaaaaaaaaaaaa", "abcd-efgh-ijkl", "")
	join := func(ev, pid, sid string, at time.Time) {
		t.Helper()
		if _, err := f.apply(CmdParticipantJoin, ParticipantJoin{EventID: ev, RoomID: "abcd-efgh-ijkl", ParticipantID: pid, EdgeID: "e1", At: at,
			NewSessionID: sid, NewDocID: "d" + ev, IDs: []string{ev + "a", ev + "b"}}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(sid string, wantEnd time.Time) {
		t.Helper()
		f.Read(func(s *Store) {
			ss, ok := s.Session("u1", sid)
			if !ok || ss.End == nil || !ss.End.Equal(wantEnd) {
				t.Fatalf("session %s: %+v, want it ended at %v", sid, ss, wantEnd)
			}
			for _, p := range ss.Participants {
				for _, iv := range p.Timelog {
					if iv.End == nil || iv.End.Before(iv.Start) {
						t.Fatalf("%s: interval %v – %v", p.ParticipantID, iv.Start, iv.End)
					}
				}
			}
			left := 0
			for _, d := range s.PendingDeliveries(0) {
				if d.SessionID != sid || d.EventType != "participant-left" {
					continue
				}
				left++
				var body struct {
					Data struct{ ParticipantID string } `json:"data"`
				}
				if err := json.Unmarshal(d.Body, &body); err != nil {
					t.Fatal(err)
				}
				p := ss.participant(body.Data.ParticipantID)
				if end := p.Timelog[len(p.Timelog)-1].End; !d.CreatedAt.Equal(*end) {
					t.Fatalf("%s: participant-left dated %v, the interval ended %v", p.ParticipantID, d.CreatedAt, end)
				}
			}
			if left != len(ss.Participants) {
				t.Fatalf("session %s: %d participant-left for %d participants", sid, left, len(ss.Participants))
			}
		})
	}
	// The last one out, reported 5 s before its own join.
	join("j1", "p1", "111111111111111111111111", t0)
	join("j2", "p2", "111111111111111111111111", t0.Add(10*time.Second))
	if _, err := f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "l1", RoomID: "abcd-efgh-ijkl", ParticipantID: "p1", At: t0.Add(time.Second), IDs: []string{"l1a", "l1b"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "l2", RoomID: "abcd-efgh-ijkl", ParticipantID: "p2", At: t0.Add(5 * time.Second), IDs: []string{"l2a", "l2b"}}); err != nil {
		t.Fatal(err)
	}
	check("111111111111111111111111", t0.Add(10*time.Second))
	// A session ended through the API at a time before a participant's join.
	join("j3", "p3", "222222222222222222222222", t0.Add(30*time.Second))
	if _, err := f.apply(CmdEndSession, EndSession{UserID: "u1", RoomRef: "abcd-efgh-ijkl", Reason: "api", At: t0.Add(20 * time.Second), IDs: []string{"x1", "x2", "x3"}}); err != nil {
		t.Fatal(err)
	}
	check("222222222222222222222222", t0.Add(30*time.Second))
}
