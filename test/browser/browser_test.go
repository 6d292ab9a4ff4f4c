package browser

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// videoFlowing is a JS expression: is pid's camera video playing on this page?
func videoFlowing(pid string) string {
	return fmt.Sprintf(`(() => {
  const v = document.querySelector('video[data-participant-id=%q][data-source="camera"]:not([data-local])');
  if (!v) return {ok: false, why: 'no <video> for this participant'};
  const frames = v.getVideoPlaybackQuality().totalVideoFrames;
  return {ok: v.videoWidth > 0 && v.readyState >= 2, w: v.videoWidth, h: v.videoHeight, t: v.currentTime, rs: v.readyState, frames};
})()`, pid)
}

// expectVideo waits for pid's video on p and checks that it keeps playing:
// over a 1.5 s window currentTime advances (the spec'd check) and at least 5
// frames are decoded (currentTime of a MediaStream advances with the clock
// even when no picture arrives). A window without frames is logged with the
// WebRTC stats and retried; the video must recover within 8 s.
func expectVideo(t *testing.T, p *page, pid string) {
	t.Helper()
	prev := p.waitFor(pid+"'s video (videoWidth > 0)", 30*time.Second, videoFlowing(pid))
	num := func(m map[string]any, k string) float64 { f, _ := m[k].(float64); return f }
	deadline := time.Now().Add(8 * time.Second)
	for {
		time.Sleep(1500 * time.Millisecond)
		cur, err := evalJS[map[string]any](p, videoFlowing(pid))
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		dt, df := num(cur, "t")-num(prev, "t"), num(cur, "frames")-num(prev, "frames")
		if dt >= 0.5 && df >= 5 {
			t.Logf("%s sees %s: %vx%v, currentTime %.2f → %.2f, frames %v → %v", p.name, pid, cur["w"], cur["h"], num(prev, "t"), num(cur, "t"), num(prev, "frames"), num(cur, "frames"))
			return
		}
		msg := fmt.Sprintf("%s: %s's video is not advancing over 1.5 s: currentTime %.2f → %.2f, frames %v → %v", p.name, pid, num(prev, "t"), num(cur, "t"), num(prev, "frames"), num(cur, "frames"))
		if time.Now().After(deadline) {
			t.Fatalf("%s (for 8 s)\n%s", msg, p.debugDump())
		}
		t.Logf("WARNING %s; retrying\n%s", msg, p.debugDump())
		prev = cur
	}
}

type sessionView struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	Participants []struct {
		ParticipantID string `json:"participantId"`
	} `json:"participants"`
}

func (s *devServer) sessions(room string) []sessionView {
	s.t.Helper()
	var resp struct {
		Data []sessionView `json:"data"`
	}
	if st, b := s.call("GET", "/v2/sessions?roomId="+room, s.crawler(), nil, &resp); st != 200 {
		s.t.Fatalf("GET /v2/sessions: %d %s", st, b)
	}
	return resp.Data
}

func (s *devServer) activeParticipants(sessionID string) []string {
	s.t.Helper()
	var resp struct {
		Data []sessionView `json:"data"`
	}
	if st, b := s.call("GET", "/v2/sessions/"+sessionID+"/participants/active", s.crawler(), nil, &resp); st != 200 {
		s.t.Fatalf("GET active participants: %d %s", st, b)
	}
	var ids []string
	for _, d := range resp.Data {
		for _, p := range d.Participants {
			ids = append(ids, p.ParticipantID)
		}
	}
	slices.Sort(ids)
	return ids
}

// poll retries fn every 200 ms until it returns "" or timeout passes.
func poll(t *testing.T, what string, timeout time.Duration, fn func() string) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		if last = fn(); last == "" {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, last)
	return 0
}

