package geo

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestSitePosition(t *testing.T) {
	c := NewCatalog()
	cases := []struct {
		s        Site
		lat, lon float64
		ok       bool
	}{
		{Site{Region: "eu-west"}, 48.86, 2.35, true},
		{Site{Region: "eu-west", Lat: 43.3, Lon: 5.37}, 43.3, 5.37, true}, // own coordinates win
		{Site{Region: "eu-west", Lat: 10}, 10, 0, true},                   // only both 0 means "unset"
		{Site{Region: "local"}, 0, 0, true},
		{Site{Region: "nowhere"}, math.NaN(), math.NaN(), false},
		{Site{Region: "eu-west", Lat: 100, Lon: 1}, math.NaN(), math.NaN(), false},
		{Site{Region: "eu-west", Lat: math.NaN(), Lon: 1}, math.NaN(), math.NaN(), false},
	}
	for i, tc := range cases {
		lat, lon, ok := c.SitePosition(tc.s)
		same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
		if ok != tc.ok || !same(lat, tc.lat) || !same(lon, tc.lon) {
			t.Errorf("%d: %+v = %v,%v,%v; want %v,%v,%v", i, tc.s, lat, lon, ok, tc.lat, tc.lon, tc.ok)
		}
	}
}

func TestCatalogDistance(t *testing.T) {
	c := NewCatalog()
	paris := Location{Lat: 48.86, Lon: 2.35, Source: SourceLatLonHint}
	unknownAt := Location{Lat: math.NaN(), Lon: math.NaN(), Region: "onprem-1", Source: SourceRegionHint}
	cases := []struct {
		name     string
		loc      Location
		s        Site
		min, max float64 // NaN min = want NaN
	}{
		{"Paris to Montréal", paris, Site{Region: "ca-east"}, 5400, 5600},
		{"Paris to Frankfurt", paris, Site{Region: "eu-central"}, 470, 490},
		{"site's own coordinates", paris, Site{Region: "ca-east", Lat: 48.86, Lon: 2.35}, 0, 1e-9},
		{"same region by name", Location{Lat: 1, Lon: 1, Region: "ca-east"}, Site{Region: "ca-east"}, 0, 0},
		{"same unknown region by name", unknownAt, Site{Region: "onprem-1"}, 0, 0},
		{"unknown location", unknownAt, Site{Region: "eu-west"}, math.NaN(), 0},
		{"unknown site", paris, Site{Region: "onprem-1"}, math.NaN(), 0},
		{"location off the globe", Location{Lat: 95, Lon: 2.35}, Site{Region: "eu-west"}, math.NaN(), 0},
		{"empty regions do not match", Location{Lat: math.NaN(), Lon: math.NaN()}, Site{Lat: 1, Lon: 1}, math.NaN(), 0},
	}
	for _, tc := range cases {
		d := c.Distance(tc.loc, tc.s)
		if math.IsNaN(tc.min) {
			if !math.IsNaN(d) {
				t.Errorf("%s: %v, want NaN", tc.name, d)
			}
			continue
		}
		if !(d >= tc.min && d <= tc.max) {
			t.Errorf("%s: %v, want %v..%v", tc.name, d, tc.min, tc.max)
		}
	}
}

func TestRank(t *testing.T) {
	c := NewCatalog()
	if err := c.Add(Region{Name: "onprem-1", Lat: math.NaN(), Lon: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	sites := []Site{
		{ID: "unknown-1", Region: "mars"},
		{ID: "montreal", Region: "ca-east"},
		{ID: "onprem", Region: "onprem-1"},
		{ID: "paris-a", Region: "eu-west"},
		{ID: "frankfurt", Region: "eu-central"},
		{ID: "unknown-2", Region: "venus"},
		{ID: "paris-b", Region: "eu-west", Lat: 48.86, Lon: 2.35},
		{ID: "paris-c", Region: "eu-west"},
	}
	orig := slices.Clone(sites)
	ids := func(rs []Ranked) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Site.ID)
		}
		return out
	}
	cases := []struct {
		name string
		loc  Location
		want []string
	}{
		{"from Paris by coordinates", Location{Lat: 48.86, Lon: 2.35, Source: SourceGeoIP},
			[]string{"paris-a", "paris-b", "paris-c", "frankfurt", "montreal", "unknown-1", "onprem", "unknown-2"}},
		{"from Montréal by region", Location{Lat: 45.5, Lon: -73.57, Region: "ca-east", Source: SourceRegionHint},
			[]string{"montreal", "paris-a", "paris-b", "paris-c", "frankfurt", "unknown-1", "onprem", "unknown-2"}},
		{"from a region without coordinates", Location{Lat: math.NaN(), Lon: math.NaN(), Region: "onprem-1", Source: SourceRegionHint},
			[]string{"onprem", "unknown-1", "montreal", "paris-a", "frankfurt", "unknown-2", "paris-b", "paris-c"}},
	}
	for _, tc := range cases {
		got := c.Rank(tc.loc, sites)
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids(got), tc.want)
		}
		for i := 1; i < len(got); i++ {
			a, b := got[i-1].DistanceKm, got[i].DistanceKm
			if math.IsNaN(a) && !math.IsNaN(b) || a > b {
				t.Errorf("%s: not ascending at %d: %v, %v", tc.name, i, a, b)
			}
		}
	}
	if !slices.Equal(sites, orig) {
		t.Error("Rank modified its input")
	}
	if got := c.Rank(Location{}, nil); len(got) != 0 {
		t.Errorf("Rank(nil) = %v", got)
	}
}

func TestRankedJSON(t *testing.T) {
	for _, r := range []Ranked{
		{Site: Site{ID: "e1", Region: "eu-west"}, DistanceKm: 12.5},
		{Site: Site{ID: "e2", Region: "mars"}, DistanceKm: math.NaN()},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 3 || m["id"] != r.Site.ID || m["region"] != r.Site.Region || m["distanceKm"] != r.KmOrNegative() {
			t.Errorf("%s", b)
		}
		var back Ranked
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Site != r.Site || math.IsNaN(back.DistanceKm) != math.IsNaN(r.DistanceKm) || back.KmOrNegative() != r.KmOrNegative() {
			t.Errorf("%s decoded as %+v", b, back)
		}
	}
	if got := (Ranked{DistanceKm: math.NaN()}).KmOrNegative(); got != -1 {
		t.Errorf("KmOrNegative(NaN) = %v", got)
	}
	if got := (Ranked{DistanceKm: 0}).KmOrNegative(); got != 0 {
		t.Errorf("KmOrNegative(0) = %v", got)
	}
}

// TestRankStable uses more sites than the sort's insertion-sort cutoff (12),
// where an unstable sort would visibly reorder ties.
func TestRankStable(t *testing.T) {
	c := NewCatalog()
	regions := []string{"eu-central", "mars", "eu-west", "ca-east", "venus", "us-east"}
	var sites []Site
	for i := range 60 {
		sites = append(sites, Site{ID: fmt.Sprintf("%02d", i), Region: regions[(i*7)%len(regions)]})
	}
	got := c.Rank(Location{Lat: 48.86, Lon: 2.35, Region: "eu-west"}, sites)
	order := []string{"eu-west", "eu-central", "ca-east", "us-east", "mars", "venus"}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		ra, rb := slices.Index(order, a.Site.Region), slices.Index(order, b.Site.Region)
		if (ra > rb && !(ra >= 4 && rb >= 4)) || a.KmOrNegative() == b.KmOrNegative() && a.Site.ID > b.Site.ID {
			t.Fatalf("at %d: %+v before %+v", i, a, b)
		}
	}
}
