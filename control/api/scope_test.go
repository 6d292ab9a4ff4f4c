package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
)

// TestRoomScopedTokenSeesOnlyItsRoomsDeliveries: the delivery log (list,
// get, redeliver) is scoped like every other route: a token for room A
// never sees room B's endpoints or events.
func TestRoomScopedTokenSeesOnlyItsRoomsDeliveries(t *testing.T) {
	c := newNode(t)
	create := func(url string) string {
		var room struct{ RoomID string }
		r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"webhook": map[string]any{"endPoint": url}})
		if r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &room)
		return room.RoomID
	}
	a := create("https://hooks.example/a?secret=aaa")
	b := create("https://hooks.example/b?secret=bbb")
	var evs []state.EnqueueEvent
	for i, room := range []string{a, b} {
		evs = append(evs, state.EnqueueEvent{RoomID: room, EventID: fmt.Sprintf("ev-%d", i), EventType: "participant-joined", Data: json.RawMessage(`{}`), At: time.Now().UTC()})
	}
	if _, _, err := c.Node(0).Node().Apply(context.Background(), state.CmdEnqueueEvents, state.EnqueueEvents{Events: evs}); err != nil {
		t.Fatal(err)
	}
	scoped := c.Token(func(o *auth.MintOptions) { o.RoomID = a })
	var list struct {
		Data []struct{ ID, RoomID, URL string }
	}
	r := c.Do(0, "GET", "/v2/webhooks/deliveries?perPage=100", scoped, nil)
	r.JSON(t, &list)
	if r.Status != 200 || len(list.Data) != 1 || list.Data[0].RoomID != a || strings.Contains(string(r.Body), "bbb") {
		t.Fatalf("room-scoped delivery log: %d %s", r.Status, r.Body)
	}
	expectError(t, c.Do(0, "GET", "/v2/webhooks/deliveries?roomId="+b, scoped, nil), 403, "another room")
	var all struct {
		Data []struct{ ID, RoomID string }
	}
	c.Do(0, "GET", "/v2/webhooks/deliveries?perPage=100", c.Token(), nil).JSON(t, &all)
	var other string
	for _, d := range all.Data {
		if d.RoomID == b {
			other = d.ID
		}
	}
	if other == "" {
		t.Fatalf("project token does not see room b's delivery: %+v", all)
	}
	expectError(t, c.Do(0, "GET", "/v2/webhooks/deliveries/"+other, scoped, nil), 404, "not found")
	expectError(t, c.Do(0, "POST", "/v2/webhooks/deliveries/"+other+"/redeliver", scoped, nil), 404, "not found")
}

// TestSessionWritesNameTheirRoom: ending a session or removing a
// participant with both a roomId and a sessionId acts only when the
// session is one of that room. A token scoped to room A once ended room
// B's session by naming A with B's session id, and the edges were told to
// close room A; an unscoped caller's mismatch did the same.
func TestSessionWritesNameTheirRoom(t *testing.T) {
	c := newNode(t)
	a := createRoom(t, c, "scope-end-a").RoomID
	b := createRoom(t, c, "scope-end-b").RoomID
	joinParticipant(t, c, a, "aaaaaaaaaaaaaaaaaaaaaa01")
	joinParticipant(t, c, b, "bbbbbbbbbbbbbbbbbbbbbb01")
	sessionOf := func(room string) string {
		var id string
		c.Node(0).Node().FSM().Read(func(s *state.Store) {
			r, _ := s.RoomByRoomID(room)
			if ss, ok := s.OngoingSession(r.ID); ok {
				id = ss.ID
			}
		})
		if id == "" {
			t.Fatalf("room %s has no ongoing session", room)
		}
		return id
	}
	sb := sessionOf(b)
	scopedA := c.Token(func(o *auth.MintOptions) { o.RoomID = a })
	for _, tok := range []struct {
		name, token string
		status      int
		says        string
	}{{"scoped to room A", scopedA, 403, "scoped to room"}, {"unscoped", c.Token(), 404, "not a session of room"}} {
		expectError(t, c.Do(0, "POST", "/v2/sessions/end", tok.token, map[string]any{"roomId": a, "sessionId": sb}), tok.status, tok.says)
		expectError(t, c.Do(0, "POST", "/v2/sessions/participants/remove", tok.token,
			map[string]any{"roomId": a, "sessionId": sb, "participantId": "p1"}), tok.status, tok.says)
		if !ongoingSession(t, c, a) || !ongoingSession(t, c, b) {
			t.Fatalf("%s: a refused end changed the sessions (room A ongoing %v, room B ongoing %v)", tok.name, ongoingSession(t, c, a), ongoingSession(t, c, b))
		}
	}
	// The scoped token still ends its own room's session, named both ways.
	if r := c.Do(0, "POST", "/v2/sessions/end", scopedA, map[string]any{"roomId": a, "sessionId": sessionOf(a)}); r.Status != 200 || ongoingSession(t, c, a) {
		t.Fatalf("end room A's session with its own token: %d %s", r.Status, r.Body)
	}
	if !ongoingSession(t, c, b) {
		t.Fatal("ending room A's session ended room B's")
	}
}
