package multiregion

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/testneed"
	"github.com/meridian-video/meridian/shared/wait"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/test/netproxy"
	"github.com/meridian-video/meridian/test/procs"
)

func TestMain(m *testing.M) { os.Exit(procs.Main(m)) }

// world is the deployment: control nodes on the host, edges inside one
// network namespace, each edge's media port fronted by a WAN relay on the
// host side of the veth.
type world struct {
	t      *testing.T
	ns     *procs.NetNS
	cl     *procs.Cluster
	key    procs.APIKey
	wan    *wan
	edges  map[string]*procs.Edge
	order  []string             // edge ids in start order
	probes map[string]*probeNet // by participant
	// ctl are each edge's ways to the control nodes (one proxy per node),
	// so that an edge can be cut off from the control plane alone.
	ctl map[string][]*netproxy.TCP
}

type edgeSpec struct{ id, region string }

// needNetNS skips (or, with MERIDIAN_REQUIRE_NETNS=1, fails) when network
// namespaces are not available. They are needed because an edge's media
// socket (--udp-port) binds the wildcard address: in the host's namespace
// it would receive every packet sent to any local address and port, so no
// relay could stand between it and its peers.
func needNetNS(t *testing.T) {
	if err := procs.NetNSAvailable(); err != nil {
		testneed.Missing(t, "NETNS", err.Error())
	}
}

func startWorld(t *testing.T, oneWay time.Duration, controls int, specs ...edgeSpec) *world {
	t.Helper()
	w := &world{t: t, wan: newWAN(oneWay), edges: map[string]*procs.Edge{}, probes: map[string]*probeNet{},
		ctl: map[string][]*netproxy.TCP{}}
	w.ns = procs.NewNetNS(t)
	w.cl = procs.StartCluster(t, procs.ClusterOptions{Nodes: controls, Host: w.ns.HostIP, Region: "eu-west"})
	w.key = w.cl.NewAPIKey(t, w.cl.Nodes[0])
	// The first edge of each region registers before the second, so the
	// second gets it as a gossip seed (seeds are only handed out at
	// registration, and only for edges already up).
	var first, second []edgeSpec
	seen := map[string]bool{}
	for _, s := range specs {
		if seen[s.region] {
			second = append(second, s)
		} else {
			first = append(first, s)
		}
		seen[s.region] = true
	}
	for _, batch := range [][]edgeSpec{first, second} {
		for _, s := range batch {
			w.startEdge(s)
		}
		for _, s := range batch {
			w.edges[s.id].WaitHealthy(t, 30*time.Second)
		}
	}
	// Each region's gossip pool is formed.
	count := map[string]int{}
	for _, s := range specs {
		count[s.region]++
	}
	for _, s := range specs {
		e := w.edges[s.id]
		eventually(t, 15*time.Second, func() string {
			m, err := e.Metrics()
			if err != nil {
				return err.Error()
			}
			if v, _ := metric(m, "meridian_gossip_members", `state="alive"`); int(v) != count[s.region] {
				return fmt.Sprintf("%s sees %v alive gossip members, want %d", s.id, v, count[s.region])
			}
			return ""
		})
	}
	return w
}

// Each edge gets one media port for its clients (--udp-port, the
// production setting) and legPorts ports for its cascade legs
// (--relay-port-min/max); a relay fronts every one of them.
const legPorts = 16

func (w *world) startEdge(s edgeSpec) {
	var controls []string
	for _, c := range w.cl.Nodes {
		p := netproxy.New(w.t, w.ns.HostIP, strings.TrimPrefix(c.URL, "http://"))
		w.ctl[s.id] = append(w.ctl[s.id], p)
		controls = append(controls, "http://"+p.Addr())
	}
	lo, hi := w.wan.frontEdge(w.t, node{id: s.id, region: s.region}, w.ns.HostIP, w.ns.NSIP, 1+legPorts)
	w.edges[s.id] = procs.StartEdge(w.t, procs.EdgeOptions{ID: s.id, Region: s.region, Controls: controls, EdgeToken: w.cl.EdgeToken,
		NetNS: w.ns, NATIP: w.ns.HostIP, MediaPort: lo, RelayPortMin: lo + 1, RelayPortMax: hi, DrainTimeout: 20 * time.Second})
	w.order = append(w.order, s.id)
}

// checkNoCrash fails the test if a process exited without being asked to.
func (w *world) checkNoCrash() {
	w.t.Helper()
	for _, c := range w.cl.Nodes {
		if err := c.Unexpected(); err != nil {
			w.t.Error(err)
		}
	}
	for _, id := range w.order {
		if err := w.edges[id].Unexpected(); err != nil {
			w.t.Error(err)
		}
	}
}

