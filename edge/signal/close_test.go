package signal_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestLateRoomCloseSparesTheNextSession: the control plane retries a room
// close an edge did not confirm (it was stopped or cut off), with the
// moment it closed the room. Arriving late, the close removes those
// admitted before that moment and spares those who joined since (the
// room's next session); arriving promptly, it removes everybody whatever
// the clocks say.
func TestLateRoomCloseSparesTheNextSession(t *testing.T) {
	e, skew := skewedEdge(t)
	closeRoom := func(at time.Time) {
		t.Helper()
		body, _ := json.Marshal(edgeapi.CloseRoom{RoomID: "room-c", Reason: "ended", At: at})
		if code, err := e.Internal("/internal/v1/rooms/close", string(body)); err != nil || code != 200 {
			t.Fatalf("close: %d %v", code, err)
		}
	}
	alice := e.Join(t, "room-c", "alice", nil)
	closedAt := time.Now().Add(time.Second) // the control plane closed the room just after alice joined…
	skew.Store(int64(10 * time.Second))     // …and the close reaches the edge 9 s later, after bob joined
	bob := e.Join(t, "room-c", "bob", nil)
	closeRoom(closedAt)
	m := waitMsg(t, alice, wire.TypeRemoved, nil)
	if r, _ := signaltest.Decode[wire.Removed](m); r.Reason != wire.ReasonRoomClosed {
		t.Fatalf("alice got %+v", r)
	}
	time.Sleep(300 * time.Millisecond)
	for _, env := range bob.Messages() {
		if env.Type == wire.TypeRemoved {
			t.Fatalf("bob, who joined after the room was closed, was removed by the late close: %s", env.Data)
		}
	}

	// A prompt close removes everybody, even with the control plane's
	// clock 2 s behind the edge's (carol joined "after" it by the edge's).
	// (Her ticket issued after the first close, which refuses older ones.)
	carol := e.Join(t, "room-c", "carol", func(c *ticket.Claims) { c.IssuedAt, c.ExpiresAt = c.IssuedAt+3, c.ExpiresAt+3 })
	closeRoom(time.Now().Add(10*time.Second - 2*time.Second))
	waitMsg(t, bob, wire.TypeRemoved, nil)
	waitMsg(t, carol, wire.TypeRemoved, nil)
}

// TestLateRemovalSparesAReturn: a participant removal retried until the
// edge answered spares the participant's connection made after the
// removal (a removed participant may come back), and removes the one it
// was meant for.
func TestLateRemovalSparesAReturn(t *testing.T) {
	e, skew := skewedEdge(t)
	remove := func(at time.Time) {
		t.Helper()
		body, _ := json.Marshal(edgeapi.RemoveParticipant{RoomID: "room-r", ParticipantID: "dave", Reason: wire.ReasonRemoved, At: at})
		if code, err := e.Internal("/internal/v1/rooms/remove-participant", string(body)); err != nil || code != 200 {
			t.Fatalf("remove: %d %v", code, err)
		}
	}
	e.Join(t, "room-r", "erin", nil)
	dave := e.Join(t, "room-r", "dave", nil)
	removedAt := time.Now().Add(time.Second)
	skew.Store(int64(10 * time.Second))
	remove(removedAt) // late, and dave has been here since before: removed
	waitMsg(t, dave, wire.TypeRemoved, nil)
	dave2 := e.Join(t, "room-r", "dave", nil) // back
	remove(removedAt)                         // the same order, retried later still
	time.Sleep(300 * time.Millisecond)
	for _, env := range dave2.Messages() {
		if env.Type == wire.TypeRemoved {
			t.Fatalf("dave's return was removed by a late order for his earlier connection: %s", env.Data)
		}
	}
}
