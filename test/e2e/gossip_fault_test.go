package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/shared/wait"
	"github.com/meridian-video/meridian/test/netproxy"
	"github.com/meridian-video/meridian/test/procs"
)

// gossipFront stands between an edge's memberlist and its region: the
// edge advertises the front's port (--gossip-advertise), so every gossip
// packet and stream to it crosses the front, which the test can cut.
// memberlist answers a probe at the address the prober advertises, not at
// the packet's source, so one upstream socket per front is enough.
type gossipFront struct {
	tcp *netproxy.TCP
	udp *net.UDPConn
	up  *net.UDPConn
	cut atomic.Bool
	fwd atomic.Int64 // UDP packets forwarded
	wg  sync.WaitGroup
}

// newGossipFront listens on one port of 127.0.0.1 for TCP and UDP and
// forwards both to target (the edge's --gossip address).
func newGossipFront(t *testing.T, target string) *gossipFront {
	t.Helper()
	taddr, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		tcp := netproxy.New(t, "127.0.0.1", target)
		_, port, _ := net.SplitHostPort(tcp.Addr())
		p, _ := strconv.Atoi(port)
		udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue // the UDP port of the same number is taken: another one
		}
		up, err := net.DialUDP("udp4", nil, taddr)
		if err != nil {
			t.Fatal(err)
		}
		f := &gossipFront{tcp: tcp, udp: udp, up: up}
		f.wg.Add(1)
		go f.run()
		t.Cleanup(func() { _ = udp.Close(); _ = up.Close(); f.wg.Wait() })
		return f
	}
	t.Fatal("no port free for both TCP and UDP on 127.0.0.1")
	return nil
}

func (f *gossipFront) Addr() string { return f.tcp.Addr() }

func (f *gossipFront) run() {
	defer f.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, _, err := f.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if f.cut.Load() {
			continue
		}
		if _, err := f.up.Write(buf[:n]); err == nil {
			f.fwd.Add(1)
		}
	}
}

// Cut drops every gossip packet and stream to the edge until Heal.
func (f *gossipFront) Cut()  { f.cut.Store(true); f.tcp.Cut() }
func (f *gossipFront) Heal() { f.cut.Store(false); f.tcp.Heal() }

// gossipWorld is control processes plus two eu-west edge processes whose
// gossip goes through fronts.
type gossipWorld struct {
	cl     *procs.Cluster
	key    procs.APIKey
	edges  map[string]*procs.Edge
	fronts map[string]*gossipFront
	hc     *http.Client
}

func startGossipWorld(t *testing.T, controls int, ids ...string) *gossipWorld {
	t.Helper()
	w := &gossipWorld{edges: map[string]*procs.Edge{}, fronts: map[string]*gossipFront{}, hc: &http.Client{Timeout: 5 * time.Second}}
	w.cl = procs.StartCluster(t, procs.ClusterOptions{Nodes: controls})
	for _, id := range ids {
		gossipAddr := porttest.Addr(t)
		f := newGossipFront(t, gossipAddr)
		e := procs.StartEdge(t, procs.EdgeOptions{ID: id, Region: "eu-west", Controls: w.cl.URLs(), EdgeToken: w.cl.EdgeToken,
			Args: []string{"--data", t.TempDir(), "--gossip", gossipAddr, "--gossip-advertise", f.Addr()}})
		e.WaitHealthy(t, 30*time.Second)
		w.edges[id], w.fronts[id] = e, f
	}
	w.key = w.cl.NewAPIKey(t, w.cl.Nodes[0])
	return w
}

// gossipMembers reads meridian_gossip_members{state} from an edge.
func gossipMembers(e *procs.Edge) (map[string]int, error) {
	text, err := e.Metrics()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, `meridian_gossip_members{state="`)
		if !ok {
			continue
		}
		state, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, err
		}
		out[state] = int(v)
	}
	return out, nil
}

// waitPool waits until every edge sees want members in state.
func (w *gossipWorld) waitPool(t *testing.T, timeout time.Duration, state string, want int) {
	t.Helper()
	wait.Until(t, timeout, func() string {
		for id, e := range w.edges {
			m, err := gossipMembers(e)
			if err != nil {
				return err.Error()
			}
			if m[state] != want {
				return fmt.Sprintf("%s sees %v, want %s=%d", id, m, state, want)
			}
		}
		return ""
	})
}

