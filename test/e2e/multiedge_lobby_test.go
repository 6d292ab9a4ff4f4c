package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestLobbyAcrossRegions: the room's moderator is in Montréal; someone who
// may only ask to join comes from Europe, and the join API places them on
// the edge near them, where they wait in the lobby. The moderator is asked
// on the other side of the ocean, admits them, and both then meet.
func TestLobbyAcrossRegions(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(nil)
	bob := m.session(0, room, "bob", "ca-east") // moderator (rtcToken)
	if bob.EdgeID() != "montreal-1" {
		t.Fatalf("bob (ca-east) placed on %s", bob.EdgeID())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carol, edge, lobby := m.askJoin(ctx, room, "carol", "eu-west", nil)
	if edge != "paris-1" || !lobby {
		t.Fatalf("carol (eu-west) on %s, lobby=%v: want paris-1's lobby", edge, lobby)
	}
	admit(ctx, t, bob, "carol")
	j, err := carol.WaitJoined(ctx)
	if err != nil {
		t.Fatalf("carol after bob's admit: %v", err)
	}
	if !inSnapshot(carol, "bob") {
		t.Fatalf("carol's joined lacks bob: %+v", j.Participants)
	}
	if _, err := bob.Client().WaitFor(ctx, wire.TypeParticipantJoined, func(e wire.Envelope) bool { return contains(e, "carol") }); err != nil {
		t.Fatalf("bob never saw carol join: %v", err)
	}
}

// TestAdmittedGuestMovesWithoutTheLobby: a guest who may only ask to join
// was admitted by the moderator; then its edge goes away (it fails, or
// drains for an upgrade) and the guest joins again through another edge
// of its region. The join API sees it in the room's session and says so in
// the ticket, and the guest presents the resume token its first edge gave
// it when it was admitted: the new edge admits it at once instead of
// putting it back in the lobby for the moderator to admit again. A guest
// never admitted still waits there.
func TestAdmittedGuestMovesWithoutTheLobby(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "paris-2", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(nil)
	bob := m.session(0, room, "bob", "ca-east") // moderator
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(pid string, avoid []string, proof string) (*signaltest.Client, string, bool) {
		t.Helper()
		return m.askJoinWithProof(ctx, room, pid, "eu-west", avoid, proof)
	}

	carol, first, lobby := connect("carol", nil, "")
	if !lobby {
		t.Fatalf("carol (ask to join) was admitted on %s without a moderator", first)
	}
	admit(ctx, t, bob, "carol")
	j, err := carol.WaitJoined(ctx)
	if err != nil {
		t.Fatalf("carol after bob's admit: %v", err)
	}
	waitInSession(t, m, room, "carol")
	asked := 0
	for _, e := range bob.Client().Messages() {
		if e.Type == wire.TypeLobbyRequest && contains(e, "carol") {
			asked++
		}
	}

	// Her edge goes away: she joins again, avoiding it.
	carol.Close()
	_, second, lobby := connect("carol", []string{first}, j.ResumeToken)
	if second == first {
		t.Fatalf("carol's second join went to %s again", second)
	}
	if lobby {
		t.Fatalf("carol, admitted before, was put back in the lobby on %s", second)
	}
	time.Sleep(500 * time.Millisecond)
	for _, e := range bob.Client().Messages() {
		if e.Type == wire.TypeLobbyRequest && contains(e, "carol") {
			asked--
		}
	}
	if asked != 0 {
		t.Errorf("bob was asked about carol again (%d more times)", -asked)
	}

	// A guest never admitted still waits.
	if _, edge, lobby := connect("dora", nil, ""); !lobby {
		t.Fatalf("dora, never admitted, was let in on %s", edge)
	}
}

// askJoin joins a guest whose token may only ask to join through node 0,
// with a region hint (and edges to avoid), and returns its client, the edge
// it is on and whether it waits in the lobby.
func (m *multi) askJoin(ctx context.Context, room, pid, region string, avoid []string) (*signaltest.Client, string, bool) {
	m.t.Helper()
	return m.askJoinWithProof(ctx, room, pid, region, avoid, "")
}

// askJoinWithProof is askJoin for a guest that was admitted before and
// presents the resume token it got then (signaltest.Client.JoinWithProof).
func (m *multi) askJoinWithProof(ctx context.Context, room, pid, region string, avoid []string, proof string) (*signaltest.Client, string, bool) {
	m.t.Helper()
	token := m.c.Token(func(o *auth.MintOptions) {
		o.Roles = []string{auth.RoleRTC}
		o.Permissions = []string{auth.PermAskJoin}
		o.ParticipantID = pid
	})
	body := map[string]any{"participantId": pid, "region": region}
	if len(avoid) > 0 {
		body["avoidEdges"] = avoid
	}
	var ja joinAnswer
	r := clustertest.Do(m.t, m.c.Node(0).URL(), "POST", "/v2/rooms/"+room+"/join", token, body)
	if r.Status != 200 {
		m.t.Fatalf("%s's join: %d %s", pid, r.Status, r.Body)
	}
	r.JSON(m.t, &ja)
	c, err := signaltest.Dial(ctx, signaltest.Config{URL: ja.Edges[0].SignalingURL, PingInterval: time.Second})
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(c.Close)
	_, lobby, err := c.JoinWithProof(ctx, ja.Edges[0].Ticket, "N-"+pid, proof)
	if err != nil {
		m.t.Fatalf("%s on %s: %v", pid, ja.Edges[0].EdgeID, err)
	}
	return c, ja.Edges[0].EdgeID, lobby
}

// admit has moderator mod admit guest pid once it is asked about it.
func admit(ctx context.Context, t *testing.T, mod *signaltest.Session, pid string) {
	t.Helper()
	if _, err := mod.Client().WaitFor(ctx, wire.TypeLobbyRequest, func(e wire.Envelope) bool { return contains(e, pid) }); err != nil {
		t.Fatalf("the moderator was not asked about %s: %v", pid, err)
	}
	if err := mod.Client().Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: pid, Admit: true}); err != nil {
		t.Fatal(err)
	}
}

