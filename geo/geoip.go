package geo

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/oschwald/maxminddb-golang/v2"
)

// cityRecord is the part of a GeoIP2/GeoLite2 City record we use. Decoding
// into a fixed struct rather than a map keeps a lookup to a handful of
// allocations, whatever else the record carries.
type cityRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Location struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// openGeoIP opens a MaxMind-format database and probes it. Every failure
// names the path, since the operator has to find and fix the file.
func openGeoIP(path string) (*maxminddb.Reader, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geo: GeoIP database %q: %w", path, err)
	}
	if err := probeGeoIP(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("geo: GeoIP database %q is damaged: %w", path, err)
	}
	return db, nil
}

// probeGeoIP looks up an address in every public IPv4 /8 (and a few IPv6
// ranges in an IPv6 database) and decodes what it finds. Open reads only
// the metadata at the end of the file: a file whose search tree or data
// was damaged opens fine and then fails every lookup, which the locator
// treats as "not found", silently sending every joiner to the default
// region. Reader.Verify would walk the whole file but also insists on
// metadata (a description) that custom databases often lack; a few hundred
// lookups cost well under a millisecond.
func probeGeoIP(db *maxminddb.Reader) error {
	addrs := make([]netip.Addr, 0, 230)
	for a := 1; a < 224; a++ {
		addrs = append(addrs, netip.AddrFrom4([4]byte{byte(a), 1, 2, 3}))
	}
	if db.Metadata.IPVersion == 6 {
		for _, s := range []string{"2001:4860::1", "2a00:1450::1", "2400:cb00::1", "2c0f:fb50::1", "2600::1"} {
			addrs = append(addrs, netip.MustParseAddr(s))
		}
	}
	for _, a := range addrs {
		res := db.Lookup(a)
		if err := res.Err(); err != nil {
			return fmt.Errorf("looking up %s: %w", a, err)
		}
		if !res.Found() {
			continue
		}
		var v any
		if err := res.Decode(&v); err != nil {
			return fmt.Errorf("decoding the record of %s: %w", a, err)
		}
	}
	return nil
}

// describeDB renders the database type and build date for startup logs, so
// an operator sees at once a Country database (no coordinates) or a stale one.
func describeDB(db *maxminddb.Reader) string {
	kind := db.Metadata.DatabaseType
	if kind == "" {
		kind = "unknown type"
	}
	if db.Metadata.BuildEpoch == 0 {
		return kind + ", build date unknown"
	}
	return kind + ", built " + db.Metadata.BuildTime().UTC().Format("2006-01-02")
}

// lookupCity returns the record's coordinates and country. It reports false
// when the address is not in the database, the record has no (valid)
// coordinates, or the lookup fails: the caller then falls back.
func lookupCity(db *maxminddb.Reader, a netip.Addr) (Location, bool) {
	res := db.Lookup(a)
	if !res.Found() { // not in the database, or a failed lookup (IPv6 in an IPv4-only database, say)
		return Location{}, false
	}
	var rec cityRecord
	// Decoding leaves absent fields untouched, so NaN marks "no coordinates"
	// without decoding into pointers (0,0 is a real place).
	rec.Location.Latitude, rec.Location.Longitude = math.NaN(), math.NaN()
	if err := res.Decode(&rec); err != nil {
		return Location{}, false
	}
	lat, lon := rec.Location.Latitude, rec.Location.Longitude
	if !validLatLon(lat, lon) {
		return Location{}, false
	}
	return Location{Lat: lat, Lon: lon, Country: rec.Country.ISOCode, Source: SourceGeoIP}, true
}

// lookupable reports whether a is worth a GeoIP lookup: a global unicast
// address that is not private (RFC 1918, ULA fc00::/7) and not carrier-grade
// NAT (100.64.0.0/10). Such addresses say nothing about where the client is
// (it is behind a proxy or on our own network), so they go straight to the
// default. Documentation ranges are deliberately allowed: tests use them.
func lookupable(a netip.Addr) bool {
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	if a.Is4() {
		b := a.As4()
		if b[0] == 100 && b[1]&0xc0 == 64 { // 100.64.0.0/10
			return false
		}
	}
	return true
}
