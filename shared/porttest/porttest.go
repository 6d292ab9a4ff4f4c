// Package porttest hands out ports for the processes a test starts.
//
// Such a process must be told its ports before it runs (a Raft peer list
// names every node's address, a meeting URL is built from the API's), so
// they are found free and bound a moment later by the child. A port from
// the kernel's ephemeral range can be taken in that moment, or while a
// node is stopped for a restart, by any ":0" listener or outgoing
// connection of any process on the machine: `go test ./...` runs test
// binaries side by side, and CI failed more than once on "bind: address
// already in use". The kernel never hands out a port below that range, so
// this package picks ports there, at random (two test binaries pick the
// same one only by chance, and then the bind check below turns one of them
// away), each at most once per process, free for both TCP and UDP.
// A test's own listeners can keep using ":0": they can never get one of
// these ports.
package porttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lowest is the first port handed out; ports below it are left to fixed
// services.
const lowest = 10000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Port returns a port, free for TCP and UDP on every address, that this
// process has not handed out before and the kernel does not hand out for
// ":0".
func Port(tb testing.TB) int {
	tb.Helper()
	port, err := pick(lowest, ephemeralLow())
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// Addr returns "127.0.0.1:<Port>".
func Addr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(tb)))
}

// pick hands out a port in [low, high).
func pick(low, high int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		port := low + rand.IntN(high-low)
		if given[port] || !free(port) {
			continue
		}
		given[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("porttest: no free port in %d-%d", low, high-1)
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
