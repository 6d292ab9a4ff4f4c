package main

import (
	"os"
	"testing"
)

func TestGCSettings(t *testing.T) {
	for _, c := range []struct {
		name          string
		def           int
		gogc, limit   string
		available     int64
		percent       int
		memoryLimitAt int64
	}{
		{"control defaults on a known machine", controlGCPercent, "", "", 8 << 30, controlGCPercent, 6 << 30},
		{"edge defaults", edgeGCPercent, "", "", 8 << 30, edgeGCPercent, 6 << 30},
		{"memory unknown: no limit", controlGCPercent, "", "", 0, controlGCPercent, -1},
		{"the operator's GOGC wins", controlGCPercent, "50", "", 8 << 30, -1, 6 << 30},
		{"the operator's GOMEMLIMIT wins", edgeGCPercent, "", "1GiB", 8 << 30, edgeGCPercent, -1},
		{"GOGC=off is the operator's too", controlGCPercent, "off", "", 8 << 30, -1, 6 << 30},
	} {
		percent, limit := gcSettings(c.def, c.gogc, c.limit, c.available)
		if percent != c.percent || limit != c.memoryLimitAt {
			t.Errorf("%s: gcSettings(%d, %q, %q, %d) = %d, %d; want %d, %d", c.name, c.def, c.gogc, c.limit, c.available, percent, limit, c.percent, c.memoryLimitAt)
		}
	}
}

func TestDefaultGCPercent(t *testing.T) {
	for cmd, want := range map[string]int{"dev": controlGCPercent, "control": controlGCPercent, "edge": edgeGCPercent} {
		if got := defaultGCPercent(cmd); got != want {
			t.Errorf("defaultGCPercent(%q) = %d, want %d", cmd, got, want)
		}
	}
}

func TestAvailableMemoryParsing(t *testing.T) {
	meminfo := []byte("MemTotal:       24589164 kB\nMemFree:         1234 kB\n")
	if got, want := memTotal(meminfo), int64(24589164)<<10; got != want {
		t.Errorf("memTotal = %d, want %d", got, want)
	}
	for in, want := range map[string]int64{"max\n": 0, "4294967296\n": 4 << 30, "": 0, "garbage": 0} {
		if got := cgroupLimit([]byte(in)); got != want {
			t.Errorf("cgroupLimit(%q) = %d, want %d", in, got, want)
		}
	}
	// This machine's own files: Linux always has MemTotal.
	if _, err := os.Stat("/proc/meminfo"); err == nil && availableMemory() <= 0 {
		t.Errorf("availableMemory() = %d on a machine with /proc/meminfo", availableMemory())
	}
}
