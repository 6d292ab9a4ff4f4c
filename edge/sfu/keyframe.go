package sfu

import "time"

// keyframeLimiter coalesces keyframe requests for one published stream: at
// most one PLI per interval; a request inside the interval is remembered and
// sent when the interval ends (so a late joiner still gets its keyframe
// within one interval). Pure; the owner holds the lock and the clock.
type keyframeLimiter struct {
	interval time.Duration
	last     time.Time
	pending  bool
}

// Request records a request and reports whether a PLI may be sent now.
func (k *keyframeLimiter) Request(now time.Time) bool {
	if k.last.IsZero() || now.Sub(k.last) >= k.interval {
		k.last = now
		k.pending = false
		return true
	}
	k.pending = true
	return false
}

// Due reports whether a deferred request may be sent now (and consumes it).
func (k *keyframeLimiter) Due(now time.Time) bool {
	if !k.pending || now.Sub(k.last) < k.interval {
		return false
	}
	k.pending = false
	k.last = now
	return true
}
