package signal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// askJoin is the ticket of a guest who may only ask to join.
func askJoin(c *ticket.Claims) {
	c.Permissions = ticket.Permissions{Publish: true, Subscribe: true, AskJoin: true}
}

// askJoinAdmitted is such a ticket marked admitted, as the join API marks it
// for an id that is active in the room's session, whoever asks.
func askJoinAdmitted(c *ticket.Claims) { askJoin(c); c.Admitted = true }

// stillThere checks that pid's connection c is untouched: no `removed`,
// the socket open and answering, the edge holding it, no leave reported
// and nobody told it left.
func stillThere(t *testing.T, e *signaltest.Edge, c *signaltest.Client, pid string, others ...*signaltest.Client) {
	t.Helper()
	pongs := 0
	for _, m := range c.Messages() {
		if m.Type == wire.TypePong {
			pongs++
		}
	}
	if err := c.Send(wire.TypePing, nil); err != nil {
		t.Fatalf("%s: %v", pid, err)
	}
	signaltest.Eventually(t, 5*time.Second, func() string {
		n := 0
		for _, m := range c.Messages() {
			if m.Type == wire.TypePong {
				n++
			}
		}
		if n <= pongs {
			return pid + " got no pong"
		}
		return ""
	})
	for _, m := range c.Messages() {
		if m.Type == wire.TypeRemoved {
			t.Fatalf("%s was removed: %s", pid, m.Data)
		}
	}
	if c.Closed() || !e.Server.HasParticipant(pid) {
		t.Fatalf("%s is no longer connected (closed=%v)", pid, c.Closed())
	}
	if n := e.Reporter.Count(edgeapi.EventParticipantLeft, pid); n != 0 {
		t.Fatalf("%d leaves of %s reported", n, pid)
	}
	for _, o := range others {
		for _, m := range o.Messages() {
			if m.Type == wire.TypeParticipantLeft && strings.Contains(string(m.Data), `"`+pid+`"`) {
				t.Fatalf("told %s left: %s", pid, m.Data)
			}
		}
	}
}

