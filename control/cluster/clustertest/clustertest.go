// Package clustertest starts complete control nodes (FSM, Raft over loopback
// TCP, HTTP API) in one process for tests, with short Raft timeouts, port 0,
// t.TempDir() and t.Cleanup.
package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/shared/wait"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/server"
)

// Options tune a cluster.
type Options struct {
	// Persist keeps Raft data on disk (t.TempDir) so nodes can restart.
	Persist bool
	// Configure may adjust each node's config before it starts.
	Configure func(i int, cfg *server.Config)
	// SnapshotThreshold overrides the Raft snapshot threshold.
	SnapshotThreshold uint64
	// LeaderReadyOnly makes New wait for the leader alone: followers may
	// stay behind (tests of how they catch up).
	LeaderReadyOnly bool
}

// Cluster is n control nodes.
type Cluster struct {
	t          testing.TB
	opts       Options
	key        []byte
	token      string
	mu         sync.Mutex
	nodes      []*server.Server
	configs    []server.Config
	APIKey     string
	APISecret  string
	AdminToken string
}

// New starts n nodes bootstrapped together and waits until they are ready.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c := &Cluster{t: t, opts: opts, key: key, token: "cluster-token-for-tests", APIKey: "11111111-2222-4333-8444-555555555555",
		APISecret: "test-secret-0123456789abcdef", AdminToken: "admin-token-for-tests"}
	// Raft addresses must be known before bootstrap: reserve ports by binding
	// each node's transport first, one at a time (New binds immediately).
	peers := make([]cluster.Peer, n)
	for i := 0; i < n; i++ {
		peers[i] = cluster.Peer{ID: fmt.Sprintf("node%d", i), RaftAddr: porttest.Addr(t)}
	}
	for i := 0; i < n; i++ {
		cfg := c.config(i, peers)
		c.configs = append(c.configs, cfg)
		srv, err := server.New(cfg)
		if err != nil {
			t.Fatalf("start node%d: %v", i, err)
		}
		srv.Start()
		c.nodes = append(c.nodes, srv)
	}
	t.Cleanup(c.Close)
	if opts.LeaderReadyOnly {
		Eventually(t, 20*time.Second, func() string {
			for _, n := range c.Nodes() {
				if n.Node().IsLeader() && n.Ready() {
					return ""
				}
			}
			return "no ready leader"
		})
		return c
	}
	c.WaitReady()
	return c
}

func (c *Cluster) config(i int, peers []cluster.Peer) server.Config {
	cc := cluster.DefaultConfig()
	cc.NodeID = peers[i].ID
	cc.RaftBind = peers[i].RaftAddr
	cc.Bootstrap = true
	cc.Peers = peers
	cc.ClusterToken = c.token
	cc.HeartbeatTimeout, cc.ElectionTimeout, cc.LeaderLease, cc.CommitTimeout = 150*time.Millisecond, 150*time.Millisecond, 100*time.Millisecond, 5*time.Millisecond
	cc.LeaderHoldTimeout = 5 * time.Second
	cc.ApplyTimeout = 5 * time.Second
	if c.opts.SnapshotThreshold > 0 {
		cc.SnapshotThreshold = c.opts.SnapshotThreshold
		cc.SnapshotInterval = 100 * time.Millisecond
		cc.TrailingLogs = 2 // compact hard so a lagging node must install a snapshot
	}
	if c.opts.Persist {
		cc.DataDir = c.t.TempDir()
	}
	ac := api.DefaultConfig()
	ac.AdminToken = c.AdminToken
	ac.RateLimitPerIP, ac.RateLimitPerKey = 0, 0
	level := slog.LevelError
	if os.Getenv("MERIDIAN_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cfg := server.Config{HTTPListen: "127.0.0.1:0", ClusterKey: c.key, Cluster: cc, API: ac,
		BootstrapKeys: []auth.NewKeySpec{{Key: c.APIKey, Secret: c.APISecret, Name: "test"}},
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	return cfg
}

// Nodes returns the running nodes (nil entries are stopped).
func (c *Cluster) Nodes() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*server.Server(nil), c.nodes...)
}

// Node returns node i.
func (c *Cluster) Node(i int) *server.Server { return c.Nodes()[i] }

