package signal_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

func protoCode(err error) string {
	var pe *signaltest.ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func removedReason(err error) string {
	var re *signaltest.RemovedError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

// waitMsg waits for a message of typ matching match.
func waitMsg(t *testing.T, c *signaltest.Client, typ string, match func(wire.Envelope) bool) wire.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.WaitFor(ctx, typ, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}

func errorCode(code string) func(wire.Envelope) bool {
	return func(m wire.Envelope) bool {
		e, _ := signaltest.Decode[wire.Error](m)
		return e.Code == code
	}
}

func TestJoinRejections(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	forged, err := ticket.Sign(otherKey, ticket.Claims{RoomID: "r", ParticipantID: "x", EdgeID: "edge-test", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		ticket string
		code   string
	}{
		{"expired", e.Ticket(t, "r", "x", func(c *ticket.Claims) {
			c.IssuedAt, c.ExpiresAt = now.Add(-2*time.Minute).Unix(), now.Add(-time.Minute).Unix()
		}), wire.CodeTicketExpired},
		{"wrong edge", e.Ticket(t, "r", "x", func(c *ticket.Claims) { c.EdgeID = "edge-other" }), wire.CodeWrongEdge},
		{"bad signature", forged, wire.CodeInvalidTicket},
		{"garbage", "not-a-ticket", wire.CodeInvalidTicket},
		{"region not allowed", e.Ticket(t, "r", "x", func(c *ticket.Claims) { c.AllowedRegions = []string{"eu-west"} }), wire.CodeWrongEdge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.Dial(t, signaltest.Config{})
			_, _, err := c.Join(ctxT(t, 10*time.Second), tc.ticket, "x")
			if protoCode(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			signaltest.Eventually(t, 5*time.Second, func() string {
				if !c.Closed() {
					return "socket still open after a failed join"
				}
				return ""
			})
		})
	}
	t.Run("room full", func(t *testing.T) {
		full := func(c *ticket.Claims) { c.MaxParticipants = 2; c.AllowedRegions = []string{"test"} }
		e.Join(t, "small", "a", full)
		e.Join(t, "small", "b", full)
		c := e.Dial(t, signaltest.Config{})
		_, _, err := c.Join(ctxT(t, 10*time.Second), e.Ticket(t, "small", "c", full), "c")
		if protoCode(err) != wire.CodeRoomFull {
			t.Fatalf("got %v, want room-full", err)
		}
	})
	t.Run("first message must be join", func(t *testing.T) {
		c := e.Dial(t, signaltest.Config{})
		_ = c.Send(wire.TypeOffer, wire.SDP{Target: "publisher", SDP: "x"})
		waitMsg(t, c, wire.TypeError, errorCode(wire.CodeBadRequest))
	})
	if n := len(e.Reporter.Events()); n != 2 {
		t.Fatalf("reporter saw %d events, want the 2 joins of the room-full case", n)
	}
}

func TestOriginCheck(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) {
		c.AllowedOrigins = []string{"https://app.example"}
	}})
	ctx := ctxT(t, 10*time.Second)
	if _, err := signaltest.Dial(ctx, signaltest.Config{URL: e.URL(), Origin: "https://evil.example"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("foreign origin accepted: %v", err)
	}
	c, err := signaltest.Dial(ctx, signaltest.Config{URL: e.URL(), Origin: "https://app.example"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestBadMessagesGetErrors(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	c := e.Join(t, "room-b", "alice", nil)
	_ = c.SendText([]byte("{not json"))
	waitMsg(t, c, wire.TypeError, errorCode(wire.CodeBadRequest))
	_ = c.Send("frobnicate", nil)
	waitMsg(t, c, wire.TypeError, errorCode(wire.CodeUnknownType))
	_ = c.SendRaw(wire.Envelope{Type: wire.TypeOffer, Data: []byte(`{"target":"publisher","sdp":"v=0 garbage"}`)})
	waitMsg(t, c, wire.TypeError, errorCode(wire.CodeBadSDP))
	_ = c.SendRaw(wire.Envelope{Type: wire.TypeAnswer, Data: []byte(`{"target":"subscriber","sdp":"x"}`)})
	_ = c.SendRaw(wire.Envelope{Type: wire.TypeCandidate, Data: []byte(`{"target":"subscriber","candidate":{"candidate":12}}`)})
	_ = c.SendRaw(wire.Envelope{Type: wire.TypeMute, Data: []byte(`[]`)})
	_ = c.Send(wire.TypeJoin, wire.Join{Ticket: "x"})
	_ = c.Send(wire.TypePing, nil)
	waitMsg(t, c, wire.TypePong, nil)
	if c.Closed() {
		t.Fatal("bad messages closed the session")
	}
}

func TestDuplicateJoinReplacesConnection(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	first := e.Join(t, "room-d", "alice", nil)
	bob := e.Join(t, "room-d", "bob", nil)
	second := e.Join(t, "room-d", "alice", nil)
	m := waitMsg(t, first, wire.TypeRemoved, nil)
	if r, _ := signaltest.Decode[wire.Removed](m); r.Reason != wire.ReasonDuplicate {
		t.Fatalf("old connection got %+v", r)
	}
	if j := second.Joined(); j == nil || len(j.Participants) != 1 || j.Participants[0].ParticipantID != "bob" {
		t.Fatalf("second joined %+v", second.Joined())
	}
	if n := e.Reporter.Count(edgeapi.EventParticipantJoined, "alice"); n != 1 {
		t.Fatalf("alice reported joined %d times", n)
	}
	if e.Reporter.Count(edgeapi.EventParticipantLeft, "alice") != 0 {
		t.Fatal("duplicate join reported a leave")
	}
	for _, m := range bob.Messages() {
		if m.Type == wire.TypeParticipantLeft {
			t.Fatalf("bob saw %s", m.Data)
		}
	}
}

func TestResume(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) { c.ResumeGrace = 20 * time.Second }})
	ctx := ctxT(t, 40*time.Second)
	alice := e.Join(t, "room-r", "alice", nil)
	bob := e.Join(t, "room-r", "bob", nil)
	if err := alice.Publish(ctx, signaltest.PublishOptions{Audio: true}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 15*time.Second, func() string { return received(bob, "alice", "audio", 10) })
	token := alice.Joined().ResumeToken

	alice.DropSocket()
	alice2 := e.Dial(t, signaltest.Config{})
	j, err := alice2.Resume(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if !j.Resumed || j.ParticipantID != "alice" || len(j.Participants) != 1 {
		t.Fatalf("resumed joined %+v", j)
	}
	// New PeerConnections: publish again; bob keeps receiving alice's audio.
	st0, _ := bob.Track("alice", "audio")
	if err := alice2.Publish(ctx, signaltest.PublishOptions{Audio: true}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 15*time.Second, func() string { return received(bob, "alice", "audio", st0.Packets+20) })
	if e.Reporter.Count(edgeapi.EventParticipantLeft, "alice") != 0 || e.Reporter.Count(edgeapi.EventParticipantJoined, "alice") != 1 {
		t.Fatalf("resume was reported: %+v", e.Reporter.Events())
	}
	for _, m := range bob.Messages() {
		if m.Type == wire.TypeParticipantLeft || (m.Type == wire.TypeParticipantJoined && strings.Contains(string(m.Data), "alice")) {
			t.Fatalf("bob saw %s %s", m.Type, m.Data)
		}
	}
	// An old token from another member incarnation does not resume.
	bad := e.Dial(t, signaltest.Config{})
	if _, err := bad.Resume(ctx, token+"x"); protoCode(err) != wire.CodeInvalidTicket {
		t.Fatalf("tampered token: %v", err)
	}
}

func TestResumeGraceExpires(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) { c.ResumeGrace = 500 * time.Millisecond }})
	ctx := ctxT(t, 20*time.Second)
	alice := e.Join(t, "room-g", "alice", nil)
	bob := e.Join(t, "room-g", "bob", nil)
	token := alice.Joined().ResumeToken
	alice.DropSocket()
	m := waitMsg(t, bob, wire.TypeParticipantLeft, nil)
	if l, _ := signaltest.Decode[wire.ParticipantLeft](m); l.ParticipantID != "alice" || l.Reason != wire.ReasonTimeout {
		t.Fatalf("bob got %+v", l)
	}
	if n := e.Reporter.Count(edgeapi.EventParticipantLeft, "alice"); n != 1 {
		t.Fatalf("%d leaves reported", n)
	}
	late := e.Dial(t, signaltest.Config{})
	if _, err := late.Resume(ctx, token); protoCode(err) != wire.CodeInvalidTicket {
		t.Fatalf("resume after grace: %v", err)
	}
}

