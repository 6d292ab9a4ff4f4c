package sfu

import "time"

// keyframeLimiter coalesces keyframe requests for one published stream: at
// most one PLI per interval while the last one is unanswered; a request
// inside the interval is remembered and sent when it may go (so a late
// joiner still gets its keyframe within one interval). Once a keyframe has
// arrived since the last PLI, that PLI is answered and the next may go after
// a quarter of the interval: a subscriber that connects just after the
// publisher's first keyframe (which it could not receive) would otherwise
// wait most of a second for its own, and a publisher still gets at most
// four requests a second. Pure; the owner holds the lock and the clock.
type keyframeLimiter struct {
	interval time.Duration
	last     time.Time
	pending  bool
	answered bool // a keyframe arrived since the last PLI
}

// mayGo reports whether a PLI may be sent at now.
func (k *keyframeLimiter) mayGo(now time.Time) bool {
	since := now.Sub(k.last)
	return k.last.IsZero() || since >= k.interval || (k.answered && since >= k.interval/4)
}

func (k *keyframeLimiter) sent(now time.Time) {
	k.last, k.pending, k.answered = now, false, false
}

// Request records a request and reports whether a PLI may be sent now.
func (k *keyframeLimiter) Request(now time.Time) bool {
	if k.mayGo(now) {
		k.sent(now)
		return true
	}
	k.pending = true
	return false
}

// Due reports whether a deferred request may be sent now (and consumes it).
func (k *keyframeLimiter) Due(now time.Time) bool {
	if !k.pending || !k.mayGo(now) {
		return false
	}
	k.sent(now)
	return true
}

// Answered notes that a keyframe arrived.
func (k *keyframeLimiter) Answered() { k.answered = true }