// logCascadeMetrics logs the cascade and SFU metrics of the running edges.
func (w *world) logCascadeMetrics() {
	for _, id := range w.order {
		e := w.edges[id]
		if done, _ := e.Exited(); done {
			continue
		}
		m, err := e.Metrics()
		if err != nil {
			w.t.Logf("%s metrics: %v", id, err)
			continue
		}
		var lines []string
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "meridian_cascade_") || strings.HasPrefix(l, "meridian_sfu_") {
				lines = append(lines, l)
			}
		}
		w.t.Logf("%s metrics:\n%s", id, strings.Join(lines, "\n"))
	}
}

// apiFront gives participants one API address (http://api) backed by every
// control node, preferred one first, the next when a node does not answer:
// what a load balancer or several DNS records do in front of a real
// cluster.
type apiFront struct {
	nodes []string // host:port, in order of preference
	rt    http.RoundTripper
}

func (w *world) apiClient(prefer int) *http.Client {
	var nodes []string
	for i := range w.cl.Nodes {
		u := w.cl.Nodes[(prefer+i)%len(w.cl.Nodes)].URL
		nodes = append(nodes, strings.TrimPrefix(u, "http://"))
	}
	tr := &http.Transport{DialContext: (&net.Dialer{Timeout: time.Second}).DialContext, ResponseHeaderTimeout: 5 * time.Second}
	return &http.Client{Timeout: 15 * time.Second, Transport: &apiFront{nodes: nodes, rt: tr}}
}

func (f *apiFront) RoundTrip(req *http.Request) (*http.Response, error) {
	var last error
	for _, n := range f.nodes {
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = n, n
		if req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = b
		}
		resp, err := f.rt.RoundTrip(r)
		if err == nil {
			return resp, nil
		}
		last = err
	}
	return nil, last
}

// session joins through the API front (with a probeNet as its network) (preferring control node prefer)
// with a region hint, publishes audio and video and follows the room.
func (w *world) session(room, pid, region string, prefer int) *signaltest.Session {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pn := newProbeNet()
	w.probes[pid] = pn
	s, err := signaltest.StartSession(ctx, signaltest.SessionConfig{APIBase: "http://api", HTTPClient: w.apiClient(prefer),
		Token: w.key.RTC(w.t, pid), RoomID: room, ParticipantID: pid, Name: "N-" + pid, Region: region,
		Client:    signaltest.Config{PingInterval: time.Second, Net: pn},
		Publish:   &signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second},
		LostAfter: 3 * time.Second})
	if err != nil {
		w.t.Fatalf("session %s: %v", pid, err)
	}
	w.t.Cleanup(s.Close)
	return s
}

