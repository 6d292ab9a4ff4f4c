package signal_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// issuedAfter makes a ticket issued after moment t (the control plane's
// clock), in whole seconds as tickets without iatMs carry them.
func issuedAfter(t time.Time) func(*ticket.Claims) {
	return func(c *ticket.Claims) {
		c.IssuedAt = t.Unix() + 1
		c.ExpiresAt = c.IssuedAt + int64(ticket.MaxTTL/time.Second)
	}
}

// TestLateRoomCloseSparesTheNextSession: the control plane retries a room
// close an edge did not confirm (it was stopped or cut off), or repeats it
// in a heartbeat reply because the edge missed it, with the moment it
// closed the room. However late the close arrives, and with the edge's
// clock 30 s ahead of the control plane's, it removes whoever joined with a
// ticket issued before that moment and spares whoever joined with one
// issued after it (the room's next session). What heartbeats report for the
// room (Oldest) is the control plane's time too: its oldest ticket.
func TestLateRoomCloseSparesTheNextSession(t *testing.T) {
	e, skew := skewedEdge(t)
	skew.Store(int64(30 * time.Second))
	closeRoom := func(at time.Time) {
		t.Helper()
		body, _ := json.Marshal(edgeapi.CloseRoom{RoomID: "room-c", Reason: "ended", At: at})
		if code, err := e.Internal("/internal/v1/rooms/close", string(body)); err != nil || code != 200 {
			t.Fatalf("close: %d %v", code, err)
		}
	}
	alice := e.Join(t, "room-c", "alice", nil)
	closedAt := time.Now().Add(time.Second)                  // the control plane closed the room just after alice joined…
	bob := e.Join(t, "room-c", "bob", issuedAfter(closedAt)) // …and bob joined the next session
	if o := e.Server.Oldest()["room-c"]; o.After(closedAt) {
		t.Fatalf("the room's oldest ticket reported as %v, after the close at %v: a heartbeat would not bring the close back", o, closedAt)
	}
	closeRoom(closedAt)
	m := waitMsg(t, alice, wire.TypeRemoved, nil)
	if r, _ := signaltest.Decode[wire.Removed](m); r.Reason != wire.ReasonRoomClosed {
		t.Fatalf("alice got %+v", r)
	}
	closeRoom(closedAt) // repeated: changes nothing
	time.Sleep(300 * time.Millisecond)
	for _, env := range bob.Messages() {
		if env.Type == wire.TypeRemoved {
			t.Fatalf("bob, who joined after the room was closed, was removed by the late close: %s", env.Data)
		}
	}

	// A later close removes him.
	closeRoom(closedAt.Add(3 * time.Second))
	waitMsg(t, bob, wire.TypeRemoved, nil)
}

// TestLateRemovalSparesAReturn: a participant removal retried until the
// edge answered, or repeated because the edge missed it, removes the
// connection it was meant for and spares the participant's return with a
// ticket issued after it (a removed participant may come back), with the
// edge's clock 30 s ahead of the control plane's.
func TestLateRemovalSparesAReturn(t *testing.T) {
	e, skew := skewedEdge(t)
	skew.Store(int64(30 * time.Second))
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
	remove(removedAt) // late by the edge's clock, and dave has been here since before: removed
	waitMsg(t, dave, wire.TypeRemoved, nil)
	dave2 := e.Join(t, "room-r", "dave", issuedAfter(removedAt)) // back
	remove(removedAt)                                            // the same order, repeated later still
	time.Sleep(300 * time.Millisecond)
	for _, env := range dave2.Messages() {
		if env.Type == wire.TypeRemoved {
			t.Fatalf("dave's return was removed by a late order for his earlier connection: %s", env.Data)
		}
	}
}

// TestOrdersSpareTicketsIssuedAfterThem: a close or removal that reaches
// the edge a few seconds after it was made (prompt by the edge's clock,
// which would otherwise disconnect everybody) spares whoever joined with a
// ticket the control plane handed out after it: they are in the room's next
// session, or came back after the removal.
func TestOrdersSpareTicketsIssuedAfterThem(t *testing.T) {
	e, _ := skewedEdge(t)
	order := func(path string, body any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		if code, err := e.Internal(path, string(raw)); err != nil || code != 200 {
			t.Fatalf("%s: %d %v", path, code, err)
		}
	}
	before := func(c *ticket.Claims) { c.IssuedAt, c.ExpiresAt = c.IssuedAt-10, c.ExpiresAt-10 }
	alice := e.Join(t, "room-n", "alice", before)
	dan := e.Join(t, "room-n", "dan", nil) // his ticket: issued after the close below
	dave := e.Join(t, "room-k", "dave", nil)
	madeAt := time.Now().Add(-3 * time.Second)
	order("/internal/v1/rooms/close", edgeapi.CloseRoom{RoomID: "room-n", Reason: "ended", At: madeAt})
	order("/internal/v1/rooms/remove-participant", edgeapi.RemoveParticipant{RoomID: "room-k", ParticipantID: "dave", Reason: wire.ReasonRemoved, At: madeAt})
	waitMsg(t, alice, wire.TypeRemoved, nil)
	time.Sleep(300 * time.Millisecond)
	for name, c := range map[string]*signaltest.Client{"dan": dan, "dave": dave} {
		for _, env := range c.Messages() {
			if env.Type == wire.TypeRemoved {
				t.Errorf("%s, whose ticket was issued after the order, was removed: %s", name, env.Data)
			}
		}
	}
}

// TestJoinInTheSecondOfAClose: tickets carry when they were issued to the
// millisecond, so a join right after a close (an API call that ended the
// session, then a new meeting in the room within the same second) is
// admitted, while a ticket issued just before the close is still refused.
func TestJoinInTheSecondOfAClose(t *testing.T) {
	e, _ := skewedEdge(t)
	closedAt := time.Now().Truncate(time.Second).Add(-500 * time.Millisecond) // x.500
	raw, _ := json.Marshal(edgeapi.CloseRoom{RoomID: "room-s", Reason: "ended", At: closedAt})
	if code, err := e.Internal("/internal/v1/rooms/close", string(raw)); err != nil || code != 200 {
		t.Fatalf("close: %d %v", code, err)
	}
	issued := func(at time.Time) func(*ticket.Claims) {
		return func(c *ticket.Claims) {
			c.IssuedAt, c.IssuedAtMs, c.ExpiresAt = at.Unix(), at.UnixMilli(), at.Add(ticket.MaxTTL).Unix()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := e.Dial(t, signaltest.Config{})
	if _, _, err := c.Join(ctx, e.Ticket(t, "room-s", "early", issued(closedAt.Add(-50*time.Millisecond))), "early"); protoCode(err) != wire.CodeRoomClosed {
		t.Fatalf("a ticket issued 50 ms before the close: %v, want refused", err)
	}
	late := e.Join(t, "room-s", "next", issued(closedAt.Add(50*time.Millisecond)))
	if late == nil {
		t.Fatal("no client")
	}
}
