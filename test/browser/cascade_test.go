package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Rooms across edges, with real processes: `meridian control` plus three
// `meridian edge` (paris-1 and paris-2 in eu-west, montreal-1 in ca-east),
// and two headless Chromiums on the control node's meeting page, one with
// ?region=eu-west and one with ?region=ca-east.

var cascadeEdges = []edgeSpec{{"paris-1", "eu-west", ""}, {"paris-2", "eu-west", ""}, {"montreal-1", "ca-east", ""}}

// roomState is a JS expression: the SDK's state and the edge it uses.
const roomState = `(() => {
  const r = window.meridianRoom;
  return {ok: r?.state === 'joined' && !!r.edgeId, state: r?.state, edge: r?.edgeId || '', region: r?.edgeRegion || '', pid: r?.participantId || '',
    bodyEdge: document.body.dataset.edgeId || '', indicator: !document.getElementById('reconnecting').hidden};
})()`

type cascadeMeeting struct {
	cl               *cluster
	room             string
	alice, bob       *page // alice: region eu-west; bob: region ca-east
	aliceEdge, bobEd string
}

// startCascadeMeeting starts the cluster, puts alice (eu-west) and bob
// (ca-east) in one room through the meeting page and checks that they are
// on different edges (a paris one and montreal-1) and see and hear each
// other, through the cascade between the two edges.
func startCascadeMeeting(t *testing.T, ctx context.Context, edges []edgeSpec) *cascadeMeeting {
	t.Helper()
	cl := startCluster(t, edges...)
	m := &cascadeMeeting{cl: cl, room: cl.createRoom()}
	m.alice = newPage(t, ctx, "alice")
	m.bob = newPage(t, ctx, "bob")

	// alice first: the room's home edge is in eu-west.
	m.alice.openMeeting(cl.meetURL(m.room, cl.rtcToken(m.room, "alice"), "Alice", "eu-west"))
	v := m.alice.waitFor("alice joined", 20*time.Second, roomState)
	m.aliceEdge = v["edge"].(string)
	m.bob.openMeeting(cl.meetURL(m.room, cl.rtcToken(m.room, "bob"), "Bob", "ca-east"))
	v = m.bob.waitFor("bob joined", 20*time.Second, roomState)
	m.bobEd = v["edge"].(string)
	t.Logf("alice is on %s, bob on %s", m.aliceEdge, m.bobEd)
	if m.aliceEdge != "paris-1" && m.aliceEdge != "paris-2" {
		t.Fatalf("alice (region eu-west) was placed on %q, want paris-1 or paris-2", m.aliceEdge)
	}
	if m.bobEd != "montreal-1" {
		t.Fatalf("bob (region ca-east) was placed on %q, want montreal-1", m.bobEd)
	}
	for _, p := range []*page{m.alice, m.bob} {
		if v := p.waitFor(p.name+"'s page to name its edge", 5*time.Second, roomState); v["bodyEdge"] != v["edge"] {
			t.Errorf("%s: body[data-edge-id] %q, SDK edge %q", p.name, v["bodyEdge"], v["edge"])
		}
	}
	expectVideo(t, m.alice, "bob")
	expectVideo(t, m.bob, "alice")
	expectAudio(t, m.alice, "bob")
	expectAudio(t, m.bob, "alice")
	return m
}

// TestCascadeTwoRegions (test A): two browsers in one room on edges of two
// regions see each other through the cascade; the session audit names both
// edges and the relay legs between them.
func TestCascadeTwoRegions(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	t.Cleanup(cancel)
	start := time.Now()
	m := startCascadeMeeting(t, ctx, cascadeEdges)
	t.Logf("both see each other across %s ↔ %s %v after the start", m.aliceEdge, m.bobEd, time.Since(start).Round(100*time.Millisecond))

	// The control plane agrees: the session's audit lists both edges and a
	// cascade leg between them, in both directions (each pulls the other's
	// tracks).
	var sessionID string
	poll(t, "the ongoing session", 15*time.Second, func() string {
		id, err := m.cl.ongoingSession(m.room)
		if err != nil {
			return err.Error()
		}
		sessionID = id
		return ""
	})
	var raw []byte
	poll(t, "the audit to show both edges and the cascade legs", 30*time.Second, func() string {
		hops, b := m.cl.audit(sessionID)
		raw = b
		edges := map[string]string{}
		legs := map[string]bool{}
		for _, h := range hops {
			switch h.Kind {
			case "edge":
				edges[h.EdgeID] = h.Region
			case "cascade":
				legs[h.EdgeID+">"+h.PeerEdgeID] = true
			}
		}
		var missing []string
		if edges[m.aliceEdge] != "eu-west" {
			missing = append(missing, "edge "+m.aliceEdge+" (eu-west)")
		}
		if edges[m.bobEd] != "ca-east" {
			missing = append(missing, "edge "+m.bobEd+" (ca-east)")
		}
		if !legs[m.aliceEdge+">"+m.bobEd] && !legs[m.bobEd+">"+m.aliceEdge] {
			missing = append(missing, "a cascade leg between "+m.aliceEdge+" and "+m.bobEd)
		}
		if len(missing) > 0 {
			return fmt.Sprintf("missing %s in %s", strings.Join(missing, ", "), compactJSON(b))
		}
		return ""
	})
	t.Logf("session %s audit: %s", sessionID, compactJSON(raw))
}

