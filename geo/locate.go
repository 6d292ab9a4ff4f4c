package geo

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Sources of a Location, from most to least explicit.
const (
	SourceRegionHint = "region-hint"
	SourceLatLonHint = "latlon-hint"
	SourceGeoIP      = "geoip"
	SourceDefault    = "default"
)

var (
	// ErrUnknownRegion: a region hint names no region in the catalog. It is
	// the client's mistake (HTTP 400), never a reason to guess.
	ErrUnknownRegion = errors.New("geo: unknown region")
	// ErrBadCoordinates: a lat/lon hint is incomplete, not finite or off the globe.
	ErrBadCoordinates = errors.New("geo: bad coordinates")
)

// Location is where a client is believed to be, and why. Lat and Lon are NaN
// when the region it came from has no known coordinates.
type Location struct {
	Lat     float64 `json:"lat"`
	Lon     float64 `json:"lon"`
	Region  string  `json:"region,omitempty"`  // set for region-hint and default
	Country string  `json:"country,omitempty"` // ISO 3166-1 alpha-2, geoip only
	Source  string  `json:"source"`
}

// locationJSON is Location on the wire: encoding/json refuses NaN, and a
// location without coordinates must not break the response that carries it,
// so unknown coordinates are left out instead.
type locationJSON struct {
	Lat     *float64 `json:"lat,omitempty"`
	Lon     *float64 `json:"lon,omitempty"`
	Region  string   `json:"region,omitempty"`
	Country string   `json:"country,omitempty"`
	Source  string   `json:"source"`
}

// MarshalJSON omits lat and lon when they are unknown (NaN).
func (l Location) MarshalJSON() ([]byte, error) {
	w := locationJSON{Region: l.Region, Country: l.Country, Source: l.Source}
	if validLatLon(l.Lat, l.Lon) {
		w.Lat, w.Lon = &l.Lat, &l.Lon
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads absent coordinates back as NaN, mirroring MarshalJSON.
func (l *Location) UnmarshalJSON(b []byte) error {
	var w locationJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*l = Location{Lat: math.NaN(), Lon: math.NaN(), Region: w.Region, Country: w.Country, Source: w.Source}
	if w.Lat != nil && w.Lon != nil {
		l.Lat, l.Lon = *w.Lat, *w.Lon
	}
	return nil
}

// Hint is what the client says about where it is (join body or query).
// Pointers tell "not given" from 0, which is a valid latitude and longitude.
type Hint struct {
	Region string   `json:"region,omitempty"`
	Lat    *float64 `json:"lat,omitempty"`
	Lon    *float64 `json:"lon,omitempty"`
}

// LocatorConfig configures a Locator.
type LocatorConfig struct {
	// Catalog resolves region hints and the default region; nil means the
	// built-in regions.
	Catalog *Catalog
	// GeoIPPath is a MaxMind-format City database; empty disables GeoIP.
	GeoIPPath string
	// DefaultRegion is where clients are assumed to be when nothing else
	// tells; empty means "local".
	DefaultRegion string
}

func (cfg LocatorConfig) withDefaults() LocatorConfig {
	if cfg.Catalog == nil {
		cfg.Catalog = NewCatalog()
	}
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = "local"
	}
	return cfg
}

// Validate checks the configuration without opening the database. The
// default region must be in the catalog: a typo there would silently put
// every client without a hint at "nowhere", so it is refused at startup.
func (cfg LocatorConfig) Validate() error {
	cfg = cfg.withDefaults()
	if !cfg.Catalog.Has(cfg.DefaultRegion) {
		return fmt.Errorf("geo: default region %q is not in the catalog (define it, with NaN coordinates if its location is unknown)", cfg.DefaultRegion)
	}
	return nil
}

// Locator turns hints and client addresses into Locations. It is safe for
// concurrent use, including Close while lookups are running.
type Locator struct {
	catalog       *Catalog
	defaultRegion string
	path          string

	// mu guards db: maxminddb's Reader must not be closed while a lookup
	// runs (its file is memory-mapped, and unmapping it under a reader
	// would fault), so lookups hold the read lock and Close the write lock.
	mu sync.RWMutex
	db *maxminddb.Reader // nil without GeoIP or after Close
}

// NewLocator validates cfg and opens the GeoIP database if one is configured.
func NewLocator(cfg LocatorConfig) (*Locator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Locator{catalog: cfg.Catalog, defaultRegion: cfg.DefaultRegion, path: cfg.GeoIPPath}
	if cfg.GeoIPPath != "" {
		db, err := openGeoIP(cfg.GeoIPPath)
		if err != nil {
			return nil, err
		}
		l.db = db
	}
	return l, nil
}

// Close releases the GeoIP database; later lookups fall back to the default
// region. Calling it again is a no-op.
func (l *Locator) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return nil
	}
	err := l.db.Close()
	l.db = nil
	if err != nil {
		return fmt.Errorf("geo: closing GeoIP database %q: %w", l.path, err)
	}
	return nil
}

