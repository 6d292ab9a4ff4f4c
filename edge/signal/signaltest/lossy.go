package signaltest

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// LossyNet is a transport.Net whose UDP sockets drop a fraction of the RTP
// media packets they send (never STUN, DTLS or RTCP, so connection setup
// stays deterministic). Hand it to a Client through Config.Net to put loss
// on the client → edge leg.
type LossyNet struct {
	*stdnet.Net
	loss    float64
	mu      sync.Mutex
	rng     *rand.Rand
	sent    atomic.Int64
	dropped atomic.Int64
}

// NewLossyNet drops each outgoing RTP packet with probability loss, from a
// seeded generator (reproducible).
func NewLossyNet(loss float64, seed uint64) (*LossyNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &LossyNet{Net: n, loss: loss, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, nil
}

// Sent and Dropped count outgoing RTP packets.
func (l *LossyNet) Sent() int64    { return l.sent.Load() }
func (l *LossyNet) Dropped() int64 { return l.dropped.Load() }

func isRTP(b []byte) bool {
	// RFC 7983 demultiplexing: 128..191 is RTP/RTCP; RTCP packet types are 192..223.
	return len(b) >= 12 && b[0] >= 128 && b[0] <= 191 && !(b[1] >= 192 && b[1] <= 223)
}

func (l *LossyNet) drop(b []byte) bool {
	if !isRTP(b) {
		return false
	}
	l.sent.Add(1)
	l.mu.Lock()
	d := l.rng.Float64() < l.loss
	l.mu.Unlock()
	if d {
		l.dropped.Add(1)
	}
	return d
}

// ListenUDP wraps the socket.
func (l *LossyNet) ListenUDP(network string, addr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := l.Net.ListenUDP(network, addr)
	if err != nil {
		return nil, err
	}
	return &lossyConn{UDPConn: c, n: l}, nil
}

// ListenPacket wraps the socket.
func (l *LossyNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := l.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &lossyPacketConn{PacketConn: c, n: l}, nil
}

type lossyConn struct {
	transport.UDPConn
	n *LossyNet
}

func (c *lossyConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.n.drop(b) {
		return len(b), nil
	}
	return c.UDPConn.WriteTo(b, a)
}

func (c *lossyConn) WriteToUDP(b []byte, a *net.UDPAddr) (int, error) {
	if c.n.drop(b) {
		return len(b), nil
	}
	return c.UDPConn.WriteToUDP(b, a)
}

func (c *lossyConn) Write(b []byte) (int, error) {
	if c.n.drop(b) {
		return len(b), nil
	}
	return c.UDPConn.Write(b)
}

func (c *lossyConn) WriteMsgUDP(b, oob []byte, a *net.UDPAddr) (int, int, error) {
	if c.n.drop(b) {
		return len(b), 0, nil
	}
	return c.UDPConn.WriteMsgUDP(b, oob, a)
}

type lossyPacketConn struct {
	net.PacketConn
	n *LossyNet
}

func (c *lossyPacketConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.n.drop(b) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, a)
}
