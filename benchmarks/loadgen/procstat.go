package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-video/meridian/benchmarks/procfs"
)

// procStatus returns VmRSS (bytes) and the thread count of a process.
func procStatus(pid int) (rss int64, threads int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			rss = kb * 1024
		case strings.HasPrefix(line, "Threads:"):
			threads, _ = strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return rss, threads, sc.Err()
}

// udpErrors returns the system-wide UDP InErrors and RcvbufErrors counters
// (/proc/net/snmp): datagrams the kernel dropped because a socket's receive
// buffer was full, on either side of the loopback.
func udpErrors() (inErrors, rcvbuf uint64) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, 0
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "Udp: ") {
			continue
		}
		f := strings.Fields(line)[1:]
		if names == nil {
			names = f
			continue
		}
		for i, v := range f {
			if i >= len(names) {
				break
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			switch names[i] {
			case "InErrors":
				inErrors = n
			case "RcvbufErrors":
				rcvbuf = n
			}
		}
		break
	}
	return inErrors, rcvbuf
}

// goMetrics scrapes a few Go runtime gauges from the server's Prometheus
// endpoint (empty map if it has none).
func goMetrics(url string) map[string]float64 {
	out := map[string]float64{}
	if url == "" {
		return out
	}
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: metrics:", err)
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "loadgen: server metrics:", resp.Status, "(heap and goroutine columns left empty)")
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_goroutines", "go_memstats_sys_bytes"} {
			if strings.HasPrefix(line, name+" ") {
				v, err := strconv.ParseFloat(strings.TrimSpace(line[len(name):]), 64)
				if err == nil {
					out[name] = v
				}
			}
		}
	}
	return out
}

// serverCPUTime is the CPU time of all the server's processes (a
// Meridian edge and its control plane run as two).
func serverCPUTime(pids []int) (time.Duration, error) {
	total, _, err := serverCPUTimes(pids)
	return total, err
}

// serverCPUTimes is serverCPUTime and its system part, from one read of
// each process's stat.
func serverCPUTimes(pids []int) (total, system time.Duration, err error) {
	for _, pid := range pids {
		u, s, err := procfs.Times(pid)
		if err != nil {
			return 0, 0, err
		}
		total, system = total+u+s, system+s
	}
	return total, system, nil
}

// ioCalls returns a process's read and write system calls so far
// (syscr/syscw of /proc/PID/io: read, write and their vector forms; not
// sendmsg/recvmsg, so a server's media sockets are not in them but its
// signaling sockets, which use write, are).
func ioCalls(pid int) (reads, writes uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/io: %q: %w", pid, line, err)
		}
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes, nil
}

// serverWrites sums the write system calls of the server's processes.
func serverWrites(pids []int) (uint64, error) {
	var sum uint64
	for _, pid := range pids {
		_, w, err := ioCalls(pid)
		if err != nil {
			return 0, err
		}
		sum += w
	}
	return sum, nil
}

// parsePIDs reads -pid: comma-separated process ids, "" or "0" for none.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" || f == "0" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid < 0 {
			return nil, fmt.Errorf("-pid: bad process id %q", f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