func (w *gossipWorld) session(t *testing.T, c *procs.Control, room, pid string, avoid ...string) *signaltest.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := signaltest.StartSession(ctx, signaltest.SessionConfig{APIBase: c.URL, Token: w.key.RTC(t, pid), RoomID: room,
		ParticipantID: pid, Name: "N-" + pid, Region: "eu-west", AvoidEdges: avoid, Client: signaltest.Config{PingInterval: time.Second},
		Publish: &signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}, LostAfter: 3 * time.Second})
	if err != nil {
		t.Fatalf("session %s: %v", pid, err)
	}
	t.Cleanup(s.Close)
	return s
}

// rest calls the REST API of c with a crawler token.
func (w *gossipWorld) rest(t *testing.T, c *procs.Control, method, path string, body, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, c.URL+path, rd)
	req.Header.Set("Authorization", w.key.Crawler(t))
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func (w *gossipWorld) createRoom(t *testing.T) string {
	t.Helper()
	var room struct{ RoomID string }
	if st, b := w.rest(t, w.cl.Nodes[0], "POST", "/v2/rooms", map[string]any{}, &room); st != 200 {
		t.Fatalf("create room: %d %s", st, b)
	}
	return room.RoomID
}

// sessionPart is one participant of a session as GET /v2/sessions shows
// it: an interval per stay, the last one open (End nil) while it is in.
type sessionPart struct {
	ParticipantID string
	EdgeID        string
	Timelog       []struct {
		Start string
		End   *string
	}
}

// ongoing reads the participants of the room's ongoing session through
// the first control node ("" reason) or why it could not.
func (w *gossipWorld) ongoing(t *testing.T, room string) ([]sessionPart, string) {
	t.Helper()
	var l struct {
		Data []struct{ Participants []sessionPart }
	}
	st, b := w.rest(t, w.cl.Nodes[0], "GET", "/v2/sessions?roomId="+room+"&status=ongoing", nil, &l)
	if st != 200 || len(l.Data) != 1 {
		return nil, fmt.Sprintf("%d %s", st, b)
	}
	return l.Data[0].Participants, ""
}

// countLog counts lines of every control process's output that contain
// all of the parts.
func (w *gossipWorld) countLog(parts ...string) int {
	n := 0
	for _, c := range w.cl.Nodes {
		for _, line := range strings.Split(c.Log(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				n++
			}
		}
	}
	return n
}

// joinEdges asks the join API of c for participant pid in room and lists
// the edges offered (chosen one first).
func (w *gossipWorld) joinEdges(t *testing.T, c *procs.Control, room, pid string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ja, err := signaltest.AskJoin(ctx, w.hc, c.URL, w.key.RTC(t, pid), room, map[string]any{"participantId": pid, "region": "eu-west"})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ja.Edges {
		ids = append(ids, e.EdgeID)
	}
	return ids, nil
}

