package sfu

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/pion/logging"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// failingNet is the real network, except that binding refuses one address
// (as the kernel does for an interface that vanished between listing and
// binding).
type failingNet struct {
	*stdnet.Net
	refuse func(netip.Addr) bool
}

func (n *failingNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	if a, _ := netip.AddrFromSlice(laddr.IP); n.refuse(a.Unmap()) {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: laddr, Err: syscall.ENODEV}
	}
	return n.Net.ListenUDP(network, laddr)
}

// TestMediaSocketsSkipAnAddressThatCannotBeBound: an edge starts with media
// sockets on every other local address when one cannot be bound, and fails
// only when none can.
func TestMediaSocketsSkipAnAddressThatCannotBeBound(t *testing.T) {
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	log := logging.NewDefaultLoggerFactory().NewLogger("test")
	loop := netip.MustParseAddr("127.0.0.1")

	m, err := listenEveryAddress(cfg, &failingNet{Net: std, refuse: func(a netip.Addr) bool { return a == loop }}, log)
	if err != nil {
		t.Fatalf("one address refused: %v", err)
	}
	addrs := m.GetListenAddresses()
	_ = m.Close()
	if len(addrs) == 0 {
		t.Fatal("no media socket left")
	}
	for _, a := range addrs {
		if ap := a.(*net.UDPAddr).AddrPort(); ap.Addr().Unmap() == loop {
			t.Fatalf("listening on the refused address %v", a)
		}
	}

	// Every address refused: an error naming the last one, not an edge
	// without media sockets.
	_, err = listenEveryAddress(cfg, &failingNet{Net: std, refuse: func(netip.Addr) bool { return true }}, log)
	var oe *net.OpError
	if !errors.As(err, &oe) || !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("every address refused: got %v, want the bind error", err)
	}
}
