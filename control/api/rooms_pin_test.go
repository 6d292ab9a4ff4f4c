package api_test

import (
	"math"
	"testing"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/geo"
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
	count := func() int { return total(t, c, "/v2/rooms", token) }
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
	// A room's own pin and geoFence must meet too, whatever the key.
	before := total(t, c, "/v2/rooms", c.Token())
	r = c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"pin": map[string]any{"regions": []string{"eu-west"}}, "geoFence": "us001"})
	expectError(t, r, 400, `field "geoFence" us001 allows no region the room's pin allows`)
	if n := total(t, c, "/v2/rooms", c.Token()); n != before {
		t.Errorf("refused, yet %d rooms now, %d before", n, before)
	}
	for _, body := range []map[string]any{
		{"pin": map[string]any{"regions": []string{"eu-west"}}, "geoFence": "eu001"},
		{"pin": map[string]any{"jurisdictions": []string{"us"}}, "geoFence": "us001"},
	} {
		if r := c.Do(0, "POST", "/v2/rooms", c.Token(), body); r.Status != 200 {
			t.Errorf("%v: %d %s", body, r.Status, r.Body)
		}
	}
}

// total is the pageInfo.total of a list on node 0.
func total(t *testing.T, c *clustertest.Cluster, path, auth string) int {
	t.Helper()
	var page struct {
		PageInfo struct{ Total int } `json:"pageInfo"`
	}
	c.Do(0, "GET", path, auth, nil).JSON(t, &page)
	return page.PageInfo.Total
}

// TestPinsNameKnownRegions: edges register only in regions the control
// plane knows, so a room or API key pinned to any other region or
// jurisdiction (a typo, a wrong case) could never be placed. It is
// refused when written, with a 400 naming the entry, and nothing is stored.
func TestPinsNameKnownRegions(t *testing.T) {
	c := newNode(t)
	admin := "Bearer " + c.AdminToken
	for _, tc := range []struct {
		name  string
		pin   map[string]any
		field string // "" = accepted
	}{
		{"misspelt region", map[string]any{"regions": []string{"eu-west", "eu-wset"}}, "pin.regions[1]"},
		{"region in capitals", map[string]any{"regions": []string{"EU-WEST"}}, "pin.regions[0]"},
		{"unknown jurisdiction", map[string]any{"jurisdictions": []string{"eu", "atlantis"}}, "pin.jurisdictions[1]"},
		{"jurisdiction in capitals", map[string]any{"jurisdictions": []string{"EU"}}, "pin.jurisdictions[0]"},
		{"known region and jurisdiction", map[string]any{"regions": []string{"eu-central"}, "jurisdictions": []string{"de"}}, ""},
	} {
		rooms, keys := total(t, c, "/v2/rooms", c.Token()), total(t, c, "/admin/v1/keys", admin)
		room := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"pin": tc.pin})
		key := c.Do(0, "POST", "/admin/v1/keys", admin, map[string]any{"name": "pinned", "pin": tc.pin})
		if tc.field == "" {
			if room.Status != 200 || key.Status != 201 {
				t.Errorf("%s: room %d %s; key %d %s", tc.name, room.Status, room.Body, key.Status, key.Body)
			}
			continue
		}
		expectError(t, room, 400, `field "`+tc.field+`"`)
		expectError(t, key, 400, `field "`+tc.field+`"`)
		if r, k := total(t, c, "/v2/rooms", c.Token()), total(t, c, "/admin/v1/keys", admin); r != rooms || k != keys {
			t.Errorf("%s: refused, yet %d rooms and %d keys now, %d and %d before", tc.name, r, k, rooms, keys)
		}
	}
}

// TestPinsNameDefinedRegions: a region an operator defined
// (--define-region, the catalog) is as good a pin as a built-in one, and so
// is its jurisdiction.
func TestPinsNameDefinedRegions(t *testing.T) {
	cat := geo.NewCatalog()
	if err := cat.Add(geo.Region{Name: "onprem-1", Lat: math.NaN(), Lon: math.NaN(), Jurisdictions: []string{"acme"}}); err != nil {
		t.Fatal(err)
	}
	c := newNode(t, func(cfg *server.Config) { cfg.API.Catalog = cat })
	pin := map[string]any{"pin": map[string]any{"regions": []string{"onprem-1"}, "jurisdictions": []string{"acme"}}}
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), pin); r.Status != 200 {
		t.Fatalf("room pinned to a defined region: %d %s", r.Status, r.Body)
	}
	if r := c.Do(0, "POST", "/admin/v1/keys", "Bearer "+c.AdminToken, map[string]any{"name": "onprem", "pin": pin["pin"]}); r.Status != 201 {
		t.Fatalf("key pinned to a defined region: %d %s", r.Status, r.Body)
	}
}
