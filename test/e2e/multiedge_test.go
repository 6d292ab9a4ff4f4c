package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// TestRoomSpansRegions: participants near two regions meet in one room.
// Those in the same region share the home edge; the far one gets an edge
// near it which the room spreads to; media crosses the cascade; the
// sessions API and the audit show the edges, regions and legs.
func TestRoomSpansRegions(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "paris-2", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"})
	// The room's webhook goes to a real receiver: the audit must name the
	// control node (and its region) its deliveries were sent from.
	room := m.room(map[string]any{"webhook": map[string]any{"endPoint": m.recv.srv.URL + "/hook", "events": []string{"participant-joined"}}})
	start := time.Now()
	alice := m.session(0, room, "alice", "eu-west")
	bob := m.session(0, room, "bob", "eu-west")
	carol := m.session(0, room, "carol", "ca-east")
	home := alice.EdgeID()
	if home != "paris-1" && home != "paris-2" {
		t.Fatalf("alice (eu-west) placed on %s", home)
	}
	if bob.EdgeID() != home {
		t.Fatalf("bob (eu-west) placed on %s, alice's home edge is %s: one region, one edge", bob.EdgeID(), home)
	}
	if carol.EdgeID() != "montreal-1" {
		t.Fatalf("carol (ca-east) placed on %s, want montreal-1", carol.EdgeID())
	}
	all := []*signaltest.Session{alice, bob, carol}
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, all, all))
	t.Logf("everyone hears everyone %v after the first join", time.Since(start).Round(time.Millisecond))

	p := m.placement(0, room)
	if p == nil || p.Home != home || !slices.Equal(p.EdgeIDs(), sorted(home, "montreal-1")) {
		t.Fatalf("placement %+v: want home %s and edges {%s, montreal-1}", p, home, home)
	}
	// Carol is the room's first participant on montreal-1: her edge links
	// with the home edge before admitting her, so her `joined` already
	// lists the participants on the other edge.
	for _, pid := range []string{"alice", "bob"} {
		if !inSnapshot(carol.Client(), pid) {
			t.Fatalf("carol's joined snapshot lacks %s: %+v", pid, carol.Client().Joined().Participants)
		}
	}

	// Sessions API: all three active, each on its edge; the audit lists the
	// edges, their regions and the cascade legs; stats show the legs.
	var sessions struct {
		Data []struct {
			ID           string
			Participants []struct{ ParticipantID string }
		}
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		m.c.Do(0, "GET", "/v2/sessions?roomId="+room, m.c.Token(), nil).JSON(t, &sessions)
		if len(sessions.Data) != 1 || len(sessions.Data[0].Participants) != 3 {
			return fmt.Sprintf("sessions %+v", sessions.Data)
		}
		return ""
	})
	sid := sessions.Data[0].ID
	var audit struct {
		Compliant bool
		Hops      []struct {
			Kind, EdgeID, Region, PeerEdgeID, PeerRegion, NodeID string
			Count                                                int
		}
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		r := m.c.Do(0, "GET", "/v2/sessions/"+sid+"/audit", m.c.Token(), nil)
		r.JSON(t, &audit)
		kinds := map[string]bool{}
		for _, h := range audit.Hops {
			kinds[h.Kind+":"+h.EdgeID+">"+h.PeerEdgeID] = true
			if h.Kind == "webhook" && h.Count >= 3 {
				kinds["webhook:"+h.NodeID+"@"+h.Region] = true
			}
		}
		// Three participant-joined deliveries, sent by the one control node.
		for _, want := range []string{"edge:" + home + ">", "edge:montreal-1>", "cascade:" + home + ">montreal-1", "cascade:montreal-1>" + home, "webhook:node0@eu-west"} {
			if !kinds[want] {
				return fmt.Sprintf("audit lacks %s: %s", want, r.Body)
			}
		}
		return ""
	})
	if !audit.Compliant {
		t.Fatalf("an unpinned room's audit is not compliant: %+v", audit)
	}
	var stats struct {
		CascadeLegs []struct {
			EdgeID, PeerEdgeID, Direction string
			Bitrate                       float64
			Tracks                        int
		}
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		r := m.c.Do(0, "GET", "/v2/sessions/"+sid+"/stats", m.c.Token(), nil)
		r.JSON(t, &stats)
		for _, l := range stats.CascadeLegs {
			// Alice and Bob publish audio+video on the home edge: 4 tracks
			// go to montreal once each.
			if l.EdgeID == home && l.PeerEdgeID == "montreal-1" && l.Direction == "out" && l.Bitrate > 0 && l.Tracks == 4 {
				return ""
			}
		}
		return fmt.Sprintf("no leg %s→montreal-1 with 4 tracks in %s", home, r.Body)
	})
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func contains(e wire.Envelope, s string) bool { return strings.Contains(string(e.Data), `"`+s+`"`) }

