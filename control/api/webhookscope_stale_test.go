package api_test

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
)

// TestScopedWebhookRoutesOnAStaleFollower: a room-scoped token for a room
// created through the leader a moment ago, used on a follower that has
// not applied the create. The delivery routes must catch up before they
// say the room does not exist (403), and answer a retryable 503 when they
// cannot (no leader) — never a definite refusal from stale state.
func TestScopedWebhookRoutesOnAStaleFollower(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{LeaderReadyOnly: true, Configure: func(i int, cfg *server.Config) {
		cfg.Cluster.CommitTimeout = time.Hour
		cfg.Cluster.LeaderHoldTimeout = time.Second
	}})
	leader, followers := c.Leader(), c.Followers()
	stale := followers[0]
	tok := c.Token()

	// With a leader: the follower catches up and answers.
	room := createUnseenBy(t, c, leader, stale, tok, "scoped deliveries")
	scoped := c.Token(func(o *auth.MintOptions) { o.RoomID = room.RoomID })
	if r := c.Do(stale, "GET", "/v2/webhooks/deliveries", scoped, nil); r.Status != 200 {
		t.Errorf("deliveries with a token for a room the follower had not applied: %d %s, want 200", r.Status, r.Body)
	}
	room = createUnseenBy(t, c, leader, stale, tok, "scoped redeliver")
	scoped = c.Token(func(o *auth.MintOptions) { o.RoomID = room.RoomID })
	// An unknown delivery: 404 after catching up, not a redelivery applied
	// unchecked or a 403 for the room.
	expectError(t, c.Do(stale, "POST", "/v2/webhooks/deliveries/no-such-delivery/redeliver", scoped, nil), 404, "not found")

	// Without a leader the follower cannot know: 503, retryable. The
	// token names a room the follower has never seen; whether the leader
	// created it a moment ago or never did is exactly what the follower
	// cannot tell alone. (A room created just before the leader stops is
	// not a reliable premise: any later append from the leader can carry
	// the create's commit to the follower before the calls below.)
	c.Stop(leader)
	c.Stop(followers[1])
	scoped = c.Token(func(o *auth.MintOptions) { o.RoomID = "room-the-follower-never-saw" })
	for _, call := range []struct{ method, path string }{
		{"GET", "/v2/webhooks/deliveries"},
		{"POST", "/v2/webhooks/deliveries/no-such-delivery/redeliver"},
	} {
		r := c.Do(stale, call.method, call.path, scoped, nil)
		if r.Status != 503 || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s with a token for a room the follower has not applied, no leader: %d %s (want a retryable 503)", call.method, call.path, r.Status, r.Body)
		}
	}
}
