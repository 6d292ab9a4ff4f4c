package signal_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// decisions is a cascade that records the lobby decisions this edge sends
// to other edges (and drops everything else).
type decisions struct {
	mu   sync.Mutex
	sent []string // "origin pid admit|deny"
}

func (d *decisions) LocalJoined(string, edgeapi.CascadeParticipant) {}
func (d *decisions) LocalLeft(string, string, string)               {}
func (d *decisions) LocalMute(string, wire.Mute)                    {}
func (d *decisions) LocalRoomEmpty(string)                          {}
func (d *decisions) Moderate(string, string, string, string) bool   { return false }
func (d *decisions) LocalLobby(string, wire.LobbyRequest)           {}
func (d *decisions) LocalLobbyGone(string, string)                  {}
func (d *decisions) Decide(roomID, origin, pid string, admit bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := "deny"
	if admit {
		v = "admit"
	}
	d.sent = append(d.sent, origin+" "+pid+" "+v)
	return true
}

func (d *decisions) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.sent...)
}

// TestAdmitFollowsAGuestToItsNextEdge: a moderator here admits carol, who
// waits on paris-1; the decision goes to paris-1, which stalls just then
// (it is lost). Carol's page hears nothing and asks again through paris-2:
// the admit goes to paris-2 at once and the moderator is not asked again.
// Only for a while (30 s), and denials are asked again.
func TestAdmitFollowsAGuestToItsNextEdge(t *testing.T) {
	e, skew := skewedEdge(t)
	casc := &decisions{}
	e.Server.SetCascade(casc)
	mod := e.Join(t, "room-m", "mod", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	pongs := 0
	asked := func(pid string) int {
		t.Helper()
		// Everything sent to the moderator before this ping arrives before
		// its pong.
		pongs++
		_ = mod.Send(wire.TypePing, nil)
		signaltest.Eventually(t, 5*time.Second, func() string {
			n := 0
			for _, m := range mod.Messages() {
				if m.Type == wire.TypePong {
					n++
				}
			}
			if n < pongs {
				return signaltest.Reasonf("%d pongs, want %d", n, pongs)
			}
			return ""
		})
		n := 0
		for _, m := range mod.Messages() {
			if m.Type == wire.TypeLobbyRequest && strings.Contains(string(m.Data), `"`+pid+`"`) {
				n++
			}
		}
		return n
	}
	decide := func(pid string, admit bool) {
		t.Helper()
		if err := mod.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: pid, Admit: admit}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(sent ...string) {
		t.Helper()
		signaltest.Eventually(t, 5*time.Second, func() string {
			if got := casc.list(); len(got) != len(sent) || (len(sent) > 0 && got[len(got)-1] != sent[len(sent)-1]) {
				return signaltest.Reasonf("decisions sent %v, want %v", got, sent)
			}
			return ""
		})
	}

	e.Server.RemoteLobby("room-m", "paris-1", wire.LobbyRequest{ParticipantID: "carol", Name: "Carol"})
	if n := asked("carol"); n != 1 {
		t.Fatalf("moderator asked about carol %d times, want 1", n)
	}
	decide("carol", true)
	want("paris-1 carol admit")
	e.Server.RemoteLobby("room-m", "paris-2", wire.LobbyRequest{ParticipantID: "carol", Name: "Carol"})
	want("paris-1 carol admit", "paris-2 carol admit")
	if n := asked("carol"); n != 1 {
		t.Fatalf("moderator asked about carol %d times after admitting her, want 1", n)
	}

	// Once she is in the room (through paris-2) the admit has served: if
	// she is removed and asks again, the moderator is asked.
	e.Server.RemoteJoined("room-m", "paris-2", wire.Participant{ParticipantID: "carol", Name: "Carol", Tracks: []wire.TrackInfo{}})
	e.Server.RemoteLeft("room-m", "paris-2", "carol", wire.ReasonRemoved, false)
	e.Server.RemoteLobby("room-m", "paris-3", wire.LobbyRequest{ParticipantID: "carol", Name: "Carol"})
	if n := asked("carol"); n != 2 {
		t.Fatalf("moderator asked about carol %d times after she was in the room and asked again, want 2", n)
	}

	// Frank, admitted while waiting on paris-1, comes here (this edge is
	// nearest once paris-1 stalled): admitted at once, not put in the lobby.
	e.Server.RemoteLobby("room-m", "paris-1", wire.LobbyRequest{ParticipantID: "frank", Name: "Frank"})
	asked("frank")
	decide("frank", true)
	want("paris-1 carol admit", "paris-2 carol admit", "paris-1 frank admit")
	e.Join(t, "room-m", "frank", func(c *ticket.Claims) {
		c.Permissions = ticket.Permissions{Publish: true, Subscribe: true, AskJoin: true}
	})
	if n := asked("frank"); n != 1 {
		t.Fatalf("moderator asked about frank %d times, want 1", n)
	}

	// A denial is asked again.
	e.Server.RemoteLobby("room-m", "paris-1", wire.LobbyRequest{ParticipantID: "dave", Name: "Dave"})
	asked("dave")
	decide("dave", false)
	want("paris-1 carol admit", "paris-2 carol admit", "paris-1 frank admit", "paris-1 dave deny")
	e.Server.RemoteLobby("room-m", "paris-2", wire.LobbyRequest{ParticipantID: "dave", Name: "Dave"})
	if n := asked("dave"); n != 2 {
		t.Fatalf("moderator asked about dave %d times after denying him, want 2", n)
	}

	// Half a minute later an admit no longer holds.
	e.Server.RemoteLobby("room-m", "paris-1", wire.LobbyRequest{ParticipantID: "erin", Name: "Erin"})
	asked("erin")
	decide("erin", true)
	want("paris-1 carol admit", "paris-2 carol admit", "paris-1 frank admit", "paris-1 dave deny", "paris-1 erin admit")
	skew.Store(int64(31 * time.Second))
	e.Server.RemoteLobby("room-m", "paris-2", wire.LobbyRequest{ParticipantID: "erin", Name: "Erin"})
	if n := asked("erin"); n != 2 {
		t.Fatalf("moderator asked about erin %d times 31 s after admitting her, want 2", n)
	}
	if got := casc.list(); len(got) != 5 {
		t.Fatalf("decisions sent %v: erin's old admit was used again", got)
	}
}
