// Package netproxy is a TCP proxy for tests that partition real processes
// without root: a process is given the proxy's address instead of its
// peer's, and the test cuts and heals the link.
//
// A cut behaves like a silent network, not like a dead peer: connections
// open through the proxy stop carrying bytes (they are closed on both
// sides), and new connections are accepted but never answered, so a
// client's dial succeeds and its request hangs until its own timeout, as
// across a real partition. Heal lets new connections through again and
// closes the ones held meanwhile (their clients see a reset and retry).
//
// Used by test/chaos (one proxy per ordered pair of Raft peers) and
// test/multiregion (an edge's links to the control plane).
package netproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// dialTimeout bounds the proxy's dial to its target. A target that is
// paused (SIGSTOP) stops accepting once its backlog is full; without a
// bound the proxy would hold the client for the kernel's SYN retries
// (minutes) instead of dropping it like a dead peer would.
const dialTimeout = time.Second

// TCP forwards every connection accepted on its listener to target.
type TCP struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	conns   map[net.Conn]bool // open on either side, closed by Cut
	held    []net.Conn        // accepted during a cut, closed by Heal
	refused int               // connections a cut held unanswered so far
	wg      sync.WaitGroup    // the accept loop and every serve
}

// New starts a proxy listening on ip (a port from the kernel: it cannot be
// one shared/porttest handed to a process that has not bound it yet) and
// forwarding to target (host:port). It stops in tb.Cleanup.
func New(tb testing.TB, ip, target string) *TCP {
	tb.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	p := &TCP{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port, to give the client instead of target.
func (p *TCP) Addr() string { return p.ln.Addr().String() }

// Cut partitions the link: open connections are closed, new ones are
// held unanswered until Heal.
func (p *TCP) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// Heal ends the partition; the connections held meanwhile are closed.
func (p *TCP) Heal() {
	p.mu.Lock()
	p.cut = false
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, c := range held {
		_ = c.Close()
	}
}

// Refused counts the connections cuts have held unanswered, which shows
// a test that its client really tried to cross the partition.
func (p *TCP) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

func (p *TCP) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.held = append(p.held, c) // no answer, no reset
			p.refused++
			p.mu.Unlock()
			continue
		}
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *TCP) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	up, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.cut { // cut while dialling: c is already closed
		p.mu.Unlock()
		_ = up.Close()
		return
	}
	p.conns[up] = true
	p.mu.Unlock()
	// Either direction ending (or a Cut closing both) ends the pair:
	// closing both sockets makes the other copy return, and serve waits
	// for it so that close's wg.Wait covers every goroutine.
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	p.drop(up)
	p.drop(c)
	<-done
}

func (p *TCP) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *TCP) close() {
	_ = p.ln.Close()
	p.Cut()
	p.Heal()
	p.wg.Wait()
}
