package procs

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/shared/porttest"
)

// ClusterOptions configure StartCluster.
type ClusterOptions struct {
	// Nodes is the number of voters (default 3), with ids c1, c2, ...
	Nodes int
	// Host is the IP the nodes' HTTP APIs listen on (default 127.0.0.1; a
	// NetNS's HostIP makes them reachable from inside it). Raft stays on
	// 127.0.0.1.
	Host string
	// Region of the control nodes (default "eu-west").
	Region string
	// Args are appended to every node's command line.
	Args []string
	// PeerAddr, when set, is the Raft address node from names node to at
	// in its --peers (from != to), e.g. a proxy per ordered pair of nodes
	// so that a test can partition them; nil names to.RaftAddr. It is
	// called once per pair, after every node's addresses are known and
	// before any process starts.
	PeerAddr func(from, to *Control) string
	// NodeArgs, when set, returns extra flags for one node (e.g.
	// --http-advertise pointing at a proxy), appended before Args.
	NodeArgs func(c *Control) []string
}

// Cluster is a bootstrapped set of `meridian control` processes.
type Cluster struct {
	Nodes      []*Control
	ClusterKey string // 64 hex
	EdgeToken  string
	AdminToken string
}

// Control is one `meridian control` process.
type Control struct {
	*Proc
	ID       string
	URL      string // http://host:port
	RaftAddr string
	Data     string

	args   []string // the command line, for Restart
	starts int      // restarts so far
}

// StartCluster starts o.Nodes control nodes that bootstrap one Raft
// cluster (--bootstrap --peers, same cluster key, edge and admin tokens,
// rate limits off) and waits until every node answers /healthz.
func StartCluster(tb testing.TB, o ClusterOptions) *Cluster {
	tb.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Region == "" {
		o.Region = "eu-west"
	}
	cl := &Cluster{ClusterKey: randHex(32), EdgeToken: "edge-" + randHex(16), AdminToken: "admin-" + randHex(16)}
	for i := 1; i <= o.Nodes; i++ {
		c := &Control{ID: fmt.Sprintf("c%d", i), RaftAddr: porttest.Addr(tb), Data: tb.TempDir()}
		c.URL = "http://" + net.JoinHostPort(o.Host, strconv.Itoa(porttest.Port(tb)))
		cl.Nodes = append(cl.Nodes, c)
	}
	insecure := insecureLinks(tb, "control")
	for _, c := range cl.Nodes {
		var peers []string
		for _, p := range cl.Nodes {
			addr := p.RaftAddr
			if p != c && o.PeerAddr != nil {
				addr = o.PeerAddr(c, p)
			}
			peers = append(peers, p.ID+"="+addr)
		}
		args := []string{"control", "--id", c.ID, "--http", strings.TrimPrefix(c.URL, "http://"), "--raft", c.RaftAddr,
			"--raft-advertise", c.RaftAddr, "--data", c.Data, "--bootstrap", "--peers", strings.Join(peers, ","),
			"--cluster-key", cl.ClusterKey, "--edge-token", cl.EdgeToken, "--admin-token", cl.AdminToken,
			"--region", o.Region, "--rate-limit-key", "0", "--rate-limit-ip", "0"}
		args = append(args, insecure...)
		if o.NodeArgs != nil {
			args = append(args, o.NodeArgs(c)...)
		}
		c.args = append(append(args, logLevel()...), o.Args...)
		c.Proc = Start(tb, "control "+c.ID, Bin(tb), c.args, Options{})
	}
	for _, c := range cl.Nodes {
		c.WaitHealthy(tb, 30*time.Second)
	}
	return cl
}

// Restart starts the node again with the same data directory and flags
// (after Kill or Stop; it fails the test if the process still runs). Call
// WaitHealthy before using it.
func (c *Control) Restart(tb testing.TB) {
	tb.Helper()
	if done, _ := c.Exited(); !done {
		tb.Fatalf("restart %s: the process is still running", c.Name)
	}
	c.starts++
	c.Proc = Start(tb, fmt.Sprintf("control %s run%d", c.ID, c.starts+1), Bin(tb), c.args, Options{})
}

// URLs lists every node's URL (dead ones too: give them all to edges).
func (cl *Cluster) URLs() []string {
	var out []string
	for _, c := range cl.Nodes {
		out = append(out, c.URL)
	}
	return out
}

