// Package geo knows regions: where they are, which jurisdictions they belong
// to, how far apart they are, and whether a pin policy allows them.
package geo

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
)

// Region is a place edges run in.
type Region struct {
	Name          string   `json:"name"`
	Lat           float64  `json:"lat"`
	Lon           float64  `json:"lon"`
	Jurisdictions []string `json:"jurisdictions"`
}

// Known is the built-in region table; operators may add regions with
// coordinates and jurisdictions in configuration (see Catalog.Add).
var known = []Region{
	{"local", 0, 0, []string{"local"}},
	{"eu-west", 48.86, 2.35, []string{"eu", "fr"}},    // Paris
	{"eu-central", 50.11, 8.68, []string{"eu", "de"}}, // Frankfurt
	{"uk-south", 51.51, -0.13, []string{"uk"}},        // London
	{"ca-east", 45.50, -73.57, []string{"ca"}},        // Montréal
	{"us-east", 39.04, -77.49, []string{"us"}},        // Ashburn
	{"us-west", 37.34, -121.89, []string{"us"}},       // San José
	{"ap-south", 19.08, 72.88, []string{"in"}},        // Mumbai
	{"ap-southeast", 1.35, 103.82, []string{"sg"}},    // Singapore
	{"au-east", -33.87, 151.21, []string{"au"}},       // Sydney
	{"me-central", 25.20, 55.27, []string{"ae"}},      // Dubai
}

// Catalog is a set of regions (no package globals are mutated). It is safe
// for concurrent use: Add is meant for startup, but placement reads the
// catalog from many goroutines and a late Add must not be a data race.
type Catalog struct {
	mu      sync.RWMutex
	regions map[string]Region
}

// NewCatalog returns the built-in regions plus extra ones.
func NewCatalog(extra ...Region) *Catalog {
	c := &Catalog{regions: map[string]Region{}}
	for _, r := range known {
		// Clone so that a caller modifying a looked-up region's slice can
		// never reach the shared built-in table.
		r.Jurisdictions = slices.Clone(r.Jurisdictions)
		c.regions[r.Name] = r
	}
	for _, r := range extra {
		c.regions[r.Name] = r
	}
	return c
}

// Lookup finds a region; unknown names get a region without coordinates whose
// only jurisdiction is its own name, so pinning by name still works. The
// returned Jurisdictions slice is shared with the catalog: do not modify it.
func (c *Catalog) Lookup(name string) Region {
	if r, ok := c.get(name); ok {
		return r
	}
	return Region{Name: name, Lat: math.NaN(), Lon: math.NaN(), Jurisdictions: []string{name}}
}

// get is Lookup without the fallback, for callers that must tell a known
// region (possibly without coordinates) from a name nobody configured.
func (c *Catalog) get(name string) (Region, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.regions[name]
	return r, ok
}

// DistanceKm is the great-circle distance (NaN if either is unknown).
func DistanceKm(a, b Region) float64 {
	if math.IsNaN(a.Lat) || math.IsNaN(b.Lat) {
		return math.NaN()
	}
	const r = 6371.0
	φ1, φ2 := a.Lat*math.Pi/180, b.Lat*math.Pi/180
	dφ, dλ := (b.Lat-a.Lat)*math.Pi/180, (b.Lon-a.Lon)*math.Pi/180
	h := math.Sin(dφ/2)*math.Sin(dφ/2) + math.Cos(φ1)*math.Cos(φ2)*math.Sin(dλ/2)*math.Sin(dλ/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}

// Policy pins data and media to regions and/or jurisdictions. Empty allows all.
type Policy struct {
	Regions       []string `json:"regions,omitempty"`
	Jurisdictions []string `json:"jurisdictions,omitempty"`
}

// Empty reports whether the policy allows everything.
func (p Policy) Empty() bool { return len(p.Regions) == 0 && len(p.Jurisdictions) == 0 }

// Allows reports whether region r satisfies the policy: it must be listed
// (when regions are given) and carry a listed jurisdiction (when given).
func (p Policy) Allows(r Region) bool {
	if len(p.Regions) > 0 && !slices.Contains(p.Regions, r.Name) {
		return false
	}
	if len(p.Jurisdictions) > 0 {
		for _, j := range r.Jurisdictions {
			if slices.Contains(p.Jurisdictions, j) {
				return true
			}
		}
		return false
	}
	return true
}

// String renders the policy for error messages.
func (p Policy) String() string {
	var parts []string
	if len(p.Regions) > 0 {
		parts = append(parts, "regions "+strings.Join(p.Regions, ","))
	}
	if len(p.Jurisdictions) > 0 {
		parts = append(parts, "jurisdictions "+strings.Join(p.Jurisdictions, ","))
	}
	if len(parts) == 0 {
		return "any region"
	}
	return fmt.Sprint(strings.Join(parts, " and "))
}