func TestPermissionsAndModeration(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 40*time.Second)
	mod := e.Join(t, "room-p", "mod", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	alice := e.Join(t, "room-p", "alice", nil)
	viewer := e.Join(t, "room-p", "viewer", func(c *ticket.Claims) { c.Permissions.Publish = false })

	if err := viewer.Publish(ctx, signaltest.PublishOptions{Audio: true}); protoCode(err) != wire.CodeForbidden {
		t.Fatalf("publish without permission: %v", err)
	}
	_ = alice.Send(wire.TypeRemoveParticipant, wire.RemoveParticipant{ParticipantID: "viewer"})
	waitMsg(t, alice, wire.TypeError, errorCode(wire.CodeForbidden))
	_ = alice.Send(wire.TypeMuteParticipant, wire.MuteParticipant{ParticipantID: "viewer", Kind: "audio"})
	signaltest.Eventually(t, 5*time.Second, func() string {
		n := 0
		for _, m := range alice.Messages() {
			if m.Type == wire.TypeError && errorCode(wire.CodeForbidden)(m) {
				n++
			}
		}
		if n < 2 {
			return "mute-participant by a non-moderator not refused"
		}
		return ""
	})

	// Moderator mutes alice's audio: alice is told, forwarding stops.
	if err := alice.Publish(ctx, signaltest.PublishOptions{Audio: true, Video: true}); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 15*time.Second, func() string {
		if why := received(viewer, "alice", "audio", 10); why != "" {
			return why
		}
		return received(viewer, "alice", "video", 10)
	})
	_ = mod.Send(wire.TypeMuteParticipant, wire.MuteParticipant{ParticipantID: "alice", Kind: "audio"})
	waitMsg(t, alice, wire.TypeMute, func(m wire.Envelope) bool {
		mu, _ := signaltest.Decode[wire.Mute](m)
		return mu.ParticipantID == "alice" && mu.Kind == "audio" && mu.Muted
	})
	waitMsg(t, viewer, wire.TypeMute, func(m wire.Envelope) bool {
		mu, _ := signaltest.Decode[wire.Mute](m)
		return mu.ParticipantID == "alice" && mu.TrackID == "audio" && mu.Muted
	})
	a0, _ := viewer.Track("alice", "audio")
	v0, _ := viewer.Track("alice", "video")
	// One second of video later, audio must not have moved (beyond packets in flight).
	signaltest.Eventually(t, 10*time.Second, func() string { return received(viewer, "alice", "video", v0.Packets+30) })
	if a1, _ := viewer.Track("alice", "audio"); a1.Packets > a0.Packets+5 {
		t.Fatalf("audio still forwarded after a moderator mute: %d → %d", a0.Packets, a1.Packets)
	}

	// Moderator removes alice.
	_ = mod.Send(wire.TypeRemoveParticipant, wire.RemoveParticipant{ParticipantID: "alice"})
	m := waitMsg(t, alice, wire.TypeRemoved, nil)
	if r, _ := signaltest.Decode[wire.Removed](m); r.Reason != wire.ReasonRemoved {
		t.Fatalf("alice got %+v", r)
	}
	waitMsg(t, viewer, wire.TypeParticipantLeft, func(m wire.Envelope) bool {
		l, _ := signaltest.Decode[wire.ParticipantLeft](m)
		return l.ParticipantID == "alice" && l.Reason == wire.ReasonRemoved
	})
	waitMsg(t, viewer, wire.TypeTrackUnpublished, nil)
	signaltest.Eventually(t, 5*time.Second, func() string {
		if e.Reporter.Count(edgeapi.EventParticipantLeft, "alice") != 1 {
			return "leave not reported"
		}
		return ""
	})
	_ = mod.Send(wire.TypeRemoveParticipant, wire.RemoveParticipant{ParticipantID: "ghost"})
	waitMsg(t, mod, wire.TypeError, errorCode(wire.CodeNotFound))
}

