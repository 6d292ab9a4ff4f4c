package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
)

// TestRestartedEdgeReportsWhoDidNotComeBack: an edge killed and started
// again with the same id (a supervisor's restart) registers before, or
// soon after, the control plane marks it down, so the leader's grace for a
// dead edge never closes the participations its previous process held.
// The new process does: those not back within the rejoin grace are
// reported left; those who moved stay in the session, and it ends when the
// last real participant leaves. Without it the ghost stayed active for
// good, holding a seat and the session open.
func TestRestartedEdgeReportsWhoDidNotComeBack(t *testing.T) {
	const grace = 3 * time.Second
	m := startMultiWith(t, 1, multiOptions{placement: func(pc *placement.Config) { pc.RejoinGrace = grace }},
		edgeSpec{id: "paris-1", region: "eu-west"}, edgeSpec{id: "paris-2", region: "eu-west"})
	room := m.room(nil)
	mover := m.session(0, room, "mover", "eu-west")
	ghost := m.session(0, room, "ghost", "eu-west")
	home := mover.EdgeID()
	if ghost.EdgeID() != home {
		t.Fatalf("mover on %s, ghost on %s: both should be on the room's home edge", home, ghost.EdgeID())
	}
	active := func() (map[string]bool, string) {
		var sessions struct {
			Data []struct {
				Status       string
				Participants []struct {
					ParticipantID string
					Timelog       []struct{ Start, End *string }
				}
			}
		}
		m.c.Do(0, "GET", "/v2/sessions?roomId="+room, m.c.Token(), nil).JSON(t, &sessions)
		if len(sessions.Data) != 1 {
			return nil, fmt.Sprintf("sessions %+v", sessions.Data)
		}
		out := map[string]bool{}
		for _, p := range sessions.Data[0].Participants {
			if n := len(p.Timelog); n > 0 && p.Timelog[n-1].End == nil {
				out[p.ParticipantID] = true
			}
		}
		return out, sessions.Data[0].Status
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		if a, s := active(); !a["mover"] || !a["ghost"] {
			return fmt.Sprintf("active %v (%s)", a, s)
		}
		return ""
	})

	spec := m.specs[home]
	m.edge(home).Crash()
	ghost.Close() // its client is gone with the edge: it never comes back
	restarted := time.Now()
	m.startEdge(spec) // the same id, a new process, well before it could be marked down
	clustertest.Eventually(t, 30*time.Second, func() string {
		if mover.EdgeID() == home || len(mover.Rejoins()) == 0 {
			return fmt.Sprintf("mover still on %s (err %v)", mover.EdgeID(), mover.Err())
		}
		return ""
	})
	clustertest.Eventually(t, grace+15*time.Second, func() string {
		a, s := active()
		if a["ghost"] || !a["mover"] || s != "ongoing" {
			return fmt.Sprintf("%v after the restart: active %v, session %s; want the mover only", time.Since(restarted).Round(100*time.Millisecond), a, s)
		}
		return ""
	})
	t.Logf("the ghost left %v after its edge restarted (grace %v)", time.Since(restarted).Round(100*time.Millisecond), grace)
	if time.Since(restarted) < grace {
		t.Fatalf("the ghost was closed %v after the restart, within the grace (%v) a participant has to come back", time.Since(restarted), grace)
	}
	mover.Close()
	clustertest.Eventually(t, 15*time.Second, func() string {
		if a, s := active(); s != "ended" {
			return fmt.Sprintf("after the mover left: active %v, session %s", a, s)
		}
		return ""
	})
}
