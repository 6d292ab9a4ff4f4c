package browser

import (
	"context"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestRefusedJoinStopsTheCamera: the SDK asks for the camera and microphone
// in parallel with the join API request (the camera's start is the longest
// step before a participant is seen), so a join the API refuses has asked
// for them too. The devices are held here until the refusal is shown, then
// released: the stream that arrives for the failed join is stopped at once,
// no track left live (the camera light goes off) and none shown.
func TestRefusedJoinStopsTheCamera(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	s := startDev(t)

	room := s.deactivatedRoom()

	p := newPage(t, ctx, "A")
	// Every getUserMedia resolves only once the test calls
	// __releaseDevices(); what it gave is kept in __deviceStreams.
	const hold = `(() => { const md = navigator.mediaDevices; if (!md) return; const gum = md.getUserMedia.bind(md);
  let release; const gate = new Promise((r) => { release = r; });
  window.__deviceCalls = 0; window.__deviceStreams = []; window.__releaseDevices = () => release();
  md.getUserMedia = (c) => { window.__deviceCalls++; return gate.then(() => gum(c)).then((s) => { window.__deviceStreams.push(s); return s; }); };
})()`
	err := p.run(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: hold})
		return err
	}))
	if err != nil {
		t.Fatalf("add init script: %v", err)
	}

	p.openMeeting(s.meetURL(room, s.rtcToken(room, "alice", false), "A"))
	v := p.waitFor("the refusal", 15*time.Second, `(() => ({ok: window.meridianRoom?.state === 'left' && !document.getElementById('banner').hidden,
  state: window.meridianRoom?.state, banner: document.getElementById('banner-text').textContent, calls: window.__deviceCalls}))()`)
	if v["calls"] != float64(1) {
		t.Fatalf("getUserMedia was called %v times by the refused join, want once (in parallel with the join request)", v["calls"])
	}

	if _, err := evalJS[any](p, `window.__releaseDevices()`); err != nil {
		t.Fatal(err)
	}
	v = p.waitFor("the refused join's stream stopped", 15*time.Second, `(() => {
  const tracks = window.__deviceStreams.flatMap((s) => s.getTracks());
  const live = tracks.filter((t) => t.readyState === 'live').map((t) => t.kind);
  return {ok: window.__deviceStreams.length === 1 && tracks.length > 0 && live.length === 0,
    streams: window.__deviceStreams.length, tracks: tracks.length, live,
    localStream: !!window.meridianRoom?.localStream, videos: document.querySelectorAll('video').length};
})()`)
	if v["localStream"] != false || v["videos"] != float64(0) {
		t.Fatalf("after the refusal the room keeps a local stream (%v) or the page shows %v videos", v["localStream"], v["videos"])
	}
	t.Logf("refused join: %v", v)
}
