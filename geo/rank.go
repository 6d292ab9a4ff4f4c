package geo

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
)

// Site is something that runs in a region (an edge). Lat/Lon pin it more
// precisely than its region; both 0 means "use the region's coordinates",
// because that is what an edge that configured no position reports.
type Site struct {
	ID     string  `json:"id"`
	Region string  `json:"region"`
	Lat    float64 `json:"lat,omitempty"`
	Lon    float64 `json:"lon,omitempty"`
}

// SitePosition returns where s is: its own coordinates, else its region's.
// ok is false when neither is known or valid.
func (c *Catalog) SitePosition(s Site) (lat, lon float64, ok bool) {
	lat, lon = s.Lat, s.Lon
	if lat == 0 && lon == 0 {
		r := c.Lookup(s.Region)
		lat, lon = r.Lat, r.Lon
	}
	if !validLatLon(lat, lon) {
		return math.NaN(), math.NaN(), false
	}
	return lat, lon, true
}

// Distance is the great-circle distance in km from loc to s, NaN when either
// position is unknown. A location in s's own region is at distance 0 even
// without coordinates, so custom regions nobody placed on the map still
// rank their own sites first.
func (c *Catalog) Distance(loc Location, s Site) float64 {
	if loc.Region != "" && loc.Region == s.Region {
		return 0
	}
	lat, lon, ok := c.SitePosition(s)
	if !ok || !validLatLon(loc.Lat, loc.Lon) {
		return math.NaN()
	}
	return DistanceKm(Region{Lat: loc.Lat, Lon: loc.Lon}, Region{Lat: lat, Lon: lon})
}

// Ranked is a site with its distance from a location (NaN when unknown).
type Ranked struct {
	Site       Site
	DistanceKm float64
}

// KmOrNegative is the distance, or -1 when it is unknown, for JSON and other
// places that cannot carry NaN.
func (r Ranked) KmOrNegative() float64 {
	if math.IsNaN(r.DistanceKm) {
		return -1
	}
	return r.DistanceKm
}

type rankedJSON struct {
	ID         string  `json:"id"`
	Region     string  `json:"region"`
	DistanceKm float64 `json:"distanceKm"` // -1 = unknown
}

// MarshalJSON renders {"id","region","distanceKm"}, -1 for an unknown
// distance (encoding/json refuses NaN).
func (r Ranked) MarshalJSON() ([]byte, error) {
	return json.Marshal(rankedJSON{ID: r.Site.ID, Region: r.Site.Region, DistanceKm: r.KmOrNegative()})
}

// UnmarshalJSON reads what MarshalJSON writes; a negative distance is unknown.
func (r *Ranked) UnmarshalJSON(b []byte) error {
	var w rankedJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Ranked{Site: Site{ID: w.ID, Region: w.Region}, DistanceKm: w.DistanceKm}
	if w.DistanceKm < 0 {
		r.DistanceKm = math.NaN()
	}
	return nil
}

// Rank orders sites by distance from loc, nearest first, sites at an unknown
// distance last. Equal distances keep their input order, so a caller can
// pre-sort by its own tie-breaker (load, say). sites is not modified.
func (c *Catalog) Rank(loc Location, sites []Site) []Ranked {
	out := make([]Ranked, len(sites))
	for i, s := range sites {
		out[i] = Ranked{Site: s, DistanceKm: c.Distance(loc, s)}
	}
	slices.SortStableFunc(out, func(a, b Ranked) int {
		an, bn := math.IsNaN(a.DistanceKm), math.IsNaN(b.DistanceKm)
		switch {
		case an && bn:
			return 0
		case an:
			return 1
		case bn:
			return -1
		}
		return cmp.Compare(a.DistanceKm, b.DistanceKm)
	})
	return out
}
