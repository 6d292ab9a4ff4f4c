package geo

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// maxNameLen bounds region names, fence codes and jurisdictions: they end up
// in tickets, logs and error messages, so a runaway value is a config bug.
const maxNameLen = 64

// Has reports whether name is a region the catalog knows (built in or added),
// as opposed to a name Lookup would make up. Config loaders use it to reject
// typos in region names before they silently match nothing.
func (c *Catalog) Has(name string) bool {
	_, ok := c.get(name)
	return ok
}

// HasJurisdiction reports whether some region the catalog knows lies in
// jurisdiction j. Edges register only in known regions, so a pin to any
// other jurisdiction could never be met.
func (c *Catalog) HasJurisdiction(j string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, r := range c.regions {
		if slices.Contains(r.Jurisdictions, j) {
			return true
		}
	}
	return false
}

// Add adds a region, or replaces the built-in or earlier one of that name.
// It is meant for startup (operator-defined regions); it is nevertheless
// safe to call concurrently with readers.
//
// Coordinates must both be in range, or both NaN for a region whose location
// is unknown (it then ranks only by name: see Catalog.Distance).
// Jurisdictions are lowercased and deduplicated; a region given none gets its
// own name, like the regions Lookup makes up, so pinning by name works alike.
func (c *Catalog) Add(r Region) error {
	if err := checkRegionName(r.Name); err != nil {
		return err
	}
	latNaN, lonNaN := math.IsNaN(r.Lat), math.IsNaN(r.Lon)
	switch {
	case latNaN && lonNaN:
	case latNaN || lonNaN:
		return fmt.Errorf("%w: region %q: latitude and longitude must both be NaN (unknown) or both be set", ErrBadCoordinates, r.Name)
	case !validLatLon(r.Lat, r.Lon):
		return fmt.Errorf("%w: region %q: lat %v, lon %v", ErrBadCoordinates, r.Name, r.Lat, r.Lon)
	}
	js := make([]string, 0, len(r.Jurisdictions))
	for _, j := range r.Jurisdictions {
		j = strings.ToLower(strings.TrimSpace(j))
		if j == "" || len(j) > maxNameLen {
			return fmt.Errorf("geo: region %q: bad jurisdiction %q", r.Name, j)
		}
		if !slices.Contains(js, j) {
			js = append(js, j)
		}
	}
	if len(js) == 0 {
		js = append(js, r.Name)
	}
	r.Jurisdictions = js
	c.mu.Lock()
	defer c.mu.Unlock()
	c.regions[r.Name] = r
	return nil
}

// checkRegionName accepts letters, digits, '-', '_' and '.': every built-in
// name fits, and excluding separators keeps names expressible in the fence
// flag syntax (',' '+' '=' ':').
func checkRegionName(name string) error {
	if name == "" {
		return fmt.Errorf("geo: empty region name")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("geo: region name %q longer than %d bytes", name, maxNameLen)
	}
	for _, ch := range name {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '-' || ch == '_' || ch == '.'
		if !ok {
			return fmt.Errorf("geo: region name %q: only letters, digits, '-', '_' and '.' are allowed", name)
		}
	}
	return nil
}

// validLatLon reports whether lat/lon are finite and on the globe. NaN fails
// every comparison, so it is rejected without a separate test; ±Inf is out
// of range.
func validLatLon(lat, lon float64) bool {
	return lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180
}