func inSnapshot(c *signaltest.Client, pid string) bool {
	j := c.Joined()
	if j == nil {
		return false
	}
	for _, p := range j.Participants {
		if p.ParticipantID == pid {
			return true
		}
	}
	return false
}

type joinAnswer struct {
	ParticipantID string
	Edges         []struct {
		EdgeID, Region, SignalingURL, Ticket string
	}
}

// join calls the join API through node i; it returns the status and the
// answer.
func (m *multi) join(i int, roomID, pid string, body map[string]any) (int, joinAnswer, string) {
	if body == nil {
		body = map[string]any{}
	}
	body["participantId"] = pid
	var ja joinAnswer
	r := clustertest.Do(m.t, m.c.Node(i).URL(), "POST", "/v2/rooms/"+roomID+"/join", m.rtcToken(pid), body)
	if r.Status == 200 {
		r.JSON(m.t, &ja)
	}
	return r.Status, ja, string(r.Body)
}

// TestConcurrentFirstJoins: joins of a fresh room race through three
// control nodes. Whatever the interleaving, the room ends up with one
// placement that every answered edge belongs to: same-region joiners share
// the home edge, and far joiners' edges are recorded too.
func TestConcurrentFirstJoins(t *testing.T) {
	m := startMulti(t, 3, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "paris-2", region: "eu-west"},
		edgeSpec{id: "montreal-1", region: "ca-east"})
	for round := 0; round < 3; round++ {
		room := m.room(nil)
		type res struct {
			region, edge string
			status       int
			body         string
		}
		out := make(chan res, 12)
		for i := 0; i < 12; i++ {
			region := "eu-west"
			if i%4 == 3 {
				region = "ca-east"
			}
			go func() {
				st, ja, body := m.join(i%3, room, fmt.Sprintf("p%d", i), map[string]any{"region": region})
				r := res{region: region, status: st, body: body}
				if st == 200 {
					r.edge = ja.Edges[0].EdgeID
				}
				out <- r
			}()
		}
		euEdges, answered := map[string]bool{}, map[string]bool{}
		for i := 0; i < 12; i++ {
			r := <-out
			if r.status != 200 {
				t.Fatalf("round %d: join (%s) answered %d %s", round, r.region, r.status, r.body)
			}
			answered[r.edge] = true
			if r.region == "eu-west" {
				euEdges[r.edge] = true
			}
		}
		if len(euEdges) != 1 {
			t.Fatalf("round %d: eu-west joiners were sent to %v: a room must have one edge per region unless it is full", round, euEdges)
		}
		// Every node agrees on a placement that includes every edge handed out.
		for i := 0; i < 3; i++ {
			clustertest.Eventually(t, 5*time.Second, func() string {
				p := m.placement(i, room)
				if p == nil {
					return fmt.Sprintf("node%d has no placement", i)
				}
				for e := range answered {
					if !p.Has(e) {
						return fmt.Sprintf("node%d: placement %v lacks answered edge %s", i, p.EdgeIDs(), e)
					}
				}
				if len(p.Edges) != len(answered) {
					return fmt.Sprintf("node%d: placement %v has edges nobody was sent to (answered %v)", i, p.EdgeIDs(), answered)
				}
				return ""
			})
		}
	}
}