// do calls the REST API of control node c with the crawler token.
func (w *world) do(c *procs.Control, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", w.key.Crawler(w.t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// createRoom creates a room through node c.
func (w *world) createRoom(c *procs.Control) (string, error) {
	st, b, err := w.do(c, http.MethodPost, "/v2/rooms", map[string]any{})
	if err != nil {
		return "", err
	}
	var room struct{ RoomID string }
	if st != 200 || json.Unmarshal(b, &room) != nil || room.RoomID == "" {
		return "", fmt.Errorf("create room through %s: %d %s", c.ID, st, b)
	}
	return room.RoomID, nil
}

// nearest lists the edge ids GET /v2/edges/nearest offers through node c.
func (w *world) nearest(c *procs.Control, region string) ([]string, error) {
	st, b, err := w.do(c, http.MethodGet, "/v2/edges/nearest?region="+region, nil)
	if err != nil {
		return nil, err
	}
	if st != 200 {
		return nil, fmt.Errorf("nearest through %s: %d %s", c.ID, st, b)
	}
	var n struct{ Edges []struct{ EdgeID string } }
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range n.Edges {
		ids = append(ids, e.EdgeID)
	}
	return ids, nil
}

// probeJoin creates a fresh room and joins it through node c (both are
// Raft writes: they need a leader).
func (w *world) probeJoin(c *procs.Control, pid, region string) error {
	room, err := w.createRoom(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = signaltest.AskJoin(ctx, &http.Client{Timeout: 5 * time.Second}, c.URL, w.key.RTC(w.t, pid), room,
		map[string]any{"participantId": pid, "region": region})
	return err
}

// cascadeRTT reads meridian_cascade_rtt_seconds{peer} on an edge.
func (w *world) cascadeRTT(edge, peer string) (time.Duration, bool) {
	m, err := w.edges[edge].Metrics()
	if err != nil {
		return 0, false
	}
	v, ok := metric(m, "meridian_cascade_rtt_seconds", `peer="`+peer+`"`)
	return time.Duration(v * float64(time.Second)), ok
}

// metric finds the first sample of name whose labels contain label.
func metric(text, name, label string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if label != "" && !strings.Contains(line, label) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// meter samples, every 50 ms, how many packets each participant received
// from each other one, per kind, summed over the clients a session went
// through (a rejoin starts a new client at zero). It remembers when each
// count last grew, to find gaps.
type meter struct {
	mu       sync.Mutex
	sessions map[string]*signaltest.Session
	flows    map[flowKey]*flowState
	stop     chan struct{}
	done     chan struct{}
}

type flowKey struct{ to, from, kind string }

type flowState struct {
	client     *signaltest.Client
	last       int
	total      int
	lastGrowth time.Time
	maxGap     time.Duration
}

func newMeter(t *testing.T, sessions map[string]*signaltest.Session) *meter {
	m := &meter{sessions: sessions, flows: map[flowKey]*flowState{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tk.C:
				m.sample()
			}
		}
	}()
	t.Cleanup(func() { close(m.stop); <-m.done })
	return m
}

func (m *meter) sample() {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for to, s := range m.sessions {
		c := s.Client()
		got := map[[2]string]int{}
		for _, tr := range c.Tracks() {
			got[[2]string{tr.ParticipantID, tr.Kind}] += tr.Packets
		}
		for from := range m.sessions {
			if from == to {
				continue
			}
			for _, kind := range []string{"audio", "video"} {
				k := flowKey{to, from, kind}
				f := m.flows[k]
				if f == nil {
					f = &flowState{lastGrowth: now}
					m.flows[k] = f
				}
				n := got[[2]string{from, kind}]
				if f.client != c {
					f.client, f.last = c, 0
				}
				if n > f.last {
					f.total += n - f.last
					f.last = n
					f.maxGap = max(f.maxGap, now.Sub(f.lastGrowth))
					f.lastGrowth = now
				}
			}
		}
	}
}

// snapshot is the totals so far.
func (m *meter) snapshot() map[flowKey]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[flowKey]int{}
	for k, f := range m.flows {
		out[k] = f.total
	}
	return out
}

// resetGaps starts gap measurement afresh (now counts as the last growth).
func (m *meter) resetGaps() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for _, f := range m.flows {
		f.lastGrowth, f.maxGap = now, 0
	}
}

// worstGap is the longest time any flow between the given participants
// went without growing since resetGaps (ongoing gaps count).
func (m *meter) worstGap(pids []string) (flowKey, time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var wk flowKey
	var worst time.Duration
	for k, f := range m.flows {
		if !slices.Contains(pids, k.to) || !slices.Contains(pids, k.from) {
			continue
		}
		g := max(f.maxGap, time.Since(f.lastGrowth))
		if g > worst {
			wk, worst = k, g
		}
	}
	return wk, worst
}

// hears reports "" once every listed receiver got at least 10 audio and 5
// video packets more than in base from every listed sender.
func (m *meter) hears(base map[flowKey]int, receivers, senders []string) string {
	now := m.snapshot()
	for _, to := range receivers {
		for _, from := range senders {
			if to == from {
				continue
			}
			for kind, need := range map[string]int{"audio": 10, "video": 5} {
				k := flowKey{to, from, kind}
				if got := now[k] - base[k]; got < need {
					return fmt.Sprintf("%s got %d new %s packets from %s", to, got, kind, from)
				}
			}
		}
	}
	return ""
}

// hearsOnCurrent is hears for the receivers' current clients only: each
// got at least 10 audio and 5 video packets from every sender since it
// connected (a participant that moved counts only on its new edge).
func (m *meter) hearsOnCurrent(receivers, senders []string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, to := range receivers {
		cur := m.sessions[to].Client()
		for _, from := range senders {
			if to == from {
				continue
			}
			for kind, need := range map[string]int{"audio": 10, "video": 5} {
				f := m.flows[flowKey{to, from, kind}]
				if f == nil || f.client != cur || f.last < need {
					got := 0
					if f != nil && f.client == cur {
						got = f.last
					}
					return fmt.Sprintf("%s (current client) got %d %s packets from %s", to, got, kind, from)
				}
			}
		}
	}
	return ""
}

// eventually polls cond every 50 ms until it returns "" or fails the test
// after timeout with the last reason; it returns how long it took.
func eventually(t *testing.T, timeout time.Duration, cond func() string) time.Duration {
	t.Helper()
	return wait.Until(t, timeout, cond)
}
