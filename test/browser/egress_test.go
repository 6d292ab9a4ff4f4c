package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/test/procs"
)

// requireFFmpeg returns ffprobe's path or skips: `meridian dev` runs its
// recordings and HLS with ffmpeg, and the test probes the stream with
// ffprobe. MERIDIAN_REQUIRE_FFMPEG=1 (CI) makes a missing tool a failure.
func requireFFmpeg(t *testing.T) string {
	t.Helper()
	egresstest.NeedFFmpeg(t)
	probe, err := exec.LookPath("ffprobe")
	if err != nil {
		t.Fatal(err)
	}
	return probe
}

// egressIndicator is a JS expression: what the meeting page shows about
// the meeting being recorded / live, and what its SDK says. ok when both
// match want.
func egressIndicator(recording, live bool) string {
	return fmt.Sprintf(`(() => {
  const region = document.getElementById('egress-state');
  const rec = document.getElementById('rec-indicator'), lv = document.getElementById('live-indicator');
  const shown = (el) => !!el && !el.hidden && getComputedStyle(el).display !== 'none' && el.getClientRects().length > 0;
  const r = window.meridianRoom;
  const out = {rec: shown(rec), live: shown(lv), recText: rec?.textContent.trim(), liveText: lv?.textContent.trim(),
    ariaLive: region?.getAttribute('aria-live'), role: region?.getAttribute('role'),
    sdkRecording: r?.recording, sdkStreaming: r?.streaming, state: r?.state,
    body: document.body.dataset.recording + '/' + document.body.dataset.streaming};
  out.ok = r?.state === 'joined' && out.rec === %[1]t && out.live === %[2]t && r.recording === %[1]t && r.streaming === %[2]t &&
    out.recText === 'Recording' && out.liveText === 'Live' && out.ariaLive === 'polite' && out.role === 'status' &&
    out.body === '%[1]t/%[2]t';
  return out;
})()`, recording, live)
}