// TestJoinsAcrossLeaderChange: joins keep coming through every node while
// the leader is killed; every join that was answered names an edge the
// room's placement (on the surviving nodes) includes, and joins work again
// soon after the election.
func TestJoinsAcrossLeaderChange(t *testing.T) {
	m := startMulti(t, 3, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(nil)
	leader := m.c.Leader()
	stop := make(chan struct{})
	type res struct {
		edge   string
		status int    // 0: no answer (the node was being stopped)
		bad    string // a 200 answer without an edge
	}
	results := make(chan res, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			node := i % 3
			if m.c.Nodes()[node] == nil {
				continue
			}
			region := []string{"eu-west", "ca-east"}[i%2]
			// The node may be stopped between the check above and the
			// request: no answer counts as a refused join (status 0).
			r, err := clustertest.TryDo(m.c.Nodes()[node].URL(), "POST", "/v2/rooms/"+room+"/join", m.rtcToken(fmt.Sprintf("x%d", i)),
				map[string]any{"participantId": fmt.Sprintf("x%d", i), "region": region})
			var rr res
			if err == nil {
				rr.status = r.Status
			}
			var ja joinAnswer
			if rr.status == 200 {
				if json.Unmarshal(r.Body, &ja) == nil && len(ja.Edges) > 0 {
					rr.edge = ja.Edges[0].EdgeID
				} else {
					rr.bad = string(r.Body)
				}
			}
			results <- rr
		}
	}()
	time.Sleep(300 * time.Millisecond)
	killedAt := time.Now()
	m.c.Stop(leader)
	newLeader := m.c.Leader()
	t.Logf("new leader node%d after %v", newLeader, time.Since(killedAt).Round(time.Millisecond))
	// Joins work again within about 5 s of the kill.
	clustertest.Eventually(t, 5*time.Second, func() string {
		if st, _, body := m.join(newLeader, room, "after", map[string]any{"region": "eu-west"}); st != 200 {
			return fmt.Sprintf("join after the election: %d %s", st, body)
		}
		return ""
	})
	t.Logf("joins work again %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	close(results)
	answered := map[string]bool{}
	ok, failed := 0, 0
	for r := range results {
		switch {
		case r.bad != "":
			t.Errorf("a join answered 200 without an edge: %s", r.bad)
		case r.status == 200:
			ok++
			answered[r.edge] = true
		default:
			failed++
		}
	}
	t.Logf("%d joins answered, %d refused during the change", ok, failed)
	for i, n := range m.c.Nodes() {
		if n == nil {
			continue
		}
		if err := n.Node().Barrier(ctxFor(t)); err != nil {
			t.Fatal(err)
		}
		p := m.placement(i, room)
		for e := range answered {
			if p == nil || !p.Has(e) {
				t.Fatalf("node%d: an answered join named %s, which the room's placement %v lacks", i, e, p)
			}
		}
	}
}

// TestFullEdgeSpreadsTheRoom: when the home edge is full, the next joiner of
// the same region goes to another edge of the region, which joins the room:
// everyone still sees everyone.
func TestFullEdgeSpreadsTheRoom(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west", capacity: 1}, edgeSpec{id: "paris-2", region: "eu-west", capacity: 1})
	room := m.room(nil)
	alice := m.session(0, room, "alice", "eu-west")
	// The control plane learns the home edge's load from its heartbeats.
	clustertest.Eventually(t, 5*time.Second, func() string {
		st, ja, body := m.join(0, room, "probe", map[string]any{"region": "eu-west"})
		if st != 200 {
			return body
		}
		if ja.Edges[0].EdgeID == alice.EdgeID() {
			return "the full home edge is still offered"
		}
		return ""
	})
	bob := m.session(0, room, "bob", "eu-west")
	if bob.EdgeID() == alice.EdgeID() {
		t.Fatalf("bob joined the full edge %s", bob.EdgeID())
	}
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, []*signaltest.Session{alice, bob}, []*signaltest.Session{alice, bob}))
	if p := m.placement(0, room); p == nil || len(p.Edges) != 2 {
		t.Fatalf("placement %+v: want both edges", p)
	}
	// Both full: the room has nowhere to grow and says so.
	clustertest.Eventually(t, 5*time.Second, func() string {
		st, _, body := m.join(0, room, "carol", map[string]any{"region": "eu-west"})
		if st != 503 {
			return fmt.Sprintf("join into a room whose edges are full: %d %s", st, body)
		}
		return ""
	})
}

