package e2e

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/edge/agent"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ticket"
)

const edgeToken = "edge-token-for-tests"

func placementCluster(t *testing.T, n int, downAfter time.Duration, tune ...func(*placement.Config)) *clustertest.Cluster {
	return clustertest.New(t, n, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		pc.HeartbeatEvery = 100 * time.Millisecond
		pc.DownAfter = downAfter
		for _, f := range tune {
			f(&pc)
		}
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
}

type fakeEdge struct {
	*agent.Agent
	pub chan ed25519.PublicKey
}

func startAgent(t *testing.T, c *clustertest.Cluster, id, region string) *fakeEdge {
	t.Helper()
	return startAgentAt(t, c, id, region, "http://127.0.0.1:1")
}

// startAgentAt is startAgent for an edge whose internal API (what the
// control plane calls) is at internalURL.
func startAgentAt(t *testing.T, c *clustertest.Cluster, id, region, internalURL string, tweaks ...func(*agent.Config)) *fakeEdge {
	t.Helper()
	var urls []string
	for _, n := range c.Nodes() {
		if n != nil {
			urls = append(urls, n.URL())
		}
	}
	fe := &fakeEdge{pub: make(chan ed25519.PublicKey, 8)}
	cfg := agent.Config{ControlURLs: urls, EdgeToken: edgeToken, HeartbeatEvery: 100 * time.Millisecond,
		Register: edgeapi.Register{EdgeID: id, Region: region, SignalURL: "ws://127.0.0.1:1/rtc", InternalURL: internalURL,
			STUNURLs: []string{"stun:127.0.0.1:3478"}, TURNURLs: []string{"turn:127.0.0.1:3478?transport=udp"}, Capacity: 100},
		OnRegistered: func(r edgeapi.RegisterReply) {
			select {
			case fe.pub <- ed25519.PublicKey(r.TicketPublicKey):
			default:
			}
		}}
	for _, f := range tweaks {
		f(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fe.Agent = a
	a.Start()
	t.Cleanup(func() { a.Close() })
	select {
	case <-a.Registered():
	case <-time.After(10 * time.Second):
		t.Fatal("edge did not register")
	}
	return fe
}

func session(t *testing.T, c *clustertest.Cluster, node int, roomID string) *state.Session {
	var out *state.Session
	c.Node(node).Node().FSM().Read(func(s *state.Store) {
		r, ok := s.RoomByRoomID(roomID)
		if !ok {
			return
		}
		for _, ss := range s.Sessions(state.SessionFilter{UserID: r.UserID, RoomDocID: r.ID}) {
			out = ss
			return
		}
	})
	return out
}

// TestJoinFlowAndSessionLifecycle: a join returns a ticket for the registered
// edge that verifies with the key the edge received; the edge's reports make
// the replicated session start and end, and a failover in between loses nothing.
func TestJoinFlowAndSessionLifecycle(t *testing.T) {
	c := placementCluster(t, 3, 800*time.Millisecond)
	edge := startAgent(t, c, "edge-a", "local")
	pub := <-edge.pub

	// The room subscribes a webhook so that every lifecycle event lands in
	// the replicated outbox. No dispatcher plugin runs in this cluster, so
	// nothing is sent (the .invalid name could not resolve anyway): the
	// outbox is read at the end to prove the failover lost and duplicated
	// no event.
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"maxParticipants": 2,
		"webhook": map[string]any{"endPoint": "https://hooks.invalid/lifecycle", "events": []string{"*"}}}).JSON(t, &room)
	rtc := c.Token(func(o *auth.MintOptions) {
		o.Roles = []string{auth.RoleRTC}
		o.Permissions = []string{auth.PermAllowJoin}
	})
	var join struct {
		ParticipantID string
		Edges         []struct {
			EdgeID, Region, SignalingURL, Ticket string
			IceServers                           []struct {
				URLs                 []string
				Username, Credential string
			}
		}
	}
	r := c.Do(1, "POST", "/v2/rooms/"+room.RoomID+"/join", rtc, map[string]any{"name": "Alice", "participantId": "alice"})
	r.JSON(t, &join)
	if r.Status != 200 || len(join.Edges) != 1 || join.Edges[0].EdgeID != "edge-a" {
		t.Fatalf("join: %d %s", r.Status, r.Body)
	}
	claims, err := ticket.Verify(pub, join.Edges[0].Ticket, "edge-a", time.Now())
	if err != nil || claims.RoomID != room.RoomID || claims.ParticipantID != "alice" || claims.Permissions.Moderate || !claims.Permissions.Publish {
		t.Fatalf("ticket: %+v %v", claims, err)
	}
	if claims.ExpiresAt-claims.IssuedAt > 60 {
		t.Fatalf("ticket lives %ds", claims.ExpiresAt-claims.IssuedAt)
	}
	if len(join.Edges[0].IceServers) != 2 || join.Edges[0].IceServers[1].Username == "" {
		t.Fatalf("ice servers: %+v", join.Edges[0].IceServers)
	}
	// A crawler-only token cannot join; a token for another room cannot either.
	if r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", c.Token(), nil); r.Status != 403 {
		t.Fatalf("crawler join: %d", r.Status)
	}
	other := c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC}; o.RoomID = "zzzz-zzzz-zzzz" })
	if r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", other, nil); r.Status != 403 {
		t.Fatalf("other-room token join: %d %s", r.Status, r.Body)
	}

	edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "alice", Name: "Alice"})
	edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "bob", Name: "Bob"})
	// Wait on the node the next join goes through (node 0).
	clustertest.Eventually(t, 5*time.Second, func() string {
		ss := session(t, c, 0, room.RoomID)
		if ss == nil || ss.ActiveCount() != 2 {
			return "session with 2 participants not replicated to node0"
		}
		return ""
	})
	// Room is full now.
	if r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", rtc, map[string]any{"participantId": "carol"}); r.Status != 403 {
		t.Fatalf("join into full room: %d %s", r.Status, r.Body)
	}
	// Heartbeats reach the leader even when the edge talks to a follower:
	// well past DownAfter the edge is still up.
	time.Sleep(1500 * time.Millisecond)
	c.Node(c.Leader()).Node().FSM().Read(func(s *state.Store) {
		if e, _ := s.Edge("edge-a"); e == nil || !e.Up {
			t.Fatal("a heartbeating edge was marked down")
		}
	})
	old := c.KillLeader()
	edge.ParticipantLeft(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "alice"})
	edge.ParticipantLeft(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "bob"})
	alive := (old + 1) % 3
	clustertest.Eventually(t, 10*time.Second, func() string {
		ss := session(t, c, alive, room.RoomID)
		if ss == nil || ss.End == nil {
			return fmt.Sprintf("session not ended (pending events %d)", edge.Pending())
		}
		return ""
	})
	// Every report the edge made, before and after the leader died, became
	// exactly one event, in the order the edge made them.
	got := queuedEvents(t, c, alive, room.RoomID)
	want := []string{"session-started", "participant-joined alice", "participant-joined bob",
		"participant-left alice", "participant-left bob", "session-ended"}
	if !slices.Equal(got, want) {
		t.Fatalf("queued events:\n got %q\nwant %q", got, want)
	}
}

