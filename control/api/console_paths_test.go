package api_test

import (
	"strings"
	"testing"

	"github.com/meridian-video/meridian/control/auth"
)

// TestRTCTokenReachesOnlyJoinAndNearest: a meeting (rtc-only) token may
// call the join route and the nearest-edge lookup, nothing else. The
// exception is decided on the path as the router sees it, so a room whose
// id is "join" (POST /v2/rooms/join is the room-status route) or the
// validate route with such an id is not mistaken for a join.
func TestRTCTokenReachesOnlyJoinAndNearest(t *testing.T) {
	c := newNode(t)
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "join"}); r.Status != 200 {
		t.Fatalf("create room join: %d %s", r.Status, r.Body)
	}
	rtc := c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC} })
	for _, path := range []string{"/v2/rooms/join", "/v2/rooms/Join/", "/v2/rooms/validate/join", "/V2/Rooms/VALIDATE/join/"} {
		expectError(t, c.Do(0, "POST", path, rtc, map[string]any{"status": "disabled"}), 403, "crawler")
	}
	r := c.Do(0, "GET", "/v2/rooms/join", c.Token(), nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"disabled":false`) || !strings.Contains(string(r.Body), `"join"`) {
		t.Fatalf("room join after refused status changes: %d %s", r.Status, r.Body)
	}
	// The exceptions themselves, in any spelling the router accepts.
	if r := c.Do(0, "GET", "/V2/Edges/Nearest/", rtc, nil); r.Status == 403 {
		t.Fatalf("rtc token asks for its nearest edges: %d %s", r.Status, r.Body)
	}
	if r := c.Do(0, "POST", "/v2/Rooms/join/JOIN", rtc, map[string]any{}); r.Status == 403 && strings.Contains(string(r.Body), "crawler") {
		t.Fatalf("rtc token joins: %d %s", r.Status, r.Body)
	}
}