// TestGeoFenceAndPinsAreEnforced: a VideoSDK geoFence maps to a
// jurisdiction; an API key's pin applies on top; a joiner elsewhere still
// gets an allowed edge; with every allowed edge down the join fails with a
// clear 503 and never falls back.
func TestGeoFenceAndPinsAreEnforced(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "frankfurt-1", region: "eu-central"},
		edgeSpec{id: "ashburn-1", region: "us-east"})
	room := m.room(map[string]any{"geoFence": "eu001"})
	for _, region := range []string{"us-east", "eu-central", "ap-south"} {
		st, ja, body := m.join(0, room, "p-"+region, map[string]any{"region": region})
		if st != 200 {
			t.Fatalf("join from %s: %d %s", region, st, body)
		}
		for _, e := range ja.Edges {
			if e.Region != "eu-west" && e.Region != "eu-central" {
				t.Fatalf("geoFence eu001 room offered %s in %s to a joiner from %s", e.EdgeID, e.Region, region)
			}
		}
	}
	// Bad hints are the client's error.
	if st, _, body := m.join(0, room, "x", map[string]any{"region": "atlantis"}); st != 400 || !strings.Contains(body, "region") {
		t.Fatalf("unknown region hint: %d %s", st, body)
	}
	if st, _, body := m.join(0, room, "x", map[string]any{"lat": 91, "lon": 0}); st != 400 || !strings.Contains(body, "lat") {
		t.Fatalf("bad coordinates: %d %s", st, body)
	}
	// An unknown geoFence code is refused at creation.
	if r := m.c.Do(0, "POST", "/v2/rooms", m.c.Token(), map[string]any{"geoFence": "mars001"}); r.Status != 400 || !strings.Contains(string(r.Body), "geoFence") {
		t.Fatalf("unknown geoFence: %d %s", r.Status, r.Body)
	}
	// Every allowed edge goes away: 503, never the US edge.
	m.edge("paris-1").Crash()
	m.edge("frankfurt-1").Crash()
	clustertest.Eventually(t, 15*time.Second, func() string {
		st, ja, body := m.join(0, room, "late", map[string]any{"region": "us-east"})
		if st == 200 {
			for _, e := range ja.Edges {
				if e.Region == "us-east" {
					t.Fatalf("pinned room fell back to %s", e.EdgeID)
				}
			}
			return "still offered an eu edge that is down"
		}
		if st != 503 || !strings.Contains(body, "will not fall back") {
			return fmt.Sprintf("%d %s", st, body)
		}
		return ""
	})
}