// Live lists the nodes whose process is still running.
func (cl *Cluster) Live() []*Control {
	var out []*Control
	for _, c := range cl.Nodes {
		if done, _ := c.Exited(); !done {
			out = append(out, c)
		}
	}
	return out
}

// Leader polls the live nodes' /healthz until one names a leader that is
// a live node of the cluster, and returns that node.
func (cl *Cluster) Leader(tb testing.TB, timeout time.Duration) *Control {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, c := range cl.Live() {
			h, err := c.Health()
			if err != nil {
				continue
			}
			for _, l := range cl.Live() {
				if l.ID == h.Leader {
					return l
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no live leader after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Health is a control node's /healthz answer.
type Health struct {
	Status       string `json:"status"`
	Node         string `json:"node"`
	Leader       string `json:"leader"`
	AppliedIndex uint64 `json:"appliedIndex"`
}

var quick = &http.Client{Timeout: 2 * time.Second}

// Health asks the node's /healthz (an error unless 200).
func (c *Control) Health() (Health, error) {
	var h Health
	resp, err := quick.Get(c.URL + "/healthz")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("%s /healthz: %d %s", c.ID, resp.StatusCode, b)
	}
	return h, json.Unmarshal(b, &h)
}

// WaitHealthy waits for GET /healthz == 200 (a leader is known and the
// cluster secrets exist).
func (c *Control) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	waitHealthy(tb, c.Proc, c.URL+"/healthz", timeout)
}

// APIKey is an API key and its secret.
type APIKey struct{ Key, Secret string }

// NewAPIKey creates an API key through the admin API of node c.
func (cl *Cluster) NewAPIKey(tb testing.TB, c *Control) APIKey {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.URL+"/admin/v1/keys", strings.NewReader(`{"name":"t"}`))
	req.Header.Set("Authorization", "Bearer "+cl.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := quick.Do(req)
	if err != nil {
		tb.Fatalf("create API key: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var k struct{ APIKey, Secret string }
	if resp.StatusCode/100 != 2 || json.Unmarshal(b, &k) != nil || k.APIKey == "" {
		tb.Fatalf("create API key: %d %s", resp.StatusCode, b)
	}
	return APIKey{Key: k.APIKey, Secret: k.Secret}
}

// Crawler mints a REST token (role crawler), valid for an hour.
func (k APIKey) Crawler(tb testing.TB) string {
	return k.mint(tb, auth.MintOptions{Roles: []string{auth.RoleCrawler}, Permissions: []string{auth.PermAllowJoin}})
}

// RTC mints a join token (role rtc) for one participant, valid for an hour.
func (k APIKey) RTC(tb testing.TB, participantID string) string {
	return k.mint(tb, auth.MintOptions{Roles: []string{auth.RoleRTC}, Permissions: []string{auth.PermAllowJoin, auth.PermAllowMod},
		ParticipantID: participantID})
}

func (k APIKey) mint(tb testing.TB, o auth.MintOptions) string {
	tb.Helper()
	o.APIKey, o.Secret, o.TTL = k.Key, []byte(k.Secret), time.Hour
	tok, err := auth.Mint(o)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// EdgeOptions configure StartEdge.
type EdgeOptions struct {
	ID, Region string
	Controls   []string // control URLs (all of them)
	EdgeToken  string
	// NetNS runs the edge inside a namespace; Host then defaults to its
	// NSIP, and the edge offers no loopback candidates (outside, it does).
	NetNS *NetNS
	// Host is the IP the HTTP/WebSocket listener binds (default 127.0.0.1).
	Host string
	// Media ports: MediaPort is the single UDP port for all media
	// (--udp-port); MediaPortMin..MediaPortMax instead gives every
	// PeerConnection its own port from the range. Neither set: a free
	// MediaPort.
	MediaPort                  int
	MediaPortMin, MediaPortMax int
	// RelayPortMin..RelayPortMax bound the sockets of cascade legs to other
	// edges when MediaPort is set (--relay-port-min/max; zero: any port).
	RelayPortMin, RelayPortMax int
	// NATIP is advertised in ICE candidates instead of the host's addresses
	// (--nat-ip).
	NATIP string
	// DrainTimeout bounds the drain on SIGTERM (default 20 s).
	DrainTimeout time.Duration
	// Args are appended to the command line.
	Args []string
}

// Edge is one `meridian edge` process.
type Edge struct {
	*Proc
	ID, Region string
	URL        string // public HTTP URL (signaling is ws://.../rtc)
	GossipAddr string
}

// StartEdge starts an edge with loopback TURN and its gossip on loopback.
// Call WaitHealthy before using it.
func StartEdge(tb testing.TB, o EdgeOptions) *Edge {
	tb.Helper()
	var prefix []string
	if o.NetNS != nil {
		prefix = o.NetNS.Prefix()
		if o.Host == "" {
			o.Host = o.NetNS.NSIP
		}
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.MediaPort == 0 && o.MediaPortMin == 0 {
		o.MediaPort = porttest.Port(tb)
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 20 * time.Second
	}
	e := &Edge{ID: o.ID, Region: o.Region,
		URL:        "http://" + net.JoinHostPort(o.Host, strconv.Itoa(porttest.Port(tb))),
		GossipAddr: porttest.Addr(tb)}
	args := []string{"edge", "--id", o.ID, "--region", o.Region, "--http", strings.TrimPrefix(e.URL, "http://"), "--public-url", e.URL,
		"--edge-token", o.EdgeToken, "--turn-public-ip", "127.0.0.1",
		"--turn-udp", porttest.Addr(tb), "--turn-tcp", "",
		"--gossip", e.GossipAddr, "--drain-timeout", o.DrainTimeout.String()}
	if !slices.Contains(o.Args, "--data") {
		// Each edge locks its data directory (the default is under the
		// working directory, one per test package).
		args = append(args, "--data", tb.TempDir())
	}
	if o.NetNS == nil {
		args = append(args, "--loopback-candidates")
	}
	if o.MediaPort != 0 {
		args = append(args, "--udp-port", strconv.Itoa(o.MediaPort))
		if o.RelayPortMin != 0 {
			args = append(args, "--relay-port-min", strconv.Itoa(o.RelayPortMin), "--relay-port-max", strconv.Itoa(o.RelayPortMax))
		}
	} else {
		args = append(args, "--udp-port-min", strconv.Itoa(o.MediaPortMin), "--udp-port-max", strconv.Itoa(o.MediaPortMax))
	}
	for _, c := range o.Controls {
		args = append(args, "--control", c)
	}
	if o.NATIP != "" {
		args = append(args, "--nat-ip", o.NATIP)
	}
	args = append(args, insecureLinks(tb, "edge")...)
	e.Proc = Start(tb, "edge "+o.ID, Bin(tb), append(append(args, logLevel()...), o.Args...), Options{Prefix: prefix})
	return e
}

// WaitHealthy waits for GET /healthz == 200 (the edge has registered).
func (e *Edge) WaitHealthy(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	waitHealthy(tb, e.Proc, e.URL+"/healthz", timeout)
}

// Metrics returns the edge's Prometheus text.
func (e *Edge) Metrics() (string, error) {
	resp, err := quick.Get(e.URL + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s /metrics: %d", e.ID, resp.StatusCode)
	}
	return string(b), err
}

func waitHealthy(tb testing.TB, p *Proc, url string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		if done, err := p.Exited(); done {
			tb.Fatalf("%s exited while waiting for %s: %v\n%s", p.Name, url, err, p.Tail(40))
		}
		resp, err := quick.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %s not healthy after %v (last: %s)\n%s", p.Name, url, timeout, last, p.Tail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	helpMu sync.Mutex
	help   = map[string]string{} // "bin sub" -> `meridian sub -h` output
)

// HasFlag reports whether `meridian sub` (control or edge) has --flag, from
// its -h output (the binary under test may be older or newer than this
// package).
func HasFlag(tb testing.TB, sub, flag string) bool {
	tb.Helper()
	bin := Bin(tb)
	helpMu.Lock()
	defer helpMu.Unlock()
	k := bin + " " + sub
	h, ok := help[k]
	if !ok {
		out, _ := exec.Command(bin, sub, "-h").CombinedOutput() // -h exits non-zero
		h = string(out)
		help[k] = h
	}
	return strings.Contains(h, "-"+flag+" ") || strings.Contains(h, "-"+flag+"\n")
}

// insecureLinks: the processes talk over loopback or a test namespace, so
// node-to-node links run without mutual TLS where the binary asks for a
// choice (--insecure-cluster-links).
func insecureLinks(tb testing.TB, sub string) []string {
	if HasFlag(tb, sub, "insecure-cluster-links") {
		return []string{"--insecure-cluster-links"}
	}
	return nil
}

func logLevel() []string {
	if l := os.Getenv("MERIDIAN_PROCS_LOG_LEVEL"); l != "" {
		return []string{"--log-level", l}
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
