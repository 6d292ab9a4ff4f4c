package multiregion

import (
	"encoding/binary"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// probeNet is a participant's network stack (signaltest Config.Net) that
// measures one-way media latency end to end without touching the media:
// SRTP leaves RTP headers in clear, so it sees every audio packet's SSRC
// and payload type on the wire. Muting drops the participant's outgoing
// audio for a moment; the first audio packet sent afterwards is timed, and
// each receiver's probeNet times when some audio stream resumes after a
// silence. The difference is the latency from one client's socket to the
// other's, through the edges, the cascade and the WAN relay.
type probeNet struct {
	*stdnet.Net
	mute      atomic.Bool
	armed     atomic.Bool  // time the next audio packet sent
	resumedAt atomic.Int64 // unix ns of the first audio packet after a mute

	mu      sync.Mutex
	last    map[uint32]time.Time // audio SSRC -> last arrival
	resumes []resumeEvent
}

type resumeEvent struct {
	ssrc uint32
	at   time.Time
	gap  time.Duration
}

// opusPT is the payload type both signaltest and the SFU give Opus.
const opusPT = 111

func newProbeNet() *probeNet {
	n, err := stdnet.NewNet()
	if err != nil {
		panic(err)
	}
	return &probeNet{Net: n, last: map[uint32]time.Time{}}
}

// audioRTP reports whether b is an RTP (not RTCP) packet with the Opus
// payload type, and its SSRC.
func audioRTP(b []byte) (uint32, bool) {
	if len(b) < 12 || b[0] < 128 || b[0] > 191 || (b[1] >= 192 && b[1] <= 223) || b[1]&0x7f != opusPT {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[8:12]), true
}

// sent says whether to send b (false: muted).
func (p *probeNet) sent(b []byte) bool {
	if _, ok := audioRTP(b); !ok {
		return true
	}
	if p.mute.Load() {
		return false
	}
	if p.armed.CompareAndSwap(true, false) {
		p.resumedAt.Store(time.Now().UnixNano())
	}
	return true
}

func (p *probeNet) received(b []byte) {
	ssrc, ok := audioRTP(b)
	if !ok {
		return
	}
	now := time.Now()
	p.mu.Lock()
	if prev, seen := p.last[ssrc]; seen && now.Sub(prev) >= 250*time.Millisecond {
		p.resumes = append(p.resumes, resumeEvent{ssrc: ssrc, at: now, gap: now.Sub(prev)})
	}
	p.last[ssrc] = now
	p.mu.Unlock()
}

// resumedAfter is the first resumption, at or after t, of one of the
// given audio streams.
func (p *probeNet) resumedAfter(t time.Time, ssrcs []uint32) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.resumes {
		if !r.at.Before(t) && slices.Contains(ssrcs, r.ssrc) {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// muteFor silences the outgoing audio for d and returns when the first
// audio packet left afterwards.
func (p *probeNet) muteFor(d time.Duration) (time.Time, bool) {
	p.resumedAt.Store(0)
	p.mute.Store(true)
	time.Sleep(d)
	p.armed.Store(true)
	p.mute.Store(false)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if ns := p.resumedAt.Load(); ns != 0 {
			return time.Unix(0, ns), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, false
}

// receiver is a participant whose stream of the sender's audio is watched:
// its probeNet, and the SSRCs that stream arrives with (from its client).
type receiver struct {
	net   *probeNet
	ssrcs func() []uint32
}

// oneWayLatency mutes from's audio until each receiver has n samples (at
// most 2n rounds) and returns, per receiver, the median time from the
// first packet sent after the mute to the first packet of that stream at
// the receiver.
func oneWayLatency(from *probeNet, to map[string]receiver, n int) map[string]time.Duration {
	got := map[string][]time.Duration{}
	enough := func() bool {
		for name := range to {
			if len(got[name]) < n {
				return false
			}
		}
		return true
	}
	for round := 0; round < 2*n && !enough(); round++ {
		ssrcs := map[string][]uint32{}
		for name, rx := range to {
			ssrcs[name] = rx.ssrcs()
		}
		sent, ok := from.muteFor(400 * time.Millisecond)
		if !ok {
			continue
		}
		time.Sleep(300 * time.Millisecond)
		for name, rx := range to {
			if at, ok := rx.net.resumedAfter(sent, ssrcs[name]); ok && at.Sub(sent) < 250*time.Millisecond && len(got[name]) < n {
				got[name] = append(got[name], at.Sub(sent))
			}
		}
	}
	out := map[string]time.Duration{}
	for name, ds := range got {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		out[name] = ds[len(ds)/2]
	}
	return out
}

// ListenUDP wraps the socket.
func (p *probeNet) ListenUDP(network string, addr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := p.Net.ListenUDP(network, addr)
	if err != nil {
		return nil, err
	}
	return &probeConn{UDPConn: c, p: p}, nil
}

// ListenPacket wraps the socket.
func (p *probeNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := p.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &probePacketConn{PacketConn: c, p: p}, nil
}

type probeConn struct {
	transport.UDPConn
	p *probeNet
}

func (c *probeConn) Read(b []byte) (int, error) {
	n, err := c.UDPConn.Read(b)
	if err == nil {
		c.p.received(b[:n])
	}
	return n, err
}

func (c *probeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.UDPConn.ReadFrom(b)
	if err == nil {
		c.p.received(b[:n])
	}
	return n, a, err
}

func (c *probeConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, a, err := c.UDPConn.ReadFromUDP(b)
	if err == nil {
		c.p.received(b[:n])
	}
	return n, a, err
}

func (c *probeConn) ReadMsgUDP(b, oob []byte) (int, int, int, *net.UDPAddr, error) {
	n, oobn, flags, a, err := c.UDPConn.ReadMsgUDP(b, oob)
	if err == nil {
		c.p.received(b[:n])
	}
	return n, oobn, flags, a, err
}

func (c *probeConn) Write(b []byte) (int, error) {
	if !c.p.sent(b) {
		return len(b), nil
	}
	return c.UDPConn.Write(b)
}

func (c *probeConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if !c.p.sent(b) {
		return len(b), nil
	}
	return c.UDPConn.WriteTo(b, a)
}

func (c *probeConn) WriteToUDP(b []byte, a *net.UDPAddr) (int, error) {
	if !c.p.sent(b) {
		return len(b), nil
	}
	return c.UDPConn.WriteToUDP(b, a)
}

func (c *probeConn) WriteMsgUDP(b, oob []byte, a *net.UDPAddr) (int, int, error) {
	if !c.p.sent(b) {
		return len(b), 0, nil
	}
	return c.UDPConn.WriteMsgUDP(b, oob, a)
}

type probePacketConn struct {
	net.PacketConn
	p *probeNet
}

func (c *probePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.p.received(b[:n])
	}
	return n, a, err
}

func (c *probePacketConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if !c.p.sent(b) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, a)
}