// hlsViewerPage plays ?src= with the vendored hls.js (testdata/hlsjs).
const hlsViewerPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>HLS viewer</title></head>
<body>
<video id="v" muted playsinline width="640" height="360"></video>
<script src="/hls.min.js"></script>
<script>
window.hlsState = {errors: [], fatal: '', levels: [], version: Hls.version, supported: Hls.isSupported()};
const v = document.getElementById('v');
const src = new URLSearchParams(location.search).get('src');
if (hlsState.supported) {
  const hls = new Hls();
  hls.on(Hls.Events.ERROR, (_, d) => { hlsState.errors.push(d.type + '/' + d.details + (d.fatal ? ' (fatal)' : '')); if (d.fatal) hlsState.fatal = d.details; });
  hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => {
    hlsState.levels = d.levels.map((l) => l.width + 'x' + l.height);
    v.play().catch((e) => { hlsState.playError = String(e); });
  });
  hls.loadSource(src);
  hls.attachMedia(v);
  window.hls = hls;
}
</script>
</body></html>`

// hlsProbe is a JS expression: the viewer's playback state.
const hlsProbe = `(() => {
  const v = document.getElementById('v'), s = window.hlsState || {};
  const q = v.getVideoPlaybackQuality();
  return {ok: s.supported === true && v.currentTime > 0 && q.totalVideoFrames > 0 && v.videoWidth > 0,
    t: v.currentTime, frames: q.totalVideoFrames, dropped: q.droppedVideoFrames, w: v.videoWidth, h: v.videoHeight,
    paused: v.paused, rs: v.readyState, version: s.version, supported: s.supported, levels: s.levels,
    errors: (s.errors || []).slice(-5), fatal: s.fatal, playError: s.playError || ''};
})()`

// newTab opens another tab in p's browser (one Chromium less on a shared
// machine).
func newTab(t *testing.T, p *page, name string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open tab %s: %v", name, err)
	}
	tab := &page{t: t, name: name, ctx: ctx, logs: procs.NewLogBuffer(childLogKeep)}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			fmt.Fprintf(tab.logs, "%s %s\n", m.Time.Format("15:04:05.000"), m.String())
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tab %s console (last 40 lines):\n%s", name, tail(tab.logs.String(), 40))
		}
		cancel()
	})
	return tab
}

// ffprobeStreams lists "codec_type:codec_name" of what ffprobe finds at u.
func ffprobeStreams(ctx context.Context, ffprobe, u string) ([]string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height",
		"-of", "json", u).CombinedOutput()
	if err != nil {
		return nil, string(out), err
	}
	var probe struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		return nil, string(out), err
	}
	var got []string
	for _, s := range probe.Streams {
		got = append(got, s.CodecType+":"+s.CodecName)
	}
	return got, string(out), nil
}

// TestEgressMeeting: two Chromiums in a `meridian dev` meeting. (a) A
// composite recording started through POST /v2/recordings/start shows the
// recording indicator on both meeting pages (and in their SDKs), and
// stopping it removes it. (b) HLS started through POST /v2/hls/start shows
// the live indicator; its livestreamUrl probes as H.264 + AAC with ffprobe
// and plays in Chromium with hls.js: currentTime advances and decoded
// frames grow.
func TestEgressMeeting(t *testing.T) {
	chromiumPath(t)
	ffprobe := requireFFmpeg(t)
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	t.Cleanup(cancel) // after every other cleanup (screenshots need the browsers)
	s := startDev(t)
	room := s.createRoom()

	a := newPage(t, ctx, "A")
	b := newPage(t, ctx, "B")
	a.openMeeting(s.meetURL(room, s.rtcToken(room, "alice", true), "A"))
	b.openMeeting(s.meetURL(room, s.rtcToken(room, "bob", false), "B"))
	// Each page receives the other's camera (whether it plays smoothly is
	// the other browser tests' business; this machine may be busy).
	for _, x := range []struct {
		p     *page
		other string
	}{{a, "bob"}, {b, "alice"}} {
		x.p.waitFor(x.other+"'s camera track", 30*time.Second, fmt.Sprintf(
			`({ok: window.meridianRoom?.remoteTracks().some((t) => t.participantId === %q && t.kind === 'video') === true})`, x.other))
	}
	for _, p := range []*page{a, b} {
		p.waitFor("no indicator before any job", 10*time.Second, egressIndicator(false, false))
		if _, err := evalJS[bool](p, `(() => { window.testEgress = []; window.meridianRoom.on('egress-state', (e) => testEgress.push(e)); return true; })()`); err != nil {
			t.Fatal(err)
		}
	}
	// The control plane records a job only for a session with participants.
	poll(t, "an ongoing session with alice and bob", 15*time.Second, func() string {
		for _, x := range s.sessions(room) {
			if x.Status == "ongoing" && len(s.activeParticipants(x.ID)) == 2 {
				return ""
			}
		}
		return "no ongoing session with both"
	})

	// (a) The recording indicator. (Phases, not subtests: the harness's
	// calls fail the parent test.)
	{
		// VideoSDK's /v2/recordings/start answers a message; the job is
		// the room's running recording.
		if st, body := s.call("POST", "/v2/recordings/start", s.crawler(), map[string]any{"roomId": room, "config": map[string]any{"quality": "low"}}, nil); st != 200 {
			t.Fatalf("POST /v2/recordings/start: %d %s", st, body)
		} else {
			t.Logf("POST /v2/recordings/start: %s", body)
		}
		for _, p := range []*page{a, b} {
			v := p.waitFor("the recording indicator", 30*time.Second, egressIndicator(true, false))
			t.Logf("%s shows %q (aria-live %v)", p.name, v["recText"], v["ariaLive"])
		}
		if st, body := s.call("POST", "/v2/recordings/stop", s.crawler(), map[string]any{"roomId": room}, nil); st != 200 {
			t.Fatalf("POST /v2/recordings/stop: %d %s", st, body)
		}
		for _, p := range []*page{a, b} {
			p.waitFor("the recording indicator to go", 30*time.Second, egressIndicator(false, false))
			got, err := evalJS[string](p, `JSON.stringify(window.testEgress)`)
			if err != nil {
				t.Fatal(err)
			}
			if want := `[{"recording":true,"streaming":false},{"recording":false,"streaming":false}]`; got != want {
				t.Errorf("%s: egress-state events %s, want %s", p.name, got, want)
			}
		}
	}

	// (b) HLS: the live indicator, ffprobe, hls.js in Chromium.
	{
		var hls struct {
			ID            string `json:"id"`
			LivestreamURL string `json:"livestreamUrl"`
			PlaybackURL   string `json:"playbackHlsUrl"`
		}
		if st, body := s.call("POST", "/v2/hls/start", s.crawler(), map[string]any{"roomId": room, "config": map[string]any{"quality": "low"}}, &hls); st != 200 || hls.ID == "" || hls.LivestreamURL == "" {
			t.Fatalf("POST /v2/hls/start: %d %s", st, body)
		}
		t.Logf("HLS %s: livestreamUrl %s, playbackHlsUrl %s", hls.ID, hls.LivestreamURL, hls.PlaybackURL)
		t.Cleanup(func() { s.call("POST", "/v2/hls/stop", s.crawler(), map[string]any{"id": hls.ID}, nil) })
		for _, p := range []*page{a, b} {
			p.waitFor("the live indicator", 30*time.Second, egressIndicator(false, true))
		}

		// ffprobe reads the live playlist once segments are listed.
		var streams []string
		poll(t, "ffprobe to find H.264 video and AAC audio in "+hls.LivestreamURL, 60*time.Second, func() string {
			resp, err := http.Get(hls.LivestreamURL)
			if err != nil {
				return err.Error()
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), "#EXT") {
				return fmt.Sprintf("playlist %d %q", resp.StatusCode, body)
			}
			got, out, err := ffprobeStreams(ctx, ffprobe, hls.LivestreamURL)
			if err != nil {
				return fmt.Sprintf("ffprobe: %v: %s", err, out)
			}
			streams = got
			hasV, hasA := false, false
			for _, x := range got {
				hasV = hasV || x == "video:h264"
				hasA = hasA || x == "audio:aac"
			}
			if !hasV || !hasA {
				return fmt.Sprintf("streams %v", got)
			}
			return ""
		})
		t.Logf("ffprobe %s: %v", hls.LivestreamURL, streams)

		// A page served by the test (another origin than the edge, as a
		// player's site is) plays livestreamUrl with hls.js.
		js, err := os.ReadFile("testdata/hlsjs/hls.min.js")
		if err != nil {
			t.Fatal(err)
		}
		viewerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/hls.min.js":
				w.Header().Set("Content-Type", "text/javascript")
				_, _ = w.Write(js)
			case "/":
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				_, _ = io.WriteString(w, hlsViewerPage)
			default:
				http.NotFound(w, r)
			}
		}))
		t.Cleanup(viewerSrv.Close)
		viewer := newTab(t, a, "viewer")
		viewer.navigate(viewerSrv.URL + "/?src=" + url.QueryEscape(hls.LivestreamURL))
		prev := viewer.waitFor("hls.js to start playing "+hls.LivestreamURL, 60*time.Second, hlsProbe)
		num := func(m map[string]any, k string) float64 { f, _ := m[k].(float64); return f }
		// Over windows of 3 s, currentTime must advance and decoded frames
		// grow; a live player may stall once at the edge of the window.
		deadline := time.Now().Add(20 * time.Second)
		for {
			time.Sleep(3 * time.Second)
			cur, err := evalJS[map[string]any](viewer, hlsProbe)
			if err != nil {
				t.Fatal(err)
			}
			dt, df := num(cur, "t")-num(prev, "t"), num(cur, "frames")-num(prev, "frames")
			if dt >= 1 && df >= 10 {
				t.Logf("hls.js %v plays %vx%v (levels %v): currentTime %.2f → %.2f, frames %v → %v (dropped %v)", cur["version"], cur["w"], cur["h"],
					cur["levels"], num(prev, "t"), num(cur, "t"), num(prev, "frames"), num(cur, "frames"), cur["dropped"])
				break
			}
			msg := fmt.Sprintf("HLS playback not advancing over 3 s: currentTime %.2f → %.2f, frames %v → %v; state %v", num(prev, "t"), num(cur, "t"), num(prev, "frames"), num(cur, "frames"), cur)
			if time.Now().After(deadline) {
				t.Fatal(msg)
			}
			t.Logf("WARNING %s; retrying", msg)
			prev = cur
		}

		if st, body := s.call("POST", "/v2/hls/stop", s.crawler(), map[string]any{"id": hls.ID}, nil); st != 200 {
			t.Fatalf("POST /v2/hls/stop: %d %s", st, body)
		}
		for _, p := range []*page{a, b} {
			p.waitFor("the live indicator to go", 30*time.Second, egressIndicator(false, false))
		}
	}
}
