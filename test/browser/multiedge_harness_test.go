package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/test/procs"
)

// A real multi-edge deployment on loopback: one `meridian control` node and
// several `meridian edge` processes, each a child of the test with its own
// ports and working directory. The control node serves the API, the meeting
// page and the SDK.

const (
	clusterEdgeToken  = "browser-test-edge-token"
	clusterAdminToken = "browser-test-admin-token"
)

// child is one meridian process.
type child struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	out    *procs.LogBuffer
	exited chan struct{}
	err    error // set when exited is closed
	killed bool  // killed by the test on purpose
}

// startChild runs bin with args in its own directory; cleanup stops it with
// SIGTERM (SIGKILL after stopWait) and prints its log tail if the test failed.
func startChild(t *testing.T, name, bin string, stopWait time.Duration, args ...string) *child {
	t.Helper()
	c := &child{t: t, name: name, out: procs.NewLogBuffer(childLogKeep), exited: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Dir = t.TempDir()
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	keep := "" // full log on failure, with MERIDIAN_BROWSER_ARTIFACTS
	if os.Getenv("MERIDIAN_BROWSER_ARTIFACTS") != "" {
		keep = filepath.Join(artifactDir(t), strings.ReplaceAll(name, " ", "-")+".log")
	}
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(stopWait):
				_ = c.cmd.Process.Kill()
				<-c.exited
				t.Logf("%s did not stop within %v of SIGTERM; killed", name, stopWait)
			}
		}
		if t.Failed() || os.Getenv("MERIDIAN_BROWSER_SHOW_LOGS") == "1" {
			t.Logf("%s output (last 80 lines):\n%s", name, tail(c.out.String(), 80))
		}
		if t.Failed() && keep != "" {
			if err := os.WriteFile(keep, []byte(c.out.String()), 0o644); err == nil {
				t.Logf("%s full output: %s", name, keep)
			}
		}
	})
	return c
}

// kill9 kills the process without any goodbye (SIGKILL) and waits for it.
func (c *child) kill9() {
	c.t.Helper()
	c.killed = true
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill -9 %s: %v", c.name, err)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s still running 10 s after SIGKILL", c.name)
	}
}

// signal sends sig to the process (SIGSTOP, SIGTERM, …), failing the test
// if it cannot be sent.
func (c *child) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("%v to %s: %v", sig, c.name, err)
	}
}

// stop stops the process (SIGSTOP: a frozen VM) until the test ends; it
// is continued then, before the harness stops it, as a stopped process
// does not act on SIGTERM.
func (c *child) stop() {
	c.t.Helper()
	c.signal(syscall.SIGSTOP)
	c.t.Cleanup(func() { _ = c.cmd.Process.Signal(syscall.SIGCONT) })
}

func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// edgeSpec describes one `meridian edge`.
type edgeSpec struct {
	ID, Region string
	// DrainTimeout is its --drain-timeout (default 2s: the cleanup's SIGTERM
	// does not wait for the browsers' grace periods).
	DrainTimeout string
}

type clusterEdge struct {
	edgeSpec
	URL  string
	proc *child
}

// cluster is a control node plus edges; it satisfies the devServer-style
// helpers through api (a devServer pointing at the control node).
type cluster struct {
	t       *testing.T
	URL     string // control node: API, /meet and /sdk
	control *child
	edges   map[string]*clusterEdge
	api     *devServer // call() against the control node
	key     string     // API key created through the admin API
	secret  string
}

