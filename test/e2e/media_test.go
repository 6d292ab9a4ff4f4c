package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/control/webhooks/raftoutbox"
	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/edge/turn"
	"github.com/meridian-video/meridian/shared/metrictest"
)

// startEdgeOnFreePort builds and starts an edge on a free HTTP port: the
// socket is bound first (port 0) and handed to the edge, so cfg can name
// the port in the public URL before anything else could take it.
func startEdgeOnFreePort(t *testing.T, cfg func(addr string) edgenode.Config) *edgenode.Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg(ln.Addr().String())
	c.HTTPListener = ln
	n, err := edgenode.New(c)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

// stack is a control node plus one real edge (SFU, signaling, TURN) over loopback.
type stack struct {
	c    *clustertest.Cluster
	edge *edgenode.Node
	reg  *prometheus.Registry
}

func startStack(t *testing.T, tweaks ...func(*edgenode.Config)) *stack {
	t.Helper()
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		wc := webhooks.DefaultConfig()
		wc.AllowHTTP = true
		wc.AllowedNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		wc.MinBackoff, wc.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), raftoutbox.Plugin(wc))
	}})
	sc := sfu.DefaultConfig()
	sc.IncludeLoopbackCandidate = true
	tc := turn.DefaultConfig()
	tc.UDPListen = netip.MustParseAddrPort("127.0.0.1:0")
	tc.TCPListen = netip.AddrPort{}
	tc.RelayAddress = netip.MustParseAddr("127.0.0.1")
	tc.AllowPeers = []string{"127.0.0.0/8"}
	var reg *prometheus.Registry
	n := startEdgeOnFreePort(t, func(addr string) edgenode.Config {
		reg = prometheus.NewRegistry()
		ec := edgenode.Config{Registry: reg, EdgeID: "edge-1", Region: "local", ControlURLs: []string{c.Node(0).URL()}, EdgeToken: edgeToken,
			PublicURL: "http://" + addr, AllowedOrigins: []string{"*"}, SFU: sc, EnableTURN: true, TURN: tc,
			StatsEvery: time.Second, HeartbeatEvery: 200 * time.Millisecond}
		for _, f := range tweaks {
			f(&ec)
		}
		return ec
	})
	t.Cleanup(func() { n.Close() })
	select {
	case <-n.Registered():
	case <-time.After(10 * time.Second):
		t.Fatal("edge did not register")
	}
	return &stack{c: c, edge: n, reg: reg}
}

type joinResp struct {
	ParticipantID string
	Edges         []struct{ SignalingURL, Ticket string }
}

