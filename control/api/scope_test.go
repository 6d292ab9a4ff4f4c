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
