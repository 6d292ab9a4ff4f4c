package api_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/state"
)

// TestDeliveryFiltersChecked: the delivery log's filters take only values
// that can match something; anything else (a misspelt event type, an
// unknown status) is a 400 naming the parameter, not an empty page that
// reads as "no deliveries".
func TestDeliveryFiltersChecked(t *testing.T) {
	c := newNode(t)
	var room struct{ RoomID string }
	r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"webhook": map[string]any{"endPoint": "https://hooks.example/in"}})
	if r.Status != 200 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &room)
	ev := state.EnqueueEvent{RoomID: room.RoomID, EventID: "ev-1", EventType: "participant-joined", Data: json.RawMessage(`{}`), At: time.Now().UTC()}
	if _, _, err := c.Node(0).Node().Apply(context.Background(), state.CmdEnqueueEvents, state.EnqueueEvents{Events: []state.EnqueueEvent{ev}}); err != nil {
		t.Fatal(err)
	}
	total := func(query string) int {
		t.Helper()
		var page struct {
			Data     []struct{ EventType string }
			PageInfo struct{ Total int }
		}
		r := c.Do(0, "GET", "/v2/webhooks/deliveries?"+query, c.Token(), nil)
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", query, r.Status, r.Body)
		}
		r.JSON(t, &page)
		return page.PageInfo.Total
	}
	if n := total("event=participant-joined"); n != 1 {
		t.Fatalf("event=participant-joined: total %d, want 1", n)
	}
	if n := total("event=session-ended&status=pending"); n != 0 {
		t.Fatalf("event=session-ended: total %d, want 0", n)
	}
	expectError(t, c.Do(0, "GET", "/v2/webhooks/deliveries?event=participant-joind", c.Token(), nil), 400, `"event"`)
	expectError(t, c.Do(0, "GET", "/v2/webhooks/deliveries?status=sent", c.Token(), nil), 400, `"status"`)
}
