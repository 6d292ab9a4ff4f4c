package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// TestAdmittedGuestTakesASeat: in a room with maxParticipants a lobby guest
// a moderator admits takes its place through the control plane, like a
// direct joiner, instead of being counted by its edge alone. The room has
// two places: bob (a moderator, in Montréal) and a seat the join API holds
// for erin, who has her answer and is on her way to Paris. Carol, waiting
// in Paris's lobby, is admitted by bob: she is turned away as the room is
// full, and erin gets in. (Paris alone saw one participant, bob, and let
// carol in; erin, who had been promised a place, was then refused.)
func TestAdmittedGuestTakesASeat(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(map[string]any{"maxParticipants": 2})
	bob := m.session(0, room, "bob", "ca-east") // moderator
	if bob.EdgeID() != "montreal-1" {
		t.Fatalf("bob (ca-east) placed on %s", bob.EdgeID())
	}
	status, erin, body := m.join(0, room, "erin", map[string]any{"region": "eu-west"})
	if status != 200 || len(erin.Edges) == 0 || erin.Edges[0].EdgeID != "paris-1" {
		t.Fatalf("erin's join: %d %s", status, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	carol, edge, lobby := m.askJoin(ctx, room, "carol", "eu-west", nil)
	if edge != "paris-1" || !lobby {
		t.Fatalf("carol on %s, lobby=%v: want paris-1's lobby", edge, lobby)
	}
	admit(ctx, t, bob, "carol")
	if _, err := carol.WaitJoined(ctx); err == nil || !strings.Contains(err.Error(), wire.CodeRoomFull) {
		t.Fatalf("carol admitted into a room whose last place is held for erin: %v, want %s", err, wire.CodeRoomFull)
	}

	ec, err := signaltest.Dial(ctx, signaltest.Config{URL: erin.Edges[0].SignalingURL, PingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ec.Close)
	if _, lobby, err := ec.Join(ctx, erin.Edges[0].Ticket, "N-erin"); err != nil || lobby {
		t.Fatalf("erin, who had her seat: lobby=%v %v", lobby, err)
	}
}