// TestMeetingTwoBrowsers: two Chromiums join one room through /meet, see and
// hear each other, the API shows the session, moderation works, and leaving
// ends the session.
func TestMeetingTwoBrowsers(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	// Cancelled after every other cleanup (screenshots need the browsers).
	t.Cleanup(cancel)
	s := startDev(t)
	room := s.createRoom()

	a := newPage(t, ctx, "A")
	a.screenshotOnFailure(t)
	b := newPage(t, ctx, "B")
	a.navigate(s.meetURL(room, s.rtcToken(room, "alice", true), "A"))
	b.navigate(s.meetURL(room, s.rtcToken(room, "bob", false), "B"))

	expectVideo(t, a, "bob")
	expectVideo(t, b, "alice")
	// Audio arrives too (an <audio> per remote microphone track).
	for _, c := range []struct {
		p   *page
		pid string
	}{{a, "bob"}, {b, "alice"}} {
		c.p.waitFor(c.pid+"'s audio", 10*time.Second, fmt.Sprintf(`(() => {
  const el = document.querySelector('audio[data-participant-id=%q]');
  return {ok: !!el && !!el.srcObject && el.srcObject.getAudioTracks()[0]?.readyState === 'live'};
})()`, c.pid))
	}

	// The token's moderation right shows up as controls for A only.
	a.waitFor("moderator controls for bob", 10*time.Second,
		`({ok: !!document.querySelector('#people-list li[data-participant-id="bob"] [data-action="remove"]')})`)
	b.waitFor("alice in B's participant list", 10*time.Second,
		`({ok: !!document.querySelector('#people-list li[data-participant-id="alice"]')})`)
	if bActions, err := evalJS[int](b, `document.querySelectorAll('#people-list [data-action]').length`); err != nil || bActions != 0 {
		t.Errorf("B (no allow_mod) shows %d moderator controls (err %v)", bActions, err)
	}

	// The REST API sees one ongoing session with both participants.
	var sessionID string
	poll(t, "one ongoing session with alice and bob active", 15*time.Second, func() string {
		ss := s.sessions(room)
		var ongoing []sessionView
		for _, x := range ss {
			if x.Status == "ongoing" {
				ongoing = append(ongoing, x)
			}
		}
		if len(ongoing) != 1 {
			return fmt.Sprintf("%d ongoing sessions (of %d)", len(ongoing), len(ss))
		}
		sessionID = ongoing[0].ID
		if got := s.activeParticipants(sessionID); !slices.Equal(got, []string{"alice", "bob"}) {
			return fmt.Sprintf("active participants %v", got)
		}
		return ""
	})
	t.Logf("session %s is ongoing with alice and bob active", sessionID)

	// Resume: B's signaling socket drops; the SDK reconnects with its resume
	// token on fresh PeerConnections, and A sees no leave.
	if _, err := evalJS[bool](a, `(() => { window.testLeft = []; window.meridianRoom.on('participant-left', e => testLeft.push(e.participantId)); return true; })()`); err != nil {
		t.Fatal(err)
	}
	if _, err := evalJS[bool](b, `(() => { const r = window.meridianRoom; window.testEvents = [];
  r.on('reconnecting', () => testEvents.push('reconnecting')); r.on('reconnected', e => testEvents.push('reconnected:' + e.resumed));
  r._ws.close(); return true; })()`); err != nil {
		t.Fatal(err)
	}
	v := b.waitFor("B to resume", 15*time.Second, `({ok: window.testEvents.includes('reconnected:true') && window.meridianRoom.state === 'joined', events: window.testEvents})`)
	t.Logf("B after its socket dropped: %v", v["events"])
	expectVideo(t, a, "bob")
	expectVideo(t, b, "alice")
	if left, err := evalJS[[]string](a, `window.testLeft`); err != nil || len(left) != 0 {
		t.Errorf("A saw participant-left %v during B's resume (err %v)", left, err)
	}

	// A refused resume (here: a corrupted resume token) falls back to a fresh
	// join as the same participant.
	if _, err := evalJS[bool](b, `(() => { const r = window.meridianRoom; window.testEvents = [];
  r._resumeToken = 'bogus.' + r._resumeToken; r._ws.close(); return true; })()`); err != nil {
		t.Fatal(err)
	}
	v = b.waitFor("B to rejoin", 20*time.Second, `({ok: window.testEvents.some(e => e.startsWith('reconnected')) && window.meridianRoom.state === 'joined' && window.meridianRoom.participantId === 'bob', events: window.testEvents})`)
	t.Logf("B after a refused resume: %v", v["events"])
	expectVideo(t, a, "bob")
	expectVideo(t, b, "alice")

	// Moderator mutes bob: B's microphone goes off and A sees it muted.
	if _, err := evalJS[bool](a, `(() => { const r = window.meridianRoom, orig = r.muteParticipant.bind(r); window.testMuteCalls = [];
  r.muteParticipant = (id, kind) => { testMuteCalls.push(id + '/' + kind); return orig(id, kind); }; return true; })()`); err != nil {
		t.Fatal(err)
	}
	if err := a.click(`#people-list li[data-participant-id="bob"] [data-action="mute"]`); err != nil {
		t.Fatalf("A: click mute: %v", err)
	}
	a.waitFor("A's click on Mute to reach the SDK", 5*time.Second, `({ok: window.testMuteCalls.includes('bob/audio'), calls: window.testMuteCalls})`)
	b.waitFor("B muted by the moderator", 10*time.Second,
		`({ok: window.meridianRoom.micEnabled === false && document.getElementById('btn-mic').getAttribute('aria-pressed') === 'true'})`)
	a.waitFor("bob's microphone shown muted on A", 10*time.Second,
		`({ok: window.meridianRoom.participants().find(p => p.participantId === 'bob')?.tracks.some(t => t.source === 'microphone' && t.muted) === true})`)

	// Both leave; the session ends.
	for _, p := range []*page{a, b} {
		if err := p.click("#btn-leave"); err != nil {
			t.Fatalf("%s: click leave: %v", p.name, err)
		}
		p.waitFor("the left overlay", 5*time.Second,
			`({ok: window.meridianRoom.state === 'left' && !document.getElementById('overlay').hidden})`)
	}
	took := poll(t, "the session to end after both left", 12*time.Second, func() string {
		for _, x := range s.sessions(room) {
			if x.ID == sessionID {
				if x.Status != "ended" {
					return "status " + x.Status
				}
				return ""
			}
		}
		return "session " + sessionID + " not listed"
	})
	t.Logf("session %s ended %v after both pages left", sessionID, took.Round(100*time.Millisecond))
}

