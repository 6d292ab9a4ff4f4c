package sfu

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/testneed"
)

// TestBatchConnSendsEveryDatagramInOrder: datagrams queued during a
// fan-out reach each destination whole and in order, in batches of at
// most maxBatch per system call; a destination the kernel refuses costs
// only its own datagram; outside a fan-out nothing is queued.
func TestBatchConnSendsEveryDatagramInOrder(t *testing.T) {
	onEachLoopback(t, func(t *testing.T, bc *batchConn, b *sendBatcher, listen func() *net.UDPConn) {
		rx := []*net.UDPConn{listen(), listen()}
		dst := []netip.AddrPort{rx[0].LocalAddr().(*net.UDPAddr).AddrPort(), rx[1].LocalAddr().(*net.UDPAddr).AddrPort()}
		refused := netip.AddrPortFrom(dst[0].Addr(), 0) // port 0: EINVAL for this one datagram

		const total = 2*maxBatch + 3
		b.begin()
		for i := 0; i < total; i++ {
			to := dst[i%2]
			if i == maxBatch+5 {
				to = refused
			}
			if _, err := bc.WriteToAddrPort(datagram(i), to); err != nil {
				t.Fatal(err)
			}
		}
		// Two full batches: one call for the first; the second stops at
		// the refused datagram, which fails a call of its own, and the
		// rest follow in a third.
		if calls := b.syscalls.Load(); calls != 4 {
			t.Fatalf("%d system calls before the fan-out ended, want 4", calls)
		}
		b.end()
		if calls, sent, errs := b.syscalls.Load(), b.packets.Load(), b.errors.Load(); calls != 5 || sent != total-1 || errs != 1 {
			t.Fatalf("%d calls, %d datagrams sent, %d refused; want 5 calls, %d sent, 1 refused", calls, sent, errs, total-1)
		}
		// Outside a fan-out a write goes out at once.
		if _, err := bc.WriteToAddrPort(datagram(total), dst[total%2]); err != nil {
			t.Fatal(err)
		}
		for r, c := range rx {
			buf := make([]byte, 2*maxDatagram)
			for i := r; i <= total; i += 2 {
				if i == maxBatch+5 {
					continue
				}
				if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
					t.Fatal(err)
				}
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("receiver %d waiting for datagram %d: %v", r, i, err)
				}
				if !bytes.Equal(buf[:n], datagram(i)) {
					t.Fatalf("receiver %d: got %q, want datagram %d", r, buf[:min(n, 16)], i)
				}
				if want := bc.LocalAddr().(*net.UDPAddr).AddrPort(); from.Port() != want.Port() {
					t.Fatalf("datagram %d came from %v, want the batch socket %v", i, from, want)
				}
			}
		}
	})
}

// datagram i: its number and a body whose length varies with it.
func datagram(i int) []byte {
	return append([]byte(fmt.Sprintf("%04d:", i)), bytes.Repeat([]byte{byte(i)}, 100+i*7%1200)...)
}

// TestBatchConnReads: the raw read returns each datagram whole with its
// sender's address, honours read deadlines as a timeout, and fails once
// the socket is closed (what pion's UDP mux relies on to stop).
func TestBatchConnReads(t *testing.T) {
	onEachLoopback(t, func(t *testing.T, bc *batchConn, b *sendBatcher, listen func() *net.UDPConn) {
		tx := listen()
		for i := 0; i < 20; i++ {
			if _, err := tx.WriteToUDPAddrPort(datagram(i), bc.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 2*maxDatagram)
		want := tx.LocalAddr().(*net.UDPAddr).AddrPort()
		for i := 0; i < 20; i++ {
			if err := bc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			n, from, err := bc.ReadFromAddrPort(buf)
			if err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			if !bytes.Equal(buf[:n], datagram(i)) {
				t.Fatalf("got %q, want datagram %d", buf[:min(n, 16)], i)
			}
			if from.Addr().Unmap() != want.Addr().Unmap() || from.Port() != want.Port() {
				t.Fatalf("datagram %d from %v, want %v", i, from, want)
			}
		}
		// A read allocates nothing (it is on every received packet's path).
		to := bc.LocalAddr().(*net.UDPAddr).AddrPort()
		msg := datagram(1)
		if allocs := testing.AllocsPerRun(100, func() {
			if _, err := tx.WriteToUDPAddrPort(msg, to); err != nil {
				t.Fatal(err)
			}
			if _, _, err := bc.ReadFromAddrPort(buf); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Fatalf("%v allocations per datagram sent and read", allocs)
		}
		if err := bc.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := bc.ReadFromAddrPort(buf); !os.IsTimeout(err) {
			t.Fatalf("read past its deadline: %v, want a timeout", err)
		}
		if err := bc.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, _, err := bc.ReadFromAddrPort(buf)
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		bc.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a read blocked on the socket did not return when it was closed")
		}
	})
}

// onEachLoopback runs test as a subtest per address family, with a
// batchConn on that family's loopback address and a way to open more
// sockets there. IPv6 loopback is skipped where the machine has none,
// unless MERIDIAN_REQUIRE_IPV6=1 (CI) makes that a failure.
func onEachLoopback(t *testing.T, test func(t *testing.T, bc *batchConn, b *sendBatcher, listen func() *net.UDPConn)) {
	for _, f := range []struct{ name, network, ip string }{{"ipv4", "udp4", "127.0.0.1"}, {"ipv6", "udp6", "::1"}} {
		t.Run(f.name, func(t *testing.T) {
			listen := func() *net.UDPConn {
				t.Helper()
				c, err := net.ListenUDP(f.network, &net.UDPAddr{IP: net.ParseIP(f.ip)})
				switch {
				case err != nil && f.name == "ipv6":
					testneed.Missing(t, "IPV6", fmt.Sprintf("no IPv6 loopback (%v)", err))
				case err != nil:
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				if err := c.SetReadBuffer(1 << 20); err != nil {
					t.Fatal(err)
				}
				return c
			}
			var b sendBatcher
			bc, err := newBatchConn(listen(), &b)
			if err != nil {
				t.Fatal(err)
			}
			test(t, bc, &b, listen)
		})
	}
}
