package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// TestAPIKeyPinOnJoin: the joiners of a room created with an API key
// pinned to a jurisdiction are only ever sent to edges the key's pin
// allows, wherever they are — whether the room inherited the key's pin or
// has a wider one of its own; with no allowed edge up the join answers 503
// JSON naming the key's pin and never falls back to an edge elsewhere.
func TestAPIKeyPinOnJoin(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "ashburn-1", region: "us-east"})
	var key struct{ APIKey, Secret string }
	r := clustertest.Do(t, m.c.Node(0).URL(), "POST", "/admin/v1/keys", "Bearer "+m.c.AdminToken,
		map[string]any{"name": "eu-only", "pin": map[string]any{"jurisdictions": []string{"eu"}}})
	if r.Status != 201 {
		t.Fatalf("create pinned key: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &key)
	withKey := func(o *auth.MintOptions) { o.APIKey, o.Secret = key.APIKey, []byte(key.Secret) }
	rtc := func(pid string) string {
		return m.c.Token(withKey, func(o *auth.MintOptions) {
			o.Roles, o.ParticipantID = []string{auth.RoleRTC}, pid
		})
	}
	join := func(room, pid, region string) (int, joinAnswer, string) {
		var ja joinAnswer
		r := m.c.Do(0, "POST", "/v2/rooms/"+room+"/join", rtc(pid), map[string]any{"participantId": pid, "region": region})
		if r.Status == 200 {
			r.JSON(t, &ja)
		}
		return r.Status, ja, string(r.Body)
	}

	// Without the pin a joiner from us-east is sent to ashburn-1 first,
	// so what follows is the pin's doing.
	open := m.room(nil)
	if st, ja, body := m.join(0, open, "free", map[string]any{"region": "us-east"}); st != 200 || len(ja.Edges) == 0 || ja.Edges[0].EdgeID != "ashburn-1" {
		t.Fatalf("unpinned join from us-east: %d %s, want ashburn-1 first", st, body)
	}

	create := func(body map[string]any) (string, string) {
		cr := m.c.Do(0, "POST", "/v2/rooms", m.c.Token(withKey), body)
		if cr.Status != 200 {
			t.Fatalf("create room with the pinned key: %d %s", cr.Status, cr.Body)
		}
		var room struct{ RoomID string }
		cr.JSON(t, &room)
		return room.RoomID, string(cr.Body)
	}
	offersOnlyParis := func(room, what string) {
		t.Helper()
		for _, region := range []string{"us-east", "eu-west", "ap-south"} {
			st, ja, body := join(room, "p-"+region, region)
			if st != 200 {
				t.Fatalf("%s: join from %s: %d %s", what, region, st, body)
			}
			if len(ja.Edges) != 1 || ja.Edges[0].EdgeID != "paris-1" {
				t.Fatalf("%s: key pinned to jurisdiction eu, a joiner from %s was offered %+v, want paris-1 only", what, region, ja.Edges)
			}
		}
	}
	// A room created without a pin inherits the key's.
	inherited, body := create(map[string]any{})
	if !strings.Contains(body, `"jurisdictions":["eu"]`) {
		t.Fatalf("room of a pinned key does not show the key's pin: %s", body)
	}
	offersOnlyParis(inherited, "inherited pin")
	// A room with a wider pin of its own (eu-west or us-east) is still held
	// to the key's: the join path applies the key's pin itself, not only
	// through what the room copied at creation.
	wider, _ := create(map[string]any{"pin": map[string]any{"regions": []string{"eu-west", "us-east"}}})
	offersOnlyParis(wider, "room pin wider than the key's")

	// The only allowed edge dies: 503 JSON naming the pin, never ashburn-1.
	m.edge("paris-1").Crash()
	clustertest.Eventually(t, 15*time.Second, func() string {
		st, ja, body := join(wider, "late", "us-east")
		if st == 200 {
			for _, e := range ja.Edges {
				if e.Region != "eu-west" {
					t.Fatalf("key-pinned room fell back to %s in %s", e.EdgeID, e.Region)
				}
			}
			return "still offered paris-1, which is down"
		}
		if st != 503 || !strings.Contains(body, `"statusCode":503`) || !strings.Contains(body, "jurisdictions eu") ||
			!strings.Contains(body, "will not fall back") {
			return fmt.Sprintf("%d %s", st, body)
		}
		return ""
	})
	// The unpinned room still works from us-east: the 503 was the pin.
	if st, ja, body := m.join(0, open, "free-2", map[string]any{"region": "us-east"}); st != 200 || len(ja.Edges) == 0 || ja.Edges[0].EdgeID != "ashburn-1" {
		t.Fatalf("unpinned join after the crash: %d %s", st, body)
	}
}
