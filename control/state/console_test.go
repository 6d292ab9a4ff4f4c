package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fillConsoleTables puts a row in every console table (snapshot tests).
func fillConsoleTables(t *testing.T, f *testFSM) {
	t.Helper()
	for _, c := range []struct {
		t    CommandType
		body any
	}{
		{CmdStartLogin, StartLogin{Attempt: LoginAttempt{StateHash: "sh1", NonceHash: "nh1", VerifierEnc: []byte{1}, Purpose: "console", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}}},
		{CmdCreateConsoleSession, CreateConsoleSession{Session: ConsoleSession{ID: "cs1", Issuer: "https://idp.example", Subject: "u-1", Email: "ana@example.com", Name: "Ana", Role: "admin", Via: "oidc",
			IP: "192.0.2.1", UserAgent: "test", CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(8 * time.Hour)}}},
		{CmdSetLocalAdmin, SetLocalAdmin{Admin: LocalAdmin{Username: "admin", PasswordHash: "$2a$10$x", UpdatedAt: t0}}},
		{CmdRecordConsoleAudit, RecordConsoleAudit{Entry: AuditEntry{At: t0, Actor: "ana@example.com", Subject: "u-1", Role: "admin", Via: "console", Action: "POST /v2/rooms", Status: 200, IP: "192.0.2.1"}}},
		{CmdUseLoginState, UseLoginState{StateHash: "used1", ExpiresAt: t0.Add(10 * time.Minute), At: t0}},
	} {
		if _, err := f.apply(c.t, c.body); err != nil {
			t.Fatalf("command %d: %v", c.t, err)
		}
	}
}

