package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

// A control node started with another --cluster-key than the cluster's
// cannot open the cluster's secrets: /healthz and the API answer 503 naming
// the key (tokens used to be refused 401 as if the client's were wrong), it
// creates no API key (whose secret it would seal with a key the others
// cannot open), and the other nodes serve on. Restarted with the right key,
// it is healthy again.
func TestWrongClusterKeyIsA503NamingIt(t *testing.T) {
	configs := make([]server.Config, 3)
	c := clustertest.New(t, 3, clustertest.Options{Persist: true, Configure: func(i int, sc *server.Config) { configs[i] = *sc }})
	c.WaitReady()
	keysBefore := keyCount(c, 0)

	c.Stop(2)
	wrong := configs[2]
	wrong.ClusterKey = make([]byte, 32)
	copy(wrong.ClusterKey, "not the cluster's key, 32 bytes!")
	srv, err := server.New(wrong)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	clustertest.Eventually(t, 20*time.Second, func() string {
		r := clustertest.Do(t, srv.URL(), "GET", "/healthz", "", nil)
		if r.Status != 503 || !strings.Contains(string(r.Body), "--cluster-key is not the cluster's") {
			return "healthz: " + string(r.Body)
		}
		return ""
	})
	r := clustertest.Do(t, srv.URL(), "POST", "/v2/rooms", c.Token(), map[string]any{})
	if r.Status != 503 || !strings.Contains(string(r.Body), "--cluster-key is not the cluster's") {
		t.Fatalf("create room on the node with the wrong key: %d %s, want a 503 naming the cluster key", r.Status, r.Body)
	}
	r = clustertest.Do(t, srv.URL(), "POST", "/admin/v1/keys", "Bearer "+c.AdminToken, map[string]any{"name": "sealed-wrong"})
	if r.Status != 503 {
		t.Fatalf("create an API key on the node with the wrong key: %d %s, want 503", r.Status, r.Body)
	}
	// Stopping node 2 may have cost the leader: the good nodes elect one.
	clustertest.Eventually(t, 20*time.Second, func() string {
		if r := c.Do(0, "GET", "/healthz", "", nil); r.Status != 200 {
			return "healthz of a good node: " + string(r.Body)
		}
		return ""
	})
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{}); r.Status != 200 {
		t.Fatalf("create room on a good node meanwhile: %d %s", r.Status, r.Body)
	}
	if n := keyCount(c, 0); n != keysBefore {
		t.Fatalf("API keys: %d, want %d (none created through the wrong node)", n, keysBefore)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	c.Restart(2)
	clustertest.Eventually(t, 20*time.Second, func() string {
		if r := c.Do(2, "GET", "/healthz", "", nil); r.Status != 200 {
			return "healthz after the restart with the right key: " + string(r.Body)
		}
		return ""
	})
	if r := c.Do(2, "POST", "/v2/rooms", c.Token(), map[string]any{}); r.Status != 200 {
		t.Fatalf("create room with the right key: %d %s", r.Status, r.Body)
	}
}

func keyCount(c *clustertest.Cluster, i int) int {
	n := 0
	c.Node(i).Node().FSM().Read(func(st *state.Store) { n = len(st.APIKeys()) })
	return n
}

// A node with the wrong cluster key that wins an election hands leadership
// over: as leader it could sign no webhook and no join ticket. The cluster
// restarts with two of its nodes, the one with the wrong key campaigning
// long before the other, so it wins first.
func TestWrongClusterKeyDoesNotLead(t *testing.T) {
	configs := make([]server.Config, 3)
	c := clustertest.New(t, 3, clustertest.Options{Persist: true, Configure: func(i int, sc *server.Config) { configs[i] = *sc }})
	c.WaitReady()
	for i := range 3 {
		c.Stop(i)
	}
	slow := configs[0]
	slow.Cluster.HeartbeatTimeout, slow.Cluster.ElectionTimeout = 10*time.Second, 10*time.Second
	wrong := configs[2]
	wrong.ClusterKey = []byte("not the cluster's key, 32 bytes!")
	// As production nodes, without keys to create at start (that step fails
	// on a wrong key too, for its own reason).
	slow.BootstrapKeys, wrong.BootstrapKeys = nil, nil
	var good, bad *server.Server
	for _, n := range []struct {
		cfg server.Config
		srv **server.Server
	}{{slow, &good}, {wrong, &bad}} {
		srv, err := server.New(n.cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(func() { _ = srv.Close() })
		*n.srv = srv
	}

	sawWrongLead := false
	clustertest.Eventually(t, 30*time.Second, func() string {
		if bad.Node().IsLeader() {
			sawWrongLead = true
		}
		if !good.Node().IsLeader() {
			return "the node with the right key does not lead; leader: " + good.Node().LeaderID()
		}
		return ""
	})
	if !sawWrongLead {
		t.Fatal("the node with the wrong key never led: the test did not put it to the test")
	}
	if bad.Node().IsLeader() {
		t.Fatal("the node with the wrong cluster key leads")
	}
}
