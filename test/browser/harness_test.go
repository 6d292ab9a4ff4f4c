package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/shared/testneed"
	"github.com/meridian-video/meridian/test/chromium"
	"github.com/meridian-video/meridian/test/procs"
)

const (
	apiKey    = "8c1f0e2a-5b7d-4c3e-9a10-2f6b8d4e7c11"
	apiSecret = "3b9f6c2d8e1a4f7b0c5d9e2f6a1b4c8d7e0f3a6b9c2d5e8f1a4b7c0d3e6f9a2b"
)

// --------------------------------------------------------------- binary

var build struct {
	once sync.Once
	dir  string
	path string
	help string // `meridian dev -h`
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// repoRoot walks up from the working directory to the module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/meridian-video/meridian\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/meridian-video/meridian not found above the working directory")
		}
		dir = parent
	}
}

// meridianBinary builds ./cmd/meridian once per test run.
func meridianBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			build.err = err
			return
		}
		build.dir, err = os.MkdirTemp("", "meridian-browser-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(build.dir, "meridian")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/meridian")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/meridian: %v\n%s", err, out)
			return
		}
		out, _ := exec.Command(build.path, "dev", "-h").CombinedOutput()
		build.help = string(out)
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// chromiumPath returns the browser or skips (fails with MERIDIAN_REQUIRE_BROWSER=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("MERIDIAN_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		testneed.Missing(t, "BROWSER", fmt.Sprintf("Chromium not found at %s (apt-get install -y chromium, or set MERIDIAN_CHROMIUM)", path))
	}
	if testing.Short() {
		t.Skip("browser end-to-end test skipped in -short mode")
	}
	return path
}

// ------------------------------------------------------------- dev server

// childLogKeep is how much of a child's (or a page's) output a test keeps:
// far more than any run writes, a bound all the same.
const childLogKeep = 64 << 20

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// devServer is a `meridian dev` child process.
type devServer struct {
	t      *testing.T
	URL    string // the API, the meeting page (/meet) and the SDK (/sdk)
	out    *procs.LogBuffer
	client *http.Client
	proc   *os.Process
	exited chan error
}

