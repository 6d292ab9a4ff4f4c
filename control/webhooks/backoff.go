package webhooks

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	backoffpkg "github.com/meridian-video/meridian/shared/backoff"
)

// backoff is the delay after the attempts-th failed attempt (attempts >= 1):
// uniform in [MinBackoff, min(MaxBackoff, MinBackoff·2^attempts)], with r in
// [0, 1) from Config.Rand.
func backoff(cfg *Config, attempts int, r float64) time.Duration {
	return backoffpkg.Policy{Min: cfg.MinBackoff, Max: cfg.MaxBackoff}.Jittered(attempts, r)
}

// retryDelay chooses the wait before the next attempt: what Retry-After asks
// when the receiver sent one, else the jittered backoff; never less than
// MinBackoff, never more than MaxBackoff.
func retryDelay(cfg *Config, attempts int, retryAfter time.Duration, hasRetryAfter bool, r float64) time.Duration {
	d := backoff(cfg, attempts, r)
	if hasRetryAfter {
		d = retryAfter
	}
	return min(max(d, cfg.MinBackoff), cfg.MaxBackoff)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (relative to now). A date in the past means 0.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		const maxSecs = uint64(1<<63-1) / uint64(time.Second)
		return time.Duration(min(n, maxSecs)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