// queuedEvents lists the webhook deliveries queued on node, in order, as
// "<event type> <participant id>" (no id for session events); every one
// must be roomID's, with a body that names its type and room.
func queuedEvents(t *testing.T, c *clustertest.Cluster, node int, roomID string) []string {
	t.Helper()
	var got []string
	c.Node(node).Node().FSM().Read(func(s *state.Store) {
		for _, d := range s.PendingDeliveries(0) {
			var env struct {
				WebhookType string `json:"webhookType"`
				Data        struct {
					MeetingID     string `json:"meetingId"`
					ParticipantID string `json:"participantId"`
				} `json:"data"`
			}
			if err := json.Unmarshal(d.Body, &env); err != nil {
				t.Fatalf("delivery %s body %s: %v", d.ID, d.Body, err)
			}
			if env.WebhookType != d.EventType || env.Data.MeetingID != roomID || d.RoomID != roomID {
				t.Fatalf("delivery %s: type %q, body %s", d.ID, d.EventType, d.Body)
			}
			got = append(got, strings.TrimSuffix(d.EventType+" "+env.Data.ParticipantID, " "))
		}
	})
	return got
}

// TestDeadEdgeClosesItsParticipants: when an edge stops heartbeating the
// leader marks it down, and once its rejoin grace is over its participants
// leave (at the moment it was marked down) and the session ends; joins
// then fail with a clear error instead of pointing at the dead edge.
func TestDeadEdgeClosesItsParticipants(t *testing.T) {
	const grace = time.Second
	c := placementCluster(t, 1, 700*time.Millisecond, func(pc *placement.Config) { pc.RejoinGrace = grace })
	edge := startAgent(t, c, "edge-b", "local")
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), nil).JSON(t, &room)
	edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "p1", Name: "P1"})
	clustertest.Eventually(t, 5*time.Second, func() string {
		if ss := session(t, c, 0, room.RoomID); ss == nil || ss.ActiveCount() != 1 {
			return "no active session"
		}
		return ""
	})
	edge.Close()
	clustertest.Eventually(t, 10*time.Second, func() string {
		ss := session(t, c, 0, room.RoomID)
		if ss.End == nil {
			return "session still ongoing after its edge died"
		}
		if ss.EndReason != "last-participant-left" {
			return "end reason " + ss.EndReason
		}
		return ""
	})
	var down time.Time
	c.Node(0).Node().FSM().Read(func(s *state.Store) {
		if e, ok := s.Edge("edge-b"); ok && !e.Up {
			down = e.ChangedAt
		}
	})
	ss := session(t, c, 0, room.RoomID)
	if left := ss.Participants[0].Timelog[0].End; down.IsZero() || !left.Equal(down) || !ss.End.Equal(down) {
		t.Fatalf("edge down at %v; participant left at %v, session ended at %v: both should be when the edge was marked down", down, left, ss.End)
	}
	rtc := c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC} })
	r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", rtc, nil)
	if r.Status != 503 {
		t.Fatalf("join with no edge: %d %s", r.Status, r.Body)
	}
}

