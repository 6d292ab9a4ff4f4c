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
// million rooms its live heap is 1–2 GB of pointer-dense radix trees.
// With Go's default GOGC=100 the collector starts a cycle each time the
// heap doubles, and a cycle over 2 GB runs for seconds; on a busy core the
// mark workers compete with the request handlers for all that time. In a
// continuous fill to a million rooms on one core the collector was marking
// 42–48 % of the time (gctrace); at GOGC=200 25 %, with about 10 % less CPU
// per create (docs/benchmarks.md, "Control plane"). Since the state's radix
// trees carry no watch channels (a room takes ~40 % less memory) there is
// room for GOGC=300: three nodes sharing one core, filled to 500k rooms,
// marked 24–30 s per node instead of 36–44 s, with a p99 create latency of
// 22–23 ms instead of 27–34 ms, for ~25 % more peak RSS (docs/benchmarks.md,
// "State trees without watch channels").
//
// An edge is the opposite case: its forward path allocates nothing per
// packet, so the collector runs for joins and signaling only, and what its
// headroom costs is memory per subscriber. At GOGC=50 an edge held 30–40
// KB less RSS per subscriber than at 100 with the same CPU per forwarded
// packet (benchmarks/run.sh at N = 100 and 250; docs/benchmarks.md).
//
// A soft memory limit makes the collector run earlier again before the
// machine or the container runs short.
const (
	controlGCPercent = 300
	edgeGCPercent    = 50
	// memoryLimitShare of the machine's (or the container's) memory is the
	// soft limit set when the operator sets none.
	memoryLimitShare = 0.75
)

// gcSettings decides the collector's settings: GOGC and GOMEMLIMIT set by
// the operator win (env values, "" when unset), else percent is the
// process's default; available is the memory the process may use (0:
// unknown). A negative result means "leave as is".
func gcSettings(defaultPercent int, gogcEnv, memLimitEnv string, available int64) (percent int, limit int64) {
	percent, limit = -1, -1
	if gogcEnv == "" {
		percent = defaultPercent
	}
	if memLimitEnv == "" && available > 0 {
		limit = int64(float64(available) * memoryLimitShare)
	}
	return percent, limit
}

// tuneGC applies gcSettings to this process: dev and control run the
// control plane's setting (dev's edge shares its process), edge its own.
func tuneGC(cmd string) {
	percent, limit := gcSettings(defaultGCPercent(cmd), os.Getenv("GOGC"), os.Getenv("GOMEMLIMIT"), availableMemory())
	if percent >= 0 {
		debug.SetGCPercent(percent)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}

// defaultGCPercent is a server command's GOGC when the operator sets none.
func defaultGCPercent(cmd string) int {
	if cmd == "edge" {
		return edgeGCPercent
	}
	return controlGCPercent
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
