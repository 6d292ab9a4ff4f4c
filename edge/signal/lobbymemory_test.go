package signal_test

import (
	"context"
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

// TestRemovedGuestAsksAgain: a guest who may only ask to join, admitted and
// then removed by a moderator, reconnects at once. The join API may still
// hand it a ticket marked admitted (it is active in the session until this
// edge's leave report is applied); that ticket, even with the resume token
// of its admission as proof, must not take it past the lobby. Once a
// moderator admits it again the mark (with its proof) holds again, and the
// memory of the removal is bounded.
func TestRemovedGuestAsksAgain(t *testing.T) {
	e, skew := skewedEdge(t)
	mod := e.Join(t, "room-k", "mod", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	guest := func(c *ticket.Claims) {
		c.Permissions = ticket.Permissions{Publish: true, Subscribe: true, AskJoin: true}
	}
	admittedGuest := func(c *ticket.Claims) { guest(c); c.Admitted = true }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	proofs := map[string]string{} // the resume token of each one's last admission
	join := func(pid string, claims func(*ticket.Claims)) (*signaltest.Client, bool) {
		t.Helper()
		c := e.Dial(t, signaltest.Config{})
		j, lobby, err := c.JoinWithProof(ctx, e.Ticket(t, "room-k", pid, claims), pid, proofs[pid])
		if err != nil {
			t.Fatalf("join %s: %v", pid, err)
		}
		if j != nil {
			proofs[pid] = j.ResumeToken
		}
		return c, lobby
	}
	admit := func(c *signaltest.Client, pid string) {
		t.Helper()
		if err := mod.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: pid, Admit: true}); err != nil {
			t.Fatal(err)
		}
		j, err := c.WaitJoined(ctx)
		if err != nil {
			t.Fatalf("%s admitted: %v", pid, err)
		}
		proofs[pid] = j.ResumeToken
	}
	remove := func(c *signaltest.Client, pid string) {
		t.Helper()
		if err := mod.Send(wire.TypeRemoveParticipant, wire.RemoveParticipant{ParticipantID: pid}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitFor(ctx, wire.TypeRemoved, nil); err != nil {
			t.Fatalf("%s removed: %v", pid, err)
		}
	}

	g, lobby := join("mallory", guest)
	if !lobby {
		t.Fatal("a guest who may only ask to join was let in without asking")
	}
	admit(g, "mallory")
	remove(g, "mallory")

	g, lobby = join("mallory", admittedGuest)
	if !lobby {
		t.Fatal("removed by a moderator, mallory came straight back in with a ticket marked admitted")
	}
	admit(g, "mallory")
	// Admitted again: leaving and coming back with a ticket marked admitted
	// and its proof (it moves here from another edge) lets it in without
	// asking.
	if err := g.Leave(); err != nil {
		t.Fatal(err)
	}
	if _, err := mod.WaitFor(ctx, wire.TypeParticipantLeft, func(m wire.Envelope) bool {
		l, _ := signaltest.Decode[wire.ParticipantLeft](m)
		return l.ParticipantID == "mallory" && l.Reason == wire.ReasonLeft
	}); err != nil {
		t.Fatalf("mallory's leave: %v", err)
	}
	if _, lobby = join("mallory", admittedGuest); lobby {
		t.Fatal("mallory, admitted again after the removal, was put back in the lobby")
	}

	// The removal is remembered for a while, not for ever.
	g, _ = join("trent", guest)
	admit(g, "trent")
	remove(g, "trent")
	skew.Store(int64(121 * time.Second))
	later := time.Now().Add(121 * time.Second)
	if _, lobby = join("trent", func(c *ticket.Claims) {
		admittedGuest(c)
		c.IssuedAt, c.IssuedAtMs, c.ExpiresAt = later.Unix(), later.UnixMilli(), later.Add(time.Minute).Unix()
	}); lobby {
		t.Fatal("a ticket marked admitted 121 s after trent's removal still sent him to the lobby")
	}
}
