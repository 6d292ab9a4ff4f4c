package api_test

import (
	"testing"

	"github.com/meridian-video/meridian/control/auth"
)

// TestRoomPinMustMeetTheKeyPin: placement holds a room to its own pin, its
// geoFence and its API key's pin at once; a room whose pin or geoFence
// shares no region with the key's would refuse every join, so creating
// it is refused with a 400 naming the field, and nothing is stored.
func TestRoomPinMustMeetTheKeyPin(t *testing.T) {
	c := newNode(t)
	var key struct{ APIKey, Secret string }
	r := c.Do(0, "POST", "/admin/v1/keys", "Bearer "+c.AdminToken, map[string]any{"name": "eu-only", "pin": map[string]any{"jurisdictions": []string{"eu"}}})
	if r.Status != 201 {
		t.Fatalf("create pinned key: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &key)
	token := c.Token(func(o *auth.MintOptions) { o.APIKey, o.Secret = key.APIKey, []byte(key.Secret) })
	count := func() int {
		var page struct {
			PageInfo struct{ Total int } `json:"pageInfo"`
		}
		c.Do(0, "GET", "/v2/rooms", token, nil).JSON(t, &page)
		return page.PageInfo.Total
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string // "" = created
	}{
		{"geoFence of another jurisdiction", map[string]any{"geoFence": "us001"}, "geoFence"},
		{"pin to a region outside the key's", map[string]any{"pin": map[string]any{"regions": []string{"us-east"}}}, "pin"},
		{"pin to another jurisdiction", map[string]any{"pin": map[string]any{"jurisdictions": []string{"us"}}}, "pin"},
		{"geoFence inside the key's pin", map[string]any{"geoFence": "eu001"}, ""},
		{"wider pin that still meets the key's", map[string]any{"pin": map[string]any{"regions": []string{"eu-west", "us-east"}}}, ""},
		{"no pin (inherits the key's)", map[string]any{}, ""},
	} {
		before := count()
		r := c.Do(0, "POST", "/v2/rooms", token, tc.body)
		if tc.field == "" {
			if r.Status != 200 || count() != before+1 {
				t.Errorf("%s: %d %s", tc.name, r.Status, r.Body)
			}
			continue
		}
		expectError(t, r, 400, `field "`+tc.field+`"`)
		if n := count(); n != before {
			t.Errorf("%s: refused, yet %d rooms now, %d before", tc.name, n, before)
		}
	}
	// The same geoFence is fine for an unpinned key.
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"geoFence": "us001"}); r.Status != 200 {
		t.Errorf("geoFence us001 with an unpinned key: %d %s", r.Status, r.Body)
	}
}