// HasGeoIP reports whether a GeoIP database is open.
func (l *Locator) HasGeoIP() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.db != nil
}

// Describe says, for the startup log, how clients will be located.
func (l *Locator) Describe() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.db == nil {
		if l.path != "" {
			return fmt.Sprintf("GeoIP database %s closed; default region %s", l.path, l.defaultRegion)
		}
		return "no GeoIP database; default region " + l.defaultRegion
	}
	return fmt.Sprintf("GeoIP %s (%s); default region %s", l.path, describeDB(l.db), l.defaultRegion)
}

// Locate finds the client: an explicit region hint, else explicit
// coordinates, else GeoIP, else the default region. Only a bad hint is an
// error (ErrUnknownRegion, ErrBadCoordinates); GeoIP trouble of any kind
// falls through to the default, because a join must not fail for want of a
// guess about where the client is.
func (l *Locator) Locate(h Hint, client netip.Addr) (Location, error) {
	if h.Region != "" {
		r, ok := l.catalog.get(h.Region)
		if !ok {
			return Location{}, fmt.Errorf("%w %s", ErrUnknownRegion, quoteTrunc(h.Region))
		}
		return Location{Lat: r.Lat, Lon: r.Lon, Region: r.Name, Source: SourceRegionHint}, nil
	}
	if h.Lat != nil || h.Lon != nil {
		if h.Lat == nil || h.Lon == nil {
			return Location{}, fmt.Errorf("%w: lat and lon must be given together", ErrBadCoordinates)
		}
		if !validLatLon(*h.Lat, *h.Lon) {
			return Location{}, fmt.Errorf("%w: lat %v, lon %v (want -90..90, -180..180)", ErrBadCoordinates, *h.Lat, *h.Lon)
		}
		return Location{Lat: *h.Lat, Lon: *h.Lon, Source: SourceLatLonHint}, nil
	}
	if loc, ok := l.lookupGeoIP(client); ok {
		return loc, nil
	}
	r := l.catalog.Lookup(l.defaultRegion)
	return Location{Lat: r.Lat, Lon: r.Lon, Region: r.Name, Source: SourceDefault}, nil
}

func (l *Locator) lookupGeoIP(client netip.Addr) (Location, bool) {
	client = client.Unmap() // dual-stack listeners report IPv4 clients as ::ffff:a.b.c.d
	if !lookupable(client) {
		return Location{}, false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.db == nil {
		return Location{}, false
	}
	return lookupCity(l.db, client)
}

// quoteTrunc quotes client-supplied text for an error message, cut short so
// that a huge hint cannot blow up logs and responses.
func quoteTrunc(s string) string {
	if len(s) > maxNameLen {
		return fmt.Sprintf("%q…", s[:maxNameLen])
	}
	return fmt.Sprintf("%q", s)
}
