package clustertest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Raft addresses must be known before the nodes start (every node's peer
// list names them all), so they are chosen free and bound a moment later.
// A port from the kernel's ephemeral range can be taken in that moment, or
// while a node is stopped for a restart, by any other test process's ":0"
// listener or outgoing connection (CI once failed "start node1: bind:
// address already in use"). Ports below that range are never handed out
// by the kernel, so only another test choosing the same random port could
// collide.
var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

func reserveAddr() (string, error) {
	low := ephemeralLow()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 10000 + rand.IntN(low-10000)
		if given[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		ln.Close()
		given[port] = true
		return ln.Addr().String(), nil
	}
	return "", fmt.Errorf("clustertest: no free port in 10000-%d", low)
}

// ephemeralLow is the lowest port the kernel hands out for ":0" (Linux's
// ip_local_port_range; 32768 where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}