// TestRemovedGuestWaitsInTheLobbyAgain: a moderator removes a guest who may
// only ask to join, and the guest's page asks the join API again at once.
// The control plane still has it in the room's session (its edge's leave
// report is on the way) and marks the new ticket admitted; the edge, which
// removed it, puts it in the lobby all the same, and the moderator decides.
func TestRemovedGuestWaitsInTheLobbyAgain(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"})
	room := m.room(nil)
	bob := m.session(0, room, "bob", "eu-west") // moderator
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	carol, _, lobby := m.askJoin(ctx, room, "carol", "eu-west", nil)
	if !lobby {
		t.Fatal("carol (ask to join) was admitted without a moderator")
	}
	admit(ctx, t, bob, "carol")
	if _, err := carol.WaitJoined(ctx); err != nil {
		t.Fatalf("carol after bob's admit: %v", err)
	}
	waitInSession(t, m, room, "carol")

	if err := bob.Client().Send(wire.TypeRemoveParticipant, wire.RemoveParticipant{ParticipantID: "carol"}); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.WaitFor(ctx, wire.TypeRemoved, nil); err != nil {
		t.Fatalf("carol was not removed: %v", err)
	}
	again, _, lobby := m.askJoin(ctx, room, "carol", "eu-west", nil)
	if !lobby {
		t.Fatal("carol, removed by the moderator, came straight back in")
	}
	if err := bob.Client().Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "carol", Admit: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := again.WaitJoined(ctx); err != nil {
		t.Fatalf("carol after bob admitted her again: %v", err)
	}
}

// waitInSession waits until node 0 lists pid in the room's session (its
// edge reported the join).
func waitInSession(t *testing.T, m *multi, room, pid string) {
	t.Helper()
	clustertest.Eventually(t, 10*time.Second, func() string {
		var list struct {
			Data []struct {
				Participants []struct{ ParticipantID string }
			}
		}
		m.c.Do(0, "GET", "/v2/sessions?roomId="+room, m.c.Token(), nil).JSON(t, &list)
		for _, s := range list.Data {
			for _, p := range s.Participants {
				if p.ParticipantID == pid {
					return ""
				}
			}
		}
		return pid + " not in the session yet"
	})
}

