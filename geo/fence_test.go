package geo

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestDefaultFences(t *testing.T) {
	want := map[string]string{
		"eu001": "eu", "uk001": "uk", "us001": "us", "us002": "us",
		"in001": "in", "in002": "in", "in003": "in", "sg001": "sg", "sg002": "sg",
		"aus001": "au", "uae001": "ae",
	}
	ft := DefaultFences()
	if len(ft) != len(want) {
		t.Fatalf("%d codes, want %d", len(ft), len(want))
	}
	for code, j := range want {
		p, ok := ft.Policy(code)
		if !ok || len(p.Regions) != 0 || !slices.Equal(p.Jurisdictions, []string{j}) {
			t.Errorf("%s = %+v, %v; want jurisdiction %s", code, p, ok, j)
		}
	}
	if _, ok := ft.Policy("EU001"); ok {
		t.Error("codes are matched exactly")
	}
	codes := ft.Codes()
	if !slices.IsSorted(codes) || !slices.Equal(codes, slices.Sorted(maps.Keys(want))) {
		t.Errorf("Codes = %v", codes)
	}
	ft["eu001"] = Policy{Regions: []string{"x"}}
	if p, _ := DefaultFences().Policy("eu001"); !slices.Equal(p.Jurisdictions, []string{"eu"}) {
		t.Error("changing one table changed the defaults")
	}
}

func TestParseFences(t *testing.T) {
	ft, err := ParseFences("eu001=jurisdiction:eu,us001=region:us-east+us-west, in001 = jurisdiction:IN+in ,xx9=region:onprem-1,")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Policy{
		"eu001":  {Jurisdictions: []string{"eu"}},
		"us001":  {Regions: []string{"us-east", "us-west"}},
		"in001":  {Jurisdictions: []string{"in"}},
		"xx9":    {Regions: []string{"onprem-1"}},
		"us002":  {Jurisdictions: []string{"us"}}, // untouched default
		"uae001": {Jurisdictions: []string{"ae"}},
	}
	for code, w := range want {
		p, ok := ft.Policy(code)
		if !ok || !slices.Equal(p.Regions, w.Regions) || !slices.Equal(p.Jurisdictions, w.Jurisdictions) {
			t.Errorf("%s = %+v, %v; want %+v", code, p, ok, w)
		}
	}
	if len(ft) != len(DefaultFences())+1 {
		t.Errorf("%d codes: %v", len(ft), ft.Codes())
	}
	for _, spec := range []string{"", " ", ","} {
		ft, err := ParseFences(spec)
		if err != nil || len(ft) != len(DefaultFences()) {
			t.Errorf("%q: %v, %v", spec, ft.Codes(), err)
		}
	}
}

func TestParseFencesErrors(t *testing.T) {
	cases := []struct{ spec, bad string }{
		{"eu001", "eu001"},
		{"eu001=jurisdiction:eu,us001", "us001"},
		{"EU001=jurisdiction:eu", "EU001=jurisdiction:eu"},
		{"eu-1=jurisdiction:eu", "eu-1=jurisdiction:eu"},
		{"=region:eu-west", "=region:eu-west"},
		{"eu001=eu", "eu001=eu"},
		{"eu001=country:eu", "eu001=country:eu"},
		{"eu001=region:", "eu001=region:"},
		{"eu001=region:eu-west++eu-central", "eu001=region:eu-west++eu-central"},
		{"eu001=jurisdiction:e u", "eu001=jurisdiction:e u"},
		{"eu001=region:eu:west", "eu001=region:eu:west"},
		{"eu001=region:a=b", "eu001=region:a=b"},
		{"eu001=jurisdiction:eu,eu001=region:eu-west", "eu001=region:eu-west"},
	}
	for _, tc := range cases {
		ft, err := ParseFences(tc.spec)
		if err == nil {
			t.Errorf("%q: no error (%v)", tc.spec, ft)
			continue
		}
		if !strings.Contains(err.Error(), `"`+tc.bad+`"`) {
			t.Errorf("%q: error %q does not name entry %q", tc.spec, err, tc.bad)
		}
	}
}

func TestAllowedByAll(t *testing.T) {
	c := NewCatalog()
	paris, frankfurt, london := c.Lookup("eu-west"), c.Lookup("eu-central"), c.Lookup("uk-south")
	eu := Policy{Jurisdictions: []string{"eu"}}
	fr := Policy{Jurisdictions: []string{"fr"}}
	euWest := Policy{Regions: []string{"eu-west", "uk-south"}}
	cases := []struct {
		r    Region
		ps   []Policy
		want bool
	}{
		{paris, nil, true},
		{paris, []Policy{{}, {}}, true},
		{paris, []Policy{eu, {}, euWest}, true},
		{frankfurt, []Policy{eu, euWest}, false}, // eu, but not a listed region
		{london, []Policy{eu, euWest}, false},    // listed, but not eu
		{london, []Policy{{}, euWest}, true},
		{paris, []Policy{eu, fr}, true},
		{frankfurt, []Policy{eu, fr}, false},
		{c.Lookup("onprem-1"), []Policy{{Jurisdictions: []string{"onprem-1"}}}, true},
	}
	for i, tc := range cases {
		if got := AllowedByAll(tc.r, tc.ps...); got != tc.want {
			t.Errorf("%d: %s under %s = %v", i, tc.r.Name, DescribeAll(tc.ps...), got)
		}
	}
}

func TestDescribeAll(t *testing.T) {
	cases := []struct {
		ps   []Policy
		want string
	}{
		{nil, "any region"},
		{[]Policy{{}, {}}, "any region"},
		{[]Policy{{Jurisdictions: []string{"eu"}}}, "jurisdictions eu"},
		{[]Policy{{}, {Jurisdictions: []string{"eu"}}, {}, {Regions: []string{"eu-west", "uk-south"}}},
			"jurisdictions eu and regions eu-west,uk-south"},
	}
	for _, tc := range cases {
		if got := DescribeAll(tc.ps...); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.ps, got, tc.want)
		}
	}
}

func TestAnyAllowed(t *testing.T) {
	c := NewCatalog()
	eu := Policy{Jurisdictions: []string{"eu"}}
	fr := Policy{Jurisdictions: []string{"fr"}}
	us := Policy{Jurisdictions: []string{"us"}}
	cases := []struct {
		extra []string
		ps    []Policy
		want  bool
	}{
		{nil, nil, true},
		{nil, []Policy{eu, fr}, true},  // eu-west is both
		{nil, []Policy{eu, us}, false}, // no region is both
		{nil, []Policy{eu, {Regions: []string{"us-east"}}}, false},
		{nil, []Policy{{Jurisdictions: []string{"onprem-1"}}, {Regions: []string{"onprem-1"}}}, true}, // named only by a policy
		{[]string{"lab"}, []Policy{{Jurisdictions: []string{"lab"}}}, true},                           // a region an edge registered in
		{nil, []Policy{{Jurisdictions: []string{"lab"}}}, false},
	}
	for i, tc := range cases {
		if got := c.AnyAllowed(tc.extra, tc.ps...); got != tc.want {
			t.Errorf("%d: %s (extra %v) = %v", i, DescribeAll(tc.ps...), tc.extra, got)
		}
	}
}