func TestLoginAttemptIsSingleUse(t *testing.T) {
	f := newTestFSM(t)
	a := LoginAttempt{StateHash: "s", NonceHash: "n", VerifierEnc: []byte{9}, Purpose: "console", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	if _, err := f.apply(CmdStartLogin, StartLogin{Attempt: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdStartLogin, StartLogin{Attempt: a}); !errors.Is(err, ErrConflict) {
		t.Fatalf("same state twice: %v, want conflict", err)
	}
	v, err := f.apply(CmdFinishLogin, FinishLogin{StateHash: "s", At: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(*LoginAttempt); got.NonceHash != "n" || got.Purpose != "console" {
		t.Fatalf("finish returned %+v", got)
	}
	if _, err := f.apply(CmdFinishLogin, FinishLogin{StateHash: "s", At: t0.Add(time.Minute)}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("replayed state: %v, want forbidden", err)
	}
	// An expired attempt is refused and consumed.
	a.StateHash = "late"
	if _, err := f.apply(CmdStartLogin, StartLogin{Attempt: a}); err != nil {
		t.Fatal(err)
	}
	// Finishing it hands it out once (the caller sees it expired at At) and
	// consumes it: it cannot be retried either.
	if v, err := f.apply(CmdFinishLogin, FinishLogin{StateHash: "late", At: t0.Add(10 * time.Minute)}); err != nil || v.(*LoginAttempt).ExpiresAt != a.ExpiresAt {
		t.Fatalf("expired state: %v %v", v, err)
	}
	if _, err := f.apply(CmdFinishLogin, FinishLogin{StateHash: "late", At: t0.Add(10 * time.Minute)}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("expired state again: %v, want forbidden", err)
	}
	f.Read(func(s *Store) {
		if n := s.LoginAttemptCount(); n != 0 {
			t.Fatalf("%d sign-ins left, want 0", n)
		}
	})
}

// TestUsedLoginStateIsSingleUse: a completed sign-in's state is refused a
// second time, and at or after its expiry; prune drops it once expired.
func TestUsedLoginStateIsSingleUse(t *testing.T) {
	f := newTestFSM(t)
	exp := t0.Add(10 * time.Minute)
	if _, err := f.apply(CmdUseLoginState|IgnoreUnknownFlag, UseLoginState{StateHash: "s", ExpiresAt: exp, At: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdUseLoginState, UseLoginState{StateHash: "s", ExpiresAt: exp, At: t0.Add(time.Minute)}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("replayed state: %v, want forbidden", err)
	}
	if _, err := f.apply(CmdUseLoginState, UseLoginState{StateHash: "late", ExpiresAt: exp, At: exp}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("expired state: %v, want forbidden", err)
	}
	if _, err := f.apply(CmdUseLoginState, UseLoginState{ExpiresAt: exp, At: t0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no state hash: %v, want invalid", err)
	}
	f.Read(func(s *Store) {
		if !s.LoginStateUsed("s") || s.LoginStateUsed("late") || s.UsedLoginStateCount() != 1 {
			t.Fatalf("used s=%v late=%v count=%d", s.LoginStateUsed("s"), s.LoginStateUsed("late"), s.UsedLoginStateCount())
		}
	})
	if _, err := f.apply(CmdPruneConsole, PruneConsole{At: exp}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(s *Store) {
		if s.LoginStateUsed("s") || s.UsedLoginStateCount() != 0 {
			t.Fatalf("used state kept after its expiry")
		}
	})
}

func TestConsoleSessionTimeoutsAndPrune(t *testing.T) {
	f := newTestFSM(t)
	mk := func(id string, expires time.Duration) {
		ss := ConsoleSession{ID: id, Subject: "sub-" + id, Role: "viewer", Via: "oidc", CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(expires)}
		if _, err := f.apply(CmdCreateConsoleSession, CreateConsoleSession{Session: ss}); err != nil {
			t.Fatal(err)
		}
	}
	mk("busy", 8*time.Hour)
	mk("idle", 8*time.Hour)
	mk("old", time.Hour)
	idle := 30 * time.Minute
	// "busy" and "old" are used at 25 minutes; "idle" is not.
	for _, id := range []string{"busy", "old"} {
		if _, err := f.apply(CmdTouchConsoleSession, TouchConsoleSession{ID: id, At: t0.Add(25 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	// A touch never moves time backwards.
	if _, err := f.apply(CmdTouchConsoleSession, TouchConsoleSession{ID: "busy", At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(40 * time.Minute)
	f.Read(func(s *Store) {
		busy, _ := s.ConsoleSession("busy")
		if !busy.LastSeen.Equal(t0.Add(25 * time.Minute)) {
			t.Fatalf("busy last seen %v", busy.LastSeen)
		}
		idleS, _ := s.ConsoleSession("idle")
		if busy.Expired(at, idle) || !idleS.Expired(at, idle) {
			t.Fatalf("at 40 min: busy expired=%v idle expired=%v", busy.Expired(at, idle), idleS.Expired(at, idle))
		}
	})
	if v, err := f.apply(CmdPruneConsole, PruneConsole{At: at, Idle: idle}); err != nil || v.(int) != 1 {
		t.Fatalf("prune at 40 min: %v %v, want 1 (idle)", v, err)
	}
	v, err := f.apply(CmdPruneConsole, PruneConsole{At: t0.Add(61 * time.Minute), Idle: idle})
	if err != nil {
		t.Fatal(err)
	}
	// At 61 min the rest go: busy idle for 36 min, old past its absolute expiry.
	if v.(int) != 2 {
		t.Fatalf("pruned %v, want 2", v)
	}
	f.Read(func(s *Store) {
		var left []string
		for _, ss := range s.ConsoleSessions() {
			left = append(left, ss.ID)
		}
		if len(left) != 0 {
			t.Fatalf("sessions left %v, want none", left)
		}
	})
	mk("again", time.Hour)
	if _, err := f.apply(CmdEndConsoleSession, EndConsoleSession{ID: "again"}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(s *Store) {
		if _, ok := s.ConsoleSession("again"); ok {
			t.Fatal("session survived logout")
		}
	})
}

func TestAuditLogKeepsNewestEntries(t *testing.T) {
	old := MaxAuditEntries
	MaxAuditEntries = 3
	t.Cleanup(func() { MaxAuditEntries = old })
	f := newTestFSM(t)
	for i := range 5 {
		e := AuditEntry{At: t0.Add(time.Duration(i) * time.Second), Actor: []string{"ana", "bob"}[i%2], Via: "console", Action: "POST /v2/rooms", Status: 200}
		if _, err := f.apply(CmdRecordConsoleAudit, RecordConsoleAudit{Entry: e}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.apply(CmdRecordConsoleAudit, RecordConsoleAudit{Entry: AuditEntry{Via: "console"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("entry without actor: %v", err)
	}
	f.Read(func(s *Store) {
		page, total := s.AuditPage(AuditFilter{}, Page{Offset: 0, Limit: 10})
		if total != 3 || len(page) != 3 || page[0].Seq != 5 || page[2].Seq != 3 {
			t.Fatalf("total %d, page %+v", total, page)
		}
		ana, n := s.AuditPage(AuditFilter{Actor: "ana"}, Page{Offset: 0, Limit: 10})
		if n != 2 || ana[0].Seq != 5 || ana[1].Seq != 3 {
			t.Fatalf("ana: %d %+v", n, ana)
		}
	})
}

func TestConsoleTablesSurviveSnapshot(t *testing.T) {
	f := newTestFSM(t)
	fillConsoleTables(t, f)
	g := restoreBytes(t, persist(t, f.FSM))
	g.Read(func(s *Store) {
		if ss, ok := s.ConsoleSession("cs1"); !ok || ss.Email != "ana@example.com" {
			t.Fatalf("session after restore: %+v %v", ss, ok)
		}
		if a, ok := s.LocalAdmin("admin"); !ok || a.PasswordHash != "$2a$10$x" {
			t.Fatal("local admin after restore")
		}
		if n := s.LoginAttemptCount(); n != 1 {
			t.Fatalf("%d sign-ins after restore", n)
		}
		if _, total := s.AuditPage(AuditFilter{}, Page{Limit: 10}); total != 1 {
			t.Fatalf("%d audit entries after restore", total)
		}
	})
}

// TestConsoleSnapshotGolden pins the console tables' snapshot encoding
// (fields only ever added; regenerate with -update for a deliberate change).
func TestConsoleSnapshotGolden(t *testing.T) {
	f := newTestFSM(t)
	fillConsoleTables(t, f)
	got := persist(t, f.FSM)
	path := filepath.Join("testdata", "snapshot-console.json")
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("console snapshot encoding changed:\n got %s\nwant %s", got, want)
	}
}

// TestAuditFiltersMatchAWalkOfTheLog: every page of the audit log by actor,
// by action prefix (one route, routes sharing a prefix, none) and by both
// equals a walk of the whole log, with totals, while the bound evicts the
// oldest entries, and after a restore.
func TestAuditFiltersMatchAWalkOfTheLog(t *testing.T) {
	old := MaxAuditEntries
	MaxAuditEntries = 150
	t.Cleanup(func() { MaxAuditEntries = old })
	f := newTestFSM(t)
	actors := []string{"ana@example.com", "bob@example.com", "local:admin", "admin-token"}
	actions := []string{"login", "logout", "GET /v2/rooms", "POST /v2/rooms", "POST /v2/rooms/:roomId/deactivate", "POST /v2/roomsX", "DELETE /v2/recordings/:id"}
	rng := rand.New(rand.NewPCG(3, 4))
	filters := []AuditFilter{{}}
	for _, actor := range append(actors, "nobody") {
		filters = append(filters, AuditFilter{Actor: actor})
	}
	for _, prefix := range []string{"login", "log", "POST /v2/rooms", "POST /v2/rooms/", "POST", "DELETE /v2/recordings/:id", "GET /v2/sessions", "l"} {
		filters = append(filters, AuditFilter{Action: prefix}, AuditFilter{Actor: actors[0], Action: prefix}, AuditFilter{Actor: actors[2], Action: prefix})
	}
	check := func(name string, g *FSM) {
		t.Helper()
		g.Read(func(s *Store) {
			every := allRows[*AuditEntry](s, tConsoleAudit)
			slices.Reverse(every) // newest first
			for _, flt := range filters {
				var want []*AuditEntry
				for _, e := range every {
					if (flt.Actor == "" || e.Actor == flt.Actor) && strings.HasPrefix(e.Action, flt.Action) {
						want = append(want, e)
					}
				}
				for _, w := range listWindows {
					got, total := s.AuditPage(flt, w)
					seqs := func(es []*AuditEntry) []uint64 {
						out := []uint64{}
						for _, e := range es {
							out = append(out, e.Seq)
						}
						return out
					}
					if g, w := seqs(got), seqs(pageOf(want, w)); total != len(want) || !slices.Equal(g, w) {
						t.Fatalf("%s: %+v %+v: total %d, want %d; page %v, want %v", name, flt, w, total, len(want), g, w)
					}
				}
			}
		})
	}
	for i := 0; i < 400; i++ {
		e := AuditEntry{At: t0.Add(time.Duration(i) * time.Second), Actor: actors[rng.IntN(len(actors))], Via: "console", Action: actions[rng.IntN(len(actions))], Status: 200}
		if _, err := f.apply(CmdRecordConsoleAudit, RecordConsoleAudit{Entry: e}); err != nil {
			t.Fatal(err)
		}
		if i == 100 || i == 399 { // before the bound and well past it
			check(fmt.Sprintf("after %d entries", i+1), f.FSM)
		}
	}
	f.Read(func(s *Store) {
		want := map[string]int{}
		for _, e := range allRows[*AuditEntry](s, tConsoleAudit) {
			for _, k := range auditCounters(e) {
				want[k]++
			}
		}
		for k, n := range want {
			if got := s.counter(k); got != n {
				t.Errorf("counter %s = %d, the log has %d", k, got, n)
			}
		}
		if len(want) < 10 || want["console/audit"] != MaxAuditEntries {
			t.Fatalf("counters %v: the log is not at its bound", want)
		}
	})
	check("restored", restoreBytes(t, persist(t, f.FSM)))
}
