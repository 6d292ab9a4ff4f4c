package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/tlsutil"
	"github.com/meridian-video/meridian/shared/tlsutil/tlsutiltest"
)

// mtlsEdge starts an edge whose listener, control-plane calls and cascade
// legs use the cluster identity id. It does not wait for registration.
func mtlsEdge(t *testing.T, id, region string, controls []string, ident *tlsutil.Cluster) *edgenode.Node {
	t.Helper()
	sc := sfu.DefaultConfig()
	sc.IncludeLoopbackCandidate = true
	n := startEdgeOnFreePort(t, func(addr string) edgenode.Config {
		return edgenode.Config{EdgeID: id, Region: region, ControlURLs: controls, EdgeToken: edgeToken,
			PublicURL: "https://" + addr, AllowedOrigins: []string{"*"}, SFU: sc, Capacity: 100,
			StatsEvery: time.Second, HeartbeatEvery: 200 * time.Millisecond, Logger: quietLogger(), MTLS: ident,
			Cascade: func(c *cascade.Config) { c.IdleTimeout = 3 * time.Second; c.RedialMax = time.Second }}
	})
	t.Cleanup(func() { n.Close() })
	return n
}

// wssJoin asks the join API (https, no client certificate: a browser) for
// an edge and joins it over wss://, trusting the cluster CA. It returns
// the edge id and the joined snapshot; the socket stays open until the
// test ends.
func wssJoin(t *testing.T, ca *tlsutiltest.CA, apiBase, token, roomID, pid, region string) (string, *wire.Joined) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ja, err := signaltest.AskJoin(ctx, ca.Client(), apiBase, token, roomID, map[string]any{"participantId": pid, "name": pid, "region": region})
	if err != nil {
		t.Fatalf("join API for %s: %v", pid, err)
	}
	e := ja.Edges[0]
	if !strings.HasPrefix(e.SignalingURL, "wss://") {
		t.Fatalf("signaling URL %s: want wss://", e.SignalingURL)
	}
	d := fws.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	ws, resp, err := d.DialContext(ctx, e.SignalingURL, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", e.SignalingURL, err)
	}
	t.Cleanup(func() { ws.Close() })
	data, _ := json.Marshal(wire.Join{Ticket: e.Ticket, Name: pid})
	if err := ws.WriteJSON(wire.Envelope{Type: wire.TypeJoin, Data: data}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		var env wire.Envelope
		if err := ws.ReadJSON(&env); err != nil {
			t.Fatalf("%s on %s: %v", pid, e.EdgeID, err)
		}
		switch env.Type {
		case wire.TypeJoined:
			var j wire.Joined
			if err := json.Unmarshal(env.Data, &j); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Time{})
			go func() { // keep reading (pings, events) until the test closes the socket
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						return
					}
				}
			}()
			return e.EdgeID, &j
		case wire.TypeError, wire.TypeRemoved:
			t.Fatalf("%s refused by %s: %s", pid, e.EdgeID, env.Data)
		}
	}
}

