package auth

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter keeps one token bucket per key (API key or client IP). Idle
// buckets are dropped so a scan of many IPs cannot grow memory without bound.
type RateLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	lastGC  time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewRateLimiter allows perSecond requests with the given burst per key.
// perSecond <= 0 disables limiting.
func NewRateLimiter(perSecond float64, burst int, now func() time.Time) *RateLimiter {
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{limit: rate.Limit(perSecond), burst: burst, now: now, buckets: map[string]*bucket{}}
}

// Allow reports whether a request for key may proceed; if not, it returns how
// long to wait (for Retry-After).
func (r *RateLimiter) Allow(key string) (bool, time.Duration) {
	if r == nil || r.limit <= 0 {
		return true, 0
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.lastGC) > time.Minute {
		for k, b := range r.buckets {
			if now.Sub(b.seen) > 10*time.Minute {
				delete(r.buckets, k)
			}
		}
		r.lastGC = now
	}
	b, ok := r.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(r.limit, r.burst)}
		r.buckets[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, time.Duration(math.Ceil(d.Seconds())) * time.Second
	}
	return true, 0
}
