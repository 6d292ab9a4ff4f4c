package procs

import (
	"net"
	"testing"
)

// TestListenAvoidsHandedOutPorts: a port FreeTCPPort handed out stays
// closed until its process binds it, so the kernel may offer it to the
// next ":0" listener; Listen must never return one of them.
func TestListenAvoidsHandedOutPorts(t *testing.T) {
	handed := map[int]bool{}
	for range 3000 {
		handed[FreeTCPPort(t, "127.0.0.1")] = true
	}
	var stolen []int
	for range 300 {
		ln := Listen(t, "127.0.0.1")
		port := ln.Addr().(*net.TCPAddr).Port
		if handed[port] {
			stolen = append(stolen, port)
		}
		handed[port] = true // and never twice
		defer ln.Close()
	}
	if len(stolen) > 0 {
		t.Fatalf("Listen returned %d ports already handed out: %v", len(stolen), stolen)
	}
}

// TestFreePortsAreBelowTheEphemeralRange: a handed-out port waits closed
// until its process starts; the kernel never offers a port below
// ip_local_port_range to ":0" listeners or outgoing connections.
func TestFreePortsAreBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 200 {
		for _, p := range []int{FreeTCPPort(t, "127.0.0.1"), FreeUDPPort(t, "127.0.0.1")} {
			if p < 10000 || p >= low {
				t.Fatalf("port %d handed out, want 10000 <= port < %d", p, low)
			}
		}
	}
}
