package chaos

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/test/netproxy"
	"github.com/meridian-video/meridian/test/procs"
)

// forwardedHeader names the node that forwards a write or a consistent
// read to the leader (cluster.ForwardedHeader).
const forwardedHeader = "X-Meridian-Forwarded"

// network is what stands between the control nodes: a TCP proxy
// (netproxy) per ordered pair for Raft (node from dials node to through
// its own raftLink) and an HTTP proxy in front of each node's API for node-to-node calls.
// Isolating a node cuts every link to and from it, like a partition that
// leaves clients on the node's side.
type network struct {
	mu       sync.Mutex
	isolated map[string]bool
	healed   chan struct{} // closed when the current partition heals
	pairs    []raftLink
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
		p := raftLink{from: from.ID, to: to.ID, TCP: netproxy.New(t, "127.0.0.1", to.RaftAddr)}
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

// RaftDialsHeld counts the Raft connections to or from node id that cuts
// held unanswered so far: a partition that never made a node try to cross
// it was not exercised.
func (n *network) RaftDialsHeld(id string) int {
	n.mu.Lock()
	pairs := n.pairs
	n.mu.Unlock()
	held := 0
	for _, p := range pairs {
		if p.from == id || p.to == id {
			held += p.Refused()
		}
	}
	return held
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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

// raftLink is the proxy node from dials to reach node to's Raft port.
type raftLink struct {
	from, to string
	*netproxy.TCP
}
