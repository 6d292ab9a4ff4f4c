package chaos

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/test/procs"
)

// forwardedHeader names the node that forwards a write or a consistent
// read to the leader (cluster.ForwardedHeader).
const forwardedHeader = "X-Meridian-Forwarded"

// network is what stands between the control nodes: a TCP proxy per
// ordered pair for Raft (node from dials node to through pair[from][to])
// and an HTTP proxy in front of each node's API for node-to-node calls.
// Isolating a node cuts every link to and from it, like a partition that
// leaves clients on the node's side.
type network struct {
	mu       sync.Mutex
	isolated map[string]bool
	healed   chan struct{} // closed when the current partition heals
	pairs    []*tcpProxy
	https    map[string]*httpProxy // by node id
	held     atomic.Int64          // node-to-node HTTP requests black-holed
}

func newNetwork() *network {
	ch := make(chan struct{})
	close(ch)
	return &network{isolated: map[string]bool{}, healed: ch, https: map[string]*httpProxy{}}
}

// clusterOptions wires the proxies into procs.StartCluster.
func (n *network) clusterOptions(t *testing.T, o procs.ClusterOptions) procs.ClusterOptions {
	o.PeerAddr = func(from, to *procs.Control) string {
		p := newTCPProxy(t, from.ID, to.ID, to.RaftAddr)
		n.mu.Lock()
		n.pairs = append(n.pairs, p)
		n.mu.Unlock()
		return p.Addr()
	}
	o.NodeArgs = func(c *procs.Control) []string {
		p := newHTTPProxy(t, n, c.ID, c.URL)
		n.mu.Lock()
		n.https[c.ID] = p
		n.mu.Unlock()
		return []string{"--http-advertise", p.Addr()}
	}
	return o
}

// Isolate cuts node id off from every other node.
func (n *network) Isolate(id string) {
	n.mu.Lock()
	if len(n.isolated) == 0 {
		n.healed = make(chan struct{})
	}
	n.isolated[id] = true
	pairs := n.pairs
	n.mu.Unlock()
	for _, p := range pairs {
		if p.from == id || p.to == id {
			p.Cut()
		}
	}
}

// Heal ends every partition.
func (n *network) Heal() {
	n.mu.Lock()
	if len(n.isolated) > 0 {
		close(n.healed)
	}
	n.isolated = map[string]bool{}
	pairs := n.pairs
	n.mu.Unlock()
	for _, p := range pairs {
		p.Heal()
	}
}

// blocked returns a channel that closes when a request from node src to
// node dst may pass again, or nil if it may pass now.
func (n *network) blocked(src, dst string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isolated[dst] || (src != "" && n.isolated[src]) {
		return n.healed
	}
	return nil
}

// httpProxy fronts one node's API for the other nodes (--http-advertise).
type httpProxy struct {
	ln  net.Listener
	srv *http.Server
}

func newHTTPProxy(t *testing.T, n *network, dst, target string) *httpProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln := procs.Listen(t, "127.0.0.1")
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, MaxIdleConnsPerHost: 32}
	// A dead node looks like a dead node (the connection drops), not like
	// a 502 from a live one.
	rp.ErrorHandler = func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) }
	p := &httpProxy{ln: ln}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch := n.blocked(r.Header.Get(forwardedHeader), dst); ch != nil {
			// A partition: no answer, no reset, until it heals or the
			// sender gives up.
			n.held.Add(1)
			select {
			case <-r.Context().Done():
			case <-ch:
			}
			panic(http.ErrAbortHandler)
		}
		rp.ServeHTTP(w, r)
	}), ErrorLog: nil}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

func (p *httpProxy) Addr() string { return p.ln.Addr().String() }

// tcpProxy forwards TCP connections to target (Raft from one node to
// another). Cut partitions it like a network would: open connections are
// closed and new ones are accepted but never answered, until Heal.
type tcpProxy struct {
	from, to string
	ln       net.Listener
	target   string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
	held  []net.Conn
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, from, to, target string) *tcpProxy {
	ln := procs.Listen(t, "127.0.0.1")
	p := &tcpProxy{from: from, to: to, ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
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
			p.held = append(p.held, c)
			p.mu.Unlock()
			continue
		}
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *tcpProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns[up] = true
	p.mu.Unlock()
	defer p.drop(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (p *tcpProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *tcpProxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = map[net.Conn]bool{}
	p.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

func (p *tcpProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, c := range held {
		_ = c.Close()
	}
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.Heal()
	p.wg.Wait()
}
