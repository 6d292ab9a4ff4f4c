package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/test/netproxy"
)

// proxied puts a netproxy in front of the HTTP server at base and returns
// the URL to use instead.
func proxied(t *testing.T, base string) (*netproxy.TCP, string) {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p := netproxy.New(t, "127.0.0.1", u.Host)
	return p, "http://" + p.Addr()
}

// removedWith is the reason of the `removed` frame the participant's
// current connection got ("" if none).
func removedWith(s *signaltest.Session) string {
	for _, m := range s.Client().Messages() {
		if m.Type == wire.TypeRemoved {
			var r wire.Removed
			_ = json.Unmarshal(m.Data, &r)
			return r.Reason
		}
	}
	return ""
}

// TestMissedOrdersOutliveTheirControlNode: room closes and removals made
// through the API reach edges that could not be told when they were made,
// although the control node that made them (and was retrying them) died
// before the edges could be reached again. Paris could not be called (its
// internal API cut) but kept talking to the control plane; Montréal was cut
// off both ways until the control plane declared it down, and registers
// again when it is back. Each is told by whichever control node it talks to
// next: the participants of the closed rooms and the removed participant
// are disconnected; a participant who joined the closed room afterwards
// and one who was not removed stay; Montréal's participant is not reported
// into a new session of the closed room when its edge registers again.
func TestMissedOrdersOutliveTheirControlNode(t *testing.T) {
	// Cuts are netproxy's: what was sent across a cut link never arrives
	// later, whatever became of its sender.
	gates := map[string]*netproxy.TCP{}
	var gmu sync.Mutex
	m := startMultiWith(t, 3, multiOptions{internalURL: func(id, u string) string {
		g, url := proxied(t, u)
		gmu.Lock()
		gates[id] = g
		gmu.Unlock()
		return url
	}}, edgeSpec{id: "paris-1", region: "eu-west"})
	// Montréal reaches every control node through gates too.
	var toControl []*netproxy.TCP
	var urls []string
	for _, u := range m.controlURLs() {
		g, url := proxied(t, u)
		toControl = append(toControl, g)
		urls = append(urls, url)
	}
	m.startEdgeVia(edgeSpec{id: "montreal-1", region: "ca-east"}, urls)
	m.waitEdgeUp("montreal-1")

	closedRoom, kickRoom, cutRoom := m.room(nil), m.room(nil), m.room(nil)
	alice := m.session(0, closedRoom, "alice", "eu-west")
	dave := m.session(0, kickRoom, "dave", "eu-west")
	erin := m.session(0, kickRoom, "erin", "eu-west")
	frank := m.session(0, cutRoom, "frank", "ca-east")
	for s, edge := range map[*signaltest.Session]string{alice: "paris-1", dave: "paris-1", erin: "paris-1", frank: "montreal-1"} {
		if s.EdgeID() != edge {
			t.Fatalf("a participant landed on %s, want %s", s.EdgeID(), edge)
		}
	}
	x := m.c.Leader()
	y := (x + 1) % 3
	active := func(i int, room, pid string) bool {
		var ok bool
		m.c.Node(i).Node().FSM().Read(func(st *state.Store) {
			r, found := st.RoomByRoomID(room)
			if !found {
				return
			}
			_, ok = st.ActiveInSession(r.ID, pid)
		})
		return ok
	}
	clustertest.Eventually(t, 10*time.Second, func() string {
		for _, p := range [][2]string{{closedRoom, "alice"}, {kickRoom, "dave"}, {kickRoom, "erin"}, {cutRoom, "frank"}} {
			if !active(x, p[0], p[1]) {
				return fmt.Sprintf("%s is not active in %s on node%d", p[1], p[0], x)
			}
		}
		return ""
	})

	// Paris cannot be called; Montréal is cut off both ways.
	gates["paris-1"].Cut()
	gates["montreal-1"].Cut()
	for _, g := range toControl {
		g.Cut()
	}
	for _, call := range []struct {
		path string
		body map[string]any
	}{
		// First the room on the edge cut off both ways: its participant is
		// closed as stranded once the edge has been down for RejoinGrace.
		{"/v2/sessions/end", map[string]any{"roomId": cutRoom}},
		{"/v2/sessions/end", map[string]any{"roomId": closedRoom}},
		{"/v2/sessions/participants/remove", map[string]any{"roomId": kickRoom, "participantId": "dave"}},
	} {
		if r := m.c.Do(x, "POST", call.path, m.c.Token(), call.body); r.Status != 200 {
			t.Fatalf("%s: %d %s", call.path, r.Status, r.Body)
		}
	}
	closedAt := time.Now()
	// Somebody joins the closed room afterwards: the room's next session.
	bob := m.session(y, closedRoom, "bob", "eu-west")
	clustertest.Eventually(t, 10*time.Second, func() string {
		if up, _ := m.edgeUp(y, "montreal-1"); up {
			return "node" + fmt.Sprint(y) + " still sees montreal-1 up"
		}
		return ""
	})
	// The control node that made the orders, and was retrying the calls
	// nobody answered, dies; then the edges can be reached again.
	m.c.Stop(x)
	gates["paris-1"].Heal()
	gates["montreal-1"].Heal()
	for _, g := range toControl {
		g.Heal()
	}

	clustertest.Eventually(t, 15*time.Second, func() string {
		for name, w := range map[string]struct {
			s      *signaltest.Session
			reason string
		}{"alice": {alice, wire.ReasonRoomClosed}, "dave": {dave, "removed"}, "frank": {frank, wire.ReasonRoomClosed}} {
			if got := removedWith(w.s); got != w.reason {
				return fmt.Sprintf("%s: removed with %q, want %q", name, got, w.reason)
			}
		}
		return ""
	})
	t.Logf("the missed orders were carried out %v after they were made", time.Since(closedAt).Round(10*time.Millisecond))
	m.waitEdgeUp("montreal-1")
	// A few heartbeats later: the ones who came after or were not removed
	// are still there, on their edge and in the control plane.
	time.Sleep(time.Second)
	for name, s := range map[string]*signaltest.Session{"bob": bob, "erin": erin} {
		if got := removedWith(s); got != "" {
			t.Errorf("%s was removed (%q)", name, got)
		}
	}
	if !active(y, closedRoom, "bob") || !active(y, kickRoom, "erin") {
		t.Errorf("bob active in the closed room's next session: %v, erin active: %v", active(y, closedRoom, "bob"), active(y, kickRoom, "erin"))
	}
	if m.edge("montreal-1").Signal().HasLocalMembers(cutRoom) {
		t.Error("montreal-1 still has somebody in the closed room")
	}
	// Montréal's participant was not reported into a new session of the
	// room when its edge registered again.
	var sessions struct {
		Data []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"data"`
	}
	r := m.c.Do(y, "GET", "/v2/sessions?roomId="+cutRoom, m.c.Token(), nil)
	r.JSON(t, &sessions)
	if len(sessions.Data) != 1 || sessions.Data[0].Status != "ended" {
		t.Errorf("sessions of the room closed while its edge was cut off: %s, want one, ended", r.Body)
	}
}