// videoProbe is a JS expression: pid's camera <video> on this page, which
// track object it shows (a number per track, to tell a new track from the
// old one) and how many frames it decoded.
func videoProbe(pid string) string {
	return fmt.Sprintf(`(() => {
  const v = document.querySelector('video[data-participant-id=%q][data-source="camera"]:not([data-local])');
  if (!v) return {el: false};
  const tr = v.srcObject && v.srcObject.getVideoTracks()[0];
  window.testTrackSeq = window.testTrackSeq || 0;
  if (tr && !tr.testSeq) tr.testSeq = ++window.testTrackSeq;
  return {el: true, marked: v.dataset.testMark === '1', live: !!tr && tr.readyState === 'live', old: !!tr && tr === window.testOldTrack,
    seq: tr ? tr.testSeq : 0, frames: v.getVideoPlaybackQuality().totalVideoFrames, w: v.videoWidth};
})()`, pid)
}

type videoSample struct {
	at     time.Time
	el     bool
	marked bool
	live   bool
	old    bool
	seq    float64
	frames float64
}

func sampleVideo(p *page, pid string) videoSample {
	v, err := evalJS[map[string]any](p, videoProbe(pid))
	s := videoSample{at: time.Now()}
	if err != nil {
		return s
	}
	s.el, _ = v["el"].(bool)
	s.marked, _ = v["marked"].(bool)
	s.live, _ = v["live"].(bool)
	s.old, _ = v["old"].(bool)
	s.seq, _ = v["seq"].(float64)
	s.frames, _ = v["frames"].(float64)
	return s
}

// flowingAgain: between prev and cur a live track other than the one shown
// before the kill decoded new frames.
func flowingAgain(prev, cur videoSample) bool {
	return prev.el && cur.el && prev.live && cur.live && !cur.old && prev.seq == cur.seq && cur.frames-prev.frames >= 2
}

// instrument records, on both pages, what a move must keep (no reload, the
// same Room, no new getUserMedia, the <video> element of the other side)
// and what it does (SDK events, join API calls), and marks the video tracks
// shown now as the old ones.
func (m *cascadeMeeting) instrument(t *testing.T) {
	t.Helper()
	if _, err := evalJS[bool](m.alice, `(() => { const r = window.meridianRoom;
  window.testLoadMark = 'loaded-once'; window.testTimeOrigin = performance.timeOrigin; r.testMark = 'same-room';
  window.testEvents = []; window.testGUM = 0;
  const gum = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c) => { window.testGUM++; return gum(c); };
  const gdm = navigator.mediaDevices.getDisplayMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getDisplayMedia = (c) => { window.testGUM++; return gdm(c); };
  window.testJoins = [];
  const f = window.fetch.bind(window);
  window.fetch = (u, o) => { if (String(u).endsWith('/join')) testJoins.push(JSON.parse(o.body)); return f(u, o); };
  r.on('reconnecting', e => testEvents.push({type: 'reconnecting', state: r.state, indicator: !document.getElementById('reconnecting').hidden, ...e}));
  r.on('reconnected', e => testEvents.push({type: 'reconnected', ...e}));
  r.on('participant-left', e => testEvents.push({type: 'participant-left', ...e}));
  r.on('participant-joined', e => testEvents.push({type: 'participant-joined', participantId: e.participantId}));
  const v = document.querySelector('video[data-participant-id="bob"][data-source="camera"]:not([data-local])');
  v.dataset.testMark = '1'; window.testOldTrack = v.srcObject.getVideoTracks()[0];
  return true; })()`); err != nil {
		t.Fatal(err)
	}
	if _, err := evalJS[bool](m.bob, `(() => { const r = window.meridianRoom; window.testEvents = [];
  r.on('participant-left', e => testEvents.push('participant-left ' + e.participantId + ' ' + e.reason));
  r.on('participant-joined', e => testEvents.push('participant-joined ' + e.participantId));
  r.on('track-removed', e => testEvents.push('track-removed ' + e.participantId + ' ' + e.kind));
  r.on('track-added', e => testEvents.push('track-added ' + e.participantId + ' ' + e.kind));
  const v = document.querySelector('video[data-participant-id="alice"][data-source="camera"]:not([data-local])');
  window.testOldTrack = v.srcObject.getVideoTracks()[0];
  return true; })()`); err != nil {
		t.Fatal(err)
	}
}

