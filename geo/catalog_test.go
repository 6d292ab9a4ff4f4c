package geo

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestCatalogAdd(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name      string
		r         Region
		ok        bool
		wantJuris []string
	}{
		{"new region", Region{Name: "eu-north", Lat: 59.33, Lon: 18.07, Jurisdictions: []string{"EU", " se ", "eu"}}, true, []string{"eu", "se"}},
		{"override built-in", Region{Name: "us-east", Lat: 40.7, Lon: -74, Jurisdictions: []string{"us", "ny"}}, true, []string{"us", "ny"}},
		{"unknown coordinates", Region{Name: "onprem-1", Lat: nan, Lon: nan}, true, []string{"onprem-1"}},
		{"empty name", Region{Lat: 1, Lon: 1}, false, nil},
		{"name with a space", Region{Name: "eu west", Lat: 1, Lon: 1}, false, nil},
		{"name with a separator", Region{Name: "eu+west", Lat: 1, Lon: 1}, false, nil},
		{"one NaN", Region{Name: "x", Lat: nan, Lon: 1}, false, nil},
		{"lat out of range", Region{Name: "x", Lat: -91, Lon: 1}, false, nil},
		{"lon out of range", Region{Name: "x", Lat: 1, Lon: 181}, false, nil},
		{"infinite", Region{Name: "x", Lat: math.Inf(-1), Lon: 1}, false, nil},
		{"empty jurisdiction", Region{Name: "x", Lat: 1, Lon: 1, Jurisdictions: []string{"eu", " "}}, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCatalog()
			before := c.Lookup(tc.r.Name)
			err := c.Add(tc.r)
			if (err == nil) != tc.ok {
				t.Fatalf("Add = %v", err)
			}
			got := c.Lookup(tc.r.Name)
			if !tc.ok {
				if c.Has(tc.r.Name) != (tc.r.Name == "us-east") || !slices.Equal(got.Jurisdictions, before.Jurisdictions) {
					t.Fatalf("failed Add changed the catalog: %+v", got)
				}
				return
			}
			if !c.Has(tc.r.Name) || !slices.Equal(got.Jurisdictions, tc.wantJuris) {
				t.Fatalf("got %+v, want jurisdictions %v", got, tc.wantJuris)
			}
			if !(got.Lat == tc.r.Lat || math.IsNaN(got.Lat) && math.IsNaN(tc.r.Lat)) {
				t.Fatalf("got %+v", got)
			}
		})
	}
	if err := NewCatalog().Add(Region{Name: "x", Lat: 95, Lon: 0}); !errors.Is(err, ErrBadCoordinates) {
		t.Errorf("out of range: %v, want ErrBadCoordinates", err)
	}
	if err := NewCatalog().Add(Region{Name: "x", Lat: math.NaN(), Lon: 0}); !errors.Is(err, ErrBadCoordinates) || !strings.Contains(err.Error(), "both") {
		t.Errorf("one NaN: %v, want ErrBadCoordinates saying both must be NaN", err)
	}
}

func TestCatalogsAreIndependent(t *testing.T) {
	a, b := NewCatalog(), NewCatalog()
	a.Lookup("eu-west").Jurisdictions[0] = "changed" // what callers must not do
	if got := b.Lookup("eu-west").Jurisdictions[0]; got != "eu" {
		t.Fatalf("a change to one catalog reached another: %q", got)
	}
	if err := a.Add(Region{Name: "eu-north", Lat: 1, Lon: 1}); err != nil {
		t.Fatal(err)
	}
	if b.Has("eu-north") {
		t.Fatal("Add reached another catalog")
	}
}

// TestCatalogConcurrentAdd: Add is for startup, but must not race with readers.
func TestCatalogConcurrentAdd(t *testing.T) {
	c := NewCatalog()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				if err := c.Add(Region{Name: fmt.Sprintf("r%d-%d", w, i), Lat: 1, Lon: 1}); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for i := range 200 {
				c.Lookup(fmt.Sprintf("r%d-%d", w, i))
				c.Has("eu-west")
				c.Distance(Location{Lat: 1, Lon: 1}, Site{Region: "eu-west"})
			}
		})
	}
	wg.Wait()
	if !c.Has("r3-199") {
		t.Fatal("lost an Add")
	}
}
