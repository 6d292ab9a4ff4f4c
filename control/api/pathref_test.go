package api_test

import (
	"net/url"
	"testing"
)

// A customRoomId may hold any printable characters, some of which a client
// has to percent-encode in a path; the routes that take a room in their
// path find it by the decoded value.
func TestCustomRoomIDsThatNeedEscapingInPaths(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	for _, cid := range []string{"a b", "a/b", "é-room", "plus+sign", "x%y", "q?z", "h#t"} {
		var created struct{ RoomID, CustomRoomID string }
		r := c.Do(0, "POST", "/v2/rooms", tok, map[string]any{"customRoomId": cid})
		r.JSON(t, &created)
		if r.Status != 200 || created.CustomRoomID != cid {
			t.Fatalf("create %q: %d %s", cid, r.Status, r.Body)
		}
		path := url.PathEscape(cid)
		var got struct{ RoomID string }
		r = c.Do(0, "GET", "/v2/rooms/"+path, tok, nil)
		r.JSON(t, &got)
		if r.Status != 200 || got.RoomID != created.RoomID {
			t.Errorf("GET /v2/rooms/%s (%q): %d %s", path, cid, r.Status, r.Body)
		}
		for _, p := range []string{"/v2/rooms/validate/" + path, "/v2/rooms/" + path + "/meeting-link"} {
			method := "POST"
			if r := c.Do(0, method, p, tok, nil); r.Status != 200 {
				t.Errorf("%s %s (%q): %d %s", method, p, cid, r.Status, r.Body)
			}
		}
		var status struct{ Disabled bool }
		r = c.Do(0, "POST", "/v2/rooms/"+path, tok, map[string]any{"status": "disabled"})
		r.JSON(t, &status)
		if r.Status != 200 || !status.Disabled {
			t.Errorf("disable through /v2/rooms/%s (%q): %d %s", path, cid, r.Status, r.Body)
		}
	}
	// A name that is no room stays a 404 naming what was asked for.
	if r := c.Do(0, "GET", "/v2/rooms/"+url.PathEscape("no such room"), tok, nil); r.Status != 404 {
		t.Errorf("unknown room: %d %s", r.Status, r.Body)
	}
}
