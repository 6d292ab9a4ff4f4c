package browser

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
)

// TestCascadeLobbyEdgeStall: the room's moderator (bob) is in Montréal;
// carol may only ask to join and waits in the lobby of a Paris edge. Bob's
// page lists her request, although it waits on another edge. Then carol's
// edge stalls (SIGSTOP): her page hears nothing from it, moves to the other
// Paris edge and asks again; bob admits her from his list and the two see
// each other.
func TestCascadeLobbyEdgeStall(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	t.Cleanup(cancel)
	cl := startCluster(t, cascadeEdges...)
	room := cl.createRoom()
	bob := newPage(t, ctx, "bob")
	carol := newPage(t, ctx, "carol")

	modToken := cl.mint(tokenOpts{roles: []string{auth.RoleRTC}, perms: []string{auth.PermAllowJoin, auth.PermAllowMod}, room: room, partID: "bob"})
	bob.openMeeting(cl.meetURL(room, modToken, "Bob", "ca-east"))
	if v := bob.waitFor("bob joined", 20*time.Second, roomState); v["edge"] != "montreal-1" {
		t.Fatalf("bob (ca-east) placed on %v", v["edge"])
	}
	// Count the lobby requests bob's page gets, to admit carol only once
	// her request from her new edge arrived.
	if _, err := evalJS[bool](bob, `(window.testAsked = [], window.meridianRoom.on('lobby-request', (e) => window.testAsked.push(e.participantId)), true)`); err != nil {
		t.Fatal(err)
	}
	askToken := cl.mint(tokenOpts{roles: []string{auth.RoleRTC}, perms: []string{auth.PermAskJoin}, room: room, partID: "carol"})
	carol.openMeeting(cl.meetURL(room, askToken, "Carol", "eu-west"))
	const inLobby = `(() => { const r = window.meridianRoom; return {ok: r?.state === 'lobby' && !!r.edgeId, state: r?.state, edge: r?.edgeId || ''}; })()`
	from := carol.waitFor("carol in the lobby", 20*time.Second, inLobby)["edge"].(string)
	to, ok := otherParis[from]
	if !ok {
		t.Fatalf("carol (eu-west) waits on %s, want a paris edge", from)
	}
	const asked = `(() => ({ok: window.testAsked.filter((p) => p === 'carol').length >= %d,
  asked: window.testAsked, button: !!document.querySelector('#lobby-list li[data-participant-id="carol"] [data-action="admit"]')}))()`
	if v := bob.waitFor("carol's request on bob's page (montreal-1)", 15*time.Second, fmt.Sprintf(asked, 1)); v["button"] != true {
		t.Fatalf("bob's page has no admit button for carol: %v", v)
	}

	cl.edges[from].proc.stop()
	stoppedAt := time.Now()
	t.Logf("stopped %s (SIGSTOP) with carol in its lobby; she should ask again on %s", from, to)
	carol.waitFor("carol in the lobby of "+to, 15*time.Second,
		`(() => { const r = window.meridianRoom; return {ok: r?.state === 'lobby' && r.edgeId === '`+to+`', state: r?.state, edge: r?.edgeId || ''}; })()`)
	bob.waitFor("carol's request again, from "+to, 15*time.Second, fmt.Sprintf(asked, 2))
	t.Logf("carol waits on %s, asked again, %v after the stop", to, time.Since(stoppedAt).Round(100*time.Millisecond))

	if err := bob.click(`#lobby-list li[data-participant-id="carol"] [data-action="admit"]`); err != nil {
		t.Fatalf("bob: click admit: %v", err)
	}
	if v := carol.waitFor("carol admitted", 15*time.Second, roomState); v["edge"] != to {
		t.Fatalf("carol admitted on %v, want %s", v["edge"], to)
	}
	expectVideo(t, bob, "carol")
	expectVideo(t, carol, "bob")
}

