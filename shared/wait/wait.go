// Package wait is the one polling helper tests use to wait for state that
// settles asynchronously (replication, gossip, media): poll a condition that
// explains itself, and fail with its last explanation.
package wait

import (
	"testing"
	"time"
)

// Interval is how often Until polls.
const Interval = 10 * time.Millisecond

// Until polls cond until it returns "" and reports how long that took. If
// timeout passes first the test fails with cond's last reason, so a failure
// says what was still missing rather than just "timed out".
func Until(tb testing.TB, timeout time.Duration, cond func() string) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		reason := cond()
		if reason == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			tb.Fatalf("not true after %v: %s", timeout, reason)
		}
		time.Sleep(Interval)
	}
}
