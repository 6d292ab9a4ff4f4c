package browser

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// videoFlowing is a JS expression: is pid's video from source ("camera" or
// "screen") playing on this page?
func videoFlowing(pid, source string) string {
	return fmt.Sprintf(`(() => {
  const v = document.querySelector('video[data-participant-id=%q][data-source=%q]:not([data-local])');
  if (!v) return {ok: false, why: 'no <video> for this participant'};
  const frames = v.getVideoPlaybackQuality().totalVideoFrames;
  return {ok: v.videoWidth > 0 && v.readyState >= 2, w: v.videoWidth, h: v.videoHeight, t: v.currentTime, rs: v.readyState, frames};
})()`, pid, source)
}

// expectVideo waits for pid's camera video on p and checks that it keeps
// playing (see expectVideoFrom).
func expectVideo(t *testing.T, p *page, pid string) {
	t.Helper()
	expectVideoFrom(t, p, pid, "camera")
}

// expectVideoFrom waits for pid's video from source on p and checks that it
// keeps playing: over a 1.5 s window currentTime advances (the spec'd check)
// and at least 5 frames are decoded (currentTime of a MediaStream advances with the clock
// even when no picture arrives). A window without frames is logged with the
// WebRTC stats and retried; the video must recover within 8 s.
func expectVideoFrom(t *testing.T, p *page, pid, source string) {
	t.Helper()
	prev := p.waitFor(pid+"'s "+source+" video (videoWidth > 0)", 30*time.Second, videoFlowing(pid, source))
	num := func(m map[string]any, k string) float64 { f, _ := m[k].(float64); return f }
	deadline := time.Now().Add(8 * time.Second)
	for {
		time.Sleep(1500 * time.Millisecond)
		cur, err := evalJS[map[string]any](p, videoFlowing(pid, source))
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		dt, df := num(cur, "t")-num(prev, "t"), num(cur, "frames")-num(prev, "frames")
		if dt >= 0.5 && df >= 5 {
			t.Logf("%s sees %s's %s: %vx%v, currentTime %.2f → %.2f, frames %v → %v", p.name, pid, source, cur["w"], cur["h"], num(prev, "t"), num(cur, "t"), num(prev, "frames"), num(cur, "frames"))
			return
		}
		msg := fmt.Sprintf("%s: %s's %s video is not advancing over 1.5 s: currentTime %.2f → %.2f, frames %v → %v", p.name, pid, source, num(prev, "t"), num(cur, "t"), num(prev, "frames"), num(cur, "frames"))
		if time.Now().After(deadline) {
			t.Fatalf("%s (for 8 s)\n%s", msg, p.debugDump())
		}
		t.Logf("WARNING %s; retrying\n%s", msg, p.debugDump())
		prev = cur
	}
}

// audioProbe is a JS expression: pid's microphone as this page plays it —
// its <audio> element, and the subscriber's inbound-rtp stats for the track
// that element plays.
func audioProbe(pid string) string {
	return fmt.Sprintf(`(async () => {
  const el = document.querySelector('audio[data-participant-id=%q]');
  const tr = el && el.srcObject && el.srcObject.getAudioTracks()[0];
  if (!tr) return {el: !!el, track: false};
  const st = await window.meridianRoom.getStats();
  let rtp = null;
  st.subscriber?.forEach(v => { if (v.type === 'inbound-rtp' && v.kind === 'audio' && v.trackIdentifier === tr.id) rtp = v; });
  return {el: true, track: true, live: tr.readyState === 'live', playing: !el.paused, rtp: !!rtp,
    packets: rtp?.packetsReceived ?? 0, samples: rtp?.totalSamplesReceived ?? 0, concealed: rtp?.concealedSamples ?? 0,
    energy: rtp?.totalAudioEnergy ?? 0, level: rtp?.audioLevel ?? 0, button: !document.getElementById('btn-audio').hidden};
})()`, pid)
}