func logLevel() string {
	if l := os.Getenv("MERIDIAN_BROWSER_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

func waitHTTP200(t *testing.T, what, u string, c *child, timeout time.Duration) {
	t.Helper()
	if err := waitHealthy(what, u, c, timeout); err != nil {
		t.Fatal(err)
	}
}

// waitHealthy waits until u answers 200, or says why not: the child exited
// (with its output) or the timeout passed.
func waitHealthy(what, u string, c *child, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if !c.running() {
			return fmt.Errorf("%s exited early: %v\n%s", c.name, c.err, tail(c.out.String(), 60))
		}
		if resp, err := hc.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (%s) not answering 200 after %v:\n%s", what, u, timeout, tail(c.out.String(), 60))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startCluster starts `meridian control` (region eu-west) and the edges,
// creates an API key and waits until the control plane offers every edge.
func startCluster(t *testing.T, edges ...edgeSpec) *cluster {
	t.Helper()
	bin := meridianBinary(t)
	cl := &cluster{t: t, edges: map[string]*clusterEdge{}}
	httpPort, raftPort := porttest.Port(t), porttest.Port(t)
	cl.URL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	cl.control = startChild(t, "control c1", bin, 10*time.Second, "control",
		"--id", "c1", "--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--raft", fmt.Sprintf("127.0.0.1:%d", raftPort),
		"--data", t.TempDir(), "--bootstrap", "--edge-token", clusterEdgeToken, "--admin-token", clusterAdminToken,
		"--region", "eu-west", "--rate-limit-key", "0", "--rate-limit-ip", "0", "--log-level", logLevel())
	waitHTTP200(t, "control node", cl.URL+"/healthz", cl.control, 45*time.Second)

	// An API key for this test (the tokens are signed with its secret).
	req, _ := http.NewRequest("POST", cl.URL+"/admin/v1/keys", strings.NewReader(`{"name":"t"}`))
	req.Header.Set("Authorization", "Bearer "+clusterAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("create API key: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var created struct {
		APIKey string `json:"apiKey"`
		Secret string `json:"secret"`
	}
	if resp.StatusCode/100 != 2 || json.Unmarshal(b, &created) != nil || created.APIKey == "" || created.Secret == "" {
		t.Fatalf("create API key: %d %s", resp.StatusCode, b)
	}
	cl.key, cl.secret = created.APIKey, created.Secret
	cl.api = &devServer{t: t, URL: cl.URL, out: cl.control.out, client: &http.Client{Timeout: 10 * time.Second}}

	// The edges start together, then each must answer.
	for _, e := range edges {
		edgeHTTP := porttest.Port(t)
		drain := e.DrainTimeout
		if drain == "" {
			drain = "2s"
		}
		ce := &clusterEdge{edgeSpec: e, URL: fmt.Sprintf("http://127.0.0.1:%d", edgeHTTP)}
		ce.proc = startChild(t, "edge "+e.ID, bin, 10*time.Second, "edge",
			"--id", e.ID, "--region", e.Region, "--http", fmt.Sprintf("127.0.0.1:%d", edgeHTTP), "--control", cl.URL,
			"--edge-token", clusterEdgeToken, "--loopback-candidates", "--turn-public-ip", "127.0.0.1",
			"--turn-udp", porttest.Addr(t), "--turn-tcp", "",
			"--gossip", porttest.Addr(t), "--allowed-origins", "*",
			"--drain-timeout", drain, "--insecure-cluster-links", "--data", t.TempDir(), "--log-level", logLevel())
		cl.edges[e.ID] = ce
	}
	for _, ce := range cl.edges {
		waitHTTP200(t, "edge "+ce.ID, ce.URL+"/healthz", ce.proc, 30*time.Second)
	}
	// On failure, what each live edge's SFU and cascade counted (where media
	// stopped). Registered after the processes: runs before they stop.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		hc := &http.Client{Timeout: 3 * time.Second}
		for _, e := range edges {
			ce := cl.edges[e.ID]
			if !ce.proc.running() {
				continue
			}
			resp, err := hc.Get(ce.URL + "/metrics")
			if err != nil {
				t.Logf("edge %s /metrics: %v", e.ID, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "meridian_cascade_") || strings.HasPrefix(l, "meridian_sfu_") {
					lines = append(lines, l)
				}
			}
			t.Logf("edge %s metrics:\n%s", e.ID, strings.Join(lines, "\n"))
		}
	})
	// Registered and offered: /v2/edges/nearest lists every edge.
	want := make([]string, 0, len(edges))
	for _, e := range edges {
		want = append(want, e.ID)
	}
	slices.Sort(want)
	poll(t, "the control plane to offer every edge", 30*time.Second, func() string {
		var near struct {
			Edges []struct {
				EdgeID string `json:"edgeId"`
			} `json:"edges"`
		}
		st, body := cl.api.call("GET", "/v2/edges/nearest?limit=100", cl.crawler(), nil, &near)
		if st != 200 {
			return fmt.Sprintf("GET /v2/edges/nearest: %d %s", st, body)
		}
		var got []string
		for _, e := range near.Edges {
			got = append(got, e.EdgeID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Sprintf("edges offered %v, want %v", got, want)
		}
		return ""
	})
	return cl
}

func (cl *cluster) mint(o tokenOpts) string {
	cl.t.Helper()
	o.key, o.secret = cl.key, cl.secret
	return mint(cl.t, o)
}

func (cl *cluster) crawler() string {
	return cl.mint(tokenOpts{roles: []string{auth.RoleCrawler}, perms: []string{auth.PermAllowJoin, auth.PermAllowMod}})
}

func (cl *cluster) rtcToken(room, pid string) string {
	return cl.mint(tokenOpts{roles: []string{auth.RoleRTC}, perms: []string{auth.PermAllowJoin}, room: room, partID: pid})
}

func (cl *cluster) createRoom() string {
	cl.t.Helper()
	var room struct {
		RoomID string `json:"roomId"`
	}
	if st, b := cl.api.call("POST", "/v2/rooms", cl.crawler(), map[string]any{}, &room); st != 200 || room.RoomID == "" {
		cl.t.Fatalf("create room: %d %s", st, b)
	}
	return room.RoomID
}

// meetURL is the control node's meeting page for room with a region hint.
func (cl *cluster) meetURL(room, token, name, region string) string {
	q := url.Values{"token": {token}, "name": {name}, "debug": {"1"}}
	if region != "" {
		q.Set("region", region)
	}
	return cl.URL + "/meet/" + room + "?" + q.Encode()
}

// auditHop mirrors GET /v2/sessions/{id}/audit's hops.
type auditHop struct {
	Kind       string `json:"kind"`
	EdgeID     string `json:"edgeId"`
	Region     string `json:"region"`
	PeerEdgeID string `json:"peerEdgeId"`
	PeerRegion string `json:"peerRegion"`
	Last       string `json:"last"`
}

func (cl *cluster) ongoingSession(room string) (string, error) {
	var resp struct {
		Data []sessionView `json:"data"`
	}
	st, b := cl.api.call("GET", "/v2/sessions?roomId="+room, cl.crawler(), nil, &resp)
	if st != 200 {
		return "", fmt.Errorf("GET /v2/sessions: %d %s", st, b)
	}
	for _, s := range resp.Data {
		if s.Status == "ongoing" {
			return s.ID, nil
		}
	}
	return "", fmt.Errorf("no ongoing session among %d", len(resp.Data))
}

func (cl *cluster) audit(sessionID string) ([]auditHop, []byte) {
	var resp struct {
		Hops []auditHop `json:"hops"`
	}
	st, b := cl.api.call("GET", "/v2/sessions/"+sessionID+"/audit", cl.crawler(), nil, &resp)
	if st != 200 {
		cl.t.Fatalf("GET audit: %d %s", st, b)
	}
	return resp.Hops, b
}

// compactJSON is b on one line (for logs).
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}
