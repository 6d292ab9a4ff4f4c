package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The control plane keeps every room, session and delivery in memory: at a
// million rooms its live heap is about 2 GB of pointer-dense radix trees.
// With Go's default GOGC=100 the collector starts a cycle each time the
// heap doubles, and a cycle over 2 GB runs for seconds; on a busy core the
// mark workers compete with the request handlers for all that time. In a
// continuous fill to a million rooms on one core the collector was marking
// 42–48 % of the time (gctrace); at GOGC=200 25 %, with about 10 % less CPU
// per create (docs/benchmarks.md, "Control plane"). The price is heap
// headroom (up to 3× the live heap instead of 2×), so a soft memory limit
// makes the collector run earlier again before the machine or the
// container runs short. An edge-only process keeps Go's defaults: its heap
// is small and its memory per subscriber matters more than GC frequency.
const (
	controlGCPercent = 200
	// memoryLimitShare of the machine's (or the container's) memory is the
	// soft limit set when the operator sets none.
	memoryLimitShare = 0.75
)

// gcSettings decides the collector's settings for a control-plane
// process: GOGC and GOMEMLIMIT set by the operator win (env values, "" when
// unset); available is the memory the process may use (0: unknown). A
// negative result means "leave as is".
func gcSettings(gogcEnv, memLimitEnv string, available int64) (percent int, limit int64) {
	percent, limit = -1, -1
	if gogcEnv == "" {
		percent = controlGCPercent
	}
	if memLimitEnv == "" && available > 0 {
		limit = int64(float64(available) * memoryLimitShare)
	}
	return percent, limit
}

// tuneControlGC applies gcSettings to this process (dev, control).
func tuneControlGC() {
	percent, limit := gcSettings(os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"), availableMemory())
	if percent >= 0 {
		debug.SetGCPercent(percent)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}

// availableMemory is the smaller of the machine's memory and the cgroup
// (v2) limit of this process, 0 when neither can be read.
func availableMemory() int64 {
	total := memTotal(readFile("/proc/meminfo"))
	if limit := cgroupLimit(readFile("/sys/fs/cgroup/memory.max")); limit > 0 && (total == 0 || limit < total) {
		return limit
	}
	return total
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// memTotal parses MemTotal (kB) out of /proc/meminfo, in bytes.
func memTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil || kb <= 0 {
			return 0
		}
		return kb << 10
	}
	return 0
}

// cgroupLimit parses a cgroup v2 memory.max ("max" or bytes).
func cgroupLimit(memoryMax []byte) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(string(memoryMax)), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}