// TestMeetingRelayOnly: with ?relay=1 the SDK uses iceTransportPolicy
// "relay", so all media goes through the edge's embedded TURN.
func TestMeetingRelayOnly(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	// Cancelled after every other cleanup (screenshots need the browsers).
	t.Cleanup(cancel)
	s := startDev(t)
	room := s.createRoom()

	a := newPage(t, ctx, "A")
	a.screenshotOnFailure(t)
	b := newPage(t, ctx, "B")
	a.navigate(s.meetURL(room, s.rtcToken(room, "alice", false), "A", "relay", "1"))
	b.navigate(s.meetURL(room, s.rtcToken(room, "bob", false), "B", "relay", "1"))
	expectVideo(t, a, "bob")
	expectVideo(t, b, "alice")

	// Relay-only: the browser gathered nothing but TURN candidates, and every
	// selected pair sends through a TURN allocation. (Chrome may label the
	// selected local candidate "prflx" when the edge sees the relayed packets
	// from another address than the advertised relay address; relayProtocol
	// says it is still a TURN candidate.)
	for _, p := range []*page{a, b} {
		v := p.waitFor("relayed candidate pairs", 10*time.Second, `(async () => {
  const st = await window.meridianRoom.getStats();
  const out = {ok: true};
  for (const [name, rep] of Object.entries(st)) {
    if (!rep) continue;
    const byId = new Map(); rep.forEach(x => byId.set(x.id, x));
    const nonRelay = [];
    rep.forEach(x => { if (x.type === 'local-candidate' && !x.relayProtocol) nonRelay.push(x.candidateType + ' ' + x.address + ':' + x.port); });
    let sel = null;
    rep.forEach(x => { if (x.type === 'transport' && x.selectedCandidatePairId) {
      const pair = byId.get(x.selectedCandidatePairId);
      const l = pair && byId.get(pair.localCandidateId), r = pair && byId.get(pair.remoteCandidateId);
      if (l && r) sel = {local: l.candidateType + '/' + (l.relayProtocol || '-') + ' ' + l.address + ':' + l.port, remote: r.candidateType + ' ' + r.address + ':' + r.port, relayed: !!l.relayProtocol}; } });
    out[name] = {selected: sel, nonRelay};
    if (!sel || !sel.relayed || nonRelay.length) out.ok = false;
  }
  return out;
})()`)
		t.Logf("%s selected pairs: publisher %v, subscriber %v", p.name, v["publisher"], v["subscriber"])
	}
}

