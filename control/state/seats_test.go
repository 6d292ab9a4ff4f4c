package state

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestSeatsCapTheRoom: in a room with maxParticipants the join API takes a
// seat in the placement write, and the log's order decides who gets the
// last place. Active participants and unexpired seats count once per id,
// the joiner never; an edge's join report releases the seat (the session
// counts the participant from then on); an expired seat frees its place;
// seats survive a snapshot.
func TestSeatsCapTheRoom(t *testing.T) {
	const room = "abcd-efgh-ijkl"
	f := newTestFSM(t)
	if _, err := f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", RoomID: room, UserID: "u1", APIKey: "k1", CreatedAt: t0, UpdatedAt: t0, MaxParticipants: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdUpsertEdge, UpsertEdge{Edge: Edge{ID: "edge1", Region: "eu-west", RegisteredAt: t0}}); err != nil {
		t.Fatal(err)
	}
	seat := func(fsm *FSM, apply func(CommandType, any) (any, error), pid string, at time.Time) error {
		t.Helper()
		var epoch uint64
		fsm.Read(func(s *Store) {
			if p, ok := s.Placement(room); ok {
				epoch = p.Epoch
			}
		})
		_, err := apply(CmdPlaceRoom, PlaceRoom{RoomID: room, ExpectEpoch: epoch, EdgeID: "edge1", ReserveFor: 90, At: at, Seat: pid})
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Fatalf("seat for %s: %v", pid, err)
		}
		return err
	}
	want := func(pid string, at time.Time, ok bool) {
		t.Helper()
		err := seat(f.FSM, f.apply, pid, at)
		if ok && err != nil {
			t.Fatalf("%s refused: %v", pid, err)
		}
		if !ok && err == nil {
			t.Fatalf("%s got a seat in a full room", pid)
		}
	}
	want("a", t0, true)
	want("b", t0, true)
	want("c", t0, false)
	want("a", t0.Add(time.Second), true) // a again (a retry, a move): still one place

	// a reaches its edge: its seat goes, the session counts it.
	if _, err := f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "j1", RoomID: room, ParticipantID: "a", EdgeID: "edge1", At: t0.Add(2 * time.Second),
		NewSessionID: "111111111111111111111111", NewDocID: "d00000000000000000000001", IDs: []string{"i1", "i2"}}); err != nil {
		t.Fatal(err)
	}
	f.Read(func(s *Store) {
		p, _ := s.Placement(room)
		if len(p.Seats) != 1 || p.Seats[0].ParticipantID != "b" {
			t.Fatalf("seats after a joined: %+v, want b's only", p.Seats)
		}
	})
	want("c", t0.Add(3*time.Second), false)
	// a, active, joins again (moving to another edge): the room is full,
	// but a has its place; its new edge's report releases the new seat.
	want("a", t0.Add(3*time.Second), true)
	if _, err := f.apply(CmdParticipantJoin, ParticipantJoin{EventID: "j2", RoomID: room, ParticipantID: "a", EdgeID: "edge1", At: t0.Add(3 * time.Second),
		NewSessionID: "222222222222222222222222", NewDocID: "d00000000000000000000002", IDs: []string{"i5", "i6"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.apply(CmdParticipantLeave, ParticipantLeave{EventID: "l1", RoomID: room, ParticipantID: "a", EdgeID: "edge1", At: t0.Add(4 * time.Second), IDs: []string{"i3", "i4"}}); err != nil {
		t.Fatal(err)
	}
	want("c", t0.Add(5*time.Second), true) // a left: b's seat and c's
	want("d", t0.Add(6*time.Second), false)

	// Seats survive a snapshot: the restored replica decides the same.
	g := restoreBytes(t, persistRaw(t, f.FSM))
	if a, b := persist(t, f.FSM), persist(t, g); !bytes.Equal(a, b) {
		t.Fatalf("restore differs:\n%s\n%s", a, b)
	}
	gi := f.index
	applyG := func(ct CommandType, body any) (any, error) {
		b, err := Encode(ct, body)
		if err != nil {
			t.Fatal(err)
		}
		gi++
		res := g.Apply(&raft.Log{Index: gi, Type: raft.LogCommand, Data: b})
		if res == nil {
			return nil, nil
		}
		return res.(Result).Value, res.(Result).Err
	}
	if err := seat(g, applyG, "d", t0.Add(7*time.Second)); err == nil {
		t.Fatal("the restored replica gave d a seat in a full room")
	}

	// b and c never reached an edge: their seats lapse with their tickets.
	want("d", t0.Add(5*time.Second+91*time.Second), true)
}