// join goes through the public join API, then signaling, like a browser.
func (s *stack) join(t *testing.T, roomID, pid string, mod bool) *signaltest.Client {
	t.Helper()
	perms := []string{auth.PermAllowJoin}
	if mod {
		perms = append(perms, auth.PermAllowMod)
	}
	tok := s.c.Token(func(o *auth.MintOptions) {
		o.Roles = []string{auth.RoleRTC}
		o.Permissions = perms
		o.ParticipantID = pid
	})
	var jr joinResp
	r := s.c.Do(0, "POST", "/v2/rooms/"+roomID+"/join", tok, map[string]any{"name": "N-" + pid})
	r.JSON(t, &jr)
	if r.Status != 200 || len(jr.Edges) == 0 {
		t.Fatalf("join %s: %d %s", pid, r.Status, r.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := signaltest.Dial(ctx, signaltest.Config{URL: jr.Edges[0].SignalingURL, PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if _, _, err := cl.Join(ctx, jr.Edges[0].Ticket, "N-"+pid); err != nil {
		t.Fatalf("signal join %s: %v", pid, err)
	}
	if err := cl.Publish(ctx, signaltest.PublishOptions{Video: true, Audio: true, KeyframeInterval: time.Second}); err != nil {
		t.Fatalf("publish %s: %v", pid, err)
	}
	return cl
}

func receivedFrom(cl *signaltest.Client, from, kind string) (packets, bytes int) {
	for _, tr := range cl.Tracks() {
		if tr.ParticipantID == from && tr.Kind == kind {
			packets += tr.Packets
			bytes += tr.Bytes
		}
	}
	return
}

// TestMeetingThroughAPIAndEdge: two participants join through the REST join
// API and signaling, exchange audio and video through the SFU; the sessions
// API, stats and webhooks reflect the meeting; a REST kick disconnects one;
// when everyone leaves the session ends.
func TestMeetingThroughAPIAndEdge(t *testing.T) {
	s := startStack(t)
	recv := newReceiver(t)
	recv.accept.Store(true)
	var room struct{ RoomID string }
	s.c.Do(0, "POST", "/v2/rooms", s.c.Token(), map[string]any{"webhook": map[string]any{"endPoint": recv.srv.URL, "events": []string{"participant-*", "session-*"}}}).JSON(t, &room)

	a := s.join(t, room.RoomID, "alice", true)
	b := s.join(t, room.RoomID, "bob", false)
	signaltest.Eventually(t, 15*time.Second, func() string {
		for _, x := range []struct {
			cl   *signaltest.Client
			from string
		}{{a, "bob"}, {b, "alice"}} {
			for _, kind := range []string{"audio", "video"} {
				if p, _ := receivedFrom(x.cl, x.from, kind); p < 20 {
					return fmt.Sprintf("%s has %d %s packets from %s", x.cl.Joined().ParticipantID, p, kind, x.from)
				}
			}
		}
		return ""
	})

	// The sessions API shows both as active.
	var list struct {
		Data []struct {
			ID     string
			Status string
		}
	}
	signaltest.Eventually(t, 5*time.Second, func() string {
		s.c.Do(0, "GET", "/v2/sessions?roomId="+room.RoomID, s.c.Token(), nil).JSON(t, &list)
		if len(list.Data) != 1 || list.Data[0].Status != "ongoing" {
			return fmt.Sprintf("sessions: %+v", list.Data)
		}
		var active struct {
			Data []struct {
				Participants []struct{ ParticipantID string }
			}
		}
		s.c.Do(0, "GET", "/v2/sessions/"+list.Data[0].ID+"/participants/active", s.c.Token(), nil).JSON(t, &active)
		if len(active.Data) != 1 || len(active.Data[0].Participants) != 2 {
			return fmt.Sprintf("active participants: %+v", active.Data)
		}
		return ""
	})
	sessionID := list.Data[0].ID

	// Stats: what the API reports as alice's sent video bitrate matches what
	// bob actually received from her, within ±20 %.
	_, b0 := receivedFrom(b, "alice", "video")
	t0 := time.Now()
	time.Sleep(3 * time.Second)
	_, b1 := receivedFrom(b, "alice", "video")
	measured := float64(b1-b0) * 8 / time.Since(t0).Seconds()
	var pstats struct {
		Stats []struct {
			AverageSendVideoBitrate float64
			QualityScore            struct{ Audio, Video float64 }
		}
	}
	signaltest.Eventually(t, 10*time.Second, func() string {
		s.c.Do(0, "GET", "/v2/sessions/"+sessionID+"/participant/alice/stats", s.c.Token(), nil).JSON(t, &pstats)
		if len(pstats.Stats) < 2 {
			return fmt.Sprintf("%d stats samples", len(pstats.Stats))
		}
		return ""
	})
	last := pstats.Stats[len(pstats.Stats)-1]
	if ratio := last.AverageSendVideoBitrate / measured; ratio < 0.8 || ratio > 1.2 {
		t.Fatalf("reported send video bitrate %.0f vs measured %.0f bit/s (ratio %.2f)", last.AverageSendVideoBitrate, measured, ratio)
	}
	if last.QualityScore.Video < 3 {
		t.Fatalf("quality score on loopback = %+v", last.QualityScore)
	}
	var sstats struct{ Stats []map[string]any }
	s.c.Do(0, "GET", "/v2/sessions/"+sessionID+"/stats", s.c.Token(), nil).JSON(t, &sstats)
	if len(sstats.Stats) == 0 {
		t.Fatal("session stats empty")
	}

	// The edge's Prometheus metrics count what it forwarded.
	metrics := map[string]float64{}
	for _, name := range []string{"meridian_sfu_forwarded_packets_total", "meridian_sfu_participants", "meridian_sfu_tracks"} {
		metrics[name] = metrictest.Value(t, s.reg, name, nil)
	}
	if metrics["meridian_sfu_forwarded_packets_total"] < 100 || metrics["meridian_sfu_participants"] != 2 || metrics["meridian_sfu_tracks"] != 4 {
		t.Fatalf("sfu metrics: %v", metrics)
	}

	// A REST kick disconnects bob from the media plane.
	r := s.c.Do(0, "POST", "/v2/sessions/participants/remove", s.c.Token(), map[string]any{"roomId": room.RoomID, "participantId": "bob"})
	if r.Status != 200 {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	signaltest.Eventually(t, 5*time.Second, func() string {
		if !b.Closed() {
			return "bob still connected after removal"
		}
		return ""
	})
	if err := a.Leave(); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 10*time.Second, func() string {
		var ss struct{ Status string }
		s.c.Do(0, "GET", "/v2/sessions/"+sessionID, s.c.Token(), nil).JSON(t, &ss)
		if ss.Status != "ended" {
			return "session status " + ss.Status
		}
		return ""
	})
	signaltest.Eventually(t, 10*time.Second, func() string {
		counts := map[string]int{}
		for _, d := range recv.deliveries() {
			counts[d.typ]++
		}
		if counts["session-started"] != 1 || counts["participant-joined"] != 2 || counts["participant-left"] != 2 || counts["session-ended"] != 1 {
			return fmt.Sprintf("webhooks so far: %v", counts)
		}
		return ""
	})
}
