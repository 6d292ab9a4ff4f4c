package chaos

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCheckersCatch feeds the checkers small histories with known flaws
// (and their correct twins), so a checker that stops seeing a flaw fails
// here, not silently in a chaos run. It starts no process.
func TestCheckersCatch(t *testing.T) {
	s := int64(time.Millisecond)
	create := func(call, ret int64, out roomOutput) rec {
		return rec{Key: "k", In: roomInput{Kind: opCreate}, Call: call * s, Return: ret * s, Out: out}
	}
	get := func(call, ret int64, out roomOutput) rec {
		return rec{Key: "k", In: roomInput{Kind: opGet}, Call: call * s, Return: ret * s, Out: out}
	}
	deact := func(call, ret int64, id string, out roomOutput) rec {
		return rec{Key: "k", In: roomInput{Kind: opDeactivate, RoomID: id}, Call: call * s, Return: ret * s, Out: out}
	}
	active := roomOutput{RoomID: "r1"}
	off := roomOutput{RoomID: "r1", Disabled: true}
	cases := []struct {
		name  string
		ops   []rec
		legal bool
	}{
		{"create, read, deactivate, read", []rec{create(0, 1, active), get(2, 3, active), deact(4, 5, "r1", off), get(6, 7, off)}, true},
		{"stale read after an acknowledged deactivate", []rec{create(0, 1, active), deact(4, 5, "r1", off), get(6, 7, active)}, false},
		{"read absent after an acknowledged create", []rec{create(0, 1, active), get(2, 3, roomOutput{Absent: true})}, false},
		{"two rooms for one customRoomId", []rec{create(0, 1, active), create(2, 3, roomOutput{RoomID: "r2"})}, false},
		{"a list with two rooms", []rec{create(0, 1, active), {Key: "k", In: roomInput{Kind: opList}, Call: 2 * s, Return: 3 * s, Out: roomOutput{RoomID: "r1", Count: 2}}}, false},
		{"a write of unknown outcome that happened", []rec{create(0, 1, roomOutput{Unknown: true}), get(2, 3, active)}, true},
		{"a write of unknown outcome that did not happen (yet)", []rec{create(0, 1, roomOutput{Unknown: true}), get(2, 3, roomOutput{Absent: true}), get(4, 5, active)}, true},
		{"a deactivation of unknown outcome, seen, then unseen", []rec{create(0, 1, active), deact(2, 3, "r1", roomOutput{Unknown: true}), get(4, 5, off), get(6, 7, active)}, false},
		{"concurrent create and read may see either", []rec{create(0, 10, active), get(1, 2, roomOutput{Absent: true}), get(3, 4, active)}, true},
		{"a 404 deactivate of an acknowledged room", []rec{create(0, 1, active), deact(2, 3, "r1", roomOutput{Absent: true})}, false},
	}
	for _, c := range cases {
		rep := checkLinearizable(c.ops, 5*time.Second)
		if got := len(rep.Illegal) == 0 && len(rep.TimedOut) == 0; got != c.legal {
			t.Errorf("%s: linearizable %v, want %v", c.name, got, c.legal)
		}
	}

	// Sessions: one room, s1 and s2 its sessions.
	sj := func(call, ret int64, out sessOutput) sessRec {
		return sessRec{Room: "r", In: sessInput{Kind: opJoin, PID: "p"}, Call: call * s, Return: ret * s, Out: out}
	}
	se := func(call, ret int64, out sessOutput) sessRec {
		return sessRec{Room: "r", In: sessInput{Kind: opEnd}, Call: call * s, Return: ret * s, Out: out}
	}
	sr := func(call, ret int64, out sessOutput) sessRec {
		return sessRec{Room: "r", In: sessInput{Kind: opRead}, Call: call * s, Return: ret * s, Out: out}
	}
	s1, s2, none := sessOutput{SessionID: "s1"}, sessOutput{SessionID: "s2"}, sessOutput{NoSession: true}
	sessCases := []struct {
		name  string
		ops   []sessRec
		legal bool
	}{
		{"join, read, end, read, join, read", []sessRec{sj(0, 1, sessOutput{}), sr(2, 3, s1), se(4, 5, s1), sr(6, 7, none), sj(8, 9, sessOutput{}), sr(10, 11, s2)}, true},
		{"stale read after an acknowledged end", []sessRec{sj(0, 1, sessOutput{}), sr(2, 3, s1), se(4, 5, s1), sr(6, 7, s1)}, false},
		{"an ended session ongoing again after a new join", []sessRec{sj(0, 1, sessOutput{}), se(2, 3, s1), sj(4, 5, sessOutput{}), sr(6, 7, s1)}, false},
		{"no session after an acknowledged join", []sessRec{sj(0, 1, sessOutput{}), sr(2, 3, none)}, false},
		{"end says no session after an acknowledged join", []sessRec{sj(0, 1, sessOutput{}), se(2, 3, none)}, false},
		{"two ongoing sessions listed", []sessRec{sj(0, 1, sessOutput{}), sr(2, 3, sessOutput{SessionID: "s1", Count: 2})}, false},
		{"the session changes without an end", []sessRec{sj(0, 1, sessOutput{}), sr(2, 3, s1), sr(4, 5, s2)}, false},
		{"an end of unknown outcome that happened", []sessRec{sj(0, 1, sessOutput{}), sr(2, 3, s1), se(4, 5, sessOutput{Unknown: true}), sr(6, 7, none)}, true},
		{"a join of unknown outcome, seen late", []sessRec{sj(0, 1, sessOutput{Unknown: true}), sr(2, 3, none), sr(4, 5, s1)}, true},
		{"concurrent end and read may see either", []sessRec{sj(0, 1, sessOutput{}), se(2, 10, s1), sr(3, 4, s1), sr(5, 6, none)}, true},
	}
	for _, c := range sessCases {
		for i := range c.ops {
			if c.ops[i].In.Kind == opRead && c.ops[i].Out.Count == 0 && !c.ops[i].Out.NoSession {
				c.ops[i].Out.Count = 1
			}
		}
		rep, _ := checkSessions(c.ops, 5*time.Second)
		if got := len(rep.Illegal) == 0 && len(rep.TimedOut) == 0; got != c.legal {
			t.Errorf("sessions %s: linearizable %v, want %v", c.name, got, c.legal)
		}
	}

	good := []finalRoom{{RoomID: "r1", CustomRoomID: "a"}, {RoomID: "r2", Tag: "ik-1"}}
	acked, ackedIK := map[string]string{"a": "r1"}, map[string]string{"ik-1": "r2"}
	if rep := checkFinal(acked, ackedIK, map[string][]finalRoom{"c1": good, "c2": good}); len(rep.Lost)+len(rep.Dups)+len(rep.Diverged) > 0 || rep.Checked != 4 {
		t.Errorf("clean final state reported: %+v", rep)
	}
	if rep := checkFinal(acked, ackedIK, map[string][]finalRoom{"c1": good, "c2": good[1:]}); len(rep.Lost) != 1 || len(rep.Diverged) != 1 {
		t.Errorf("lost room not reported: %+v", rep)
	}
	dup := append(append([]finalRoom(nil), good...), finalRoom{RoomID: "r3", CustomRoomID: "a"}, finalRoom{RoomID: "r4", Tag: "ik-1"})
	if rep := checkFinal(acked, ackedIK, map[string][]finalRoom{"c1": dup}); len(rep.Dups) != 2 {
		t.Errorf("duplicates not reported: %+v", rep)
	}

	// Webhooks: two events of one room.
	logs := map[string][]delivery{"room": {{ID: "m1", EventType: "session-started", RoomID: "room", Status: "delivered"},
		{ID: "m2", EventType: "participant-joined", RoomID: "room", Status: "delivered"}}}
	rc := func(id, typ string, status int) receipt {
		return receipt{ID: id, Type: typ, RoomID: "room", Body: []byte(id), Status: status}
	}
	want := map[string][]event{"room": {{"session-started", ""}, {"participant-joined", ""}}}
	whCases := []struct {
		name     string
		receipts []receipt
		problem  string
	}{
		{"in order with a retry and a duplicate", []receipt{rc("m1", "session-started", 503), rc("m1", "session-started", 200), rc("m2", "participant-joined", 200), rc("m2", "participant-joined", 200)}, ""},
		{"out of order", []receipt{rc("m2", "participant-joined", 200), rc("m1", "session-started", 200)}, "was sent before"},
		{"sent before the previous one was acknowledged", []receipt{rc("m1", "session-started", 503), rc("m2", "participant-joined", 200), rc("m1", "session-started", 200)}, "was sent before"},
		{"missing", []receipt{rc("m1", "session-started", 200)}, "never received"},
		{"unknown webhook", []receipt{rc("m1", "session-started", 200), rc("m2", "participant-joined", 200), rc("m9", "session-ended", 200)}, "in no room's delivery log"},
		{"bad signature", []receipt{{ID: "m1", Type: "session-started", RoomID: "room", Body: []byte("m1"), Status: 200, SigErr: errors.New("x")}, rc("m2", "participant-joined", 200)}, "signature does not verify"},
		{"changed body", []receipt{rc("m1", "session-started", 503), {ID: "m1", Type: "session-started", RoomID: "room", Body: []byte("other"), Status: 200}, rc("m2", "participant-joined", 200)}, "different bodies"},
	}
	for _, c := range whCases {
		rep := checkWebhooks(c.receipts, logs, want)
		all := strings.Join(rep.Problems, "\n")
		if (c.problem == "") != (len(rep.Problems) == 0) || !strings.Contains(all, c.problem) {
			t.Errorf("webhooks %s: problems %q, want one about %q", c.name, all, c.problem)
		}
	}
	if rep := checkWebhooks([]receipt{rc("m1", "session-started", 200), rc("m2", "participant-joined", 200)}, logs,
		map[string][]event{"room": {{"session-started", ""}}}); len(rep.Problems) != 1 {
		t.Errorf("unexpected event not reported: %v", rep.Problems)
	}

	if p, _ := lifecycle("r", []event{{"session-started", ""}, {"participant-left", "a"}, {"session-ended", ""}}, 0); len(p) == 0 {
		t.Error("a leave without a join passed the lifecycle check")
	}
	if p, blips := lifecycle("r", []event{{"session-started", ""}, {"participant-joined", "a"}, {"participant-left", "a"}, {"session-ended", ""}}, 2); len(p) != 0 || blips != 0 {
		t.Errorf("a clean lifecycle: %v, %d blips", p, blips)
	}
}