// TestAskJoinClaimingAnActiveIDWaitsInTheLobby: a guest whose ask_join
// token names no participant asks the join API as "host", the id of the
// moderator already in the room. The join API marks its ticket admitted
// (the id is active in the session), and before, the edge let it straight
// in and removed the real host as a duplicate. It now waits in the lobby,
// and neither waiting nor being denied touches the host; nor does a proof
// made for another id or a forged one, nor a moderator admitting it by
// mistake.
func TestAskJoinClaimingAnActiveIDWaitsInTheLobby(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 40*time.Second)
	host := e.Join(t, "room-c", "host", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	alice := e.Join(t, "room-c", "alice", nil)

	// Mallory was admitted once under her own id: she holds a proof, for
	// "mallory".
	m0 := e.Dial(t, signaltest.Config{})
	if _, lobby, err := m0.Join(ctx, e.Ticket(t, "room-c", "mallory", askJoin), "Mallory"); err != nil || !lobby {
		t.Fatalf("mallory: lobby=%v err=%v", lobby, err)
	}
	waitMsg(t, host, wire.TypeLobbyRequest, func(m wire.Envelope) bool { return strings.Contains(string(m.Data), `"mallory"`) })
	if err := host.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "mallory", Admit: true}); err != nil {
		t.Fatal(err)
	}
	j, err := m0.WaitJoined(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ownProof := j.ResumeToken

	asked := 0
	waitAsked := func() {
		t.Helper()
		asked++
		signaltest.Eventually(t, 5*time.Second, func() string {
			n := 0
			for _, m := range host.Messages() {
				if m.Type == wire.TypeLobbyRequest && strings.Contains(string(m.Data), `"host"`) {
					n++
				}
			}
			if n < asked {
				return signaltest.Reasonf("host asked %d times about \"host\", want %d", n, asked)
			}
			return ""
		})
	}
	for _, proof := range []string{"", ownProof, "Zm9yZ2Vk.Zm9yZ2Vk", strings.Replace(ownProof, ".", "x.", 1)} {
		g := e.Dial(t, signaltest.Config{})
		_, lobby, err := g.JoinWithProof(ctx, e.Ticket(t, "room-c", "host", askJoinAdmitted), "Mallory", proof)
		if err != nil {
			t.Fatalf("proof %q: %v", proof, err)
		}
		if !lobby {
			t.Fatalf("a guest naming the host's id (proof %q) was let in without a moderator", proof)
		}
		waitAsked()
		stillThere(t, e, host, "host", alice)
		// Denied: the guest goes, the host stays.
		if err := host.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "host", Admit: false}); err != nil {
			t.Fatal(err)
		}
		if _, err := g.WaitJoined(ctx); removedReason(err) != wire.ReasonDenied {
			t.Fatalf("denied guest: %v", err)
		}
		stillThere(t, e, host, "host", alice)
	}

	// Admitted by mistake: turned away, the host stays.
	g := e.Dial(t, signaltest.Config{})
	if _, lobby, err := g.Join(ctx, e.Ticket(t, "room-c", "host", askJoinAdmitted), "Mallory"); err != nil || !lobby {
		t.Fatalf("guest naming the host: lobby=%v err=%v", lobby, err)
	}
	waitAsked()
	if err := host.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "host", Admit: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.WaitJoined(ctx); removedReason(err) != wire.ReasonDuplicate {
		t.Fatalf("guest admitted under the host's id: %v", err)
	}
	stillThere(t, e, host, "host", alice)

	// The same against a participant without moderation rights, whose
	// socket dropped (it is in its resume grace): nobody takes its place.
	token := alice.Joined().ResumeToken
	alice.DropSocket()
	g = e.Dial(t, signaltest.Config{})
	if _, lobby, err := g.Join(ctx, e.Ticket(t, "room-c", "alice", askJoinAdmitted), "Mallory"); err != nil || !lobby {
		t.Fatalf("guest naming alice (in her grace): lobby=%v err=%v", lobby, err)
	}
	back := e.Dial(t, signaltest.Config{})
	if _, err := back.Resume(ctx, token); err != nil {
		t.Fatalf("alice's resume after a guest named her: %v", err)
	}
	if n := e.Reporter.Count(edgeapi.EventParticipantLeft, "alice"); n != 0 {
		t.Fatalf("%d leaves of alice reported", n)
	}
}

// TestAdmittedGuestMovesWithItsProof: the legitimate move. Carol, who may
// only ask to join, was admitted on edge A; A fails (or drains) and she
// joins edge B with a ticket marked admitted and the resume token A gave
// her: B lets her in without asking the moderators again. The same on A
// itself (her socket dropped; she joins afresh): she takes over her own
// connection. Without the token she is anyone naming her id and waits.
func TestAdmittedGuestMovesWithItsProof(t *testing.T) {
	a := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) { c.EdgeID = "edge-a" }})
	b := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) { c.EdgeID = "edge-b" }})
	ctx := ctxT(t, 40*time.Second)
	mod := a.Join(t, "room-m", "mod", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	modB := b.Join(t, "room-m", "mod-b", func(c *ticket.Claims) { c.Permissions.Moderate = true })

	carol := a.Dial(t, signaltest.Config{})
	if _, lobby, err := carol.Join(ctx, a.Ticket(t, "room-m", "carol", askJoin), "Carol"); err != nil || !lobby {
		t.Fatalf("carol: lobby=%v err=%v", lobby, err)
	}
	waitMsg(t, mod, wire.TypeLobbyRequest, func(m wire.Envelope) bool { return strings.Contains(string(m.Data), `"carol"`) })
	if err := mod.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "carol", Admit: true}); err != nil {
		t.Fatal(err)
	}
	j, err := carol.WaitJoined(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proof := j.ResumeToken

	// To edge B, with her proof: no lobby.
	onB := b.Dial(t, signaltest.Config{})
	j, lobby, err := onB.JoinWithProof(ctx, b.Ticket(t, "room-m", "carol", askJoinAdmitted), "Carol", proof)
	if err != nil || lobby {
		t.Fatalf("carol moving to B with her proof: lobby=%v err=%v", lobby, err)
	}
	if j.ResumeToken == "" {
		t.Fatal("no resume token on B")
	}
	// Without it, naming her id is not enough.
	other := b.Dial(t, signaltest.Config{})
	if _, lobby, err := other.Join(ctx, b.Ticket(t, "room-m", "carol", askJoinAdmitted), "Carol?"); err != nil || !lobby {
		t.Fatalf("carol's id without the proof on B: lobby=%v err=%v", lobby, err)
	}
	stillThere(t, b, onB, "carol", modB)

	// Back on A, where her first connection dropped: she joins afresh with
	// her proof and takes over her own member; the room sees no leave.
	carol.DropSocket()
	again := a.Dial(t, signaltest.Config{})
	if _, lobby, err := again.JoinWithProof(ctx, a.Ticket(t, "room-m", "carol", askJoinAdmitted), "Carol", proof); err != nil || lobby {
		t.Fatalf("carol joining A afresh with her proof: lobby=%v err=%v", lobby, err)
	}
	stillThere(t, a, again, "carol", mod)
	n := 0
	for _, m := range mod.Messages() {
		if m.Type == wire.TypeLobbyRequest && strings.Contains(string(m.Data), `"carol"`) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the moderator was asked about carol %d times, want 1", n)
	}
	// A proof does not outweigh the control plane: a ticket not marked
	// admitted (she left the session) waits.
	late := b.Dial(t, signaltest.Config{})
	if _, lobby, err := late.JoinWithProof(context.Background(), b.Ticket(t, "room-m", "carol", askJoin), "Carol", proof); err != nil || !lobby {
		t.Fatalf("carol's proof with a ticket not marked admitted: lobby=%v err=%v", lobby, err)
	}
}

