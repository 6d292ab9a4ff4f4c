package egresstest

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The egress tests encode in real time (x264 at 720p, several renditions
// for HLS, Chromium publishing simulcast in the browser test). An encoder
// more than MaxLag behind real time drops media (it failed its job before
// 14ee2bb), and the tests check what was encoded: how long each file
// lasts, which pictures it shows. `go test ./...` runs two packages at
// once on a two-core machine, so without this the egress tests of two
// packages (test/e2e and test/browser, say) could each get half the CPU
// they need (CI's TestEgressMeeting and TestEgressThroughEdge both failed
// that way, "encoder too slow"). One test process at a time holds the
// lock; tests inside one process share it (they run one at a time unless
// they ask otherwise).
var encoders struct {
	mu   sync.Mutex
	held int
	f    *os.File
}

// lockPath is shared by every test process of the machine.
var lockPath = filepath.Join(os.TempDir(), "meridian-egress-tests.lock")

// HoldEncoders blocks until no other test process is running egress, and
// holds that until t and its cleanups are done.
func HoldEncoders(t testing.TB) {
	t.Helper()
	encoders.mu.Lock()
	defer encoders.mu.Unlock()
	if encoders.held == 0 {
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			t.Fatalf("egress test lock: %v", err)
		}
		began := time.Now()
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if err != syscall.EINTR {
				break
			}
		}
		if err != nil {
			f.Close()
			t.Fatalf("egress test lock %s: %v", lockPath, err)
		}
		if waited := time.Since(began); waited > time.Second {
			t.Logf("waited %s for another test process's egress tests (%s)", waited.Round(time.Millisecond), lockPath)
		}
		encoders.f = f
	}
	encoders.held++
	t.Cleanup(func() {
		encoders.mu.Lock()
		defer encoders.mu.Unlock()
		encoders.held--
		if encoders.held == 0 {
			_ = syscall.Flock(int(encoders.f.Fd()), syscall.LOCK_UN)
			encoders.f.Close()
			encoders.f = nil
		}
	})
}