// TestGossipFaultKeepsEdgesUp: two edges of a region whose gossip is cut
// from each other, while both keep heartbeating to the control plane,
// each report the other dead. Neither is marked down: the participants of
// a meeting spread over both stay joined (one open interval each in the
// session), nobody is moved, media keeps flowing across the cascade, the
// control plane logs no "edge is down" and no second registration, and
// join answers still offer both edges. After the gossip heals, kill -9 of
// one edge takes it out of every control node's join answers within 6 s
// (issue 9: "a killed edge leaves join answers within ~5 s"; 1 s margin
// for the poll and a loaded machine).
func TestGossipFaultKeepsEdgesUp(t *testing.T) {
	w := startGossipWorld(t, 3, "paris-1", "paris-2")
	w.waitPool(t, 30*time.Second, "alive", 2)

	room := w.createRoom(t)
	alice := w.session(t, w.cl.Nodes[0], room, "alice")
	home := alice.EdgeID()
	bob := w.session(t, w.cl.Nodes[1], room, "bob", home)
	if bob.EdgeID() == home {
		t.Fatalf("bob avoided %s and still got it", home)
	}
	both := []*signaltest.Session{alice, bob}
	wait.Until(t, 30*time.Second, hearsSince(nil, both, both))
	regs := map[string]int{}
	for id := range w.edges {
		regs[id] = w.countLog("edge registered", "edge="+id)
		if regs[id] == 0 {
			t.Fatalf("no registration of %s in the control logs: the log check below could not see one", id)
		}
	}
	if n := w.countLog("edge is down"); n != 0 {
		t.Fatalf("an edge was marked down before the fault (%d)", n)
	}

	// The gossip-only fault.
	for _, f := range w.fronts {
		f.Cut()
	}
	cutAt := time.Now()
	w.waitPool(t, 20*time.Second, "dead", 1)
	t.Logf("gossip cut: each edge reports the other dead after %v", time.Since(cutAt).Round(100*time.Millisecond))
	// Hold the fault past DownAfter (5 s) twice over, with the heartbeats
	// carrying the dead reports all along.
	base := countsOf(both, both)
	hold := time.Now().Add(12 * time.Second)
	for i := 0; time.Now().Before(hold); i++ {
		for _, c := range w.cl.Nodes {
			ids, err := w.joinEdges(t, c, room, fmt.Sprintf("probe-%s-%d", c.ID, i))
			if err != nil {
				t.Fatalf("join through %s during the gossip fault: %v", c.ID, err)
			}
			if len(ids) != 2 {
				t.Fatalf("join through %s during the gossip fault offered %v, want both edges", c.ID, ids)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := w.countLog("edge is down"); n != 0 {
		t.Fatalf("a gossip-only fault marked %d edge(s) down:\n%s", n, w.cl.Nodes[0].Tail(40))
	}
	for id, n := range regs {
		if got := w.countLog("edge registered", "edge="+id); got != n {
			t.Fatalf("%s registered %d time(s) during the gossip fault (marked down, then back: flapping)", id, got-n)
		}
	}
	for _, s := range both {
		if r := s.Rejoins(); len(r) != 0 {
			t.Fatalf("%s moved during the gossip fault: %+v", s.Client().Joined().ParticipantID, r)
		}
	}
	parts, why := w.ongoing(t, room)
	if why != "" {
		t.Fatalf("ongoing session: %s", why)
	}
	for _, p := range parts {
		if p.ParticipantID != "alice" && p.ParticipantID != "bob" {
			continue // the join probes never connected
		}
		if len(p.Timelog) != 1 || p.Timelog[0].End != nil {
			t.Fatalf("%s's time in the session was cut by the gossip fault: %+v", p.ParticipantID, p.Timelog)
		}
	}
	wait.Until(t, 10*time.Second, hearsSince(base, both, both))
	for id, f := range w.fronts {
		if f.fwd.Load() == 0 {
			t.Fatalf("no gossip ever crossed %s's front", id)
		}
	}

	// Heal: the pool comes back whole.
	for _, f := range w.fronts {
		f.Heal()
	}
	w.waitPool(t, 30*time.Second, "alive", 2)

	// kill -9 of one edge: gone from every node's join answers within 6 s.
	victim, survivor := bob.EdgeID(), alice.EdgeID()
	probeRoom := w.createRoom(t)
	for _, c := range w.cl.Nodes {
		ids, err := w.joinEdges(t, c, probeRoom, "before-"+c.ID)
		if err != nil || len(ids) != 2 {
			t.Fatalf("join through %s before the kill: %v %v", c.ID, ids, err)
		}
	}
	killed := time.Now()
	w.edges[victim].Kill(t)
	gone := map[string]time.Duration{}
	for i := 0; len(gone) < len(w.cl.Nodes); i++ {
		for _, c := range w.cl.Nodes {
			if _, ok := gone[c.ID]; ok {
				continue
			}
			ids, err := w.joinEdges(t, c, probeRoom, fmt.Sprintf("after-%s-%d", c.ID, i))
			if err != nil {
				t.Fatalf("join through %s after the kill: %v (the survivor %s is up)", c.ID, err, survivor)
			}
			if !slices.Contains(ids, victim) {
				gone[c.ID] = time.Since(killed)
			}
		}
		if elapsed := time.Since(killed); len(gone) < len(w.cl.Nodes) && elapsed > 6*time.Second {
			t.Fatalf("%s was still offered in join answers %v after kill -9 (gone from %v)", victim, elapsed.Round(time.Millisecond), gone)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kill -9 %s: gone from join answers after %v", victim, gone)
}
