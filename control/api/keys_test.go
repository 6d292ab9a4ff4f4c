package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

// TestNewKeyWorksThroughEveryNode: an API key created through the leader
// is used at once through a follower that has not applied it yet. The
// follower must catch up before it calls the key unknown (the chaos suite
// saw 401 "unknown apikey" from the nodes that had not applied a new key).
func TestNewKeyWorksThroughEveryNode(t *testing.T) {
	// Followers learn that an entry committed only from the leader's next
	// AppendEntries: with an hour of CommitTimeout they stay one write
	// behind until something is appended.
	c := clustertest.New(t, 3, clustertest.Options{LeaderReadyOnly: true, Configure: func(i int, cfg *server.Config) {
		cfg.Cluster.CommitTimeout = time.Hour
	}})
	leader, follower := c.Leader(), c.Followers()[0]
	// Through the API server's own call: the admin route would also append
	// an audit entry, which tells the followers that the key committed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, secret, err := c.Node(leader).API().CreateKey(ctx, auth.NewKeySpec{Name: "new"})
	if err != nil {
		t.Fatal(err)
	}
	key := struct{ APIKey, Secret string }{k.Key, secret}
	// The key's append told the follower that the bootstrap entries
	// committed: it is ready, without the key.
	clustertest.Eventually(t, 10*time.Second, func() string {
		if !c.Node(follower).Ready() {
			return "the follower is not ready"
		}
		return ""
	})
	var seen *state.APIKey
	c.Node(follower).Node().FSM().Read(func(s *state.Store) { seen, _ = s.APIKey(key.APIKey) })
	if seen != nil {
		t.Fatal("the follower applied the new key already; the test would not show a stale read")
	}
	tok, err := auth.Mint(auth.MintOptions{APIKey: key.APIKey, Secret: []byte(key.Secret), Permissions: []string{auth.PermAllowJoin},
		Roles: []string{auth.RoleCrawler}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Do(follower, "GET", "/v2/rooms", tok, nil); r.Status != 200 {
		t.Fatalf("the new key through a follower that had not applied it: %d %s", r.Status, r.Body)
	}
	// A key nobody created is still refused.
	bad, _ := auth.Mint(auth.MintOptions{APIKey: "00000000-0000-4000-8000-000000000000", Secret: []byte(key.Secret), Roles: []string{auth.RoleCrawler}, TTL: time.Hour})
	if r := c.Do(follower, "GET", "/v2/rooms", bad, nil); r.Status != 401 {
		t.Fatalf("an unknown key through a follower: %d %s", r.Status, r.Body)
	}
}

// TestRevokedKeyRefusedOnEveryNode: every node has verified and cached a
// token of a key; once the key's revocation has reached a node, that node
// refuses the token. Each node's token cache skips the key lookup until its
// own state's KeysVersion moves, so this fails if applying the revocation
// on a follower does not move it.
func TestRevokedKeyRefusedOnEveryNode(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	admin := "Bearer " + c.AdminToken
	leader := c.Leader()
	var created struct{ APIKey, Secret string }
	if r := c.Do(leader, "POST", "/admin/v1/keys", admin, map[string]any{"name": "revoked-soon"}); r.Status != 201 {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &created)
	}
	tok := c.Token(func(o *auth.MintOptions) { o.APIKey, o.Secret = created.APIKey, []byte(created.Secret) })
	for i := range 3 {
		for range 2 { // the first call verifies and caches, the second is served from the cache
			if r := c.Do(i, "GET", "/v2/rooms", tok, nil); r.Status != 200 {
				t.Fatalf("node %d before the revocation: %d %s", i, r.Status, r.Body)
			}
		}
	}
	if r := c.Do(leader, "DELETE", "/admin/v1/keys/"+created.APIKey, admin, nil); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	for i := range 3 {
		// Wait on the node the request goes to next: the revocation applied there.
		clustertest.Eventually(t, 10*time.Second, func() string {
			var k *state.APIKey
			c.Node(i).Node().FSM().Read(func(s *state.Store) { k, _ = s.APIKey(created.APIKey) })
			if k == nil || k.RevokedAt == nil {
				return "the revocation has not reached this node"
			}
			return ""
		})
		if r := c.Do(i, "GET", "/v2/rooms", tok, nil); r.Status != 401 || !strings.Contains(string(r.Body), "revoked") {
			t.Fatalf("node %d after the revocation reached it: %d %s", i, r.Status, r.Body)
		}
	}
}

// The admin API tells a missing admin token from a wrong one, and a
// refused call creates nothing.
func TestAdminTokenErrorsSayWhatIsWrong(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{})
	c.WaitReady()
	for _, tc := range []struct{ authz, want string }{
		{"", "admin token required"},
		{"Bearer " + c.AdminToken + "x", "wrong admin token"},
		{c.Token(), "wrong admin token"}, // an API JWT is not the admin token
	} {
		r := c.Do(0, "POST", "/admin/v1/keys", tc.authz, map[string]any{"name": "x"})
		if r.Status != 401 || !strings.Contains(string(r.Body), tc.want) {
			t.Errorf("POST /admin/v1/keys with %q: %d %s, want 401 saying %q", tc.authz, r.Status, r.Body, tc.want)
		}
	}
	var keys struct{ Data []any }
	r := c.Do(0, "GET", "/admin/v1/keys", "Bearer "+c.AdminToken, nil)
	r.JSON(t, &keys)
	if r.Status != 200 || len(keys.Data) != 1 { // the cluster's own test key
		t.Fatalf("keys after refused creates: %d %s", r.Status, r.Body)
	}
}
