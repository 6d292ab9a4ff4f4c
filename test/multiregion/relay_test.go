package multiregion

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/porttest"
)

// wan simulates the network between regions in user space. Every edge's
// media port is fronted by a relay: the edge runs in a network namespace
// and advertises the relay's address (host side of the veth) in its ICE
// candidates, so every packet a client or another edge sends to the edge
// passes the relay, and the edge's answers go back through it. Packets
// between edges of different regions wait `delay` in each direction;
// everything else passes at once.
type wan struct {
	delay atomic.Int64 // one way, between regions (ns)
	drop  atomic.Bool  // black-hole everything (to see tests fail)

	mu     sync.Mutex
	ranges []portRange // edges' media addresses (inside the namespace)
	bytes  map[[2]string]*atomic.Uint64
}

type node struct{ id, region string }

// portRange is where an edge's media sockets are: ip:min..max.
type portRange struct {
	ip       string
	min, max int
	n        node
}

func newWAN(oneWay time.Duration) *wan {
	w := &wan{bytes: map[[2]string]*atomic.Uint64{}}
	w.delay.Store(int64(oneWay))
	return w
}

// SetDelay changes the inter-region one-way delay.
func (w *wan) SetDelay(d time.Duration) { w.delay.Store(int64(d)) }

// Delay is the inter-region one-way delay.
func (w *wan) Delay() time.Duration { return time.Duration(w.delay.Load()) }

// who names a packet source: an edge (by its media address) or a client.
func (w *wan) who(a *net.UDPAddr) node {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.ranges {
		if a.IP.String() == r.ip && a.Port >= r.min && a.Port <= r.max {
			return r.n
		}
	}
	return node{id: "client"}
}

// delayBetween is the one-way delay between two nodes: clients are near
// the edge they use.
func (w *wan) delayBetween(a, b node) time.Duration {
	if a.region == "" || b.region == "" || a.region == b.region {
		return 0
	}
	return w.Delay()
}

func (w *wan) count(from, to string, n int) {
	k := [2]string{from, to}
	w.mu.Lock()
	c := w.bytes[k]
	if c == nil {
		c = new(atomic.Uint64)
		w.bytes[k] = c
	}
	w.mu.Unlock()
	c.Add(uint64(n))
}

// Bytes is what the relays forwarded from one node to another so far
// ("client" for participants).
func (w *wan) Bytes(from, to string) uint64 {
	w.mu.Lock()
	c := w.bytes[[2]string{from, to}]
	w.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

// Summary lists the byte counters, for logs.
func (w *wan) Summary() string {
	w.mu.Lock()
	var keys [][2]string
	for k := range w.bytes {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf(" %s>%s=%dkB", k[0], k[1], w.Bytes(k[0], k[1])/1000)
	}
	return s
}

// relay fronts one edge's media port: it listens on listen and forwards
// to target through one upstream socket per remote source, so the edge
// sees each source as a distinct address and its answers come back on the
// right socket.
type relay struct {
	w      *wan
	edge   node
	ln     *net.UDPConn
	target *net.UDPAddr
	local  net.IP // address upstream sockets bind

	mu     sync.Mutex
	ups    map[string]*flow
	closed bool
	wg     sync.WaitGroup
}

// frontEdge takes n consecutive ports (shared/porttest, which no other
// test process hands out) and puts a relay on each on listenIP,
// forwarding to the same port on targetIP, where edge e's media sockets
// will be. It returns the port range.
func (w *wan) frontEdge(tb testing.TB, e node, listenIP, targetIP string, n int) (min, max int) {
	tb.Helper()
	base := porttest.Run(tb, n) // checked free and claimed: binding them cannot race another test
	w.mu.Lock()
	w.ranges = append(w.ranges, portRange{ip: targetIP, min: base, max: base + n - 1, n: e})
	w.mu.Unlock()
	for p := base; p < base+n; p++ {
		ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(listenIP), Port: p})
		if err != nil {
			tb.Fatalf("relay for %s on port %d: %v", e.id, p, err)
		}
		w.startRelay(tb, e, ln, &net.UDPAddr{IP: net.ParseIP(targetIP), Port: p})
	}
	return base, base + n - 1
}

// startRelay relays what arrives on ln to target, for edge e.
func (w *wan) startRelay(tb testing.TB, e node, ln *net.UDPConn, target *net.UDPAddr) *relay {
	_ = ln.SetReadBuffer(1 << 20)
	r := &relay{w: w, edge: e, ln: ln, target: target, local: ln.LocalAddr().(*net.UDPAddr).IP, ups: map[string]*flow{}}
	r.wg.Add(1)
	go r.run()
	tb.Cleanup(r.close)
	return r
}