// TestNearestEdges: GET /v2/edges/nearest ranks usable edges by distance
// from a region or coordinates hint (or the default region), honours the
// key's pin, takes rtc tokens, and rejects bad input with 400.
func TestNearestEdges(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"},
		edgeSpec{id: "sanjose-1", region: "us-west"})
	type nearest struct {
		Location struct{ Source, Region string }
		Edges    []struct {
			EdgeID, Region string
			DistanceKm     *float64
		}
	}
	get := func(q, tok string) (int, nearest, string) {
		var n nearest
		r := m.c.Do(0, "GET", "/v2/edges/nearest"+q, tok, nil)
		if r.Status == 200 {
			r.JSON(t, &n)
		}
		return r.Status, n, string(r.Body)
	}
	order := func(n nearest) []string {
		var ids []string
		for _, e := range n.Edges {
			ids = append(ids, e.EdgeID)
		}
		return ids
	}
	rtc := m.rtcToken("someone")
	cases := []struct {
		q    string
		want []string
	}{
		{"?region=eu-central", []string{"paris-1", "montreal-1", "sanjose-1"}},
		{"?region=us-east", []string{"montreal-1", "sanjose-1", "paris-1"}},
		{"?lat=37.77&lon=-122.42", []string{"sanjose-1", "montreal-1", "paris-1"}}, // San Francisco
		{"?lat=48.1&lon=11.6&limit=1", []string{"paris-1"}},                        // Munich
	}
	for _, tc := range cases {
		st, n, body := get(tc.q, rtc)
		if st != 200 || !slices.Equal(order(n), tc.want) {
			t.Fatalf("%s: %d %v (%s), want %v", tc.q, st, order(n), body, tc.want)
		}
		if n.Edges[0].DistanceKm == nil {
			t.Fatalf("%s: no distance: %s", tc.q, body)
		}
	}
	if st, n, body := get("", rtc); st != 200 || n.Location.Source != "default" || len(n.Edges) != 3 {
		t.Fatalf("no hint: %d %s", st, body)
	}
	for _, q := range []string{"?region=atlantis", "?lat=10", "?lat=x&lon=1", "?lat=1&lon=500", "?limit=0", "?limit=x"} {
		if st, _, body := get(q, rtc); st != 400 {
			t.Fatalf("%s: %d %s, want 400", q, st, body)
		}
	}
	if st, _, _ := get("?region=eu-west", "garbage"); st != 401 {
		t.Fatalf("bad token: %d", st)
	}
	// A key pinned to jurisdiction ca sees only montreal.
	var key struct{ APIKey, Secret string }
	r := clustertest.Do(t, m.c.Node(0).URL(), "POST", "/admin/v1/keys", "Bearer "+m.c.AdminToken, map[string]any{"name": "ca-only", "pin": map[string]any{"jurisdictions": []string{"ca"}}})
	r.JSON(t, &key)
	pinned, err := auth.Mint(auth.MintOptions{APIKey: key.APIKey, Secret: []byte(key.Secret), Permissions: []string{auth.PermAllowJoin}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if st, n, body := get("?region=eu-west", pinned); st != 200 || !slices.Equal(order(n), []string{"montreal-1"}) {
		t.Fatalf("pinned key: %d %s", st, body)
	}
}

// TestEdgeFailover: the home edge of a room dies (no goodbye, as kill -9);
// its participants notice, ask the join API again (avoiding it) and come
// back on another edge of their region with the same participant ids; the
// far participant sees and hears them again; the control plane marks the
// edge down and takes it out of the room.
func TestEdgeFailover(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "paris-2", region: "eu-west"},
		edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(nil)
	movers := []*signaltest.Session{m.session(0, room, "alice", "eu-west"), m.session(0, room, "bob", "eu-west"), m.session(0, room, "dave", "eu-west")}
	carol := m.session(0, room, "carol", "ca-east")
	home := movers[0].EdgeID()
	all := append([]*signaltest.Session{carol}, movers...)
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, all, all))

	base := map[string][2]int{}
	for _, s := range movers {
		pid := s.Client().Joined().ParticipantID
		v, _ := receivedFrom(carol.Client(), pid, "video")
		a, _ := receivedFrom(carol.Client(), pid, "audio")
		base[pid] = [2]int{v, a}
	}
	killed := time.Now()
	m.edge(home).Crash()
	back := map[string]time.Duration{}
	clustertest.Eventually(t, 30*time.Second, func() string {
		for _, s := range movers {
			pid := s.Client().Joined().ParticipantID
			if _, ok := back[pid]; ok {
				continue
			}
			if s.EdgeID() == home || len(s.Rejoins()) == 0 {
				return fmt.Sprintf("%s still on %s (err %v)", pid, s.EdgeID(), s.Err())
			}
			// Carol hears the mover again, and the mover (a new client) hears Carol.
			v, _ := receivedFrom(carol.Client(), pid, "video")
			a, _ := receivedFrom(carol.Client(), pid, "audio")
			v, a = v-base[pid][0], a-base[pid][1]
			cv, _ := receivedFrom(s.Client(), "carol", "video")
			if v < 5 || a < 10 || cv < 5 {
				return fmt.Sprintf("%s on %s: carol got v%d a%d since the kill, %s got v%d from carol", pid, s.EdgeID(), v, a, pid, cv)
			}
			back[pid] = time.Since(killed)
		}
		return ""
	})
	var worst time.Duration
	for pid, d := range back {
		worst = max(worst, d)
		t.Logf("%s back in media %v after the kill", pid, d.Round(10*time.Millisecond))
	}
	for _, s := range movers {
		for _, r := range s.Rejoins() {
			t.Logf("%s rejoined %s → %s (%s) in %v", s.Client().Joined().ParticipantID, r.From, r.To, r.Reason, r.Took.Round(time.Millisecond))
		}
		if s.EdgeID() == "montreal-1" {
			t.Fatalf("an eu-west participant moved to %s instead of the other eu-west edge", s.EdgeID())
		}
	}
	if worst > 15*time.Second {
		t.Fatalf("slowest participant back after %v (target 15 s)", worst)
	}
	// The dead edge is marked down and leaves the room's placement.
	clustertest.Eventually(t, 10*time.Second, func() string {
		if up, _ := m.edgeUp(0, home); up {
			return home + " still up"
		}
		if p := m.placement(0, room); p == nil || p.Has(home) {
			return fmt.Sprintf("placement %v still has %s", p, home)
		}
		return ""
	})
	t.Logf("%s marked down and out of the room %v after the kill", home, time.Since(killed).Round(10*time.Millisecond))
	// The session kept one record per participant, active, on its new edge.
	var sessions struct {
		Data []struct {
			Participants []struct {
				ParticipantID string
				Timelog       []struct{ Start, End *string }
			}
		}
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		m.c.Do(0, "GET", "/v2/sessions?roomId="+room, m.c.Token(), nil).JSON(t, &sessions)
		if len(sessions.Data) != 1 || len(sessions.Data[0].Participants) != 4 {
			return fmt.Sprintf("sessions %+v", sessions.Data)
		}
		for _, p := range sessions.Data[0].Participants {
			if n := len(p.Timelog); n == 0 || p.Timelog[n-1].End != nil {
				return fmt.Sprintf("%s is not active: %+v", p.ParticipantID, p.Timelog)
			}
		}
		return ""
	})
}

