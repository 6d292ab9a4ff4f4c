package gossip

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/meridian-video/meridian/shared/edgeapi"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{ID: "e1", Region: "eu"},
		{ID: "edge-fra-1", Region: "eu-central", InternalURL: "https://10.0.0.7:8443", Capacity: 500,
			Load: edgeapi.Load{Participants: 42, Tracks: 90, Rooms: 3, CPU: 0.375, EgressBps: 12_345_678}, Draining: true},
		{ID: "x", Region: "y", InternalURL: "http://[2001:db8::1]:80", Load: edgeapi.Load{CPU: 1}},
	} {
		b, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("EncodeMeta(%+v): %v", m, err)
		}
		if b[0] != MetaVersion {
			t.Errorf("first byte %d, want version %d", b[0], MetaVersion)
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("DecodeMeta(%q): %v", b, err)
		}
		if got != m {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestMetaCPUThousandths(t *testing.T) {
	for in, want := range map[float64]float64{0.123456: 0.123, 0.1236: 0.124, 0.29: 0.29, 1: 1} {
		b, err := EncodeMeta(Meta{ID: "a", Region: "r", Load: edgeapi.Load{CPU: in}})
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := DecodeMeta(b); m.Load.CPU != want {
			t.Errorf("CPU %v: decoded %v, want %v", in, m.Load.CPU, want)
		}
	}
	for _, cpu := range []float64{math.NaN(), math.Inf(1), 1e300} {
		if _, err := EncodeMeta(Meta{ID: "a", Region: "r", Load: edgeapi.Load{CPU: cpu}}); !errors.Is(err, ErrMetaInvalid) {
			t.Errorf("CPU %v: err %v, want ErrMetaInvalid", cpu, err)
		}
	}
}

// worstMeta has 64-char ids, the longest IPv6 URL with a port and the
// largest numbers.
func worstMeta() Meta {
	return Meta{
		ID:          strings.Repeat("i", MaxIDLen),
		Region:      strings.Repeat("r", MaxIDLen),
		InternalURL: "https://[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535",
		Capacity:    math.MaxInt64,
		Load: edgeapi.Load{
			Participants: math.MinInt64, Tracks: math.MinInt64, Rooms: math.MinInt64,
			CPU: -999_999_999.999, EgressBps: math.MinInt64,
		},
		Draining: true,
	}
}

func TestMetaWorstCaseFits(t *testing.T) {
	b, err := EncodeMeta(worstMeta())
	if err != nil {
		t.Fatalf("worst case: %v", err)
	}
	// What the pool publishes has two more fields: the leaving flag and
	// the generation. publishMeta reserves room for both.
	w, err := toWire(worstMeta())
	if err != nil {
		t.Fatal(err)
	}
	w.Leaving, w.Gen = true, math.MaxUint32
	wb, err := encodeWire(w)
	if err != nil {
		t.Fatalf("worst case with leaving and generation: %v", err)
	}
	t.Logf("worst-case meta: %d bytes (%d with leaving flag and generation), limit %d", len(b), len(wb), MetaMaxSize)
	if len(wb) > MetaMaxSize {
		t.Fatalf("%d bytes > %d", len(wb), MetaMaxSize)
	}
}

func TestMetaTooLarge(t *testing.T) {
	m := Meta{ID: "a", Region: "r", InternalURL: "https://" + strings.Repeat("h", 500) + ":1"}
	_, err := EncodeMeta(m)
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("err %v, want ErrMetaTooLarge", err)
	}
}

func TestDecodeMetaErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":       {nil, ErrMetaInvalid},
		"version 0":   {[]byte{0, '{', '}'}, ErrMetaVersion},
		"version 2":   {append([]byte{2}, `{"i":"a","r":"b"}`...), ErrMetaVersion},
		"bad json":    {append([]byte{1}, `{"i":`...), ErrMetaInvalid},
		"no region":   {append([]byte{1}, `{"i":"a"}`...), ErrMetaInvalid},
		"wrong types": {append([]byte{1}, `{"i":"a","r":"b","c":"x"}`...), ErrMetaInvalid},
	} {
		if _, err := DecodeMeta(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
		}
	}
	// Fields added later within version 1 are ignored.
	m, err := DecodeMeta(append([]byte{1}, `{"i":"a","r":"b","c":7,"zz":[1,2]}`...))
	if err != nil || m.Capacity != 7 {
		t.Errorf("unknown field: %+v, %v", m, err)
	}
}
