package state

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// TestMissedOrders: what an edge is told again about a room, given when
// the oldest ticket of its participants there was issued. A session ended
// through the API is a close, one that ended because everybody left or by
// the auto-close loop is not; a removal through the API is told to the edge
// the participant was on, until the participant comes back, and a
// moderator's removal the edge reported is not told back; nothing older than
// the edge's oldest ticket is told; a deactivated room closes whatever the
// times; all of it survives a snapshot.
// missedFixture applies a room's joins, leaves and ends at whole seconds
// after t0 and checks what MissedOrders answers.
type missedFixture struct {
	t    *testing.T
	f    *testFSM
	room string
	n    int
}

func newMissedFixture(t *testing.T, room string) *missedFixture {
	f := newTestFSM(t)
	if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", RoomID: room, UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	return &missedFixture{t: t, f: f, room: room}
}

func atSec(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func (x *missedFixture) join(pid, edge string, s int) {
	x.t.Helper()
	x.n++
	n := x.n
	if _, err := x.f.apply(CmdParticipantJoin, ParticipantJoin{EventID: fmt.Sprintf("j%d", n), RoomID: x.room, ParticipantID: pid, EdgeID: edge, At: atSec(s),
		NewSessionID: fmt.Sprintf("%024x", n), NewDocID: fmt.Sprintf("d%023x", n), IDs: []string{fmt.Sprintf("ja%d", n), fmt.Sprintf("jb%d", n)}}); err != nil {
		x.t.Fatal(err)
	}
}

// leave is an edge's report, or with no edge a removal through the API.
func (x *missedFixture) leave(pid, edge, reason string, s int) {
	x.t.Helper()
	x.n++
	n := x.n
	if _, err := x.f.apply(CmdParticipantLeave, ParticipantLeave{EventID: fmt.Sprintf("l%d", n), RoomID: x.room, ParticipantID: pid, EdgeID: edge, Reason: reason, At: atSec(s),
		IDs: []string{fmt.Sprintf("la%d", n), fmt.Sprintf("lb%d", n), fmt.Sprintf("lc%d", n)}}); err != nil {
		x.t.Fatal(err)
	}
}

func (x *missedFixture) end(reason string, s int) {
	x.t.Helper()
	ids := make([]string, 8)
	for i := range ids {
		x.n++
		ids[i] = fmt.Sprintf("e%d", x.n)
	}
	if _, err := x.f.apply(CmdEndSession, EndSession{UserID: "u1", RoomRef: x.room, Reason: reason, At: atSec(s), IDs: ids}); err != nil {
		x.t.Fatal(err)
	}
}

// check asks st (the fixture's store when nil) for edge's missed orders
// since the given second; wantClosed -1 is no close.
func (x *missedFixture) check(st *FSM, what, edge string, since int, wantClosed int, wantRemoved ...string) {
	x.t.Helper()
	if st == nil {
		st = x.f.FSM
	}
	var m Missed
	st.Read(func(st *Store) { m = st.MissedOrders(x.room, edge, atSec(since)) })
	var got []string
	for _, r := range m.Removed {
		got = append(got, fmt.Sprintf("%s@%d", r.ParticipantID, int(r.At.Sub(t0)/time.Second)))
	}
	closed := -1
	if !m.ClosedAt.IsZero() {
		closed = int(m.ClosedAt.Sub(t0) / time.Second)
	}
	if closed != wantClosed || !slices.Equal(got, wantRemoved) || m.Disabled {
		x.t.Errorf("%s: closed at %d, removed %v, disabled %v; want closed at %d, removed %v", what, closed, got, m.Disabled, wantClosed, wantRemoved)
	}
}

func TestMissedOrders(t *testing.T) {
	const room = "abcd-efgh-ijkl"
	x := newMissedFixture(t, room)
	f, join, leave, end := x.f, x.join, x.leave, x.end
	check := func(what, edge string, since int, wantClosed int, wantRemoved ...string) {
		t.Helper()
		x.check(nil, what, edge, since, wantClosed, wantRemoved...)
	}

	// Session 1: a and b on edge1, c on edge2; everybody leaves.
	join("a", "edge1", 10)
	join("b", "edge1", 11)
	join("c", "edge2", 12)
	leave("a", "edge1", "", 20)
	leave("b", "edge1", "", 21)
	leave("c", "edge2", "", 22)
	check("a session that ended because everybody left", "edge1", 5, -1)

	// Session 2: a removed through the API on edge1 (the API's leave names
	// no edge), b removed and back, f removed by a moderator on edge1 (the
	// edge's report: it carried that out itself).
	join("a", "edge1", 30)
	join("b", "edge1", 31)
	join("c", "edge2", 32)
	join("f", "edge1", 33)
	leave("a", "", ReasonRemoved, 40)
	leave("b", "", ReasonRemoved, 41)
	join("b", "edge1", 42)
	leave("f", "edge1", ReasonRemoved, 43)
	check("the removal on edge1", "edge1", 25, -1, "a@40")
	check("the removal, for an edge connected since the session began", "edge1", 30, -1, "a@40")
	check("another edge", "edge2", 25, -1)
	check("an edge whose oldest connection came after the removal", "edge1", 40, -1)
	// The session ends through the API: a close at 50; the removal in it
	// comes with it (the edge applies the close, then the removal, each
	// sparing whoever came after it).
	end(ReasonEndedByAPI, 50)
	check("a session ended through the API", "edge1", 25, 50, "a@40")
	check("an edge whose oldest connection came after the close", "edge1", 50, -1)

	// Session 3, ended by the auto-close loop: not a close, and the walk
	// goes on to session 2's.
	join("d", "edge1", 60)
	end("auto-close", 70)
	check("a close behind an auto-closed session", "edge1", 25, 50, "a@40")
	check("an auto-closed session alone", "edge1", 55, -1)
	// Session 4 ongoing: the close of session 2 still holds for an edge
	// that has kept somebody since before it.
	join("e", "edge1", 80)
	check("a close behind an ongoing session", "edge1", 45, 50)
	check("since after every order", "edge1", 79, -1)

	// Snapshot and restore: the same answers.
	g := restoreBytes(t, persistRaw(t, f.FSM))
	g.Read(func(st *Store) {
		if m := st.MissedOrders(room, "edge1", atSec(25)); !m.ClosedAt.Equal(atSec(50)) || len(m.Removed) != 1 || m.Removed[0].ParticipantID != "a" {
			t.Errorf("after a restore: %+v", m)
		}
	})

	// Deactivated: everybody goes, whenever they came.
	if _, err := f.apply(CmdDeactivateRoom, DeactivateRoom{UserID: "u1", RoomID: room, At: atSec(90)}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(st *Store) {
		if m := st.MissedOrders(room, "edge1", atSec(95)); !m.Disabled {
			t.Errorf("a deactivated room: %+v, want Disabled", m)
		}
		if m := st.MissedOrders("nope-nope-nope", "edge1", atSec(0)); !m.ClosedAt.IsZero() || m.Disabled || m.Removed != nil {
			t.Errorf("an unknown room: %+v", m)
		}
	})
}

// TestMissedOrdersEdgeClockBehind: the times an edge reports (a session's
// start, an emptied session's end) are its clock's, and one running behind
// the control plane reports a session that began after a close as if it
// began, or even ended, before its oldest ticket was issued. The close
// must still be told; so must a removal in that session. A restored node
// (which derives each room's latest order from its sessions) answers the
// same.
func TestMissedOrdersEdgeClockBehind(t *testing.T) {
	x := newMissedFixture(t, "abcd-efgh-ijkl")
	// x on edge1 since a ticket issued at 45; the API ends the session at 50
	// and edge1 misses it. edge1 runs 60 s behind.
	x.join("x", "edge1", 0)
	x.end(ReasonEndedByAPI, 50)
	// y comes and goes at 65 and 68 (edge1's 5 and 8): a session that seems
	// to have ended before 45.
	x.join("y", "edge1", 5)
	x.leave("y", "edge1", "", 8)
	x.check(nil, "an emptied session reported before the oldest ticket", "edge1", 45, 50)
	// z comes at 70 (edge1's 10) and is removed through the API at 75.
	x.join("z", "edge1", 10)
	x.check(nil, "an ongoing session reported as begun before the oldest ticket", "edge1", 45, 50)
	x.join("w", "edge1", 12)
	x.leave("z", "", ReasonRemoved, 75)
	x.check(nil, "a removal in it", "edge1", 45, 50, "z@75")
	x.check(nil, "the removal alone", "edge1", 60, -1, "z@75")
	x.check(nil, "an edge whose oldest ticket came after every order", "edge1", 76, -1)
	g := restoreBytes(t, persistRaw(t, x.f.FSM))
	x.check(g, "after a restore", "edge1", 45, 50, "z@75")
	x.check(g, "after a restore, the removal alone", "edge1", 60, -1, "z@75")
	x.check(g, "after a restore, since after every order", "edge1", 76, -1)
}

// TestRoomSize: a room is 320 bytes, the size class it is allocated in; a
// field that does not fit the struct's padding costs every stored room 32
// bytes more (the next class is 352).
func TestRoomSize(t *testing.T) {
	if n := unsafe.Sizeof(Room{}); n > 320 {
		t.Errorf("a Room is %d bytes, more than its 320-byte size class", n)
	}
}

// TestOrderSecond: a room's lastOrder is never earlier than the order it
// stands for (rounded up), and stays within its uint32.
func TestOrderSecond(t *testing.T) {
	base := uint32(t0.Unix())
	for _, c := range []struct {
		at   time.Time
		want uint32
	}{
		{t0, base},
		{t0.Add(time.Nanosecond), base + 1},
		{t0.Add(1500 * time.Millisecond), base + 2},
		{time.Time{}, 1},
		{time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxUint32},
	} {
		if got := orderSecond(c.at); got != c.want {
			t.Errorf("orderSecond(%v) = %d, want %d", c.at, got, c.want)
		}
	}
}
