package gossip

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// countingTransport wraps memberlist's NetTransport and counts every byte of
// gossip this node sends and receives: packets written with WriteTo and
// WriteToAddress, packets read from PacketCh, and both directions of every
// stream connection (dialled or accepted).
//
// PacketCh and StreamCh are proxied by two goroutines owned by the transport;
// Shutdown (called by memberlist.Shutdown, or by New when memberlist.Create
// fails) stops and waits for them.
type countingTransport struct {
	inner *memberlist.NetTransport

	sent, recv atomic.Uint64

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn

	stopping  chan struct{} // closed when Shutdown starts: proxies drop instead of forwarding
	innerDone chan struct{} // closed once inner.Shutdown returned: proxies exit
	wg        sync.WaitGroup
	once      sync.Once
	err       error
}

var _ memberlist.NodeAwareTransport = (*countingTransport)(nil)

func newCountingTransport(inner *memberlist.NetTransport) *countingTransport {
	t := &countingTransport{
		inner:     inner,
		packetCh:  make(chan *memberlist.Packet),
		streamCh:  make(chan net.Conn),
		stopping:  make(chan struct{}),
		innerDone: make(chan struct{}),
	}
	t.wg.Add(2)
	go t.proxyPackets()
	go t.proxyStreams()
	return t
}

// proxyPackets forwards inner packets to memberlist. Once Shutdown started it
// drops them instead (memberlist may no longer read, e.g. when Create failed)
// but keeps draining until the inner transport is down, because the inner
// listener blocks on its unbuffered channel.
func (t *countingTransport) proxyPackets() {
	defer t.wg.Done()
	in := t.inner.PacketCh()
	for {
		select {
		case p := <-in:
			t.recv.Add(uint64(len(p.Buf)))
			select {
			case t.packetCh <- p:
			case <-t.stopping:
			}
		case <-t.innerDone:
			return
		}
	}
}

func (t *countingTransport) proxyStreams() {
	defer t.wg.Done()
	in := t.inner.StreamCh()
	for {
		select {
		case c := <-in:
			select {
			case t.streamCh <- &countingConn{Conn: c, t: t}:
			case <-t.stopping:
				_ = c.Close()
			}
		case <-t.innerDone:
			return
		}
	}
}

func (t *countingTransport) traffic() (sent, recv uint64) {
	return t.sent.Load(), t.recv.Load()
}

func (t *countingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ts, err := t.inner.WriteTo(b, addr)
	if err == nil {
		t.sent.Add(uint64(len(b)))
	}
	return ts, err
}

func (t *countingTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	ts, err := t.inner.WriteToAddress(b, addr)
	if err == nil {
		t.sent.Add(uint64(len(b)))
	}
	return ts, err
}

func (t *countingTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, t: t}, nil
}

func (t *countingTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	c, err := t.inner.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, t: t}, nil
}

func (t *countingTransport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown closes the listeners (waiting for the inner transport's
// goroutines, which the proxies keep draining meanwhile), then stops and
// waits for the proxies. It is idempotent. memberlist calls it before it
// stops reading PacketCh and StreamCh.
func (t *countingTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.stopping)
		t.err = t.inner.Shutdown()
		close(t.innerDone)
		t.wg.Wait()
	})
	return t.err
}

// countingConn counts the bytes of one stream connection.
type countingConn struct {
	net.Conn
	t *countingTransport
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.t.recv.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.t.sent.Add(uint64(n))
	return n, err
}
