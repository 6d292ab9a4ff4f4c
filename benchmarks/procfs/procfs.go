// Package procfs reads what the benchmarks measure of processes and CPUs
// from Linux's /proc: a process's CPU time (and its user/system split), a
// CPU's busy and steal time.
// The load generator (benchmarks/loadgen) and the control-plane client
// (benchmarks/ctlbench) read them the same way, so their tables agree.
package procfs

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc's CPU times (USER_HZ): 100 on every Linux
// architecture Go supports in practice.
const userHZ = 100

// CPUTime is utime+stime of a process, all its threads, live and exited;
// pid 0 is this process.
func CPUTime(pid int) (time.Duration, error) {
	user, system, err := Times(pid)
	return user + system, err
}

// Times is a process's CPU time split into user and system (utime and
// stime: system includes the softirq work the kernel did in the process's
// context, which on loopback is the delivery of what it sends); pid 0 is
// this process.
func Times(pid int) (user, system time.Duration, err error) {
	path := "/proc/self/stat"
	if pid > 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	user, system, err = parseStatTimes(b)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return user, system, nil
}

// parseStatTimes takes utime and stime out of a /proc/PID/stat line.
func parseStatTimes(stat []byte) (user, system time.Duration, err error) {
	// The command name may contain spaces and parentheses; the fields
	// resume after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("unexpected format")
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad utime/stime")
	}
	return time.Duration(ut) * time.Second / userHZ, time.Duration(st) * time.Second / userHZ, nil
}

// CPUBusy is the busy time (everything but idle and iowait, steal
// included) and the steal time of one CPU since boot, so a phase can show
// how much of the server's core other processes or the hypervisor took.
// Zero for a CPU that /proc/stat does not list (or a negative one).
func CPUBusy(cpu int) (busy, steal time.Duration) {
	if cpu < 0 {
		return 0, 0
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	return parseCPUBusy(string(b), cpu)
}

// parseCPUBusy reads the "cpuN" line of /proc/stat.
func parseCPUBusy(stat string, cpu int) (busy, steal time.Duration) {
	prefix := fmt.Sprintf("cpu%d ", cpu)
	for _, line := range strings.Split(stat, "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		var sum uint64
		for i, v := range strings.Fields(rest) {
			n, _ := strconv.ParseUint(v, 10, 64)
			switch i {
			case 3, 4: // idle, iowait
			case 7:
				steal = time.Duration(n) * time.Second / userHZ
				sum += n
			case 8, 9: // guest time is already counted in user
			default:
				sum += n
			}
		}
		return time.Duration(sum) * time.Second / userHZ, steal
	}
	return 0, 0
}