// expectAudio waits (at most 10 s) until pid's microphone is heard on p:
// over a 1 s window the element plays a live track whose inbound RTP stream
// received packets, decoded real samples (totalSamplesReceived minus
// concealedSamples: Chrome keeps counting concealment samples when packets
// stop) and gained audio energy. Chromium's fake microphone beeps (about
// +0.2 energy a second), far above silence (the concealment tail gains less
// than 1e-6).
func expectAudio(t *testing.T, p *page, pid string) {
	t.Helper()
	waitAudio(t, p, pid, true)
}

// expectSilence waits (at most 10 s) until pid's <audio> on p plays a live
// track that gains no audio energy over a 1 s window.
func expectSilence(t *testing.T, p *page, pid string) {
	t.Helper()
	waitAudio(t, p, pid, false)
}

func waitAudio(t *testing.T, p *page, pid string, sound bool) {
	t.Helper()
	what := map[bool]string{true: "hear", false: "hear only silence from"}[sound]
	num := func(m map[string]any, k string) float64 { f, _ := m[k].(float64); return f }
	deadline := time.Now().Add(10 * time.Second)
	var prev map[string]any
	var why string
	for {
		cur, err := evalJS[map[string]any](p, audioProbe(pid))
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if prev != nil {
			dp, dr := num(cur, "packets")-num(prev, "packets"), (num(cur, "samples")-num(cur, "concealed"))-(num(prev, "samples")-num(prev, "concealed"))
			de := num(cur, "energy") - num(prev, "energy")
			got := fmt.Sprintf("%v packets, %v real samples, audio energy +%.3g in 1 s", dp, dr, de)
			switch {
			case cur["track"] != true || cur["live"] != true || cur["rtp"] != true:
				why = fmt.Sprintf("no live remote audio track with inbound-rtp stats: %v", cur)
			case cur["playing"] != true:
				why = fmt.Sprintf("the <audio> element is paused (Enable audio button shown: %v)", cur["button"])
			case sound && (dp <= 0 || dr <= 0):
				why = "no audio arriving: " + got
			case sound && de <= minAudioEnergy:
				why = fmt.Sprintf("silence: %s (want > %g)", got, minAudioEnergy)
			case !sound && de > minAudioEnergy:
				why = fmt.Sprintf("sound: %s (want ≤ %g)", got, minAudioEnergy)
			default:
				t.Logf("%s: %s %s: %s", p.name, what, pid, got)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not %s %s (for 10 s): %s\n%s", p.name, what, pid, why, p.debugDump())
		}
		prev = cur
		time.Sleep(time.Second)
	}
}

// minAudioEnergy is the totalAudioEnergy a second of silence stays under.
const minAudioEnergy = 0.01

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
	b := newPage(t, ctx, "B")
	// B allows the camera a moment after the page asks, so alice's tracks
	// reach B before it captures anything (its first play() of her audio is
	// refused by the autoplay policy; the page must play it once B captures).
	b.answerDevicePromptAfter(2 * time.Second)
	a.openMeeting(s.meetURL(room, s.rtcToken(room, "alice", true), "A"))
	b.openMeeting(s.meetURL(room, s.rtcToken(room, "bob", false), "B"))

	expectVideo(t, a, "bob")
	expectVideo(t, b, "alice")
	// They hear each other: audio samples with energy arrive.
	expectAudio(t, a, "bob")
	expectAudio(t, b, "alice")

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
	expectAudio(t, a, "bob")
	expectAudio(t, b, "alice")

	// Moderator mutes bob: B's microphone goes off, A sees it muted and no
	// longer hears bob.
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
	expectSilence(t, a, "bob")

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
	b := newPage(t, ctx, "B")
	a.openMeeting(s.meetURL(room, s.rtcToken(room, "alice", false), "A", "relay", "1"))
	b.openMeeting(s.meetURL(room, s.rtcToken(room, "bob", false), "B", "relay", "1"))
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

	deactivated := s.deactivatedRoom()
	other := s.createRoom()
	open := s.createRoom()

	// Each refusal with the exact status and message the join API gives.
	cases := []struct {
		name, room, token string
		status            int
		message           string
	}{
		{"deactivated room", deactivated, s.rtcToken(deactivated, "alice", false),
			403, fmt.Sprintf("room %q has been deactivated", deactivated)},
		{"token for another room", open, s.rtcToken(other, "alice", false),
			403, fmt.Sprintf("this token is scoped to room %q", other)},
		{"expired token", open, mint(t, tokenOpts{roles: []string{"rtc"}, perms: []string{"allow_join"}, room: open, ttl: time.Minute, issuedAgo: 10 * time.Minute}),
			401, "token has expired"},
	}
	p := newPage(t, ctx, "A")
	for _, c := range cases {
		// What the API says for this token, straight from the server.
		var apiErr struct {
			StatusCode int    `json:"statusCode"`
			Message    string `json:"message"`
		}
		st, body := s.call("POST", "/v2/rooms/"+c.room+"/join", c.token, map[string]string{"name": "A"}, &apiErr)
		if st != c.status || apiErr.StatusCode != c.status || apiErr.Message != c.message {
			t.Errorf("%s: the join API answered %d %s; want %d with message %q", c.name, st, body, c.status, c.message)
			continue
		}
		p.openMeeting(s.meetURL(c.room, c.token, "A"))
		v := p.waitFor(c.name+": the error banner", 15*time.Second, `(() => {
  const b = document.getElementById('banner');
  return {ok: !b.hidden, text: document.getElementById('banner-text').textContent, state: window.meridianRoom?.state,
    overlay: document.getElementById('overlay').hidden ? '' : document.getElementById('overlay-text').textContent,
    rejoin: !document.getElementById('rejoin').hidden, videos: document.querySelectorAll('video').length};
})()`)
		// The page shows the server's message, says it could not join, offers
		// no Rejoin (a 4xx will not change by retrying) and shows no video.
		if v["text"] != c.message {
			t.Errorf("%s: banner %q, want the server's message %q", c.name, v["text"], c.message)
		}
		if v["state"] != "left" || v["overlay"] != "Could not join the meeting." || v["rejoin"] != false || v["videos"] != float64(0) {
			t.Errorf("%s: after the refusal the page shows %v; want room.state 'left', the overlay \"Could not join the meeting.\", no Rejoin button and no video", c.name, v)
		}
		t.Logf("%s: page shows %q (HTTP %d)", c.name, v["text"], st)
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
	c := newPage(t, ctx, "C")
	a.openMeeting(s.meetURL(room, s.rtcToken(room, "alice", true), "A"))
	a.waitFor("A joined", 15*time.Second, `({ok: window.meridianRoom?.state === 'joined'})`)
	guest := mint(t, tokenOpts{roles: []string{"rtc"}, perms: []string{"ask_join"}, room: room, partID: "carol"})
	c.openMeeting(s.meetURL(room, guest, "C"))
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

	// A guest who gives up waiting leaves A's lobby list (lobby-withdrawn).
	e := newPage(t, ctx, "E")
	e.openMeeting(s.meetURL(room, mint(t, tokenOpts{roles: []string{"rtc"}, perms: []string{"ask_join"}, room: room, partID: "erin"}), "E"))
	const erinListed = `#lobby-list li[data-participant-id="erin"]`
	a.waitFor("erin's request on A", 15*time.Second, `({ok: !!document.querySelector('`+erinListed+`')})`)
	e.navigate("about:blank")
	a.waitFor("erin gone from A's lobby list", 10*time.Second,
		`({ok: !document.querySelector('`+erinListed+`') && !window.meridianRoom.lobbyRequests().some((r) => r.participantId === 'erin')})`)

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
	c.waitFor("C sharing", 10*time.Second, `({ok: window.meridianRoom.screenSharing === true, banner: document.getElementById('banner').hidden ? '' : document.getElementById('banner-text').textContent})`)
	expectVideoFrom(t, a, "carol", "screen")
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
