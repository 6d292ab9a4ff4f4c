package state

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestMissedOrders: what an edge is told again about a room, given when
// the oldest ticket of its participants there was issued. A session ended
// through the API is a close, one that ended because everybody left or by
// the auto-close loop is not; a removal through the API is told to the edge
// the participant was on, until the participant comes back, and a
// moderator's removal the edge reported is not told back; nothing older than
// the edge's oldest ticket is told; a deactivated room closes whatever the
// times; all of it survives a snapshot.
func TestMissedOrders(t *testing.T) {
	const room = "abcd-efgh-ijkl"
	f := newTestFSM(t)
	if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", RoomID: room, UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	n := 0
	join := func(pid, edge string, s int) {
		t.Helper()
		n++
		if _, err := f.apply(CmdParticipantJoin, ParticipantJoin{EventID: fmt.Sprintf("j%d", n), RoomID: room, ParticipantID: pid, EdgeID: edge, At: at(s),
			NewSessionID: fmt.Sprintf("%024x", n), NewDocID: fmt.Sprintf("d%023x", n), IDs: []string{fmt.Sprintf("ja%d", n), fmt.Sprintf("jb%d", n)}}); err != nil {
			t.Fatal(err)
		}
	}
	leave := func(pid, edge, reason string, s int) {
		t.Helper()
		n++
		if _, err := f.apply(CmdParticipantLeave, ParticipantLeave{EventID: fmt.Sprintf("l%d", n), RoomID: room, ParticipantID: pid, EdgeID: edge, Reason: reason, At: at(s),
			IDs: []string{fmt.Sprintf("la%d", n), fmt.Sprintf("lb%d", n), fmt.Sprintf("lc%d", n)}}); err != nil {
			t.Fatal(err)
		}
	}
	end := func(reason string, s int) {
		t.Helper()
		ids := make([]string, 8)
		for i := range ids {
			n++
			ids[i] = fmt.Sprintf("e%d", n)
		}
		if _, err := f.apply(CmdEndSession, EndSession{UserID: "u1", RoomRef: room, Reason: reason, At: at(s), IDs: ids}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what, edge string, since int, wantClosed int, wantRemoved ...string) {
		t.Helper()
		var m Missed
		f.Read(func(st *Store) { m = st.MissedOrders(room, edge, at(since)) })
		var got []string
		for _, r := range m.Removed {
			got = append(got, fmt.Sprintf("%s@%d", r.ParticipantID, int(r.At.Sub(t0)/time.Second)))
		}
		closed := -1
		if !m.ClosedAt.IsZero() {
			closed = int(m.ClosedAt.Sub(t0) / time.Second)
		}
		if closed != wantClosed || !slices.Equal(got, wantRemoved) || m.Disabled {
			t.Errorf("%s: closed at %d, removed %v, disabled %v; want closed at %d, removed %v", what, closed, got, m.Disabled, wantClosed, wantRemoved)
		}
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
		if m := st.MissedOrders(room, "edge1", at(25)); !m.ClosedAt.Equal(at(50)) || len(m.Removed) != 1 || m.Removed[0].ParticipantID != "a" {
			t.Errorf("after a restore: %+v", m)
		}
	})

	// Deactivated: everybody goes, whenever they came.
	if _, err := f.apply(CmdDeactivateRoom, DeactivateRoom{UserID: "u1", RoomID: room, At: at(90)}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(st *Store) {
		if m := st.MissedOrders(room, "edge1", at(95)); !m.Disabled {
			t.Errorf("a deactivated room: %+v, want Disabled", m)
		}
		if m := st.MissedOrders("nope-nope-nope", "edge1", at(0)); !m.ClosedAt.IsZero() || m.Disabled || m.Removed != nil {
			t.Errorf("an unknown room: %+v", m)
		}
	})
}