// TestDrainMovesMeetings: draining an edge sends no new rooms there and
// moves its participants to another edge of the region while the meeting
// goes on; the drain ends when the edge is empty.
func TestDrainMovesMeetings(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "paris-2", region: "eu-west"},
		edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(nil)
	alice := m.session(0, room, "alice", "eu-west")
	bob := m.session(0, room, "bob", "eu-west")
	carol := m.session(0, room, "carol", "ca-east")
	home := alice.EdgeID()
	other := map[string]string{"paris-1": "paris-2", "paris-2": "paris-1"}[home]
	all := []*signaltest.Session{alice, bob, carol}
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, all, all))

	took, left := m.edge(home).Drain(context.Background(), 20*time.Second)
	t.Logf("drain of %s with 2 participants took %v (%d left)", home, took.Round(10*time.Millisecond), left)
	if left != 0 {
		t.Fatalf("%d participants still on the drained edge", left)
	}
	if alice.EdgeID() != other || bob.EdgeID() != other {
		t.Fatalf("after the drain alice is on %s, bob on %s; want %s", alice.EdgeID(), bob.EdgeID(), other)
	}
	for _, s := range []*signaltest.Session{alice, bob} {
		if rs := s.Rejoins(); len(rs) != 1 || rs[0].Reason != "reconnect-requested" {
			t.Fatalf("rejoins %+v", rs)
		}
	}
	carolBase := countsOf([]*signaltest.Session{carol}, []*signaltest.Session{alice, bob})
	clustertest.Eventually(t, 15*time.Second, func() string {
		if r := hearsSince(carolBase, []*signaltest.Session{carol}, []*signaltest.Session{alice, bob})(); r != "" {
			return r
		}
		return hearsSince(nil, []*signaltest.Session{alice, bob}, all)()
	})
	// No new room goes to the draining edge.
	fresh := m.room(nil)
	for i := 0; i < 5; i++ {
		st, ja, body := m.join(0, fresh, fmt.Sprintf("n%d", i), map[string]any{"region": "eu-west"})
		if st != 200 || ja.Edges[0].EdgeID == home {
			t.Fatalf("join during drain: %d %s", st, body)
		}
	}
}

