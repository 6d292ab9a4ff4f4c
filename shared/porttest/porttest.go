// Package porttest hands out ports for the processes a test starts.
//
// Such a process must be told its ports before it runs (a Raft peer list
// names every node's address, a meeting URL is built from the API's), so
// they are found free and bound a moment later by the child, and they stay
// the child's across a restart. Two things can take such a port in the
// meantime:
//
//   - any ":0" listener or outgoing connection of any process, when the
//     port is in the kernel's ephemeral range. So ports come from below
//     that range, which the kernel never hands out.
//   - another test binary handing out the same port (`go test ./...` runs
//     them side by side; a node stopped for a restart leaves its port free
//     for seconds). So a port is handed out only by the process that holds
//     an exclusive lock on a file named after it, and it keeps the lock
//     until it exits (the kernel drops it then, however the process ends).
//
// Each port is also checked free for TCP and UDP on every address when it
// is handed out. A test's own listeners can keep using ":0".
package porttest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lowest is the first port handed out; ports below it are left to fixed
// services.
const lowest = 10000

var (
	mu    sync.Mutex
	given = map[int]*os.File{} // the ports handed out, with their held locks
)

// Port returns a port, free for TCP and UDP on every address, that no
// other process using this package holds, this process has not handed out
// before, and the kernel does not hand out for ":0".
func Port(tb testing.TB) int {
	tb.Helper()
	port, err := pick(lowest, ephemeralLow())
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// Run returns the first of n consecutive ports handed out together, each
// as Port would hand it out (for a process given a port range).
func Run(tb testing.TB, n int) int {
	tb.Helper()
	base, err := pickRun(lowest, ephemeralLow(), n)
	if err != nil {
		tb.Fatal(err)
	}
	return base
}

// Addr returns "127.0.0.1:<Port>".
func Addr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(tb)))
}

// pick hands out a port in [low, high).
func pick(low, high int) (int, error) { return pickRun(low, high, 1) }

// pickRun hands out n consecutive ports in [low, high) and returns the
// first.
func pickRun(low, high, n int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	dir := filepath.Join(os.TempDir(), "meridian-porttest")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, fmt.Errorf("porttest: %w", err)
	}
	for range 1000 {
		base := low + rand.IntN(high-low-n+1)
		locks, err := claimRun(dir, base, n)
		if err != nil {
			return 0, err
		}
		if locks == nil {
			continue
		}
		for i, lock := range locks {
			given[base+i] = lock
		}
		return base, nil
	}
	return 0, fmt.Errorf("porttest: no %d free consecutive ports in %d-%d", n, low, high-1)
}

// claimRun claims ports base to base+n-1 if none is handed out already,
// claimed by another process or bound: their locks, or nil (nothing held).
func claimRun(dir string, base, n int) ([]*os.File, error) {
	var locks []*os.File
	release := func() {
		for _, l := range locks {
			l.Close()
		}
	}
	for port := base; port < base+n; port++ {
		if _, ok := given[port]; ok {
			release()
			return nil, nil
		}
		lock, err := claim(dir, port)
		if err != nil {
			release()
			return nil, err
		}
		if lock == nil { // another process has it
			release()
			return nil, nil
		}
		locks = append(locks, lock)
		if !free(port) {
			release()
			return nil, nil
		}
	}
	return locks, nil
}

// claim takes the lock on port's file in dir without waiting: the open
// file holding it, or nil when another process holds it.
func claim(dir string, port int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("porttest: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("porttest: lock port %d: %w", port, err)
	}
	return f, nil
}

// free reports whether port can be bound for TCP and UDP on all addresses
// (which fails too when some address has it).
func free(port int) bool {
	addr := net.JoinHostPort("", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeralLow is the lowest port the kernel hands out for ":0" (Linux's
// ip_local_port_range). Where it cannot be read, or leaves too little room
// below it, 32768 (Linux's default start).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n >= lowest+1000 {
				return n
			}
		}
	}
	return 32768
}