// TestCascadeDuplicateTab: alice is in the meeting from a page in Paris,
// then opens it again (same participant id) on a laptop in Montréal. The
// Montréal page stays; once the pair has lasted the edges' duplicate grace
// (10 s), the Paris page is told it joined from another tab or device and
// leaves, and bob keeps seeing alice's video (the Montréal one's).
func TestCascadeDuplicateTab(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	t.Cleanup(cancel)
	cl := startCluster(t, cascadeEdges...)
	room := cl.createRoom()
	bob := newPage(t, ctx, "bob")
	alice := newPage(t, ctx, "alice")
	alice2 := newPage(t, ctx, "alice-laptop")

	tok := func(pid string) string {
		return cl.mint(tokenOpts{roles: []string{auth.RoleRTC}, perms: []string{auth.PermAllowJoin}, room: room, partID: pid})
	}
	bob.openMeeting(cl.meetURL(room, tok("bob"), "Bob", "ca-east"))
	bob.waitFor("bob joined", 20*time.Second, roomState)
	alice.openMeeting(cl.meetURL(room, tok("alice"), "Alice", "eu-west"))
	if v := alice.waitFor("alice joined in Paris", 20*time.Second, roomState); v["region"] != "eu-west" {
		t.Fatalf("alice's first page on %v (%v)", v["edge"], v["region"])
	}
	expectVideo(t, bob, "alice")

	alice2.openMeeting(cl.meetURL(room, tok("alice"), "Alice", "ca-east"))
	if v := alice2.waitFor("alice joined again in Montréal", 20*time.Second, roomState); v["edge"] != "montreal-1" {
		t.Fatalf("alice's second page on %v", v["edge"])
	}
	joinedAt := time.Now()
	v := alice.waitFor("alice's Paris page told it is a duplicate", 30*time.Second,
		`(() => { const r = window.meridianRoom; const b = document.getElementById('banner');
  return {ok: r?.state === 'left' && !b.hidden && b.textContent.includes('another tab or device'), state: r?.state, banner: b.hidden ? '' : b.textContent}; })()`)
	t.Logf("the Paris page left %v after the second joined: %v", time.Since(joinedAt).Round(100*time.Millisecond), v["banner"])
	if v := alice2.waitFor("the Montréal page still in the meeting", 5*time.Second, roomState); v["edge"] != "montreal-1" {
		t.Fatalf("alice's second page: %v", v)
	}
	expectVideo(t, bob, "alice")
	// The page that stays never took its own id's other connection for
	// somebody else: alice once in its list, and its own camera shown.
	alice2.waitFor("the Montréal page showing alice once, with her camera", 10*time.Second, `(() => {
  const n = window.meridianRoom.participants().filter((p) => p.participantId === 'alice').length;
  const v = document.querySelector('video[data-participant-id="alice"][data-local]');
  return {ok: n === 1 && !!v && v.videoWidth > 0, listed: n, w: v ? v.videoWidth : -1};
})()`)
	// Edges no longer tell a connection about its own id's other one, but
	// older edges did: what they said about it is still not somebody else.
	alice2.waitFor("the Montréal page ignoring what is said of its own id", 5*time.Second, `(() => {
  const r = window.meridianRoom;
  if (window.ownLeft === undefined) {
    window.ownLeft = 0;
    r.on('participant-left', (e) => { if (e.participantId === 'alice') window.ownLeft++; });
  }
  r._dispatch({type: 'participant-joined', data: {participantId: 'alice', name: 'Alice'}});
  r._dispatch({type: 'track-published', data: {participantId: 'alice', trackId: 'alice-other-cam', kind: 'video', source: 'camera'}});
  const mine = r.participants().filter((p) => p.participantId === 'alice');
  r._dispatch({type: 'participant-left', data: {participantId: 'alice'}});
  return {ok: mine.length === 1 && mine[0].isLocal && !mine[0].tracks.some((t) => t.trackId === 'alice-other-cam') && window.ownLeft === 0,
    listed: mine.length, left: window.ownLeft};
})()`)
}
