package porttest

import (
	"net"
	"os"
	"path/filepath"
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
// only, or UDP only — or that another process has claimed is never handed
// out; when every port is taken, the answer is an error, not a busy port.
func TestPortSkipsBusyPorts(t *testing.T) {
	const n = 24
	var base int
	for base = Port(t); ; base = Port(t) { // a run of n free ports
		if base+n <= ephemeralLow() && allFree(base, n) {
			break
		}
	}
	for p := base; p < base+n; p++ {
		forget(p) // as if this process had never handed them out
	}
	dir := filepath.Join(os.TempDir(), "meridian-porttest")
	take := func(p int) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		switch p % 3 {
		case 0:
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		case 1:
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
		default:
			// Another process's claim: a lock on its own open file, which
			// conflicts with this process's as another process's would.
			f, err := claim(dir, p)
			if err != nil || f == nil {
				t.Fatalf("claim %d: %v", p, err)
			}
			t.Cleanup(func() { f.Close() })
		}
	}
	left := base + n/2 + 1 // taken last, to see pick fail
	for p := base; p < base+n; p++ {
		if p != left {
			take(p)
		}
	}
	if got, err := pick(base, base+n); err != nil || got != left {
		t.Fatalf("pick = %d, %v; want %d, the one port not taken", got, err, left)
	}
	forget(left)
	take(left)
	if got, err := pick(base, base+n); err == nil {
		t.Fatalf("pick = %d with every port taken; want an error", got)
	}
}

// forget drops a port this process handed out, with its claim.
func forget(p int) {
	mu.Lock()
	defer mu.Unlock()
	if f := given[p]; f != nil {
		f.Close()
	}
	delete(given, p)
}

func allFree(base, n int) bool {
	for p := base; p < base+n; p++ {
		if !free(p) {
			return false
		}
	}
	return true
}

// TestRunIsConsecutiveAndExclusive: a run is n consecutive ports, none of
// them handed out before or after (by Port or another Run).
func TestRunIsConsecutiveAndExclusive(t *testing.T) {
	handed := map[int]bool{}
	for range 50 {
		p := Port(t)
		handed[p] = true
	}
	for range 50 {
		base := Run(t, 17)
		for p := base; p < base+17; p++ {
			if handed[p] {
				t.Fatalf("run %d-%d includes port %d, handed out before", base, base+16, p)
			}
			handed[p] = true
			mu.Lock()
			_, ok := given[p]
			mu.Unlock()
			if !ok {
				t.Fatalf("port %d of run %d-%d is not held", p, base, base+16)
			}
		}
	}
	for range 200 {
		if p := Port(t); handed[p] {
			t.Fatalf("port %d handed out again after a run", p)
		}
	}
}
