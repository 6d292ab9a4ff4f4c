package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/edge/cascade"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// TestDuplicateAcrossRegions: alice, in a meeting through Paris, opens it
// again with the same participant id on a laptop in Montréal. The join API
// places the second connection there; once the pair has lasted the
// cascade's DuplicateGrace, Paris removes the older one (`removed
// {duplicate}`), as one edge does for a second join. For the control plane
// and the room she never left: one participant-joined webhook, no
// participant-left, and the session lists her active, now on montreal-1.
func TestDuplicateAcrossRegions(t *testing.T) {
	const grace = 2 * time.Second
	m := startMultiWith(t, 1, multiOptions{cascade: func(c *cascade.Config) { c.DuplicateGrace = grace }},
		edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "montreal-1", region: "ca-east"})
	room := m.room(map[string]any{"webhook": map[string]any{"endPoint": m.recv.srv.URL + "/hook", "events": []string{"participant-joined", "participant-left", "session-ended"}}})
	bob := m.session(0, room, "bob", "ca-east")
	alice := m.session(0, room, "alice", "eu-west")
	if alice.EdgeID() != "paris-1" || bob.EdgeID() != "montreal-1" {
		t.Fatalf("alice on %s, bob on %s: want paris-1 and montreal-1", alice.EdgeID(), bob.EdgeID())
	}
	clustertest.Eventually(t, 15*time.Second, hearsSince(nil, []*signaltest.Session{bob}, []*signaltest.Session{alice}))
	bobSeen := len(bob.Client().Messages())

	alice2 := m.session(0, room, "alice", "ca-east")
	if alice2.EdgeID() != "montreal-1" {
		t.Fatalf("alice's second connection on %s, want montreal-1", alice2.EdgeID())
	}
	env, err := alice.Client().WaitFor(ctxFor(t), wire.TypeRemoved, nil)
	if err != nil {
		t.Fatalf("alice's connection through paris-1 was not removed: %v", err)
	}
	if string(env.Data) != `{"reason":"duplicate"}` {
		t.Fatalf("alice's older connection got removed %s, want reason duplicate", env.Data)
	}

	// A later event from paris-1 (its reports to the control plane are in
	// order): once it is in, what paris-1 reported about alice is too.
	zed := m.session(0, room, "zed", "eu-west")
	if zed.EdgeID() != "paris-1" {
		t.Fatalf("zed on %s, want paris-1", zed.EdgeID())
	}
	count := func(typ, pid string) int {
		n := 0
		for _, d := range m.recv.deliveries() {
			if d.typ == typ && strings.Contains(string(d.body), `"participantId":"`+pid+`"`) {
				n++
			}
		}
		return n
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		if count("participant-joined", "zed") == 0 {
			return "no participant-joined webhook for zed yet"
		}
		return ""
	})
	if j, l := count("participant-joined", "alice"), count("participant-left", "alice"); j != 1 || l != 0 {
		t.Errorf("webhooks for alice: %d participant-joined, %d participant-left; want 1 and 0", j, l)
	}
	var list struct {
		Data []struct{ ID, Status string }
	}
	m.c.Do(0, "GET", "/v2/sessions?roomId="+room, m.c.Token(), nil).JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].Status != "ongoing" {
		t.Fatalf("sessions: %+v, want one ongoing", list.Data)
	}
	var active struct {
		Data []struct {
			Participants []struct{ ParticipantID string }
		}
	}
	m.c.Do(0, "GET", "/v2/sessions/"+list.Data[0].ID+"/participants/active", m.c.Token(), nil).JSON(t, &active)
	if got := fmt.Sprint(active.Data); !strings.Contains(got, "alice") {
		t.Errorf("active participants %s: alice missing", got)
	}
	for _, e := range bob.Client().Messages()[bobSeen:] {
		if (e.Type == wire.TypeParticipantLeft || e.Type == wire.TypeParticipantJoined) && contains(e, "alice") {
			t.Errorf("bob was told %s %s", e.Type, e.Data)
		}
	}
	if got := alice2.Client().Messages(); len(got) > 0 {
		for _, e := range got {
			if e.Type == wire.TypeRemoved {
				t.Errorf("alice's newer connection was removed: %s", e.Data)
			}
		}
	}
}
