// Package backoff computes retry delays: exponential growth from a first
// delay up to a cap, optionally with jitter. It only does arithmetic: callers
// sleep, and supply the randomness, so the control plane can draw it from
// its configured source and tests can fix it.
//
// It lives in shared so that every side can use the same function (shared
// imports nothing of ours; control and edge both may import shared).
package backoff

import "time"

// Policy is an exponential backoff: the delay before retry n (n = 0 for the
// first retry) grows as Min·2ⁿ and never exceeds Max. A Max below Min means
// no growth (Min every time); Min <= 0 means no delay.
type Policy struct {
	Min time.Duration
	Max time.Duration
}

// Ceiling is min(Max, Min·2^attempt): the plain exponential delay, and the
// top of the Jittered window. Negative attempts count as 0. It never
// overflows, however large attempt is.
func (p Policy) Ceiling(attempt int) time.Duration {
	if p.Min <= 0 {
		return 0
	}
	top := max(p.Max, p.Min)
	d := p.Min
	for i := 0; i < attempt && d < top; i++ {
		if d > top/2 {
			return top // doubling would pass the cap (or overflow)
		}
		d *= 2
	}
	return min(d, top)
}

// Jittered is uniform in [Min, Ceiling(attempt)] for r uniform in [0, 1):
// "full jitter" above a floor, so that many clients failing together do not
// retry together, yet none retries sooner than Min. r outside [0, 1] (or NaN)
// is clamped.
func (p Policy) Jittered(attempt int, r float64) time.Duration {
	if !(r > 0) { // also NaN
		r = 0
	}
	r = min(r, 1)
	floor := max(p.Min, 0)
	return floor + time.Duration(r*float64(p.Ceiling(attempt)-floor))
}