// TestJoinErrorsShown: when the join API refuses, the page shows the
// server's message (here: a deactivated room, a token for another room and
// an expired token).
func TestJoinErrorsShown(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	// Cancelled after every other cleanup (screenshots need the browsers).
	t.Cleanup(cancel)
	s := startDev(t)

	deactivated := s.createRoom()
	if st, b := s.call("POST", "/v2/rooms/deactivate", s.crawler(), map[string]string{"roomId": deactivated}, nil); st != 200 {
		t.Fatalf("deactivate: %d %s", st, b)
	}
	other := s.createRoom()
	open := s.createRoom()

	cases := []struct {
		name, room, token, want string
	}{
		{"deactivated room", deactivated, s.rtcToken(deactivated, "alice", false), "has been deactivated"},
		{"token for another room", open, s.rtcToken(other, "alice", false), ""},
		{"expired token", open, mint(t, tokenOpts{roles: []string{"rtc"}, perms: []string{"allow_join"}, room: open, ttl: time.Minute, issuedAgo: 10 * time.Minute}), ""},
	}
	p := newPage(t, ctx, "A")
	p.screenshotOnFailure(t)
	for _, c := range cases {
		// What the API says for this token, straight from the server.
		var apiErr struct {
			StatusCode int    `json:"statusCode"`
			Message    string `json:"message"`
		}
		st, body := s.call("POST", "/v2/rooms/"+c.room+"/join", c.token, map[string]string{"name": "A"}, &apiErr)
		if st < 400 || apiErr.Message == "" {
			t.Errorf("%s: the join API answered %d %s; want a 4xx with a message", c.name, st, body)
			continue
		}
		if !strings.Contains(apiErr.Message, c.want) {
			t.Errorf("%s: API message %q lacks %q", c.name, apiErr.Message, c.want)
		}
		p.navigate(s.meetURL(c.room, c.token, "A"))
		v := p.waitFor(c.name+": the error banner", 15*time.Second, `(() => {
  const b = document.getElementById('banner');
  return {ok: !b.hidden, text: document.getElementById('banner-text').textContent};
})()`)
		if got := v["text"].(string); got != apiErr.Message {
			t.Errorf("%s: banner %q, want the server's message %q", c.name, got, apiErr.Message)
		} else {
			t.Logf("%s: page shows %q (HTTP %d)", c.name, got, st)
		}
		if videos, err := evalJS[int](p, `document.querySelectorAll('video').length`); err != nil || videos != 0 {
			t.Errorf("%s: %d video tiles after a refused join (err %v)", c.name, videos, err)
		}
	}
}

