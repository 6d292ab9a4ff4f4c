package procfs

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestParseStatTimes(t *testing.T) {
	// A command name with spaces and a ')' of its own; utime 150, stime 50.
	stat := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 50 0 0 20 0 9 0 12345 1000000 250 18446744073709551615\n"
	user, system, err := parseStatTimes([]byte(stat))
	if err != nil || user != 1500*time.Millisecond || system != 500*time.Millisecond {
		t.Fatalf("parseStatTimes = %v, %v, %v; want 1.5s, 500ms", user, system, err)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 x 50 0"} {
		if _, _, err := parseStatTimes([]byte(bad)); err == nil {
			t.Errorf("parseStatTimes(%q): no error", bad)
		}
	}
}

func TestParseCPUBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  900 0 300 5000 100 0 0 40 0 0\n" +
		"cpu0 500 0 200 2000 50 10 10 30 77 0\n" +
		"cpu1 400 0 100 3000 50 0 0 10 0 0\n"
	busy, steal := parseCPUBusy(stat, 0)
	// 500+200+10+10+30 ticks: idle, iowait and guest (already in user) left out.
	if busy != 7500*time.Millisecond || steal != 300*time.Millisecond {
		t.Fatalf("cpu0: busy %v steal %v; want 7.5s and 300ms", busy, steal)
	}
	if busy, steal := parseCPUBusy(stat, 1); busy != 5100*time.Millisecond || steal != 100*time.Millisecond {
		t.Fatalf("cpu1: busy %v steal %v", busy, steal)
	}
	if busy, _ := parseCPUBusy(stat, 2); busy != 0 {
		t.Fatalf("a CPU not listed: %v", busy)
	}
	if busy, _ := CPUBusy(-1); busy != 0 {
		t.Fatalf("CPU -1: %v", busy)
	}
}

// This process's CPU time is read, as pid 0 and by its pid, and grows.
func TestCPUTime(t *testing.T) {
	for d, _ := CPUTime(0); d < 30*time.Millisecond; d, _ = CPUTime(0) {
		for i := 0; i < 1e5; i++ {
			_ = fmt.Sprint(i)
		}
	}
	self, err := CPUTime(0)
	if err != nil {
		t.Fatal(err)
	}
	byPID, err := CPUTime(os.Getpid())
	if err != nil || byPID < self {
		t.Fatalf("by pid %v (%v), as self %v before", byPID, err, self)
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Fatal("a process that does not exist: no error")
	}
}

// Time spent in system calls shows as system time, not user time.
func TestTimesSplit(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<16)
	_, sys0, err := Times(0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		for i := 0; i < 1e4; i++ {
			if _, err := f.Write(buf); err != nil {
				t.Fatal(err)
			}
		}
		if _, sys, _ := Times(0); sys-sys0 >= 30*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("20 s of writes to /dev/null added under 30 ms of system time")
		}
	}
	user, system, err := Times(os.Getpid())
	if err != nil || system == 0 || user+system > time.Hour {
		t.Fatalf("Times = %v, %v, %v", user, system, err)
	}
	if total, _ := CPUTime(0); total < user+system {
		t.Fatalf("CPUTime %v is less than user %v + system %v read before it", total, user, system)
	}
}
