package sfu

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Batched sends on the edge's media sockets. A published packet fanned out
// to N subscribers is N SRTP packets to N addresses; sent one by one that
// is N sendto calls. While a fan-out runs (sendBatcher.begin ... end),
// every packet written to an edge socket is copied into a pending batch
// instead, and the batch leaves in one sendmmsg (golang.org/x/net
// WriteBatch) when the fan-out ends or the batch is full. Packets written
// while no fan-out runs (ICE, DTLS, RTCP, retransmissions) go out at once,
// unless a fan-out is running, in which case they wait for its end (at
// most one fan-out: about a millisecond at 250 subscribers).
//
// SRTP stays per subscriber and happens before the socket (the edge's own,
// srtpdirect.go, or pion's), so a batch holds finished datagrams.

// maxBatch is the most datagrams per sendmmsg (the kernel's UIO_MAXIOV is
// 1024; 64 keeps the first packet's wait short).
const maxBatch = 64

// maxDatagram bounds what can be queued; larger writes go out directly.
const maxDatagram = 1500

// sendBatcher is shared by an edge's media sockets: begin/end bracket a
// fan-out, and end flushes every socket.
type sendBatcher struct {
	open  atomic.Int32
	mu    sync.Mutex
	conns []*batchConn

	syscalls atomic.Uint64 // sendmmsg and sendto calls made for media sockets
	packets  atomic.Uint64 // datagrams they sent
	errors   atomic.Uint64 // datagrams the kernel refused
	direct   atomic.Uint64 // RTP packets encrypted by the edge (srtpdirect.go)
}

func (b *sendBatcher) begin() {
	if b != nil {
		b.open.Add(1)
	}
}

func (b *sendBatcher) end() {
	if b == nil {
		return
	}
	b.open.Add(-1)
	b.mu.Lock()
	conns := b.conns
	b.mu.Unlock()
	for _, c := range conns {
		c.flush()
	}
}

// mediaNet is the transport.Net the edge's UDP mux listens through: its
// sockets are batchConns.
type mediaNet struct {
	*stdnet.Net
	b *sendBatcher
}

func newMediaNet(b *sendBatcher) (*mediaNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &mediaNet{Net: n, b: b}, nil
}

func (n *mediaNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return c, nil
	}
	return newBatchConn(uc, n.b), nil
}

// batchConn is one media socket. It embeds the *net.UDPConn for everything
// else pion asks of a socket.
type batchConn struct {
	*net.UDPConn
	b     *sendBatcher
	batch func([]ipv4.Message, int) (int, error) // WriteBatch of the right family

	mu      sync.Mutex
	pending *sendBuf
	spare   []*sendBuf
}

// sendBuf is one batch: datagram copies and their messages, reused.
//
// The datagram slots are allocated the first time a batch fills that far:
// a socket that only ever queues a STUN check or two during a fan-out (an
// address no subscriber's media uses) keeps a few kB, not the 96 kB a full
// batch needs.
type sendBuf struct {
	n     int
	msgs  [maxBatch]ipv4.Message
	iov   [maxBatch][1][]byte
	data  [maxBatch]*[maxDatagram]byte
	addrs [maxBatch]net.UDPAddr
	ips   [maxBatch][16]byte
}

func newBatchConn(c *net.UDPConn, b *sendBatcher) *batchConn {
	bc := &batchConn{UDPConn: c, b: b}
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		bc.batch = ipv6.NewPacketConn(c).WriteBatch
	} else {
		bc.batch = ipv4.NewPacketConn(c).WriteBatch
	}
	b.mu.Lock()
	b.conns = append(b.conns, bc)
	b.mu.Unlock()
	return bc
}

// Close also forgets the socket in the batcher.
func (c *batchConn) Close() error {
	c.b.mu.Lock()
	for i, x := range c.b.conns {
		if x == c {
			c.b.conns = append(c.b.conns[:i:i], c.b.conns[i+1:]...)
			break
		}
	}
	c.b.mu.Unlock()
	return c.UDPConn.Close()
}

// ReadFromAddrPort and WriteToAddrPort make the socket an
// ice.AddrPortReaderWriter, which pion's UDP mux prefers (no net.Addr).
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if c.queue(b, addr) {
		return len(b), nil
	}
	c.b.syscalls.Add(1)
	c.b.packets.Add(1)
	return c.UDPConn.WriteToUDPAddrPort(b, addr)
}

func (c *batchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(b, ua.AddrPort())
	}
	return c.UDPConn.WriteTo(b, addr)
}

func (c *batchConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	return c.WriteToAddrPort(b, addr.AddrPort())
}

func (c *batchConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToAddrPort(b, addr)
}

// queue copies b into the pending batch if a fan-out is running; it sends
// the batch when full. It reports false when b must be sent now.
func (c *batchConn) queue(b []byte, addr netip.AddrPort) bool {
	if len(b) > maxDatagram {
		return false
	}
	c.mu.Lock()
	// Read under c.mu: end() lowers open before it takes c.mu to flush,
	// so whatever is queued here is flushed by that end() or a later one.
	if c.b.open.Load() == 0 {
		c.mu.Unlock()
		return false
	}
	p := c.pending
	if p == nil {
		p = c.takeSpare()
		c.pending = p
	}
	i := p.n
	p.n++
	if p.data[i] == nil {
		p.data[i] = new([maxDatagram]byte)
	}
	p.iov[i][0] = p.data[i][:copy(p.data[i][:], b)]
	ip := addr.Addr()
	if ip.Is4() {
		a4 := ip.As4()
		p.addrs[i].IP = append(p.ips[i][:0], a4[:]...)
	} else {
		a16 := ip.As16()
		p.addrs[i].IP = append(p.ips[i][:0], a16[:]...)
	}
	p.addrs[i].Port = int(addr.Port())
	var full *sendBuf
	if p.n == maxBatch {
		full, c.pending = p, nil
	}
	c.mu.Unlock()
	if full != nil {
		c.send(full)
	}
	return true
}

// takeSpare returns a reusable batch (c.mu held).
func (c *batchConn) takeSpare() *sendBuf {
	if n := len(c.spare); n > 0 {
		p := c.spare[n-1]
		c.spare = c.spare[:n-1]
		return p
	}
	p := &sendBuf{}
	for i := range p.msgs {
		p.msgs[i].Buffers = p.iov[i][:]
		p.msgs[i].Addr = &p.addrs[i]
	}
	return p
}

// flush sends the pending batch, if any.
func (c *batchConn) flush() {
	c.mu.Lock()
	p := c.pending
	c.pending = nil
	c.mu.Unlock()
	if p != nil {
		c.send(p)
	}
}

// send hands a batch to the kernel and returns it to the spares. A
// datagram the kernel refuses is skipped (and counted), like a failed
// sendto: UDP media has no retry here.
func (c *batchConn) send(p *sendBuf) {
	msgs := p.msgs[:p.n]
	for len(msgs) > 0 {
		n, err := c.batch(msgs, 0)
		c.b.syscalls.Add(1)
		if n > 0 {
			c.b.packets.Add(uint64(n))
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			n = max(n, 0) + 1 // the one that failed
			c.b.errors.Add(1)
		}
		msgs = msgs[min(n, len(msgs)):]
	}
	p.n = 0
	c.mu.Lock()
	c.spare = append(c.spare, p)
	c.mu.Unlock()
}