// TestLobbyAndControls: an ask_join participant waits in the lobby until the
// moderator admits them from the page; then camera off/on and a screen share
// reach the other side.
func TestLobbyAndControls(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	t.Cleanup(cancel)
	s := startDev(t)
	room := s.createRoom()

	a := newPage(t, ctx, "A")
	a.screenshotOnFailure(t)
	c := newPage(t, ctx, "C")
	a.navigate(s.meetURL(room, s.rtcToken(room, "alice", true), "A"))
	a.waitFor("A joined", 15*time.Second, `({ok: window.meridianRoom?.state === 'joined'})`)
	guest := mint(t, tokenOpts{roles: []string{"rtc"}, perms: []string{"ask_join"}, room: room, partID: "carol"})
	c.navigate(s.meetURL(room, guest, "C"))
	c.waitFor("C in the lobby", 15*time.Second,
		`({ok: window.meridianRoom?.state === 'lobby' && !document.getElementById('overlay').hidden, text: document.getElementById('overlay-text').textContent})`)
	a.waitFor("the lobby request on A", 10*time.Second,
		`({ok: !!document.querySelector('#lobby-list li[data-participant-id="carol"] [data-action="admit"]')})`)
	if err := a.click(`#lobby-list li[data-participant-id="carol"] [data-action="admit"]`); err != nil {
		t.Fatalf("A: click admit: %v", err)
	}
	c.waitFor("C admitted", 15*time.Second, `({ok: window.meridianRoom.state === 'joined' && document.getElementById('overlay').hidden})`)
	expectVideo(t, a, "carol")
	expectVideo(t, c, "alice")

	// Camera off: A sees carol's camera muted (avatar shown); on again: frames flow.
	if err := c.click("#btn-cam"); err != nil {
		t.Fatal(err)
	}
	a.waitFor("carol's camera off on A", 10*time.Second, `(() => {
  const p = window.meridianRoom.participants().find(p => p.participantId === 'carol');
  const tile = document.querySelector('.tile[data-participant-id="carol"][data-source="camera"]');
  return {ok: !!p && p.tracks.some(t => t.source === 'camera' && t.muted) && !!tile && tile.classList.contains('no-video')};
})()`)
	if err := c.click("#btn-cam"); err != nil {
		t.Fatal(err)
	}
	a.waitFor("carol's camera on again on A", 10*time.Second, `(() => {
  const p = window.meridianRoom.participants().find(p => p.participantId === 'carol');
  return {ok: !!p && p.tracks.some(t => t.source === 'camera' && !t.muted)};
})()`)
	expectVideo(t, a, "carol")

	// Screen share (the click is the user gesture getDisplayMedia needs).
	if err := c.click("#btn-screen"); err != nil {
		t.Fatal(err)
	}
	v := c.waitFor("C sharing", 10*time.Second, `({ok: window.meridianRoom.screenSharing === true, banner: document.getElementById('banner').hidden ? '' : document.getElementById('banner-text').textContent})`)
	_ = v
	a.waitFor("carol's screen on A", 20*time.Second, `(() => {
  const v = document.querySelector('video[data-participant-id="carol"][data-source="screen"]');
  return {ok: !!v && v.videoWidth > 0, w: v?.videoWidth};
})()`)
	if err := c.click("#btn-screen"); err != nil {
		t.Fatal(err)
	}
	a.waitFor("carol's screen gone on A", 15*time.Second,
		`({ok: !document.querySelector('video[data-participant-id="carol"][data-source="screen"]')})`)

	// Embedded: a page on another origin puts the meeting in an iframe; dave's
	// camera (delegated by allow=) reaches A.
	src := s.meetURL(room, s.rtcToken(room, "dave", false), "D")
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>CRM</title><h1>Customer call</h1>
<iframe src="%s" allow="camera; microphone; display-capture; autoplay" width="960" height="600"></iframe>`, html.EscapeString(src))
	}))
	t.Cleanup(host.Close)
	d := newPage(t, ctx, "D")
	d.navigate(host.URL)
	expectVideo(t, a, "dave")
}