// TestEdgesOverMutualTLS: three control nodes and two edges (two regions)
// whose every link is mutual TLS with one cluster CA. The edges register
// (edge → control, through any node), participants join over wss:// in
// both regions, the far edge links to the home edge over a wss:// cascade
// leg (edge → edge, certificates checked both ways, ticket and proofs as
// always), and the control plane hears the joins and the legs. An edge
// whose certificate comes from another CA is refused, an edge refuses a
// control plane whose certificate comes from another CA, and an edge's
// /internal/ routes need a client certificate from the CA.
func TestEdgesOverMutualTLS(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.MTLS = ca.Issue(fmt.Sprintf("c%d", i), tlsutil.RoleControl, "127.0.0.1").Cluster(0)
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		pc.HeartbeatEvery, pc.DownAfter, pc.RepairEvery = 200*time.Millisecond, 2*time.Second, 500*time.Millisecond
		cfg.Region = "eu-west"
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
	var controls []string
	for _, n := range c.Nodes() {
		controls = append(controls, n.URL())
	}
	paris := mtlsEdge(t, "paris-1", "eu-west", controls, ca.Issue("paris-1", tlsutil.RoleEdge, "127.0.0.1").Cluster(0))
	montreal := mtlsEdge(t, "montreal-1", "ca-east", controls[1:], ca.Issue("montreal-1", tlsutil.RoleEdge, "127.0.0.1").Cluster(0))
	for _, n := range []*edgenode.Node{paris, montreal} {
		select {
		case <-n.Registered():
		case <-time.After(10 * time.Second):
			t.Fatalf("edge %s did not register over mTLS", n.ID())
		}
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		for i := range c.Nodes() {
			for _, id := range []string{"paris-1", "montreal-1"} {
				up := false
				c.Node(i).Node().FSM().Read(func(st *state.Store) {
					if e, ok := st.Edge(id); ok {
						up = e.Up && strings.HasPrefix(e.InternalURL, "https://") && strings.HasPrefix(e.SignalURL, "wss://")
					}
				})
				if !up {
					return fmt.Sprintf("node%d does not see %s up at https/wss URLs", i, id)
				}
			}
		}
		return ""
	})

	req, _ := http.NewRequest("POST", c.Node(0).URL()+"/v2/rooms", strings.NewReader(`{}`))
	req.Header.Set("Authorization", c.Token())
	resp, err := ca.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var room struct{ RoomID string }
	err = json.NewDecoder(resp.Body).Decode(&room)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || room.RoomID == "" {
		t.Fatalf("create room: %d %v", resp.StatusCode, err)
	}
	rtc := func(pid string) string {
		return c.Token(func(o *auth.MintOptions) {
			o.Roles, o.Permissions, o.ParticipantID = []string{auth.RoleRTC}, []string{auth.PermAllowJoin}, pid
		})
	}
	aliceEdge, _ := wssJoin(t, ca, c.Node(1).URL(), rtc("alice"), room.RoomID, "alice", "eu-west")
	carolEdge, carol := wssJoin(t, ca, c.Node(2).URL(), rtc("carol"), room.RoomID, "carol", "ca-east")
	if aliceEdge != "paris-1" || carolEdge != "montreal-1" {
		t.Fatalf("alice on %s, carol on %s: want paris-1 and montreal-1", aliceEdge, carolEdge)
	}
	// Carol's edge linked with the home edge (wss:// cascade leg over mTLS)
	// before admitting her: her snapshot already lists alice.
	seen := false
	for _, p := range carol.Participants {
		seen = seen || p.ParticipantID == "alice"
	}
	if !seen {
		t.Fatalf("carol's snapshot lacks alice (no cascade leg?): %+v", carol.Participants)
	}
	// The control plane heard both joins (edge reports over mTLS); paris-1
	// serves the leg montreal-1 dialed (so the wss:// handshake, the relay
	// ticket and both identity proofs went through).
	clustertest.Eventually(t, 10*time.Second, func() string {
		var sess *state.Session
		c.Node(0).Node().FSM().Read(func(st *state.Store) {
			rm, ok := st.RoomByRoomID(room.RoomID)
			if !ok {
				return
			}
			for _, ss := range st.Sessions(state.SessionFilter{UserID: rm.UserID, RoomDocID: rm.ID}) {
				sess = ss
			}
		})
		if sess == nil || sess.ActiveCount() != 2 {
			return fmt.Sprintf("session %+v", sess)
		}
		in, out := false, false
		for _, li := range montreal.Cascade().Legs() {
			in = in || (li.PeerEdgeID == "paris-1" && li.Direction == "in")
		}
		for _, li := range paris.Cascade().Legs() {
			out = out || (li.PeerEdgeID == "montreal-1" && li.Direction == "out")
		}
		if !in || !out {
			return fmt.Sprintf("leg paris-1 → montreal-1: pulled %v, served %v", in, out)
		}
		return ""
	})

	// An edge's /internal/ routes: the edge token alone is not enough.
	body := strings.NewReader(`{"roomId":"x","epoch":1}`)
	req, _ = http.NewRequest("POST", paris.PublicURL()+"/internal/v1/rooms/peers", body)
	req.Header.Set("Authorization", "Bearer "+edgeToken)
	resp, err = ca.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("edge /internal/ without a client certificate: %d", resp.StatusCode)
	}
	// What the control plane's placement client presents (peer pushes) is accepted.
	control := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: c.Node(0).ClientTLS()}}
	req, _ = http.NewRequest("POST", paris.PublicURL()+"/internal/v1/rooms/peers", strings.NewReader(`{"roomId":"`+room.RoomID+`","epoch":0}`))
	req.Header.Set("Authorization", "Bearer "+edgeToken)
	if resp, err = control.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("edge /internal/ with the control node's certificate: %d", resp.StatusCode)
	}

	// An edge with a certificate from another CA never registers.
	rogueCA := tlsutiltest.NewCA(t)
	rogue := mtlsEdge(t, "rogue-1", "eu-west", controls, rogueCA.Issue("rogue-1", tlsutil.RoleEdge, "127.0.0.1").Cluster(0))
	select {
	case <-rogue.Registered():
		t.Fatal("an edge with a certificate from another CA registered")
	case <-time.After(1500 * time.Millisecond):
	}
	c.Node(0).Node().FSM().Read(func(st *state.Store) {
		if _, ok := st.Edge("rogue-1"); ok {
			t.Error("the rogue edge is in the registry")
		}
	})

	// An edge refuses a "control plane" whose certificate comes from
	// another CA: its requests never reach the handler.
	var reached atomic.Int32
	fake := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached.Add(1) }))
	fakePair, err := tls.LoadX509KeyPair(rogueCA.Issue("fake-control", "", "127.0.0.1").CertFile, rogueCA.Dir+"/fake-control.key")
	if err != nil {
		t.Fatal(err)
	}
	fake.TLS = &tls.Config{Certificates: []tls.Certificate{fakePair}}
	fake.StartTLS()
	t.Cleanup(fake.Close)
	fooled := mtlsEdge(t, "fooled-1", "eu-west", []string{fake.URL}, ca.Issue("fooled-1", tlsutil.RoleEdge, "127.0.0.1").Cluster(0))
	select {
	case <-fooled.Registered():
		t.Fatal("an edge registered with a control plane whose certificate is from another CA")
	case <-time.After(1500 * time.Millisecond):
	}
	if reached.Load() != 0 {
		t.Fatalf("the edge sent %d requests (with its token) to a server it should not trust", reached.Load())
	}
}