// waitMoved waits until alice is on edge `to` and video flows both ways on
// new tracks: first alice (bob's new track decoding frames), then bob
// (alice's track decoding frames, measured entirely after alice was back).
// It returns both durations since `since`.
func (m *cascadeMeeting) waitMoved(t *testing.T, since time.Time, to string, limit time.Duration) (aliceTook, bothTook time.Duration) {
	t.Helper()
	var aliceBack, bobBack time.Time
	var prevA, prevB videoSample
	var lastState map[string]any
	for time.Since(since) < limit && bobBack.IsZero() {
		st, _ := evalJS[map[string]any](m.alice, roomState)
		if st != nil {
			lastState = st
		}
		a := sampleVideo(m.alice, "bob")
		b := sampleVideo(m.bob, "alice")
		if aliceBack.IsZero() && st != nil && st["state"] == "joined" && st["edge"] == to && flowingAgain(prevA, a) {
			aliceBack = a.at
		}
		if !aliceBack.IsZero() && !prevB.at.Before(aliceBack) && flowingAgain(prevB, b) {
			bobBack = b.at
		}
		prevA, prevB = a, b
		time.Sleep(200 * time.Millisecond)
	}
	if bobBack.IsZero() {
		t.Fatalf("video not flowing both ways %v after leaving %s (alice back on %s: %v); alice state %v\n%s\n%s",
			limit, m.aliceEdge, to, !aliceBack.IsZero(), lastState, m.alice.debugDump(), m.bob.debugDump())
	}
	return aliceBack.Sub(since), bobBack.Sub(since)
}

// waitMovedWithin waits for alice's move to edge to after a fault ("kill",
// "stop") at since, logs how long media took, and fails the test when
// video took longer than bound to flow both ways again.
func (m *cascadeMeeting) waitMovedWithin(t *testing.T, fault string, since time.Time, to string, bound time.Duration) {
	t.Helper()
	aliceTook, took := m.waitMoved(t, since, to, bound+20*time.Second)
	t.Logf("after the %s: alice on %s receiving bob's video %v, video flowing both ways %v after it",
		fault, to, aliceTook.Round(10*time.Millisecond), took.Round(10*time.Millisecond))
	if took > bound {
		t.Errorf("video flowing both ways took %v after the %s; want ≤ %v", took.Round(10*time.Millisecond), fault, bound)
	}
}

