package sfu

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"golang.org/x/sys/unix"
)

// Batched sends on the edge's media sockets. A published packet fanned out
// to N subscribers is N SRTP packets to N addresses; sent one by one that
// is N sendto calls. While a fan-out runs (sendBatcher.begin ... end),
// every packet written to an edge socket is copied into a pending batch
// instead, and the batch leaves in one sendmmsg when the fan-out ends or
// the batch is full. Packets written while no fan-out runs (ICE, DTLS,
// RTCP, retransmissions) go out at once, unless a fan-out is running, in
// which case they wait for its end (at most one fan-out: about a
// millisecond at 250 subscribers).
//
// SRTP stays per subscriber and happens before the socket (the edge's own,
// srtpdirect.go, or pion's), so a batch holds finished datagrams.
//
// The sendmmsg is a raw system call: the Go scheduler is not told the
// thread entered the kernel. A batch takes a few hundred microseconds of
// kernel time on loopback, and a goroutine in an ordinary system call that
// long has its P taken away by the runtime's monitor, which then wakes
// another thread to run it; on an edge pinned to one core (one P) that
// thread only competes with the sending one, and the monitor, finding work
// every 20 µs, polls that often. Measured on a 2-vCPU AMD VM at 250
// subscribers: 14,500 context switches a second, against LiveKit's 200
// (docs/benchmarks.md, "Context switches"). The socket is non-blocking, so
// the call never waits; holding the P for it delays this P's other
// goroutines (and a stop-the-world) by at most one batch.

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
	bc, err := newBatchConn(uc, n.b)
	if err != nil {
		return c, nil // no raw access to the socket: it sends and reads as it is
	}
	return bc, nil
}

// batchConn is one media socket. It embeds the *net.UDPConn for everything
// else pion asks of a socket.
type batchConn struct {
	*net.UDPConn
	b   *sendBatcher
	raw syscall.RawConn
	v6  bool // an AF_INET6 socket: IPv4 destinations go as v4-mapped
	rd  rawReader

	mu      sync.Mutex
	pending *sendBuf
	spare   []*sendBuf
}

// sendBuf is one batch: datagram copies and the kernel's message headers
// for them, reused. The headers point into the same sendBuf (addresses,
// iovecs) and into its datagram slots.
//
// The datagram slots are allocated the first time a batch fills that far:
// a socket that only ever queues a STUN check or two during a fan-out (an
// address no subscriber's media uses) keeps a few kB, not the 96 kB a full
// batch needs.
type sendBuf struct {
	n     int
	hdrs  [maxBatch]unix.Mmsghdr
	iov   [maxBatch]unix.Iovec
	addrs [maxBatch]unix.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	data  [maxBatch]*[maxDatagram]byte

	// One sendmmsg's arguments and results, and the callback that makes
	// it, bound once: a closure per call would allocate.
	call struct {
		msgs  []unix.Mmsghdr
		sent  int
		errno syscall.Errno
	}
	write func(fd uintptr) bool
}

func newBatchConn(c *net.UDPConn, b *sendBatcher) (*batchConn, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	bc := &batchConn{UDPConn: c, b: b, raw: raw}
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		bc.v6 = true
	}
	bc.rd.read = bc.rd.recvfrom
	b.mu.Lock()
	b.conns = append(b.conns, bc)
	b.mu.Unlock()
	return bc, nil
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
//
// The read is a raw recvfrom, for the reason the sends are raw: an
// ordinary system call made after the edge was idle wakes the runtime's
// monitor and resets it to polling every 20 µs, and on a busy edge with
// one P the socket's reads did that hundreds of times a second.
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	if len(b) == 0 {
		return c.UDPConn.ReadFromUDPAddrPort(b)
	}
	r := &c.rd
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf, r.n, r.errno = b, 0, 0
	err := c.raw.Read(r.read)
	r.buf = nil
	switch {
	case err != nil:
		return 0, netip.AddrPort{}, err
	case r.errno != 0:
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: os.NewSyscallError("recvfrom", r.errno)}
	}
	return r.n, r.from, nil
}

