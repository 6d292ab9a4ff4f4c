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
