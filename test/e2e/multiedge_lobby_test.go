package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
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

	askToken := m.c.Token(func(o *auth.MintOptions) {
		o.Roles = []string{auth.RoleRTC}
		o.Permissions = []string{auth.PermAskJoin}
		o.ParticipantID = "carol"
	})
	var ja joinAnswer
	r := clustertest.Do(t, m.c.Node(0).URL(), "POST", "/v2/rooms/"+room+"/join", askToken, map[string]any{"participantId": "carol", "region": "eu-west"})
	if r.Status != 200 {
		t.Fatalf("carol's join: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &ja)
	if len(ja.Edges) == 0 || ja.Edges[0].EdgeID != "paris-1" {
		t.Fatalf("carol (eu-west) offered %+v, want paris-1 first", ja.Edges)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carol, err := signaltest.Dial(ctx, signaltest.Config{URL: ja.Edges[0].SignalingURL, PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(carol.Close)
	if _, lobby, err := carol.Join(ctx, ja.Edges[0].Ticket, "N-carol"); err != nil || !lobby {
		t.Fatalf("carol on paris-1: lobby=%v %v, want the lobby", lobby, err)
	}

	if _, err := bob.Client().WaitFor(ctx, wire.TypeLobbyRequest, func(e wire.Envelope) bool { return contains(e, "carol") }); err != nil {
		t.Fatalf("bob on montreal-1 was not asked about carol: %v", err)
	}
	if err := bob.Client().Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "carol", Admit: true}); err != nil {
		t.Fatal(err)
	}
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
