package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/test/netproxy"
)

// TestStalledEdgeDoesNotTakeBackMovedParticipants: p1 and p2 publish
// through eu1, s watches them from ca1 (another region, through the
// cascade). eu1 stalls as far as the other edges can tell (its cascade
// socket and internal API cut), and p1's and p2's clients give up on it
// and move to eu2 with the same ids; eu1, which cannot hear they left, keeps
// them in its resume grace. When eu1 comes back, ca1's leg to it is set up
// again and its welcome lists p1 and p2 once more — with their old
// connections' times — and eu1 removes those stale copies as `moved` after
// the cascade's DuplicateGrace, since eu2 has newer connections of the same
// ids. ca1 must keep relaying them from eu2 throughout: s goes on receiving
// their media, is never told they left, and a subscriber joining ca1
// afterwards gets their media too. Before, the stale welcome took them over
// from eu2's leg (whose copies were dropped for good): s's media from them
// stopped, s was told `participant-left {reason: left}` when eu1 removed its
// copies, and a new subscriber got nothing (the probe's `stall` scenario,
// with a SIGSTOPped process).
func TestStalledEdgeDoesNotTakeBackMovedParticipants(t *testing.T) {
	const dupGrace = 2 * time.Second
	gates := map[string]*netproxy.TCP{}
	var gmu sync.Mutex
	m := startMultiWith(t, 1, multiOptions{
		cascade: func(c *cascade.Config) { c.DuplicateGrace = dupGrace },
		internalURL: func(id, u string) string {
			g, url := proxied(t, u)
			gmu.Lock()
			gates[id] = g
			gmu.Unlock()
			return url
		}},
		edgeSpec{id: "eu1", region: "eu-west"}, edgeSpec{id: "eu2", region: "eu-west"}, edgeSpec{id: "ca1", region: "ca-east"})
	room := m.room(nil)
	p1 := m.sessionAvoiding(0, room, "p1", "eu-west", "eu2")
	p2 := m.sessionAvoiding(0, room, "p2", "eu-west", "eu2")
	s := m.session(0, room, "s", "ca-east")
	if p1.EdgeID() != "eu1" || p2.EdgeID() != "eu1" || s.EdgeID() != "ca1" {
		t.Fatalf("p1 on %s, p2 on %s, s on %s: want eu1, eu1, ca1", p1.EdgeID(), p2.EdgeID(), s.EdgeID())
	}
	movers := []*signaltest.Session{p1, p2}
	watchers := []*signaltest.Session{s}
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, watchers, movers))

	// eu1 stalls for the other edges; its participants' clients lose it
	// and move to eu2.
	gmu.Lock()
	gate := gates["eu1"]
	gmu.Unlock()
	gate.Cut()
	for _, p := range movers {
		p.Client().DropSocket()
	}
	clustertest.Eventually(t, 20*time.Second, func() string {
		for _, p := range movers {
			if p.EdgeID() != "eu2" {
				return fmt.Sprintf("a participant is on %s, not yet on eu2", p.EdgeID())
			}
		}
		return ""
	})
	clustertest.Eventually(t, 20*time.Second, hearsSince(countsOf(watchers, movers), watchers, movers))
	seen := len(s.Client().Messages())

	// eu1 is back: ca1's leg to it comes up again and lists p1 and p2.
	resumed := time.Now()
	gate.Heal()
	// Past eu1's removal of its stale copies (DuplicateGrace after its leg
	// to eu2 is up) and the grace of a moved leave on ca1 (5 s), and then some.
	time.Sleep(dupGrace + 5*time.Second + 3*time.Second)
	clustertest.Eventually(t, 5*time.Second, hearsSince(countsOf(watchers, movers), watchers, movers))
	for _, env := range s.Client().Messages()[seen:] {
		if env.Type == wire.TypeParticipantLeft || env.Type == wire.TypeParticipantJoined {
			t.Errorf("s was told after eu1 came back: %s %s", env.Type, env.Data)
		}
	}
	s2 := m.session(0, room, "s2", "ca-east")
	if s2.EdgeID() != "ca1" {
		t.Fatalf("s2 on %s, want ca1", s2.EdgeID())
	}
	clustertest.Eventually(t, 10*time.Second, hearsSince(nil, []*signaltest.Session{s2}, movers))
	t.Logf("p1 and p2 reach s and s2 on ca1 through eu2 %v after eu1 came back", time.Since(resumed).Round(10*time.Millisecond))
}
