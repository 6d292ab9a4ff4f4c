package wait_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/wait"
)

// recorder captures Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r) // Fatalf must not return
}

func TestUntilReturnsOnceTrue(t *testing.T) {
	n := 0
	wait.Until(t, time.Minute, func() string {
		if n++; n < 3 {
			return fmt.Sprintf("only %d polls", n)
		}
		return ""
	})
	if n != 3 {
		t.Fatalf("polled %d times, want exactly 3", n)
	}
}

func TestUntilFailsWithTheLastReason(t *testing.T) {
	r := &recorder{TB: t}
	n := 0
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		wait.Until(r, 50*time.Millisecond, func() string { n++; return fmt.Sprintf("poll %d still waiting", n) })
	}()
	if r.failed == "" {
		t.Fatal("Until returned although the condition never held")
	}
	if !strings.Contains(r.failed, fmt.Sprintf("poll %d still waiting", n)) {
		t.Fatalf("failure %q does not carry the last reason (poll %d)", r.failed, n)
	}
}