// Port is the relay's (and the edge's) media port.
func (r *relay) Port() int { return r.ln.LocalAddr().(*net.UDPAddr).Port }

func (r *relay) run() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, src, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if r.w.drop.Load() {
			continue
		}
		up := r.upstream(src)
		if up == nil {
			continue // closing, or no socket: drop
		}
		r.w.count(up.from.id, r.edge.id, n)
		up.toEdge.push(buf[:n], r.w.delayBetween(up.from, r.edge))
	}
}

// flow is one remote source: its socket towards the edge and the two
// delay lines.
type flow struct {
	conn           *net.UDPConn
	from           node
	toEdge, toPeer *delayLine
}

// upstream returns (creating it) the socket that carries src's packets to
// the edge, and starts copying the edge's answers back to src.
func (r *relay) upstream(src *net.UDPAddr) *flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if f := r.ups[src.String()]; f != nil {
		return f
	}
	conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: r.local}, r.target)
	if err != nil {
		return nil
	}
	_ = conn.SetReadBuffer(4 << 20)
	dst := *src
	f := &flow{conn: conn, from: r.w.who(src),
		toEdge: newDelayLine(func(b []byte) { _, _ = conn.Write(b) }),
		toPeer: newDelayLine(func(b []byte) { _, _ = r.ln.WriteToUDP(b, &dst) })}
	r.ups[src.String()] = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP port unreachable while the edge is down: keep going
			}
			if r.w.drop.Load() {
				continue
			}
			r.w.count(r.edge.id, f.from.id, n)
			f.toPeer.push(buf[:n], r.w.delayBetween(r.edge, f.from))
		}
	}()
	return f
}

// delayLine sends packets in order, each no earlier than its arrival plus
// the delay it was pushed with.
type delayLine struct {
	ch   chan timed
	send func([]byte)
	done chan struct{}
}

type timed struct {
	due time.Time
	b   []byte
}

func newDelayLine(send func([]byte)) *delayLine {
	d := &delayLine{ch: make(chan timed, 8192), send: send, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for p := range d.ch {
			if w := time.Until(p.due); w > 0 {
				time.Sleep(w)
			}
			d.send(p.b)
		}
	}()
	return d
}

// push copies b and queues it (a full queue drops it, as a router would).
func (d *delayLine) push(b []byte, delay time.Duration) {
	select {
	case d.ch <- timed{due: time.Now().Add(delay), b: append([]byte(nil), b...)}:
	default:
	}
}

func (d *delayLine) close() {
	close(d.ch)
	<-d.done
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	ups := r.ups
	r.ups = map[string]*flow{}
	r.mu.Unlock()
	_ = r.ln.Close()
	for _, f := range ups {
		_ = f.conn.Close()
	}
	r.wg.Wait() // no more pushes
	for _, f := range ups {
		f.toEdge.close()
		f.toPeer.close()
	}
}

// TestRelay checks the relay itself: packets from another region's edge
// are delayed each way, a client's are not, and answers come back to the
// right source.
func TestRelay(t *testing.T) {
	const d = 30 * time.Millisecond
	w := newWAN(d)
	// The "edge": an echo server on 127.0.0.1.
	echo, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, a, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDP(buf[:n], a)
		}
	}()
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := w.startRelay(t, node{id: "e1", region: "r1"}, ln, echo.LocalAddr().(*net.UDPAddr))
	far, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	fp := far.LocalAddr().(*net.UDPAddr).Port
	w.mu.Lock()
	w.ranges = append(w.ranges, portRange{ip: "127.0.0.1", min: fp, max: fp, n: node{id: "e2", region: "r2"}})
	w.mu.Unlock()
	near, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()
	rtt := func(c *net.UDPConn) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := c.WriteToUDP([]byte("ping"), r.ln.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 100)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil || string(buf[:n]) != "ping" || from.Port != r.Port() {
			t.Fatalf("echo through the relay: %q from %v, %v", buf[:n], from, err)
		}
		return time.Since(start)
	}
	if got := rtt(far); got < 2*d || got > 2*d+50*time.Millisecond {
		t.Fatalf("cross-region round trip %v, want about %v", got, 2*d)
	}
	if got := rtt(near); got > 20*time.Millisecond {
		t.Fatalf("client round trip %v, want no added delay", got)
	}
	if w.Bytes("e2", "e1") != 4 || w.Bytes("e1", "e2") != 4 || w.Bytes("client", "e1") != 4 {
		t.Fatalf("counters:%s", w.Summary())
	}
	w.drop.Store(true)
	_, _ = near.WriteToUDP([]byte("ping"), r.ln.LocalAddr().(*net.UDPAddr))
	_ = near.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := near.ReadFromUDP(make([]byte, 10)); err == nil {
		t.Fatal("a dropping relay forwarded a packet")
	}
}
