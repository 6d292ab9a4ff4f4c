package porttest

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsStayOutOfTheKernelsWay: every port handed out is below the
// kernel's ephemeral range (so no ":0" listener anywhere can take it
// before its process binds it), free for TCP and UDP when handed out, and
// handed out once; and ":0" listeners held open meanwhile never got one.
func TestPortsStayOutOfTheKernelsWay(t *testing.T) {
	low := ephemeralLow()
	handed := map[int]bool{}
	for range 2000 {
		p := Port(t)
		if p < lowest || p >= low {
			t.Fatalf("port %d outside %d-%d: the kernel may hand it to a :0 listener", p, lowest, low-1)
		}
		if handed[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		handed[p] = true
	}
	for range 300 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if p := ln.Addr().(*net.TCPAddr).Port; handed[p] {
			t.Fatalf("a :0 listener got handed-out port %d", p)
		}
	}
}

// TestPortSkipsBusyPorts: a port another socket holds — TCP on loopback
// only, or UDP only — is never handed out; when every port is held, the
// answer is an error, not a busy port.
func TestPortSkipsBusyPorts(t *testing.T) {
	const n = 16
	var base int
	for base = Port(t); ; base = Port(t) { // a run of n free ports
		if base+n <= ephemeralLow() && allFree(base, n) {
			break
		}
	}
	hold := func(p int) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if p%2 == 0 {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
	}
	left := base + n/2 + 1 // held last, to see pick fail
	for p := base; p < base+n; p++ {
		if p != left {
			hold(p)
		}
	}
	mu.Lock()
	for p := base; p < base+n; p++ {
		delete(given, p) // as if this process had never seen them
	}
	mu.Unlock()
	if got, err := pick(base, base+n); err != nil || got != left {
		t.Fatalf("pick = %d, %v; want %d, the one port not held", got, err, left)
	}
	mu.Lock()
	delete(given, left)
	mu.Unlock()
	hold(left)
	if got, err := pick(base, base+n); err == nil {
		t.Fatalf("pick = %d with every port held; want an error", got)
	}
}

func allFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		if !free(p) {
			return false
		}
	}
	return true
}