func TestLobby(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 30*time.Second)
	ask := func(c *ticket.Claims) { c.Permissions.AskJoin = true }
	// Someone waits before any moderator is there.
	early := e.Dial(t, signaltest.Config{})
	if _, lobby, err := early.Join(ctx, e.Ticket(t, "room-l", "early", ask), "early"); err != nil || !lobby {
		t.Fatalf("early: lobby=%v err=%v", lobby, err)
	}
	mod := e.Join(t, "room-l", "mod", func(c *ticket.Claims) { c.Permissions.Moderate = true; c.Permissions.AskJoin = true })
	waitMsg(t, mod, wire.TypeLobbyRequest, func(m wire.Envelope) bool {
		r, _ := signaltest.Decode[wire.LobbyRequest](m)
		return r.ParticipantID == "early"
	})
	// A second moderator hears of every decision: the request is withdrawn.
	mod2 := e.Join(t, "room-l", "mod2", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	withdrawn := func(c *signaltest.Client, pid string) {
		t.Helper()
		waitMsg(t, c, wire.TypeLobbyWithdrawn, func(m wire.Envelope) bool {
			w, _ := signaltest.Decode[wire.LobbyWithdrawn](m)
			return w.ParticipantID == pid
		})
	}
	late := e.Dial(t, signaltest.Config{})
	if _, lobby, err := late.Join(ctx, e.Ticket(t, "room-l", "late", ask), "late"); err != nil || !lobby {
		t.Fatalf("late: lobby=%v err=%v", lobby, err)
	}
	waitMsg(t, mod, wire.TypeLobbyRequest, func(m wire.Envelope) bool {
		r, _ := signaltest.Decode[wire.LobbyRequest](m)
		return r.ParticipantID == "late"
	})
	if e.Reporter.Count(edgeapi.EventParticipantJoined, "early") != 0 {
		t.Fatal("lobby member reported as joined")
	}
	// A waiting participant cannot act.
	_ = early.Send(wire.TypeRemoveParticipant, wire.RemoveParticipant{ParticipantID: "mod"})
	waitMsg(t, early, wire.TypeError, errorCode(wire.CodeBadRequest))

	_ = mod.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "early", Admit: true})
	j, err := early.WaitJoined(ctx)
	if err != nil || j.ParticipantID != "early" {
		t.Fatalf("admit: %+v %v", j, err)
	}
	waitMsg(t, mod, wire.TypeParticipantJoined, func(m wire.Envelope) bool {
		p, _ := signaltest.Decode[wire.Participant](m)
		return p.ParticipantID == "early"
	})
	withdrawn(mod2, "early")
	_ = mod.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "late", Admit: false})
	if _, err := late.WaitJoined(ctx); removedReason(err) != wire.ReasonDenied {
		t.Fatalf("deny: %v", err)
	}
	withdrawn(mod2, "late")
	// Someone who gives up waiting is withdrawn too.
	quitter := e.Dial(t, signaltest.Config{})
	if _, lobby, err := quitter.Join(ctx, e.Ticket(t, "room-l", "quitter", ask), "quitter"); err != nil || !lobby {
		t.Fatalf("quitter: lobby=%v err=%v", lobby, err)
	}
	waitMsg(t, mod, wire.TypeLobbyRequest, func(m wire.Envelope) bool { return strings.Contains(string(m.Data), `"quitter"`) })
	quitter.Close()
	withdrawn(mod, "quitter")
	if e.Reporter.Count(edgeapi.EventParticipantJoined, "early") != 1 || e.Reporter.Count(edgeapi.EventParticipantJoined, "late") != 0 {
		t.Fatalf("events %+v", e.Reporter.Events())
	}
	_ = early.Send(wire.TypeLobbyDecision, wire.LobbyDecision{ParticipantID: "x", Admit: true})
	waitMsg(t, early, wire.TypeError, errorCode(wire.CodeForbidden))
}