// TestGuestNamingAnActiveIDWaitsInTheLobby: the organiser shares a guest
// link that may only ask to join and names no participant. Mallory uses it
// with the id of the host, who is in the meeting. The join API marks her
// ticket admitted (that id is active in the session) and, before, the edge
// let her straight in and removed the real host as a duplicate (on another
// edge, the cascade removed the host after its duplicate grace). She proves
// nothing, so she waits in the lobby, on the host's edge and on another one,
// the host stays, and denying her removes only her. A guest who really was
// admitted through the same link moves to another edge with its proof
// without waiting again; without the proof its id is not enough.
func TestGuestNamingAnActiveIDWaitsInTheLobby(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "paris-2", region: "eu-west"})
	room := m.room(nil)
	host := m.session(0, room, "host", "eu-west") // moderator
	hostEdge, hostClient := host.EdgeID(), host.Client()
	waitInSession(t, m, room, "host")
	var link struct{ Token string }
	if r := m.c.Do(0, "POST", "/v2/rooms/"+room+"/meeting-link", m.c.Token(), map[string]any{"permissions": []string{"ask_join"}}); r.Status != 200 {
		t.Fatalf("meeting-link: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &link)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// viaLink asks the join API with the guest link and joins the first edge.
	viaLink := func(body map[string]any, proof string) (c *signaltest.Client, pid, edge string, admittedMark, lobby bool) {
		t.Helper()
		body["region"] = "eu-west"
		var ja joinAnswer
		r := clustertest.Do(t, m.c.Node(0).URL(), "POST", "/v2/rooms/"+room+"/join", link.Token, body)
		if r.Status != 200 {
			t.Fatalf("join %v: %d %s", body, r.Status, r.Body)
		}
		r.JSON(t, &ja)
		head, _, _ := strings.Cut(ja.Edges[0].Ticket, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(head)
		var cl ticket.Claims
		_ = json.Unmarshal(raw, &cl)
		c, err := signaltest.Dial(ctx, signaltest.Config{URL: ja.Edges[0].SignalingURL, PingInterval: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		if _, lobby, err = c.JoinWithProof(ctx, ja.Edges[0].Ticket, "Mallory", proof); err != nil {
			t.Fatalf("%v on %s: %v", body, ja.Edges[0].EdgeID, err)
		}
		return c, ja.ParticipantID, ja.Edges[0].EdgeID, cl.Admitted, lobby
	}
	hostUntouched := func() {
		t.Helper()
		if host.Client() != hostClient || host.EdgeID() != hostEdge || hostClient.Closed() {
			t.Fatalf("the host's connection changed: now on %s (was %s), closed=%v", host.EdgeID(), hostEdge, hostClient.Closed())
		}
		for _, e := range hostClient.Messages() {
			if e.Type == wire.TypeRemoved {
				t.Fatalf("the host was removed: %s", e.Data)
			}
		}
	}

	same, _, sameEdge, mark, lobby := viaLink(map[string]any{"participantId": "host"}, "")
	if !mark {
		t.Fatal("the join API did not mark the ticket admitted: this test no longer covers the bypass")
	}
	if sameEdge != hostEdge || !lobby {
		t.Fatalf("Mallory naming the host on %s (host on %s): lobby=%v, want the lobby", sameEdge, hostEdge, lobby)
	}
	other, _, otherEdge, _, lobby := viaLink(map[string]any{"participantId": "host", "avoidEdges": []string{hostEdge}}, "")
	if otherEdge == hostEdge || !lobby {
		t.Fatalf("Mallory naming the host on %s (host on %s): lobby=%v, want the lobby", otherEdge, hostEdge, lobby)
	}
	time.Sleep(time.Second)
	hostUntouched()
	for range 2 { // one request waits here, one on the other edge
		if err := hostClient.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "host", Admit: false}); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []*signaltest.Client{same, other} {
		if _, err := g.WaitFor(ctx, wire.TypeRemoved, func(e wire.Envelope) bool { return contains(e, wire.ReasonDenied) }); err != nil {
			t.Fatalf("Mallory not denied: %v", err)
		}
	}
	hostUntouched()
	waitInSession(t, m, room, "host")

	// A guest of the same link, admitted, moves with its proof.
	guest, gid, gEdge, _, lobby := viaLink(map[string]any{}, "")
	if !lobby {
		t.Fatalf("guest %s let in without a moderator", gid)
	}
	admit(ctx, t, host, gid)
	j, err := guest.WaitJoined(ctx)
	if err != nil {
		t.Fatalf("guest %s after the admit: %v", gid, err)
	}
	waitInSession(t, m, room, gid)
	guest.Close() // its edge is gone
	if _, _, edge, _, lobby := viaLink(map[string]any{"participantId": gid, "avoidEdges": []string{gEdge}}, ""); !lobby {
		t.Fatalf("naming guest %s without its proof let a client in on %s", gid, edge)
	}
	if _, _, edge, _, lobby := viaLink(map[string]any{"participantId": gid, "avoidEdges": []string{gEdge}}, j.ResumeToken); lobby || edge == gEdge {
		t.Fatalf("guest %s moving with its proof: on %s (was %s), lobby=%v", gid, edge, gEdge, lobby)
	}
	hostUntouched()
}
