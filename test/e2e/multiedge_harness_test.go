package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/control/webhooks/raftoutbox"
	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/gossip"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/edge/turn"
)

// edgeSpec describes one edge of a multi-edge deployment.
type edgeSpec struct {
	id, region string
	capacity   int
}

// multi is a control cluster plus edges in several regions, all in-process
// over loopback, with gossip between the edges of each region.
type multi struct {
	t     *testing.T
	c     *clustertest.Cluster
	mu    sync.Mutex
	edges map[string]*edgenode.Node
	specs map[string]edgeSpec
	seeds map[string][]string // region -> gossip addresses
	regs  map[string]*prometheus.Registry
	recv  *receiver
	opts  multiOptions
}

// multiOptions adds parts to a multi-edge deployment.
type multiOptions struct {
	// controlPlugins are added to every control node.
	controlPlugins func() []server.Plugin
	// edgeEgress configures egress on an edge (nil: egress off).
	edgeEgress func(t *testing.T, s edgeSpec) edgenode.EgressConfig
	// placement adjusts the control nodes' placement configuration.
	placement func(*placement.Config)
	// cascade adjusts every edge's cascade configuration.
	cascade func(*cascade.Config)
	// internalURL, given an edge's id and own URL, says where the control
	// plane and other edges are told to reach it (a proxy the test can cut).
	internalURL func(id, url string) string
}

func quietLogger() *slog.Logger {
	if os.Getenv("MERIDIAN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startMulti(t *testing.T, controls int, specs ...edgeSpec) *multi {
	t.Helper()
	return startMultiWith(t, controls, multiOptions{}, specs...)
}

func startMultiWith(t *testing.T, controls int, opts multiOptions, specs ...edgeSpec) *multi {
	t.Helper()
	m := &multi{t: t, edges: map[string]*edgenode.Node{}, specs: map[string]edgeSpec{}, seeds: map[string][]string{}, regs: map[string]*prometheus.Registry{}, opts: opts}
	m.recv = newReceiver(t)
	m.recv.accept.Store(true)
	m.c = clustertest.New(t, controls, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		pc.HeartbeatEvery, pc.DownAfter, pc.RepairEvery = 200*time.Millisecond, 2*time.Second, 500*time.Millisecond
		if opts.placement != nil {
			opts.placement(&pc)
		}
		wc := webhooks.DefaultConfig()
		wc.AllowHTTP = true
		wc.AllowedNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		wc.MinBackoff, wc.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
		cfg.Region = "eu-west"
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), raftoutbox.Plugin(wc))
		if opts.controlPlugins != nil {
			cfg.Plugins = append(cfg.Plugins, opts.controlPlugins()...)
		}
	}})
	for _, s := range specs {
		m.startEdge(s)
	}
	for _, s := range specs {
		m.waitEdgeUp(s.id)
	}
	return m
}

func (m *multi) controlURLs() []string {
	var out []string
	for _, n := range m.c.Nodes() {
		if n != nil {
			out = append(out, n.URL())
		}
	}
	return out
}

// startEdge starts (or restarts) an edge.
func (m *multi) startEdge(s edgeSpec) *edgenode.Node {
	return m.startEdgeVia(s, m.controlURLs())
}

// startEdgeVia starts an edge that reaches the control plane at urls.
func (m *multi) startEdgeVia(s edgeSpec, urls []string) *edgenode.Node {
	m.t.Helper()
	sc := sfu.DefaultConfig()
	sc.IncludeLoopbackCandidate = true
	tc := turn.DefaultConfig()
	tc.UDPListen = netip.MustParseAddrPort("127.0.0.1:0")
	tc.TCPListen = netip.AddrPort{}
	tc.RelayAddress = netip.MustParseAddr("127.0.0.1")
	tc.AllowPeers = []string{"127.0.0.0/8"}
	gc := gossip.DefaultConfig()
	gc.BindAddr, gc.BindPort, gc.Timers = "127.0.0.1", 0, gossip.TimersLocal
	m.mu.Lock()
	gc.Seeds = append([]string(nil), m.seeds[s.region]...)
	m.mu.Unlock()
	capacity := s.capacity
	if capacity == 0 {
		capacity = 100
	}
	var ec edgenode.EgressConfig
	if m.opts.edgeEgress != nil {
		ec = m.opts.edgeEgress(m.t, s)
	}
	var reg *prometheus.Registry
	n := startEdgeOnFreePort(m.t, func(addr string) edgenode.Config {
		reg = prometheus.NewRegistry()
		internal := ""
		if m.opts.internalURL != nil {
			internal = m.opts.internalURL(s.id, "http://"+addr)
		}
		return edgenode.Config{Registry: reg, EdgeID: s.id, Egress: ec, Region: s.region, ControlURLs: urls, EdgeToken: edgeToken, InternalURL: internal,
			PublicURL: "http://" + addr, AllowedOrigins: []string{"*"}, SFU: sc, EnableTURN: true, TURN: tc, Capacity: capacity,
			StatsEvery: time.Second, HeartbeatEvery: 200 * time.Millisecond, GossipEnabled: true, Gossip: gc, Logger: quietLogger(),
			DrainTimeout: 20 * time.Second,
			Cascade: func(c *cascade.Config) {
				c.IdleTimeout = 3 * time.Second
				c.RedialMax = time.Second
				if m.opts.cascade != nil {
					m.opts.cascade(c)
				}
			}}
	})
	m.t.Cleanup(func() { n.Close() })
	m.mu.Lock()
	m.edges[s.id], m.specs[s.id], m.regs[s.id] = n, s, reg
	m.seeds[s.region] = append(m.seeds[s.region], n.Gossip().LocalAddr())
	m.mu.Unlock()
	select {
	case <-n.Registered():
	case <-time.After(10 * time.Second):
		m.t.Fatalf("edge %s did not register", s.id)
	}
	return n
}