func TestInternalRoutes(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	ctx := ctxT(t, 20*time.Second)
	alice := e.Join(t, "room-i", "alice", nil)
	bob := e.Join(t, "room-i", "bob", nil)

	saved := e.Config.InternalToken
	e.Config.InternalToken = "wrong"
	if code, err := e.Internal("/internal/v1/rooms/close", `{"roomId":"room-i"}`); err != nil || code != 401 {
		t.Fatalf("wrong token: %d %v", code, err)
	}
	e.Config.InternalToken = saved
	if code, _ := e.Internal("/internal/v1/rooms/remove-participant", `{"roomId":"room-i"}`); code != 400 {
		t.Fatalf("missing participant: %d", code)
	}
	if code, err := e.Internal("/internal/v1/rooms/remove-participant", `{"roomId":"room-i","participantId":"alice","reason":"removed"}`); err != nil || code != 200 {
		t.Fatalf("remove: %d %v", code, err)
	}
	waitMsg(t, alice, wire.TypeRemoved, nil)
	if code, err := e.Internal("/internal/v1/rooms/close", `{"roomId":"room-i","reason":"ended"}`); err != nil || code != 200 {
		t.Fatalf("close: %d %v", code, err)
	}
	m := waitMsg(t, bob, wire.TypeRemoved, nil)
	if r, _ := signaltest.Decode[wire.Removed](m); r.Reason != wire.ReasonRoomClosed {
		t.Fatalf("bob got %+v", r)
	}
	// Tickets issued before the close are refused.
	c := e.Dial(t, signaltest.Config{})
	// (IssuedAt explicitly before the close: tickets carry whole seconds,
	// so one minted "now" could land in the next second.)
	before := func(c *ticket.Claims) { c.IssuedAt, c.ExpiresAt = c.IssuedAt-2, c.ExpiresAt-2 }
	if _, _, err := c.Join(ctx, e.Ticket(t, "room-i", "carol", before), "carol"); protoCode(err) != wire.CodeRoomClosed {
		t.Fatalf("join after close: %v", err)
	}
	signaltest.Eventually(t, 5*time.Second, func() string {
		if e.Reporter.Count(edgeapi.EventParticipantLeft, "bob") != 1 || e.Reporter.Count(edgeapi.EventParticipantLeft, "alice") != 1 {
			return signaltest.Reasonf("events %+v", e.Reporter.Events())
		}
		return ""
	})
}