// checkMoved checks alice's page after a move from → to for `reason`;
// published lists the sources alice must publish again.
func (m *cascadeMeeting) checkMoved(t *testing.T, from, to, reason, published string) {
	t.Helper()
	expectVideo(t, m.alice, "bob")
	expectVideo(t, m.bob, "alice")
	v, err := evalJS[map[string]any](m.alice, `(() => { const r = window.meridianRoom;
  const v = document.querySelector('video[data-participant-id="bob"][data-source="camera"]:not([data-local])');
  return {mark: window.testLoadMark || '', sameOrigin: window.testTimeOrigin === performance.timeOrigin, room: r.testMark || '',
    state: r.state, edge: r.edgeId, pid: r.participantId, events: JSON.stringify(window.testEvents), gum: window.testGUM,
    joins: JSON.stringify(window.testJoins),
    sameVideo: !!v && v.dataset.testMark === '1', indicator: !document.getElementById('reconnecting').hidden,
    bodyEdge: document.body.dataset.edgeId || '',
    published: r.participants()[0].tracks.map(t => t.source).sort().join(',')}; })()`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("alice after the move: %v", v)
	if v["mark"] != "loaded-once" || v["sameOrigin"] != true || v["room"] != "same-room" {
		t.Errorf("alice's page was reloaded or its Room replaced: %v", v)
	}
	if v["pid"] != "alice" || v["edge"] != to || v["bodyEdge"] != to {
		t.Errorf("alice is %v on edge %v (page says %v); want alice on %s", v["pid"], v["edge"], v["bodyEdge"], to)
	}
	// The join API was asked again for alice, avoiding the edge she left.
	var joins []struct {
		ParticipantID string   `json:"participantId"`
		Region        string   `json:"region"`
		AvoidEdges    []string `json:"avoidEdges"`
	}
	if err := json.Unmarshal([]byte(v["joins"].(string)), &joins); err != nil || len(joins) == 0 {
		t.Errorf("alice's page did not call the join API again (%v): %v", err, v["joins"])
	} else if j := joins[0]; j.ParticipantID != "alice" || j.Region != "eu-west" || !slices.Contains(j.AvoidEdges, from) {
		t.Errorf("alice's join call after leaving %s was %+v; want participantId alice, region eu-west, avoidEdges with %s", from, j, from)
	}
	if g, _ := v["gum"].(float64); g != 0 {
		t.Errorf("the SDK asked for the devices again (%v getUserMedia calls) instead of re-publishing its tracks", g)
	}
	if v["published"] != published {
		t.Errorf("alice publishes %v after the move, want %s", v["published"], published)
	}
	if v["sameVideo"] != true {
		t.Errorf("alice's <video> for bob was replaced; want the same element with a new srcObject")
	}
	if v["indicator"] == true {
		t.Errorf("the Reconnecting… indicator is still shown")
	}
	ev := v["events"].(string)
	if !strings.Contains(ev, fmt.Sprintf(`"type":"reconnecting","state":"reconnecting","indicator":true,"from":%q,"reason":%q`, from, reason)) {
		t.Errorf("alice's events %s: want reconnecting from %s (%s) with room.state 'reconnecting' and the page's indicator shown", ev, from, reason)
	}
	if !strings.Contains(ev, fmt.Sprintf(`"type":"reconnected","from":%q,"to":%q,"reason":%q`, from, to, reason)) {
		t.Errorf("alice's events %s: want reconnected from %s to %s (%s)", ev, from, to, reason)
	}
	if strings.Contains(ev, "participant-left") || strings.Contains(ev, "participant-joined") {
		t.Errorf("alice saw bob leave/join during her move: %s", ev)
	}
	// bob stays in touch with alice through the cascade: her tracks are
	// replaced, she never leaves.
	bobEvents, err := evalJS[[]string](m.bob, `window.testEvents`)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bob's SDK events during alice's move: %v", bobEvents)
	if slices.ContainsFunc(bobEvents, func(e string) bool { return strings.HasPrefix(e, "participant-") }) {
		t.Errorf("bob saw alice leave or join during her move: %v", bobEvents)
	}

	// The control plane placed the room on the new edge: the audit lists it.
	if id, err := m.cl.ongoingSession(m.room); err == nil {
		poll(t, "the audit to list "+to, 20*time.Second, func() string {
			hops, b := m.cl.audit(id)
			for _, h := range hops {
				if h.Kind == "edge" && h.EdgeID == to {
					return ""
				}
			}
			return compactJSON(b)
		})
	} else {
		t.Errorf("after the move: %v", err)
	}
}

var otherParis = map[string]string{"paris-1": "paris-2", "paris-2": "paris-1"}

// TestCascadeEdgeFailover (test B): the eu-west browser's edge is killed
// with SIGKILL. Its page notices, asks the join API for another edge (same
// participant, avoiding the dead one), lands on the other eu-west edge and
// publishes again without asking for the devices; both browsers see each
// other's video again, without a page reload, within 20 s.
func TestCascadeEdgeFailover(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	t.Cleanup(cancel)
	m := startCascadeMeeting(t, ctx, cascadeEdges)
	from, to := m.aliceEdge, otherParis[m.aliceEdge]
	// alice shares her screen too (the click is the gesture getDisplayMedia needs).
	if err := m.alice.click("#btn-screen"); err != nil {
		t.Fatal(err)
	}
	m.bob.waitFor("alice's screen on bob's page", 20*time.Second, screenShown)
	if _, err := evalJS[bool](m.bob, `(window.testOldScreen = document.querySelector('video[data-participant-id="alice"][data-source="screen"]').srcObject.getVideoTracks()[0], true)`); err != nil {
		t.Fatal(err)
	}
	m.instrument(t)

	m.cl.edges[from].proc.kill9()
	killed := time.Now()
	t.Logf("killed %s (kill -9); alice should move to %s", from, to)
	m.waitMovedWithin(t, "kill", killed, to, 20*time.Second)
	m.checkMoved(t, from, to, "socket-closed", "camera,microphone,screen")
	expectAudio(t, m.alice, "bob")
	expectAudio(t, m.bob, "alice")
	// The screen share, published again from the same capture, reaches bob.
	v := m.bob.waitFor("alice's screen on bob's page again", 20*time.Second,
		`(() => { const s = `+screenShown+`; const v = document.querySelector('video[data-participant-id="alice"][data-source="screen"]');
  return {...s, ok: s.ok && v.srcObject.getVideoTracks()[0] !== window.testOldScreen}; })()`)
	t.Logf("bob sees alice's screen again: %v", v)
	expectVideoFrom(t, m.bob, "alice", "screen")
}

// TestCascadeEdgeStall (test B'): the eu-west browser's edge is stopped
// (SIGSTOP: a frozen VM, a process the kernel stopped). Its sockets stay
// open, so nothing closes: the page notices the silence itself, moves to
// the other eu-west edge as after a kill, and both browsers see each other
// again.
func TestCascadeEdgeStall(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	t.Cleanup(cancel)
	m := startCascadeMeeting(t, ctx, cascadeEdges)
	from, to := m.aliceEdge, otherParis[m.aliceEdge]
	m.instrument(t)

	m.cl.edges[from].proc.stop()
	stoppedAt := time.Now()
	t.Logf("stopped %s (SIGSTOP); alice should move to %s", from, to)
	// 3 s of silence, then a move like any other; before the SDK listened
	// for silence the page waited for ICE to give up, then for a resume on
	// the stopped edge: 14.8 s, and bob saw alice leave and come back.
	m.waitMovedWithin(t, "stop", stoppedAt, to, 12*time.Second)
	m.checkMoved(t, from, to, "edge-silent", "camera,microphone")
}

// screenShown is a JS expression: alice's screen share plays on this page.
const screenShown = `(() => {
  const v = document.querySelector('video[data-participant-id="alice"][data-source="screen"]');
  const tr = v && v.srcObject && v.srcObject.getVideoTracks()[0];
  return {ok: !!tr && tr.readyState === 'live' && v.videoWidth > 0, w: v ? v.videoWidth : 0};
})()`

// TestCascadeEdgeDrain: the eu-west browser's edge gets SIGTERM and drains:
// it asks its participants to reconnect, and the page moves to the other
// eu-west edge before leaving the draining one (make before break), so the
// edge empties and exits long before its 60 s deadline.
func TestCascadeEdgeDrain(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	t.Cleanup(cancel)
	edges := []edgeSpec{{"paris-1", "eu-west", "60s"}, {"paris-2", "eu-west", "60s"}, {"montreal-1", "ca-east", ""}}
	m := startCascadeMeeting(t, ctx, edges)
	from, to := m.aliceEdge, otherParis[m.aliceEdge]
	m.instrument(t)

	drained := m.cl.edges[from].proc
	drained.signal(syscall.SIGTERM)
	termAt := time.Now()
	t.Logf("SIGTERM to %s (drain deadline 60 s); alice should move to %s", from, to)
	aliceTook, took := m.waitMoved(t, termAt, to, 30*time.Second)
	t.Logf("drain: alice on %s receiving bob's video %v after SIGTERM; video flowing both ways %v after SIGTERM",
		to, aliceTook.Round(10*time.Millisecond), took.Round(10*time.Millisecond))
	select {
	case <-drained.exited:
		t.Logf("%s exited %v after SIGTERM", from, time.Since(termAt).Round(10*time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Errorf("%s still running %v after SIGTERM: alice did not leave it after moving", from, time.Since(termAt).Round(time.Second))
	}
	m.checkMoved(t, from, to, "edge-draining", "camera,microphone")
	// Leave properly, so the other edges stop at once in the cleanup.
	for _, p := range []*page{m.alice, m.bob} {
		_, _ = evalJS[bool](p, `(window.meridianRoom.leave(), true)`)
	}
}
