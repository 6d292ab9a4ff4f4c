package api

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestRESTTimeMatchesFormat: restTime writes what Format with restLayout
// writes, for random instants of years 0–9999 in any zone (milliseconds
// truncated, not rounded), the edges of that range and years outside it.
func TestRESTTimeMatchesFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paris := time.FixedZone("CET", 3600)
	cases := []time.Time{
		{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(9999, 12, 31, 23, 30, 0, 0, time.FixedZone("west", -3600)), // year 10000 in UTC
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 9, 5, 7, 1_999_999, paris),
	}
	lo, hi := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for range 100_000 {
		zone := time.UTC
		if rng.IntN(2) == 0 {
			zone = paris
		}
		cases = append(cases, time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(1e9)).In(zone))
	}
	for _, tm := range cases {
		if got, want := restTime(tm), tm.UTC().Format(restLayout); got != want {
			t.Fatalf("restTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkRESTTime(b *testing.B) {
	tm := time.Date(2026, 12, 4, 9, 5, 7, 123_456_789, time.UTC)
	b.Run("Format", func(b *testing.B) {
		for b.Loop() {
			_ = tm.UTC().Format(restLayout)
		}
	})
	b.Run("restTime", func(b *testing.B) {
		for b.Loop() {
			_ = restTime(tm)
		}
	})
}