// TestResyncLeavesOutMembersInGrace: when the edge re-registers (the
// control plane had declared it down), it re-reports who is here. A member
// whose socket dropped may have moved to another edge meanwhile; claiming
// it would make the control plane ignore the leave its new edge reports
// (the chaos suite saw participants kept in their sessions for the whole
// grace period). It is re-reported only if it resumes here.
func TestResyncLeavesOutMembersInGrace(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) { c.ResumeGrace = 20 * time.Second }})
	ctx := ctxT(t, 20*time.Second)
	alice := e.Join(t, "room-s", "alice", nil)
	e.Join(t, "room-s", "bob", nil)
	token := alice.Joined().ResumeToken
	alice.DropSocket()
	signaltest.Eventually(t, 5*time.Second, func() string {
		var ids []string
		for _, ev := range e.Server.Admitted() {
			ids = append(ids, ev.ParticipantID)
		}
		if strings.Join(ids, ",") != "bob" {
			return signaltest.Reasonf("re-registration reports %v, want only bob (alice's socket dropped)", ids)
		}
		return ""
	})
	if n := e.Reporter.Count(edgeapi.EventParticipantJoined, "alice"); n != 1 {
		t.Fatalf("alice's join reported %d times before she resumed", n)
	}
	alice2 := e.Dial(t, signaltest.Config{})
	if _, err := alice2.Resume(ctx, token); err != nil {
		t.Fatal(err)
	}
	signaltest.Eventually(t, 5*time.Second, func() string {
		if n := e.Reporter.Count(edgeapi.EventParticipantJoined, "alice"); n != 2 {
			return signaltest.Reasonf("alice resumed after the re-registration: %d joins reported, want 2", n)
		}
		return ""
	})
	var ids []string
	for _, ev := range e.Server.Admitted() {
		ids = append(ids, ev.ParticipantID)
	}
	slices.Sort(ids)
	if strings.Join(ids, ",") != "alice,bob" {
		t.Fatalf("after the resume, re-registration reports %v, want alice,bob", ids)
	}
}

// TestRemoteLobbyAsksOnce: a request relayed from another edge can arrive
// twice (in a cascade leg's welcome and right after it); moderators are
// asked once, and again only when it comes through another edge (the
// asker moved).
func TestRemoteLobbyAsksOnce(t *testing.T) {
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{})
	mod := e.Join(t, "room-r", "mod", func(c *ticket.Claims) { c.Permissions.Moderate = true })
	req := wire.LobbyRequest{ParticipantID: "carol", Name: "Carol"}
	e.Server.RemoteLobby("room-r", "paris-1", req)
	e.Server.RemoteLobby("room-r", "paris-1", req)
	e.Server.RemoteLobby("room-r", "paris-2", req)
	_ = mod.Send(wire.TypePing, nil)
	waitMsg(t, mod, wire.TypePong, nil)
	n := 0
	for _, m := range mod.Messages() {
		if m.Type == wire.TypeLobbyRequest {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("moderator asked %d times, want 2 (once per edge the request came through)", n)
	}
}
