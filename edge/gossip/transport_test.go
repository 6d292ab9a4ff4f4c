package gossip

import (
	"io"
	"log"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestCountingTransport checks every counted path exactly: packets written
// and read, and both directions of a dialled and an accepted stream.
func TestCountingTransport(t *testing.T) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := newCountingTransport(nt)
	defer func() { _ = tr.Shutdown() }()
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil {
		t.Fatal(err)
	}
	self := memberlist.Address{Addr: (&memberlist.Node{Addr: ip, Port: uint16(port)}).Address(), Name: "self"}

	expect := func(what string, sent, recv uint64) {
		t.Helper()
		if s, r := tr.traffic(); s != sent || r != recv {
			t.Fatalf("%s: traffic sent %d received %d, want %d and %d", what, s, r, sent, recv)
		}
	}

	// Packets, both write methods, to ourselves.
	if _, err := tr.WriteTo(make([]byte, 100), self.Addr); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.WriteToAddress(make([]byte, 50), self); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{100, 50} {
		select {
		case p := <-tr.PacketCh():
			if len(p.Buf) != n {
				t.Fatalf("packet of %d bytes, want %d", len(p.Buf), n)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no packet")
		}
	}
	expect("packets", 150, 150)

	// Streams, both dial methods, written both ways.
	for i, dial := range []func() (io.ReadWriteCloser, error){
		func() (io.ReadWriteCloser, error) { return tr.DialTimeout(self.Addr, time.Second) },
		func() (io.ReadWriteCloser, error) { return tr.DialAddressTimeout(self, time.Second) },
	} {
		out, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		var in io.ReadWriteCloser
		select {
		case in = <-tr.StreamCh():
		case <-time.After(5 * time.Second):
			t.Fatal("no stream")
		}
		if _, err := out.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(in, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Write(make([]byte, 300)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, make([]byte, 300)); err != nil {
			t.Fatal(err)
		}
		_ = out.Close()
		_ = in.Close()
		n := uint64(i + 1)
		expect("streams", 150+n*1300, 150+n*1300)
	}

	if err := tr.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Shutdown(); err != nil { // idempotent
		t.Fatal(err)
	}
}