func startDev(t *testing.T) *devServer {
	t.Helper()
	bin := meridianBinary(t)
	port := porttest.Port(t)
	level := os.Getenv("MERIDIAN_BROWSER_LOG_LEVEL")
	if level == "" {
		level = "info"
	}
	args := []string{"dev", "--http", fmt.Sprintf("127.0.0.1:%d", port), "--data", t.TempDir(),
		"--api-key", apiKey, "--api-secret", apiSecret, "--log-level", level}
	for _, f := range []string{"turn-udp", "turn-tcp"} {
		if strings.Contains(build.help, "-"+f+" ") {
			args = append(args, "--"+f, "127.0.0.1:0")
		} else {
			t.Logf("note: `meridian dev` has no --%s flag yet; using its default TURN address", f)
		}
	}
	s := &devServer{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", port), out: procs.NewLogBuffer(childLogKeep), client: &http.Client{Timeout: 10 * time.Second}}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); close(exited) }()
	s.proc, s.exited = cmd.Process, exited
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("meridian dev did not stop within 10 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("meridian dev output (last 120 lines):\n%s", tail(s.out.String(), 120))
		}
	})

	deadline := time.Now().Add(45 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("meridian dev exited early: %v\n%s", err, tail(s.out.String(), 60))
		default:
		}
		if strings.Contains(s.out.String(), "Meridian dev is running") {
			if resp, err := s.client.Get(s.URL + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("meridian dev not ready after 45 s:\n%s", tail(s.out.String(), 60))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// call does an API request and decodes the JSON answer into out (if non-nil).
func (s *devServer) call(method, path, token string, body any, out any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Authorization", token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, b
}

type tokenOpts struct {
	roles, perms []string
	room, partID string
	ttl          time.Duration
	issuedAgo    time.Duration
	// key and secret sign the token (default: the dev server's apiKey/apiSecret).
	key, secret string
}

func mint(t *testing.T, o tokenOpts) string {
	t.Helper()
	if o.ttl == 0 {
		o.ttl = time.Hour
	}
	if o.key == "" {
		o.key, o.secret = apiKey, apiSecret
	}
	tok, err := auth.Mint(auth.MintOptions{APIKey: o.key, Secret: []byte(o.secret), Roles: o.roles, Permissions: o.perms,
		RoomID: o.room, ParticipantID: o.partID, TTL: o.ttl, Now: time.Now().Add(-o.issuedAgo)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *devServer) crawler() string {
	return mint(s.t, tokenOpts{roles: []string{auth.RoleCrawler}, perms: []string{auth.PermAllowJoin, auth.PermAllowMod}})
}

func (s *devServer) createRoom() string {
	s.t.Helper()
	var room struct {
		RoomID string `json:"roomId"`
	}
	if st, b := s.call("POST", "/v2/rooms", s.crawler(), map[string]any{}, &room); st != 200 || room.RoomID == "" {
		s.t.Fatalf("create room: %d %s", st, b)
	}
	return room.RoomID
}

// deactivatedRoom creates a room and deactivates it: joins to it are refused.
func (s *devServer) deactivatedRoom() string {
	s.t.Helper()
	room := s.createRoom()
	if st, b := s.call("POST", "/v2/rooms/deactivate", s.crawler(), map[string]string{"roomId": room}, nil); st != 200 {
		s.t.Fatalf("deactivate: %d %s", st, b)
	}
	return room
}

// rtcToken mints a join token for participant pid in room.
func (s *devServer) rtcToken(room, pid string, moderator bool) string {
	perms := []string{auth.PermAllowJoin}
	if moderator {
		perms = append(perms, auth.PermAllowMod)
	}
	return mint(s.t, tokenOpts{roles: []string{auth.RoleRTC}, perms: perms, room: room, partID: pid})
}

func (s *devServer) meetURL(room, token, name string, extra ...string) string {
	q := url.Values{"token": {token}, "name": {name}, "debug": {"1"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return s.URL + "/meet/" + room + "?" + q.Encode()
}

// --------------------------------------------------------------- browsers

// page is one headless Chromium with one tab.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
	logs *procs.LogBuffer
}

func newPage(t *testing.T, parent context.Context, name string) *page {
	t.Helper()
	opts := chromium.Options(chromiumPath(t), t.TempDir())
	actx, acancel := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	p := &page{t: t, name: name, ctx: ctx, logs: procs.NewLogBuffer(childLogKeep)}
	if err := chromedp.Do(ctx); err != nil { // starts the browser (bound to parent)
		cancel()
		acancel()
		t.Fatalf("start chromium for %s: %v", name, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			fmt.Fprintf(p.logs, "%s %s\n", m.Time.Format("15:04:05.000"), m.String())
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser %s console (last 60 lines):\n%s", name, tail(p.logs.String(), 60))
		}
		cancel()
		acancel()
	})
	p.screenshotOnFailure(t) // registered after the browser's cleanup, so it runs first
	return p
}

func (p *page) run(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

func (p *page) navigate(u string) {
	p.t.Helper()
	if err := p.run(chromedp.Navigate(u)); err != nil {
		p.t.Fatalf("%s: navigate: %v", p.name, err)
	}
}

// openMeeting opens a meeting link as a user does and first checks that the
// binary itself served everything the page runs: the document is the meeting
// page of the link's room (HTTP 200), and its script and the SDK it imports
// came from the same origin's /meet/assets/meet.js and /sdk/meridian.js, and
// the SDK ran (window.Meridian.Room). A broken route fails here at once.
func (p *page) openMeeting(link string) {
	p.t.Helper()
	u, err := url.Parse(link)
	if err != nil || !strings.HasPrefix(u.Path, "/meet/") {
		p.t.Fatalf("%s: %q is not a meeting link", p.name, link)
	}
	p.navigate(link)
	p.waitFor("the meeting page and the SDK from "+u.Host, 10*time.Second, fmt.Sprintf(`(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const served = (path) => res.some(e => e.name === %[1]q + path && (e.responseStatus === 200 || e.responseStatus === 304));
  const out = {status: nav?.responseStatus, room: document.querySelector('meta[name="meridian-room-id"]')?.content || '',
    script: served('/meet/assets/meet.js'), sdk: served('/sdk/meridian.js'), sdkRan: typeof window.Meridian?.Room === 'function',
    resources: res.map(e => e.name + ' ' + e.responseStatus)};
  out.ok = out.status === 200 && out.room === %[2]q && out.script && out.sdk && out.sdkRan;
  return out;
})()`, u.Scheme+"://"+u.Host, strings.TrimPrefix(u.Path, "/meet/")))
}

// answerDevicePromptAfter makes every getUserMedia on p's next documents
// resolve d later, as when a person takes a moment to allow the camera and
// microphone: the others' tracks then arrive before p captures anything.
func (p *page) answerDevicePromptAfter(d time.Duration) {
	p.t.Helper()
	script := fmt.Sprintf(`(() => { const md = navigator.mediaDevices; if (!md) return; const gum = md.getUserMedia.bind(md);
  md.getUserMedia = (c) => new Promise((r) => setTimeout(r, %d)).then(() => gum(c)); })()`, d.Milliseconds())
	err := p.run(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	}))
	if err != nil {
		p.t.Fatalf("%s: add init script: %v", p.name, err)
	}
}

func (p *page) click(css string) error {
	return p.run(chromedp.Click(chromedp.CSS(css)))
}

// evalJS evaluates a JS expression (awaiting promises) on p.
func evalJS[T any](p *page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitFor polls expr (a JS expression giving an object; a true `ok` field
// ends the wait) and returns the last value.
func (p *page) waitFor(what string, timeout time.Duration, expr string) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]any
	var lastErr error
	for time.Now().Before(deadline) {
		v, err := evalJS[map[string]any](p, expr)
		if err != nil {
			lastErr = err
		} else {
			last = v
			if ok, _ := v["ok"].(bool); ok {
				return v
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	p.t.Fatalf("%s: timed out after %v waiting for %s; last value %v, last error %v\n%s", p.name, timeout, what, last, lastErr, p.debugDump())
	return nil
}

// debugDump is the SDK's and WebRTC's state as the page sees it.
func (p *page) debugDump() string {
	s, err := evalJS[string](p, `(async () => {
  const r = window.meridianRoom;
  if (!r) return JSON.stringify({room: null, banner: document.getElementById('banner-text')?.textContent});
  const out = {state: r.state, participantId: r.participantId, permissions: r.permissions,
    participants: r.participants().map(p => ({id: p.participantId, tracks: p.tracks})),
    remote: r.remoteTracks().map(t => ({pid: t.participantId, trackId: t.trackId, kind: t.kind, source: t.source, state: t.track.readyState, muted: t.track.muted})),
    videos: [...document.querySelectorAll('video')].map(v => ({pid: v.dataset.participantId, local: !!v.dataset.local, w: v.videoWidth, t: v.currentTime, rs: v.readyState})),
    banner: document.getElementById('banner').hidden ? '' : document.getElementById('banner-text').textContent};
  const stats = await r.getStats();
  for (const [name, rep] of Object.entries(stats)) {
    if (!rep) continue;
    const byId = new Map(); rep.forEach(v => byId.set(v.id, v));
    const s = {rtp: []};
    rep.forEach(v => {
      if (v.type === 'transport') { s.dtls = v.dtlsState; s.ice = v.iceState; const pair = byId.get(v.selectedCandidatePairId);
        if (pair) { s.local = byId.get(pair.localCandidateId)?.candidateType; s.remote = byId.get(pair.remoteCandidateId)?.candidateType; } }
      if (v.type === 'inbound-rtp' || v.type === 'outbound-rtp') s.rtp.push({type: v.type, kind: v.kind, rid: v.rid, bytes: v.bytesReceived ?? v.bytesSent, frames: v.framesDecoded ?? v.framesEncoded, packets: v.packetsReceived ?? v.packetsSent, pli: v.pliCount, nack: v.nackCount, limit: v.qualityLimitationReason, size: v.frameWidth ? v.frameWidth + 'x' + v.frameHeight : undefined, fps: v.framesPerSecond, padding: v.headerBytesReceived !== undefined ? undefined : v.paddingBytesSent});
    });
    out[name] = s;
  }
  return JSON.stringify(out);
})()`)
	if err != nil {
		return fmt.Sprintf("(%s: debug dump failed: %v)", p.name, err)
	}
	return fmt.Sprintf("%s page state: %s", p.name, s)
}

// artifactDir is where failure screenshots go.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("MERIDIAN_BROWSER_ARTIFACTS"); d != "" {
		d = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// screenshotOnFailure saves p's screenshot when the test fails (every
// newPage registers it).
func (p *page) screenshotOnFailure(t *testing.T) {
	dir := artifactDir(t) // created now: t.TempDir cannot be called during cleanup
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Logf("screenshot of %s failed: %v", p.name, err)
			return
		}
		path := filepath.Join(dir, "page-"+p.name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Logf("save screenshot: %v", err)
			return
		}
		t.Logf("screenshot of page %s: %s (set MERIDIAN_BROWSER_ARTIFACTS=dir to keep it after the test)", p.name, path)
		t.Log(p.debugDump())
	})
}