func (m *multi) edge(id string) *edgenode.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.edges[id]
}

// edgeState reads an edge's replicated record through control node i.
func (m *multi) edgeUp(i int, id string) (up, known bool) {
	n := m.c.Node(i)
	if n == nil {
		return false, false
	}
	n.Node().FSM().Read(func(st *state.Store) {
		if ed, ok := st.Edge(id); ok {
			known, up = true, ed.Up
		}
	})
	return up, known
}

// placement reads a room's placement on control node i (nil: none).
func (m *multi) placement(i int, roomID string) *state.Placement {
	var p *state.Placement
	m.c.Node(i).Node().FSM().Read(func(st *state.Store) { p, _ = st.Placement(roomID) })
	return p
}

// waitEdgeUp waits until every running control node sees the edge up.
func (m *multi) waitEdgeUp(id string) {
	m.t.Helper()
	clustertest.Eventually(m.t, 15*time.Second, func() string {
		for i, n := range m.c.Nodes() {
			if n == nil {
				continue
			}
			if up, _ := m.edgeUp(i, id); !up {
				return fmt.Sprintf("node%d does not see edge %s up", i, id)
			}
		}
		return ""
	})
}

// room creates a room (with extra create-room fields) through node 0.
func (m *multi) room(fields map[string]any) string {
	m.t.Helper()
	if fields == nil {
		fields = map[string]any{}
	}
	var room struct{ RoomID string }
	r := m.c.Do(0, "POST", "/v2/rooms", m.c.Token(), fields)
	if r.Status != 200 {
		m.t.Fatalf("create room: %d %s", r.Status, r.Body)
	}
	r.JSON(m.t, &room)
	return room.RoomID
}

func (m *multi) rtcToken(pid string) string {
	return m.c.Token(func(o *auth.MintOptions) {
		o.Roles = []string{auth.RoleRTC}
		o.Permissions = []string{auth.PermAllowJoin, auth.PermAllowMod}
		o.ParticipantID = pid
	})
}

// session joins a participant through control node `via` with a region
// hint, publishing audio and video, and follows the room across edges.
func (m *multi) session(via int, roomID, pid, region string) *signaltest.Session {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := signaltest.StartSession(ctx, signaltest.SessionConfig{APIBase: m.c.Node(via).URL(), Token: m.rtcToken(pid), RoomID: roomID,
		ParticipantID: pid, Name: "N-" + pid, Region: region, Client: signaltest.Config{PingInterval: time.Second},
		Publish: &signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}, LostAfter: 2 * time.Second})
	if err != nil {
		m.t.Fatalf("session %s: %v", pid, err)
	}
	m.t.Cleanup(s.Close)
	return s
}

// mediaCounts is what each receiver got from each sender so far.
type mediaCounts map[string][2]int

func countsOf(receivers, senders []*signaltest.Session) mediaCounts {
	out := mediaCounts{}
	for _, r := range receivers {
		for _, s := range senders {
			if r == s {
				continue
			}
			pid := s.Client().Joined().ParticipantID
			v, _ := receivedFrom(r.Client(), pid, "video")
			a, _ := receivedFrom(r.Client(), pid, "audio")
			out[r.Client().Joined().ParticipantID+"<"+pid] = [2]int{v, a}
		}
	}
	return out
}

// hearsSince reports "" once every receiver got at least 10 more audio and
// 5 more video packets from every sender than in base (nil base: from 0).
func hearsSince(base mediaCounts, receivers, senders []*signaltest.Session) func() string {
	return func() string {
		now := countsOf(receivers, senders)
		for k, v := range now {
			b := base[k]
			if v[0] < b[0]+5 || v[1] < b[1]+10 {
				return fmt.Sprintf("%s: video %d→%d, audio %d→%d", k, b[0], v[0], b[1], v[1])
			}
		}
		return ""
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sessionAvoiding is session with edges to avoid on the first join.
func (m *multi) sessionAvoiding(via int, roomID, pid, region string, avoid ...string) *signaltest.Session {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := signaltest.StartSession(ctx, signaltest.SessionConfig{APIBase: m.c.Node(via).URL(), Token: m.rtcToken(pid), RoomID: roomID,
		ParticipantID: pid, Name: "N-" + pid, Region: region, Client: signaltest.Config{PingInterval: time.Second}, AvoidEdges: avoid,
		Publish: &signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}, LostAfter: 2 * time.Second})
	if err != nil {
		m.t.Fatalf("session %s: %v", pid, err)
	}
	m.t.Cleanup(s.Close)
	return s
}