// TestDeadEdgesParticipantsMayMoveWithinTheGrace: a participant of a dead
// edge that joins another edge after the edge was marked down, but within
// the rejoin grace, only moved: no participant-left or second
// participant-joined, the session goes on. One that never comes back
// leaves when the grace is over, at the moment its edge was marked down,
// even when the leader that marked it down died within the grace; the
// session ends when its last participant left, not before.
func TestDeadEdgesParticipantsMayMoveWithinTheGrace(t *testing.T) {
	const grace = 4 * time.Second
	c := placementCluster(t, 3, 700*time.Millisecond, func(pc *placement.Config) { pc.RejoinGrace = grace })
	dead := startAgent(t, c, "edge-dead", "local")
	alive := startAgent(t, c, "edge-alive", "local")
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{
		"webhook": map[string]any{"endPoint": "https://hooks.invalid/moves", "events": []string{"*"}}}).JSON(t, &room)
	for _, p := range []string{"mover", "gone"} {
		dead.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: p, Name: p})
	}
	alive.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "stayer", Name: "stayer"})
	// A second room: its participant on the dead edge never comes back, the
	// other one leaves within the grace.
	var room2 struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), nil).JSON(t, &room2)
	dead.ParticipantJoined(edgeapi.Event{RoomID: room2.RoomID, ParticipantID: "lone", Name: "lone"})
	alive.ParticipantJoined(edgeapi.Event{RoomID: room2.RoomID, ParticipantID: "early", Name: "early"})
	clustertest.Eventually(t, 5*time.Second, func() string {
		if ss := session(t, c, c.Leader(), room.RoomID); ss == nil || ss.ActiveCount() != 3 {
			return "session with 3 participants not on the leader"
		}
		if ss := session(t, c, c.Leader(), room2.RoomID); ss == nil || ss.ActiveCount() != 2 {
			return "second room's session with 2 participants not on the leader"
		}
		return ""
	})

	dead.Close()
	var down time.Time
	clustertest.Eventually(t, 10*time.Second, func() string {
		c.Node(c.Leader()).Node().FSM().Read(func(s *state.Store) {
			if e, ok := s.Edge("edge-dead"); ok && !e.Up {
				down = e.ChangedAt
			}
		})
		if down.IsZero() {
			return "edge-dead not marked down"
		}
		return ""
	})
	// Marked down, and its participants still in: the grace runs.
	if ss := session(t, c, c.Leader(), room.RoomID); ss.End != nil || ss.ActiveCount() != 3 {
		t.Fatalf("right after the edge was marked down (%v ago): %d active, end %v; want all 3 until the grace is over",
			time.Since(down), ss.ActiveCount(), ss.End)
	}
	alive.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "mover", Name: "mover"})
	alive.ParticipantLeft(edgeapi.Event{RoomID: room2.RoomID, ParticipantID: "early"})
	old := c.KillLeader()
	next := (old + 1) % 3

	clustertest.Eventually(t, 20*time.Second, func() string {
		ss := session(t, c, next, room.RoomID)
		if ss == nil {
			return "no session"
		}
		for _, p := range ss.Participants {
			if p.ParticipantID == "gone" && p.Active() {
				return "gone is still in the session"
			}
		}
		return ""
	})
	ss := session(t, c, next, room.RoomID)
	if ss.End != nil || ss.ActiveCount() != 2 {
		t.Fatalf("after the grace: session end %v, %d active; want it ongoing with mover and stayer", ss.End, ss.ActiveCount())
	}
	for _, p := range ss.Participants {
		switch p.ParticipantID {
		case "mover":
			if len(p.Timelog) != 1 || !p.Active() || p.EdgeID != "edge-alive" {
				t.Fatalf("mover: timelog %+v on %s; want one open interval on edge-alive", p.Timelog, p.EdgeID)
			}
		case "gone":
			if len(p.Timelog) != 1 || !p.Timelog[0].End.Equal(down) {
				t.Fatalf("gone: timelog %+v; want one interval ending when its edge was marked down (%v)", p.Timelog, down)
			}
		}
	}

	// The second room's session ended when its dead edge's participant was
	// closed, but at its last leave (early's), not at lone's.
	clustertest.Eventually(t, 10*time.Second, func() string {
		if ss := session(t, c, next, room2.RoomID); ss == nil || ss.End == nil {
			return "second room's session not ended"
		}
		return ""
	})
	ss2 := session(t, c, next, room2.RoomID)
	for _, p := range ss2.Participants {
		if p.ParticipantID == "lone" && !p.Timelog[0].End.Equal(down) {
			t.Fatalf("lone left at %v; its edge was marked down at %v", p.Timelog[0].End, down)
		}
		if p.ParticipantID == "early" && (!p.Timelog[0].End.After(down) || !ss2.End.Equal(*p.Timelog[0].End)) {
			t.Fatalf("second room: early left at %v, after its room's dead edge went down (%v); the session ended at %v, want early's leave",
				p.Timelog[0].End, down, ss2.End)
		}
	}

	// The others leave; the session ends at the last leave, later than gone's.
	for _, p := range []string{"mover", "stayer"} {
		alive.ParticipantLeft(edgeapi.Event{RoomID: room.RoomID, ParticipantID: p})
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		if ss := session(t, c, next, room.RoomID); ss.End == nil {
			return "session not ended"
		}
		return ""
	})
	ss = session(t, c, next, room.RoomID)
	if !ss.End.After(down) || !ss.End.Equal(*ss.EmptySince()) {
		t.Fatalf("session ended at %v; its last participant left at %v, its dead edge went down at %v", ss.End, ss.EmptySince(), down)
	}
	got := queuedEvents(t, c, next, room.RoomID)
	slices.Sort(got)
	want := []string{"participant-joined gone", "participant-joined mover", "participant-joined stayer",
		"participant-left gone", "participant-left mover", "participant-left stayer", "session-ended", "session-started"}
	if !slices.Equal(got, want) {
		t.Fatalf("webhook events (sorted):\n got %q\nwant %q", got, want)
	}
}

