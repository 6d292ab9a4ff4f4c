package api_test

import (
	"testing"
)

// TestRequireSSONeedsAnIdentityProvider: without an identity provider a
// room requiring participants to sign in could never be joined, so
// creating one is refused, naming the field; nothing is created.
func TestRequireSSONeedsAnIdentityProvider(t *testing.T) {
	c := newNode(t)
	count := func() int {
		var out struct {
			PageInfo struct{ Total int } `json:"pageInfo"`
		}
		c.Do(0, "GET", "/v2/rooms", c.Token(), nil).JSON(t, &out)
		return out.PageInfo.Total
	}
	before := count()
	expectError(t, c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "sso", "requireSSO": true}), 400, "requireSSO")
	if n := count(); n != before {
		t.Fatalf("rooms %d after a refused create, want %d", n, before)
	}
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"requireSSO": false}); r.Status != 200 {
		t.Fatalf("requireSSO false: %d %s", r.Status, r.Body)
	}
}