// TestHasParticipantOnlyWhileAdmitted: TURN relays only for participants
// HasParticipant names, and asks again while they relay: not while one
// waits in the lobby, yes once admitted and through its resume grace, no
// once it left, was removed or denied.
func TestHasParticipantOnlyWhileAdmitted(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) { c.ResumeGrace = 20 * time.Second }})
	ctx := ctxT(t, 40*time.Second)
	mod := e.Join(t, "room-t", "mod", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	wait := func(pid string) *signaltest.Client {
		t.Helper()
		g := e.Dial(t, signaltest.Config{})
		if _, lobby, err := g.Join(ctx, e.Ticket(t, "room-t", pid, askJoin), pid); err != nil || !lobby {
			t.Fatalf("%s: lobby=%v err=%v", pid, lobby, err)
		}
		return g
	}
	decide := func(pid string, admit bool) {
		t.Helper()
		if err := mod.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: pid, Admit: admit}); err != nil {
			t.Fatal(err)
		}
	}
	has := func(pid string, want bool) {
		t.Helper()
		signaltest.Eventually(t, 5*time.Second, func() string {
			if got := e.Server.HasParticipant(pid); got != want {
				return signaltest.Reasonf("HasParticipant(%s) = %v, want %v", pid, got, want)
			}
			return ""
		})
	}

	g := wait("gina")
	has("gina", false)
	decide("gina", true)
	if _, err := g.WaitJoined(ctx); err != nil {
		t.Fatal(err)
	}
	has("gina", true)
	token := g.Joined().ResumeToken
	g.DropSocket()
	time.Sleep(200 * time.Millisecond)
	has("gina", true) // resume grace
	g2 := e.Dial(t, signaltest.Config{})
	if _, err := g2.Resume(ctx, token); err != nil {
		t.Fatal(err)
	}
	has("gina", true)
	if err := mod.Send(wire.TypeRemoveParticipant, wire.RemoveParticipant{ParticipantID: "gina"}); err != nil {
		t.Fatal(err)
	}
	has("gina", false)

	d := wait("dan")
	decide("dan", false)
	if _, err := d.WaitJoined(ctx); removedReason(err) != wire.ReasonDenied {
		t.Fatalf("dan: %v", err)
	}
	has("dan", false)

	l := e.Join(t, "room-t", "lea", nil)
	has("lea", true)
	if err := l.Leave(); err != nil {
		t.Fatal(err)
	}
	has("lea", false)
}
