package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

// TestEdgeCutOffFromControlKeepsItsMeeting: an edge loses its link to the
// control plane but not to its region's peers. Its meeting goes on, the
// control plane does not mark it down (a live peer vouches for it), and
// once the link is back it reports as usual.
func TestEdgeCutOffFromControlKeepsItsMeeting(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-2", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"})
	var cut atomic.Bool
	target, _ := url.Parse(m.c.Node(0).URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	link := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cut.Load() {
			http.Error(w, "partitioned", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(link.Close)
	m.startEdgeVia(edgeSpec{id: "paris-1", region: "eu-west"}, []string{link.URL})
	m.waitEdgeUp("paris-1")
	// Wait until paris-2 sees paris-1 in its gossip pool.
	clustertest.Eventually(t, 10*time.Second, func() string {
		if mem, ok := m.edge("paris-2").Gossip().Member("paris-1"); !ok || mem.State != "alive" {
			return fmt.Sprintf("paris-2 sees paris-1 as %+v", mem)
		}
		return ""
	})
	room := m.room(nil)
	// Alice is placed on paris-1 explicitly: paris-2 is avoided.
	alice := m.sessionAvoiding(0, room, "alice", "eu-west", "paris-2")
	carol := m.session(0, room, "carol", "ca-east")
	if alice.EdgeID() != "paris-1" {
		t.Fatalf("alice on %s", alice.EdgeID())
	}
	both := []*signaltest.Session{alice, carol}
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, both, both))

	cut.Store(true)
	time.Sleep(4 * time.Second) // DownAfter is 2 s here
	if up, _ := m.edgeUp(0, "paris-1"); !up {
		t.Fatal("an edge cut off from the control plane, alive to its region, was marked down")
	}
	base := countsOf(both, both)
	clustertest.Eventually(t, 10*time.Second, hearsSince(base, both, both))
	if len(alice.Rejoins()) != 0 || len(carol.Rejoins()) != 0 {
		t.Fatalf("participants were moved: %+v %+v", alice.Rejoins(), carol.Rejoins())
	}
	cut.Store(false)
	clustertest.Eventually(t, 10*time.Second, func() string {
		if up, _ := m.edgeUp(0, "paris-1"); !up {
			return "paris-1 down after the link came back"
		}
		return ""
	})
}
