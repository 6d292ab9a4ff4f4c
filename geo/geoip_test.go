package geo

import (
	"crypto/rand"
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

var testBuild = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func city(lat, lon float64, country string) mmdbtype.Map {
	return mmdbtype.Map{
		"country":  mmdbtype.Map{"iso_code": mmdbtype.String(country)},
		"location": mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon), "accuracy_radius": mmdbtype.Uint16(20)},
		"city":     mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String("somewhere")}},
	}
}

// tokyo marks networks that must never be looked up: an answer from one of
// them means the address filter let a private address through.
var tokyo = city(35.68, 139.69, "JP")

// writeTestDB writes a small City-schema database and returns its path.
func writeTestDB(t testing.TB, ipVersion int) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoIP2-City",
		RecordSize:              24,
		IPVersion:               ipVersion,
		IncludeReservedNetworks: true, // documentation and private ranges below
		BuildEpoch:              testBuild.Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	nets := []struct {
		cidr string
		rec  mmdbtype.DataType
	}{
		{"203.0.113.0/24", city(48.86, 2.35, "FR")},                                                // Paris
		{"198.51.100.0/24", city(45.5, -73.57, "CA")},                                              // Montréal
		{"192.0.2.0/24", mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("DE")}}}, // no location
		{"10.0.0.0/8", tokyo},
		{"172.16.0.0/12", tokyo},
		{"192.168.0.0/16", tokyo},
		{"100.64.0.0/10", tokyo},
		{"127.0.0.0/8", tokyo},
		{"169.254.0.0/16", tokyo},
		{"224.0.0.0/4", tokyo},
	}
	if ipVersion == 6 {
		nets = append(nets, []struct {
			cidr string
			rec  mmdbtype.DataType
		}{
			{"2001:db8:1::/48", city(1.35, 103.82, "SG")}, // Singapore
			{"2001:db8:2::/48", mmdbtype.Map{"location": mmdbtype.Map{"latitude": mmdbtype.Float64(10)}}},
			{"2001:db8:3::/48", city(123, 10, "XX")},             // latitude off the globe
			{"2001:db8:4::/48", mmdbtype.String("not a record")}, // decodes with an error
			{"2001:db8:5::/48", mmdbtype.Map{ // valid location, but the country does not decode
				"country":  mmdbtype.String("FR"),
				"location": mmdbtype.Map{"latitude": mmdbtype.Float64(48.86), "longitude": mmdbtype.Float64(2.35)},
			}},
			{"fc00::/7", tokyo},
			{"fe80::/10", tokyo},
			{"ff00::/8", tokyo},
		}...)
	}
	for _, n := range nets {
		_, ipnet, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(ipnet, n.rec); err != nil {
			t.Fatalf("insert %s: %v", n.cidr, err)
		}
	}
	path := filepath.Join(t.TempDir(), "city.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestLocator(t testing.TB, cfg LocatorConfig) *Locator {
	t.Helper()
	l, err := NewLocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func fp(f float64) *float64 { return &f }

// sameLocation compares with NaN equal to NaN and coordinates to 1e-9.
func sameLocation(a, b Location) bool {
	eq := func(x, y float64) bool {
		return math.IsNaN(x) && math.IsNaN(y) || math.Abs(x-y) < 1e-9
	}
	return eq(a.Lat, b.Lat) && eq(a.Lon, b.Lon) && a.Region == b.Region && a.Country == b.Country && a.Source == b.Source
}

func TestLocate(t *testing.T) {
	cat := NewCatalog()
	if err := cat.Add(Region{Name: "onprem-1", Lat: math.NaN(), Lon: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	l := newTestLocator(t, LocatorConfig{Catalog: cat, GeoIPPath: writeTestDB(t, 6)})
	if !l.HasGeoIP() {
		t.Fatal("HasGeoIP = false")
	}
	paris := Location{Lat: 48.86, Lon: 2.35, Country: "FR", Source: SourceGeoIP}
	def := Location{Lat: 0, Lon: 0, Region: "local", Source: SourceDefault}
	nan := math.NaN()
	cases := []struct {
		name    string
		hint    Hint
		addr    string // "" = invalid netip.Addr
		want    Location
		wantErr error
	}{
		{"region hint", Hint{Region: "eu-west"}, "", Location{Lat: 48.86, Lon: 2.35, Region: "eu-west", Source: SourceRegionHint}, nil},
		{"region hint beats coordinates and GeoIP", Hint{Region: "ca-east", Lat: fp(1), Lon: fp(2)}, "203.0.113.7", Location{Lat: 45.50, Lon: -73.57, Region: "ca-east", Source: SourceRegionHint}, nil},
		{"region hint without coordinates", Hint{Region: "onprem-1"}, "", Location{Lat: nan, Lon: nan, Region: "onprem-1", Source: SourceRegionHint}, nil},
		{"unknown region", Hint{Region: "mars-north"}, "203.0.113.7", Location{}, ErrUnknownRegion},
		{"latlon hint", Hint{Lat: fp(-33.9), Lon: fp(18.4)}, "203.0.113.7", Location{Lat: -33.9, Lon: 18.4, Source: SourceLatLonHint}, nil},
		{"latlon hint 0,0 is a place", Hint{Lat: fp(0), Lon: fp(0)}, "", Location{Lat: 0, Lon: 0, Source: SourceLatLonHint}, nil},
		{"latlon hint on the edges", Hint{Lat: fp(-90), Lon: fp(180)}, "", Location{Lat: -90, Lon: 180, Source: SourceLatLonHint}, nil},
		{"lat too big", Hint{Lat: fp(90.01), Lon: fp(0)}, "", Location{}, ErrBadCoordinates},
		{"lon too small", Hint{Lat: fp(0), Lon: fp(-180.5)}, "", Location{}, ErrBadCoordinates},
		{"lat NaN", Hint{Lat: fp(nan), Lon: fp(0)}, "", Location{}, ErrBadCoordinates},
		{"lon Inf", Hint{Lat: fp(0), Lon: fp(math.Inf(1))}, "", Location{}, ErrBadCoordinates},
		{"only lat", Hint{Lat: fp(10)}, "203.0.113.7", Location{}, ErrBadCoordinates},
		{"only lon", Hint{Lon: fp(10)}, "203.0.113.7", Location{}, ErrBadCoordinates},
		{"geoip v4", Hint{}, "203.0.113.7", paris, nil},
		{"geoip v4 mapped in v6", Hint{}, "::ffff:203.0.113.7", paris, nil},
		{"geoip other v4", Hint{}, "198.51.100.200", Location{Lat: 45.5, Lon: -73.57, Country: "CA", Source: SourceGeoIP}, nil},
		{"geoip v6", Hint{}, "2001:db8:1::42", Location{Lat: 1.35, Lon: 103.82, Country: "SG", Source: SourceGeoIP}, nil},
		{"not in database", Hint{}, "8.8.8.8", def, nil},
		{"v6 not in database", Hint{}, "2001:db8:99::1", def, nil},
		{"record without location", Hint{}, "192.0.2.1", def, nil},
		{"record with latitude only", Hint{}, "2001:db8:2::1", def, nil},
		{"record off the globe", Hint{}, "2001:db8:3::1", def, nil},
		{"record of another schema", Hint{}, "2001:db8:4::1", def, nil},
		{"record with a broken field", Hint{}, "2001:db8:5::1", def, nil},
		{"no address", Hint{}, "", def, nil},
		{"private 10/8", Hint{}, "10.1.2.3", def, nil},
		{"private 172.16/12", Hint{}, "172.16.5.4", def, nil},
		{"private 192.168/16", Hint{}, "192.168.1.1", def, nil},
		{"CGNAT", Hint{}, "100.64.0.1", def, nil},
		{"CGNAT top", Hint{}, "100.127.255.254", def, nil},
		{"loopback", Hint{}, "127.0.0.1", def, nil},
		{"link-local v4", Hint{}, "169.254.1.1", def, nil},
		{"multicast v4", Hint{}, "239.1.1.1", def, nil},
		{"unspecified", Hint{}, "0.0.0.0", def, nil},
		{"ULA", Hint{}, "fd00::1", def, nil},
		{"link-local v6", Hint{}, "fe80::1", def, nil},
		{"multicast v6", Hint{}, "ff02::1", def, nil},
		{"loopback v6", Hint{}, "::1", def, nil},
		{"private mapped in v6", Hint{}, "::ffff:10.1.2.3", def, nil},
		{"CGNAT mapped in v6", Hint{}, "::ffff:100.64.0.1", def, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var addr netip.Addr
			if tc.addr != "" {
				addr = netip.MustParseAddr(tc.addr)
			}
			got, err := l.Locate(tc.hint, addr)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !sameLocation(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLocateErrorNamesHint(t *testing.T) {
	l := newTestLocator(t, LocatorConfig{})
	_, err := l.Locate(Hint{Region: "mars-north"}, netip.Addr{})
	if err == nil || !strings.Contains(err.Error(), `"mars-north"`) {
		t.Fatalf("err = %v, want it to name the region", err)
	}
	_, err = l.Locate(Hint{Region: strings.Repeat("x", 10000)}, netip.Addr{})
	if err == nil || len(err.Error()) > 200 {
		t.Fatalf("error for a huge hint is %d bytes", len(err.Error()))
	}
	_, err = l.Locate(Hint{Lat: fp(91), Lon: fp(0)}, netip.Addr{})
	if err == nil || !strings.Contains(err.Error(), "91") {
		t.Fatalf("err = %v, want it to name the latitude", err)
	}
}

func TestLocateIPv4OnlyDatabase(t *testing.T) {
	l := newTestLocator(t, LocatorConfig{GeoIPPath: writeTestDB(t, 4), DefaultRegion: "eu-central"})
	got, err := l.Locate(Hint{}, netip.MustParseAddr("203.0.113.9"))
	if err != nil || got.Source != SourceGeoIP || got.Country != "FR" {
		t.Fatalf("v4 = %+v, %v", got, err)
	}
	got, err = l.Locate(Hint{}, netip.MustParseAddr("::ffff:203.0.113.9"))
	if err != nil || got.Source != SourceGeoIP || got.Country != "FR" {
		t.Fatalf("v4 mapped in v6 = %+v, %v", got, err)
	}
	got, err = l.Locate(Hint{}, netip.MustParseAddr("2001:db8:1::1"))
	want := Location{Lat: 50.11, Lon: 8.68, Region: "eu-central", Source: SourceDefault}
	if err != nil || !sameLocation(got, want) {
		t.Fatalf("v6 in a v4 database = %+v, %v; want the default", got, err)
	}
}

func TestLocatorWithoutGeoIP(t *testing.T) {
	l := newTestLocator(t, LocatorConfig{})
	if l.HasGeoIP() {
		t.Fatal("HasGeoIP = true")
	}
	if got, want := l.Describe(), "no GeoIP database; default region local"; got != want {
		t.Fatalf("Describe = %q, want %q", got, want)
	}
	got, err := l.Locate(Hint{}, netip.MustParseAddr("203.0.113.7"))
	if err != nil || got.Source != SourceDefault || got.Region != "local" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestLocatorConfigValidate(t *testing.T) {
	cat := NewCatalog()
	if err := cat.Add(Region{Name: "onprem-1", Lat: math.NaN(), Lon: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		cfg LocatorConfig
		ok  bool
	}{
		{LocatorConfig{}, true},
		{LocatorConfig{DefaultRegion: "us-west"}, true},
		{LocatorConfig{Catalog: cat, DefaultRegion: "onprem-1"}, true},
		{LocatorConfig{DefaultRegion: "onprem-1"}, false}, // not in the built-in catalog
		{LocatorConfig{DefaultRegion: "us west"}, false},
		{LocatorConfig{GeoIPPath: "/does/not/matter/here.mmdb"}, true}, // Validate does not open files
	}
	for i, tc := range cases {
		err := tc.cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%d: %+v: Validate = %v", i, tc.cfg, err)
		}
		if _, nerr := NewLocator(LocatorConfig{Catalog: tc.cfg.Catalog, DefaultRegion: tc.cfg.DefaultRegion}); (nerr == nil) != tc.ok {
			t.Errorf("%d: NewLocator = %v", i, nerr)
		}
	}
}

func TestDefaultRegionWithoutCoordinates(t *testing.T) {
	cat := NewCatalog()
	if err := cat.Add(Region{Name: "onprem-1", Lat: math.NaN(), Lon: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	l := newTestLocator(t, LocatorConfig{Catalog: cat, DefaultRegion: "onprem-1"})
	got, err := l.Locate(Hint{}, netip.Addr{})
	want := Location{Lat: math.NaN(), Lon: math.NaN(), Region: "onprem-1", Source: SourceDefault}
	if err != nil || !sameLocation(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// It still ranks the region's own sites first.
	r := cat.Rank(got, []Site{{ID: "a", Region: "eu-west"}, {ID: "b", Region: "onprem-1"}})
	if r[0].Site.ID != "b" || r[0].DistanceKm != 0 || !math.IsNaN(r[1].DistanceKm) {
		t.Fatalf("rank = %+v", r)
	}
}

func TestNewLocatorBadDatabase(t *testing.T) {
	dir := t.TempDir()
	random := filepath.Join(dir, "random.mmdb")
	b := make([]byte, 4096)
	_, _ = rand.Read(b)
	if err := os.WriteFile(random, b, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A real database cut in half has lost its metadata section.
	good, err := os.ReadFile(writeTestDB(t, 6))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.mmdb")
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{random, empty, truncated, filepath.Join(dir, "missing.mmdb"), dir} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			l, err := NewLocator(LocatorConfig{GeoIPPath: path})
			if err == nil {
				_ = l.Close()
				t.Fatal("no error")
			}
			if want := `geo: GeoIP database "` + path + `": `; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("err = %q, want prefix %q", err, want)
			}
		})
	}
}

func TestLocatorDescribeAndClose(t *testing.T) {
	path := writeTestDB(t, 6)
	l, err := NewLocator(LocatorConfig{GeoIPPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Describe(), "GeoIP "+path+" (GeoIP2-City, built 2026-01-02); default region local"; got != want {
		t.Fatalf("Describe = %q, want %q", got, want)
	}
	addr := netip.MustParseAddr("203.0.113.7")
	if got, _ := l.Locate(Hint{}, addr); got.Source != SourceGeoIP {
		t.Fatalf("before Close: %+v", got)
	}
	for i := range 3 {
		if err := l.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if l.HasGeoIP() {
		t.Fatal("HasGeoIP after Close")
	}
	if got, err := l.Locate(Hint{}, addr); err != nil || got.Source != SourceDefault {
		t.Fatalf("after Close: %+v, %v", got, err)
	}
	if got := l.Describe(); !strings.Contains(got, "closed") {
		t.Fatalf("Describe after Close = %q", got)
	}
}

// TestLocateConcurrent runs lookups from many goroutines, and closes the
// database while they run: under -race this checks the locking, and without
// it Close could unmap the file under a lookup.
func TestLocateConcurrent(t *testing.T) {
	l := newTestLocator(t, LocatorConfig{GeoIPPath: writeTestDB(t, 6)})
	addrs := []netip.Addr{
		netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("8.8.8.8"),
	}
	const workers, rounds = 16, 300
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if w == 0 && i == rounds/2 {
					if err := l.Close(); err != nil {
						errs <- err
						return
					}
				}
				a := addrs[(w+i)%len(addrs)]
				got, err := l.Locate(Hint{}, a)
				if err != nil {
					errs <- err
					return
				}
				if got.Source != SourceGeoIP && got.Source != SourceDefault {
					errs <- errors.New("bad source " + got.Source)
					return
				}
				if _, err := l.Locate(Hint{Region: "us-east"}, a); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLocationJSON(t *testing.T) {
	for _, loc := range []Location{
		{Lat: 48.86, Lon: 2.35, Country: "FR", Source: SourceGeoIP},
		{Lat: 0, Lon: 0, Region: "local", Source: SourceDefault},
		{Lat: math.NaN(), Lon: math.NaN(), Region: "onprem-1", Source: SourceRegionHint},
	} {
		b, err := loc.MarshalJSON()
		if err != nil {
			t.Fatalf("%+v: %v", loc, err)
		}
		var back Location
		if err := back.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		if !sameLocation(loc, back) {
			t.Errorf("%s decoded as %+v", b, back)
		}
		if math.IsNaN(loc.Lat) == strings.Contains(string(b), `"lat"`) {
			t.Errorf("%s: lat present iff known", b)
		}
	}
}

func BenchmarkLocateGeoIP(b *testing.B) {
	l := newTestLocator(b, LocatorConfig{GeoIPPath: writeTestDB(b, 6)})
	addr := netip.MustParseAddr("203.0.113.7")
	b.ReportAllocs()
	for b.Loop() {
		if loc, _ := l.Locate(Hint{}, addr); loc.Source != SourceGeoIP {
			b.Fatal(loc)
		}
	}
}

// TestLocateAllocs: a GeoIP lookup decodes into a fixed struct, not a map of
// the whole record (which would cost dozens of allocations per join).
func TestLocateAllocs(t *testing.T) {
	l := newTestLocator(t, LocatorConfig{GeoIPPath: writeTestDB(t, 6)})
	addr := netip.MustParseAddr("203.0.113.7")
	n := testing.AllocsPerRun(200, func() {
		if loc, _ := l.Locate(Hint{}, addr); loc.Source != SourceGeoIP {
			t.Fatal(loc)
		}
	})
	if n > 3 {
		t.Fatalf("%v allocations per Locate", n)
	}
}