// TestJoinsReuseAFreshReservation: a join records its edge in the room's
// placement with a reservation (a Raft write); the joins that follow, through
// any control node, while that reservation outlasts their tickets by more
// than half the margin write nothing (the placement's modify index stays),
// and still name the serving edge with the placement's epoch. Once the
// reservation runs short, a join writes it again, later.
func TestJoinsReuseAFreshReservation(t *testing.T) {
	const margin = 2 * time.Second
	m := startMultiWith(t, 3, multiOptions{placement: func(c *placement.Config) { c.ReserveMargin = margin }},
		edgeSpec{id: "paris-1", region: "eu-west"})
	room := m.room(nil)
	if st, _, body := m.join(0, room, "first", nil); st != 200 {
		t.Fatalf("first join: %d %s", st, body)
	}
	var first *state.Placement
	for i := range 3 {
		clustertest.Eventually(t, 5*time.Second, func() string {
			if first = m.placement(i, room); first == nil {
				return fmt.Sprintf("node%d has no placement", i)
			}
			return ""
		})
	}
	for k := range 6 {
		st, ja, body := m.join(k%3, room, fmt.Sprintf("p%d", k), nil)
		if st != 200 || len(ja.Edges) == 0 || ja.Edges[0].EdgeID != "paris-1" {
			t.Fatalf("join %d through node%d: %d %s", k, k%3, st, body)
		}
	}
	time.Sleep(200 * time.Millisecond) // a write, had there been one, reaches every node
	for i := range 3 {
		if p := m.placement(i, room); p.ModifyIndex != first.ModifyIndex {
			t.Fatalf("node%d: the placement was written again by joins within its reservation (modify index %d, was %d)", i, p.ModifyIndex, first.ModifyIndex)
		}
	}
	time.Sleep(margin/2 + 200*time.Millisecond) // the reservation now outlasts a new ticket by less than half the margin
	if st, _, body := m.join(1, room, "later", nil); st != 200 {
		t.Fatalf("later join: %d %s", st, body)
	}
	clustertest.Eventually(t, 5*time.Second, func() string {
		p := m.placement(1, room)
		if p.ModifyIndex == first.ModifyIndex || !p.Edges[0].ReservedUntil.After(first.Edges[0].ReservedUntil) {
			return fmt.Sprintf("a join with the reservation running short did not renew it: modify index %d (was %d), reserved until %v (was %v)",
				p.ModifyIndex, first.ModifyIndex, p.Edges[0].ReservedUntil, first.Edges[0].ReservedUntil)
		}
		return ""
	})
}
