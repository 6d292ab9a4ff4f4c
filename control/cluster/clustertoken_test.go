package cluster_test

import (
	"strings"
	"testing"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
)

// Control nodes given different cluster tokens still form a Raft cluster
// (Raft does not use the token), but a write forwarded to the leader is
// refused: the client gets a 503 naming the cluster token (it was a 500
// "internal error"), the forwarding node says so on /healthz, and the
// leader's answer says the token is wrong, not missing.
func TestMismatchedClusterTokenIsNamed(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Configure: func(i int, sc *server.Config) {
		if i == 2 {
			sc.Cluster.ClusterToken = "not-the-cluster-token"
		}
	}})
	c.WaitReady()
	leader := c.Leader()
	via := 2 // a node whose token differs from the leader's
	if leader == 2 {
		via = 0
	}

	r := c.Do(via, "POST", "/v2/rooms", c.Token(), map[string]any{})
	if r.Status != 503 || !strings.Contains(string(r.Body), "refused this node's cluster token") {
		t.Fatalf("write forwarded with a wrong cluster token: %d %s, want a 503 naming the cluster token", r.Status, r.Body)
	}
	if h := c.Do(via, "GET", "/healthz", "", nil); h.Status != 503 || !strings.Contains(string(h.Body), "--cluster-token") {
		t.Fatalf("/healthz of the node whose token was refused: %d %s", h.Status, h.Body)
	}
	refused := c.Node(via).Node().ClusterTokenRefused()
	if refused == nil || !strings.Contains(refused.Answer, "wrong cluster token") {
		t.Fatalf("the leader's answer: %+v, want it to say the token is wrong", refused)
	}
	if r := c.Do(leader, "POST", "/v2/rooms", c.Token(), map[string]any{}); r.Status != 200 {
		t.Fatalf("write on the leader: %d %s", r.Status, r.Body)
	}
}