// WaitReady waits until every running node is ready.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range c.Nodes() {
		if n == nil {
			continue
		}
		if err := n.WaitReady(ctx); err != nil {
			c.t.Fatal(err)
		}
	}
}

// Leader returns the leader's index, waiting for one.
func (c *Cluster) Leader() int {
	c.t.Helper()
	var idx int
	Eventually(c.t, 15*time.Second, func() string {
		leaders := 0
		for i, n := range c.Nodes() {
			if n != nil && n.Node().IsLeader() && n.Node().LeaderLoopsRunning() {
				idx = i
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Sprintf("%d nodes lead with loops running", leaders)
		}
		return ""
	})
	return idx
}

// Followers returns the indexes of running non-leaders.
func (c *Cluster) Followers() []int {
	var out []int
	for i, n := range c.Nodes() {
		if n != nil && !n.Node().IsLeader() {
			out = append(out, i)
		}
	}
	return out
}

// Stop shuts node i down (its data dir stays if Persist).
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		_ = n.Close()
	}
}

// KillLeader stops the leader and returns its index.
func (c *Cluster) KillLeader() int {
	i := c.Leader()
	c.Stop(i)
	return i
}

// AddNode starts a node without bootstrap and joins it through node via's
// HTTP API (followers forward the join to the leader). It returns its index.
func (c *Cluster) AddNode(via int) int {
	c.t.Helper()
	i := len(c.Nodes())
	peers := make([]cluster.Peer, i+1)
	peers[i] = cluster.Peer{ID: fmt.Sprintf("node%d", i), RaftAddr: porttest.Addr(c.t)}
	cfg := c.config(i, peers)
	cfg.Cluster.Bootstrap, cfg.Cluster.Peers = false, nil
	srv, err := server.New(cfg)
	if err != nil {
		c.t.Fatalf("start node%d: %v", i, err)
	}
	srv.Start()
	c.mu.Lock()
	c.nodes = append(c.nodes, srv)
	c.configs = append(c.configs, cfg)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Node().JoinCluster(ctx, c.Node(via).URL()); err != nil {
		c.t.Fatalf("node%d join via node%d: %v", i, via, err)
	}
	return i
}

// Restart starts node i again with the same config (and data dir).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	cfg := c.configs[i]
	srv, err := server.New(cfg)
	if err != nil {
		c.t.Fatalf("restart node%d: %v", i, err)
	}
	srv.Start()
	c.mu.Lock()
	c.nodes[i] = srv
	c.mu.Unlock()
}

// Close stops every node; a node that does not shut down in time fails loudly.
func (c *Cluster) Close() {
	for i := range c.Nodes() {
		done := make(chan struct{})
		go func() { c.Stop(i); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			panic(fmt.Sprintf("clustertest: node%d did not shut down", i))
		}
	}
}

// Eventually is wait.Until: poll cond until it returns "", or fail with
// its last reason.
func Eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	wait.Until(t, timeout, cond)
}

// Response is a decoded HTTP answer.
type Response struct {
	Status int
	Body   []byte
	Header http.Header
}

// JSON decodes the body.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request to node i's API.
func (c *Cluster) Do(i int, method, path, authz string, body any) Response {
	c.t.Helper()
	return Do(c.t, c.Node(i).URL(), method, path, authz, body)
}

// Do sends an HTTP request; body may be a string (sent raw) or a value (JSON).
// A request that gets no answer fails the test.
func Do(t testing.TB, base, method, path, authz string, body any) Response {
	t.Helper()
	resp, err := TryDo(base, method, path, authz, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TryDo is Do for a request that may get no answer (a node being stopped;
// also usable off the test goroutine): it returns the error instead.
func TryDo(base, method, path, authz string, body any) (Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		return Response{}, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Body: out, Header: resp.Header}, nil
}

// Token mints a crawler token for the cluster's key.
func (c *Cluster) Token(opts ...func(*auth.MintOptions)) string {
	o := auth.MintOptions{APIKey: c.APIKey, Secret: []byte(c.APISecret), Permissions: []string{auth.PermAllowJoin, auth.PermAllowMod},
		Roles: []string{auth.RoleCrawler}, TTL: time.Hour}
	for _, f := range opts {
		f(&o)
	}
	tok, err := auth.Mint(o)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}