// TestPinnedRoomNeverFallsBack: a room pinned to eu never lands on a ca edge.
func TestPinnedRoomNeverFallsBack(t *testing.T) {
	c := placementCluster(t, 1, 10*time.Second)
	startAgent(t, c, "edge-ca", "ca-east")
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"pin": map[string]any{"jurisdictions": []string{"eu"}}}).JSON(t, &room)
	rtc := c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC} })
	r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", rtc, nil)
	if r.Status != 503 {
		t.Fatalf("pinned join with only a ca edge: %d %s", r.Status, r.Body)
	}
	startAgent(t, c, "edge-eu", "eu-west")
	var join struct{ Edges []struct{ EdgeID string } }
	r = c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", rtc, nil)
	r.JSON(t, &join)
	if r.Status != 200 || len(join.Edges) != 1 || join.Edges[0].EdgeID != "edge-eu" {
		t.Fatalf("pinned join: %d %s", r.Status, r.Body)
	}
}

// TestFollowerPlacesOnAnEdgeThatReportsElsewhere: a follower that once
// heard an edge (the edge reported to it before its own control node
// changed) but not lately must not refuse that edge while the leader,
// which gets every heartbeat, keeps it up: it answered every join 503 "no
// media edge is available" while the edge served other nodes' joiners.
func TestFollowerPlacesOnAnEdgeThatReportsElsewhere(t *testing.T) {
	const downAfter = 700 * time.Millisecond
	c := placementCluster(t, 3, downAfter)
	c.WaitReady()
	leader := c.Leader()
	follower := c.Followers()[0]
	startAgentAt(t, c, "edge-x", "local", "http://127.0.0.1:1", func(cfg *agent.Config) {
		cfg.ControlURLs = []string{c.Node(leader).URL()} // it reports to the leader only
	})
	// Once, long ago, it reported to the follower.
	if r := clustertestDoEdge(t, c.Node(follower).URL()+"/internal/v1/edges/heartbeat", edgeapi.Heartbeat{EdgeID: "edge-x"}); r.Status != 200 {
		t.Fatalf("heartbeat to the follower: %d %s", r.Status, r.Body)
	}
	time.Sleep(2 * downAfter)
	var room struct{ RoomID string }
	c.Do(follower, "POST", "/v2/rooms", c.Token(), nil).JSON(t, &room)
	rtc := c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC} })
	clustertest.Eventually(t, 5*time.Second, func() string {
		r := c.Do(follower, "POST", "/v2/rooms/"+room.RoomID+"/join", rtc, nil)
		var ja struct{ Edges []struct{ EdgeID string } }
		r.JSON(t, &ja)
		if r.Status != 200 || len(ja.Edges) == 0 || ja.Edges[0].EdgeID != "edge-x" {
			return fmt.Sprintf("join through the follower: %d %s", r.Status, r.Body)
		}
		return ""
	})
	// The leader, which hears it, places there too.
	if r := c.Do(leader, "POST", "/v2/rooms/"+room.RoomID+"/join", rtc, nil); r.Status != 200 {
		t.Fatalf("join through the leader: %d %s", r.Status, r.Body)
	}
}