// rawReader is a socket's read state, bound once so a read does not
// allocate; mu serialises readers (the socket's own read lock would too).
type rawReader struct {
	mu    sync.Mutex
	read  func(fd uintptr) bool
	buf   []byte
	n     int
	from  netip.AddrPort
	errno syscall.Errno
	sa    unix.RawSockaddrAny
}

// recvfrom is the raw read's callback: false (wait until readable) on
// EAGAIN.
func (r *rawReader) recvfrom(fd uintptr) bool {
	for {
		salen := uint32(unix.SizeofSockaddrAny)
		n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)), 0,
			uintptr(unsafe.Pointer(&r.sa)), uintptr(unsafe.Pointer(&salen)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			r.n, r.from = int(n), sockaddrAddrPort(&r.sa)
		default:
			r.errno = e
		}
		return true
	}
}

// sockaddrAddrPort reads an AF_INET or AF_INET6 address (IPv4 from a
// dual-stack socket arrives v4-mapped and is returned so).
func sockaddrAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), getPort(&a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), getPort(&a.Port))
	}
	return netip.AddrPort{}
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
	ip := addr.Addr()
	if !c.v6 {
		if ip = ip.Unmap(); !ip.Is4() {
			return false // an IPv6 destination on an IPv4 socket: let sendto say why
		}
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
	n := copy(p.data[i][:], b)
	p.iov[i].Base = &p.data[i][0]
	p.iov[i].SetLen(n)
	h := &p.hdrs[i].Hdr
	h.Name = (*byte)(unsafe.Pointer(&p.addrs[i]))
	if c.v6 {
		sa := &p.addrs[i]
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		putPort(&sa.Port, addr.Port())
		h.Namelen = unix.SizeofSockaddrInet6
	} else {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&p.addrs[i]))
		*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
		putPort(&sa.Port, addr.Port())
		h.Namelen = unix.SizeofSockaddrInet4
	}
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

// getPort reads a port in a sockaddr's network byte order.
func getPort(src *uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(src))[:])
}

// putPort stores a port in a sockaddr's network byte order.
func putPort(dst *uint16, port uint16) {
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(dst))[:], port)
}

// takeSpare returns a reusable batch (c.mu held).
func (c *batchConn) takeSpare() *sendBuf {
	if n := len(c.spare); n > 0 {
		p := c.spare[n-1]
		c.spare = c.spare[:n-1]
		return p
	}
	p := &sendBuf{}
	p.write = p.sendmmsg
	for i := range p.hdrs {
		p.hdrs[i].Hdr.Iov = &p.iov[i]
		p.hdrs[i].Hdr.SetIovlen(1)
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
	msgs := p.hdrs[:p.n]
	for len(msgs) > 0 {
		n, err := c.sendmmsg(p, msgs)
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
	runtime.KeepAlive(p) // the headers point into p
	p.n = 0
	c.mu.Lock()
	c.spare = append(c.spare, p)
	c.mu.Unlock()
}

// sendmmsg sends msgs (headers of p) in one raw system call (see the
// file's comment) and returns how many the kernel took; a full socket
// buffer waits in the network poller, as any write on the socket does.
func (c *batchConn) sendmmsg(p *sendBuf, msgs []unix.Mmsghdr) (int, error) {
	p.call.msgs, p.call.sent, p.call.errno = msgs, 0, 0
	err := c.raw.Write(p.write)
	p.call.msgs = nil
	switch {
	case err != nil:
		return 0, err
	case p.call.errno != 0:
		return 0, p.call.errno
	}
	return p.call.sent, nil
}

// sendmmsg is the raw write's callback: false (wait until writable) on
// EAGAIN.
func (p *sendBuf) sendmmsg(fd uintptr) bool {
	msgs := p.call.msgs
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		p.call.sent, p.call.errno = int(r), e
		return true
	}
}
