package main

import (
	"math"
	"slices"
	"time"
)

// sample is one completed request: when it completed (since the phase
// started) and how long it took.
type sample struct {
	end, lat time.Duration
}

// percentile returns the nearest-rank q-th percentile (0 < q <= 100) of
// sorted durations: the smallest value with at least q % of the values at
// or below it. Zero for no values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// latencies sorts the latencies of samples (a copy).
func latencies(ss []sample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = s.lat
	}
	slices.Sort(out)
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratio is a/b, or 0 when b is 0 (shown as "–").
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
