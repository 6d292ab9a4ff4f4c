package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/egress"
	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
	"github.com/meridian-video/meridian/shared/wait"
)

// eventTap stands between an edge and a real control node: it forwards
// every call and keeps the events of each batch control acknowledged, in
// the order they arrived.
type eventTap struct {
	srv       *httptest.Server
	mu        sync.Mutex
	evs       []edgeapi.Event
	cut       atomic.Bool  // answer 503 to everything (control unreachable)
	registers atomic.Int32 // registrations forwarded
}

func newEventTap(t *testing.T, upstream string) *eventTap {
	tap := &eventTap{}
	tap.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if tap.cut.Load() {
			http.Error(w, `{"message":"unreachable"}`, http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/internal/v1/edges/register" {
			tap.registers.Add(1)
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if r.URL.Path == "/internal/v1/edges/events" && resp.StatusCode == http.StatusOK {
			var b edgeapi.EventBatch
			if json.Unmarshal(body, &b) == nil {
				tap.mu.Lock()
				tap.evs = append(tap.evs, b.Events...)
				tap.mu.Unlock()
			}
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(out)
	}))
	t.Cleanup(tap.srv.Close)
	return tap
}

// statuses returns the egress statuses control acknowledged for a job, in order.
func (tap *eventTap) statuses(id string) []egressapi.Status {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	var out []egressapi.Status
	for _, ev := range tap.evs {
		if ev.Kind == edgeapi.EventEgressStatus && ev.Egress != nil && ev.Egress.ID == id {
			out = append(out, *ev.Egress)
		}
	}
	return out
}

func (tap *eventTap) final(id string) (egressapi.Status, bool) {
	sts := tap.statuses(id)
	if len(sts) > 0 && sts[len(sts)-1].State.Final() {
		return sts[len(sts)-1], true
	}
	return egressapi.Status{}, false
}

// egressStack is a real control node, an eventTap, and an edge running
// egress with a local storage directory (after any preferred targets).
type egressStack struct {
	c     *clustertest.Cluster
	tap   *eventTap
	edge  *edgenode.Node
	local *storage.Local
}

func startEgressStack(t *testing.T, preferred ...storage.Target) *egressStack {
	t.Helper()
	egresstest.NeedFFmpeg(t)
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		pc.HeartbeatEvery, pc.DownAfter = 200*time.Millisecond, 2*time.Second
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
	tap := newEventTap(t, c.Node(0).URL())
	local, err := storage.NewLocal(storage.LocalConfig{Region: "local", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sc := sfu.DefaultConfig()
	sc.IncludeLoopbackCandidate = true
	sc.DisableMDNS = true
	n := startEdgeOnFreePort(t, func(addr string) edgenode.Config {
		reg := prometheus.NewRegistry()
		return edgenode.Config{Registry: reg, Gatherer: reg, EdgeID: "edge-eg", Region: "local", ControlURLs: []string{tap.srv.URL}, EdgeToken: edgeToken,
			PublicURL: "http://" + addr, AllowedOrigins: []string{"*"}, SFU: sc, HeartbeatEvery: 200 * time.Millisecond,
			DrainTimeout: 90 * time.Second,
			Egress: edgenode.EgressConfig{WorkDir: t.TempDir(), Storage: append(preferred, local), Configure: func(ec *egress.Config) {
				ec.Poll = 100 * time.Millisecond
				ec.StopTimeout = 30 * time.Second
				// The machine running the tests is shared: a starved encoder
				// may fall behind for a while without the job dropping media
				// (as in the egress benchmark), so the files last as long as
				// the jobs ran; this test is about the edge's wiring.
				ec.MaxLag = 30 * time.Second
			}}}
	})
	t.Cleanup(func() { n.Close() })
	select {
	case <-n.Registered():
	case <-time.After(10 * time.Second):
		t.Fatal("edge did not register")
	}
	if n.Egress() == nil {
		t.Fatal("egress is off on the edge")
	}
	return &egressStack{c: c, tap: tap, edge: n, local: local}
}

// call posts to one of the edge's internal egress routes.
func (s *egressStack) call(t *testing.T, path string, body any) (int, []byte, http.Header) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, s.edge.PublicURL()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+edgeToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header
}

func (s *egressStack) start(t *testing.T, spec egressapi.Spec) egressapi.Status {
	t.Helper()
	code, body, _ := s.call(t, edgeapi.EgressStartPath, spec)
	if code != http.StatusOK {
		t.Fatalf("start %s: %d %s", spec.ID, code, body)
	}
	var st egressapi.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// wantError checks an EgressError answer.
func wantError(t *testing.T, what string, code int, body []byte, wantCode int, field, contains string) {
	t.Helper()
	var e edgeapi.EgressError
	if err := json.Unmarshal(body, &e); err != nil || code != wantCode || e.Field != field || !strings.Contains(e.Message, contains) {
		t.Fatalf("%s: got %d %s, want %d with field %q and a message containing %q", what, code, body, wantCode, field, contains)
	}
}

// grepLines keeps the lines containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func waitUntil(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	wait.Until(t, bound, func() string {
		if cond() {
			return ""
		}
		return "waiting for " + what
	})
}

func (s *egressStack) signedURL(t *testing.T, f egressapi.File) string {
	t.Helper()
	sec, err := s.c.Node(0).Secrets()
	if err != nil {
		t.Fatal(err)
	}
	u, err := storage.SignURL(sec.TicketKey, s.edge.PublicURL()+edgeapi.EgressFilesPrefix+f.Storage, f.Storage, f.Key, time.Now().Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestEgressThroughEdge drives an edge's internal egress routes as the
// control plane does, with real pion publishers in the edge's SFU: bad
// specs get the contract's errors, a composite recording and an HLS
// stream run side by side, HLS is served and grows, a capture returns a
// JPEG, every status change reaches the real control node in order through
// the agent, and the stored MP4, fetched through its signed URL, has
// audio and video lasting as long as the recording ran.
func TestEgressThroughEdge(t *testing.T) {
	s := startEgressStack(t)
	video, audio := egresstest.Media(t)
	room := "room-eg"
	egresstest.Publish(t, s.edge.SFU(), room, "alice", video, audio)
	egresstest.Publish(t, s.edge.SFU(), room, "bob", video, audio)

	// The contract's errors; none of them leaves a job behind.
	code, body, _ := s.call(t, edgeapi.EgressStartPath, egressapi.Spec{ID: "bad-1", Kind: egressapi.KindComposite, RoomID: room,
		Config: egressapi.Config{Layout: egressapi.Layout{Type: "HEXAGON"}}})
	wantError(t, "bad layout", code, body, 400, "config.layout.type", "GRID")
	code, body, _ = s.call(t, edgeapi.EgressStartPath, egressapi.Spec{ID: "bad-2", Kind: egressapi.KindComposite, RoomID: room, AllowedRegions: []string{"eu-west"}})
	wantError(t, "pinned room", code, body, 400, "", "eu-west")
	code, body, _ = s.call(t, edgeapi.EgressStartPath, egressapi.Spec{ID: "bad-3", Kind: egressapi.KindComposite, RoomID: "no-such-room"})
	wantError(t, "unknown room", code, body, 404, "", "room")
	code, body, _ = s.call(t, edgeapi.EgressStartPath, egressapi.Spec{ID: "bad-4", Kind: egressapi.KindParticipant, RoomID: room, ParticipantID: "carol"})
	wantError(t, "absent participant", code, body, 404, "", "participant")
	code, body, _ = s.call(t, edgeapi.EgressStopPath, edgeapi.EgressStop{ID: "ghost"})
	wantError(t, "stop unknown", code, body, 404, "", "no such job")
	code, body, _ = s.call(t, edgeapi.EgressStatusPath, edgeapi.EgressStop{})
	wantError(t, "status without id", code, body, 400, "id", "id")
	code, body, _ = s.call(t, edgeapi.EgressStartPath, "not a spec")
	wantError(t, "not JSON of a spec", code, body, 400, "", "invalid JSON")
	req, _ := http.NewRequest(http.MethodPost, s.edge.PublicURL()+edgeapi.EgressStartPath, strings.NewReader(`{}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("start without the edge token: %v %v", resp.StatusCode, err)
	}
	if jobs := s.edge.Egress().List(); len(jobs) != 0 {
		t.Fatalf("refused starts left jobs: %+v", jobs)
	}

	st := s.start(t, egressapi.Spec{ID: "rec-1", Kind: egressapi.KindComposite, RoomID: room, SessionID: "sess-1"})
	begin := time.Now()
	if st.State != egressapi.StateRunning || st.ID != "rec-1" || st.RoomID != room {
		t.Fatalf("start answered %+v", st)
	}
	code, body, _ = s.call(t, edgeapi.EgressStartPath, egressapi.Spec{ID: "rec-1", Kind: egressapi.KindComposite, RoomID: room})
	wantError(t, "same id again", code, body, 409, "", "exists")

	hlsPath := fmt.Sprintf("p%d", time.Now().UnixNano())
	s.start(t, egressapi.Spec{ID: "hls-1", Kind: egressapi.KindHLS, RoomID: room, HLS: egressapi.HLSOptions{Path: hlsPath, SegmentSeconds: 1}})
	base := s.edge.PublicURL() + edgeapi.EgressHLSPrefix + hlsPath
	var hst egressapi.Status
	waitUntil(t, "the HLS job to be playable", 60*time.Second, func() bool {
		_, b, _ := s.call(t, edgeapi.EgressStatusPath, edgeapi.EgressStop{ID: "hls-1"})
		return json.Unmarshal(b, &hst) == nil && hst.Playable
	})
	if hst.HLSPath != hlsPath {
		t.Fatalf("HLS status names path %q, want %q", hst.HLSPath, hlsPath)
	}
	segments := func() int {
		resp, b := get(t, base+"/v0/index.m3u8", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("variant playlist: %d %s", resp.StatusCode, b)
		}
		return strings.Count(string(b), "#EXTINF")
	}
	resp, b := get(t, base+"/live.m3u8", map[string]string{"Origin": "https://player.example"})
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "#EXTM3U") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("live playlist: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	first := segments()
	waitUntil(t, "the HLS playlist to grow", 30*time.Second, func() bool { return segments() > first })

	code, img, hdr := s.call(t, edgeapi.EgressCapturePath, edgeapi.EgressCapture{ID: "hls-1", Width: 320, Height: 180})
	if code != 200 || hdr.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("capture: %d %s", code, hdr.Get("Content-Type"))
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(img)); err != nil || cfg.Width != 320 || cfg.Height != 180 {
		t.Fatalf("capture is not a 320×180 JPEG: %v %+v", err, cfg)
	}
	var capFile egressapi.File
	if err := json.Unmarshal([]byte(hdr.Get(edgeapi.EgressCaptureFileHeader)), &capFile); err != nil || capFile.Key == "" || capFile.Size != int64(len(img)) {
		t.Fatalf("capture file header %q: %v", hdr.Get(edgeapi.EgressCaptureFileHeader), err)
	}

	// Record a few seconds (a state, not a speed: the bound catches hangs).
	waitUntil(t, "4 s of recording", 60*time.Second, func() bool {
		_, b, _ := s.call(t, edgeapi.EgressStatusPath, edgeapi.EgressStop{ID: "rec-1"})
		var cur egressapi.Status
		return json.Unmarshal(b, &cur) == nil && cur.Duration >= 4
	})
	code, body, _ = s.call(t, edgeapi.EgressStopPath, edgeapi.EgressStop{ID: "rec-1"})
	elapsed := time.Since(begin).Seconds()
	if code != 200 || !strings.Contains(string(body), `"state":"stopping"`) {
		st, _ := s.edge.Egress().Status("rec-1")
		t.Fatalf("stop: %d %s (job: %+v)", code, body, st)
	}
	s.call(t, edgeapi.EgressStopPath, edgeapi.EgressStop{ID: "hls-1"})

	var fin egressapi.Status
	waitUntil(t, "control to receive the recording's final status", 120*time.Second, func() bool {
		var ok bool
		fin, ok = s.tap.final("rec-1")
		return ok
	})
	if fin.State != egressapi.StateStopped || len(fin.Files) != 1 {
		t.Fatalf("final status %+v", fin)
	}
	var states []egressapi.State
	var last uint64
	for _, x := range s.tap.statuses("rec-1") {
		if x.Seq <= last {
			t.Fatalf("statuses out of order: seq %d after %d", x.Seq, last)
		}
		last = x.Seq
		states = append(states, x.State)
	}
	if fmt.Sprint(states) != "[running stopping stopped]" {
		t.Fatalf("control saw states %v", states)
	}
	code, body, _ = s.call(t, edgeapi.EgressStopPath, edgeapi.EgressStop{ID: "rec-1"})
	wantError(t, "stop an ended job", code, body, 409, "", "ended")
	if _, m := get(t, s.edge.PublicURL()+"/metrics", nil); !strings.Contains(string(m), `meridian_egress_jobs{kind="composite",state="stopped"} 1`) ||
		!strings.Contains(string(m), `meridian_egress_ffmpeg_cpu_seconds_total{role="encoder"}`) {
		t.Fatalf("edge metrics lack the egress jobs or ffmpeg CPU:\n%s", grepLines(string(m), "meridian_egress"))
	}

	// The file, as a player fetches fileUrl.
	f := fin.Files[0]
	u := s.signedURL(t, f)
	p := egresstest.FFprobe(t, u)
	if p.Codec("video") != "h264" || p.Codec("audio") != "aac" {
		t.Fatalf("recording streams %+v", p.Streams)
	}
	for _, typ := range []string{"video", "audio"} {
		if d := p.StreamDuration(typ); d < elapsed-1 || d > elapsed+1 {
			t.Fatalf("%s lasts %.2f s, the recording ran %.2f s", typ, d, elapsed)
		}
	}
	t.Logf("recording ran %.2f s; file %s: video %.2f s, audio %.2f s, %d bytes; HLS segments %d then more; control saw %v",
		elapsed, f.Key, p.StreamDuration("video"), p.StreamDuration("audio"), f.Size, first, states)
	resp, b = get(t, u, map[string]string{"Range": "bytes=0-99"})
	if resp.StatusCode != http.StatusPartialContent || len(b) != 100 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 0-99/%d", f.Size) {
		t.Fatalf("range request: %d, %d bytes, %q", resp.StatusCode, len(b), resp.Header.Get("Content-Range"))
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Content-Range") {
		t.Fatalf("download without CORS for players: %v", resp.Header)
	}
	pre, _ := http.NewRequest(http.MethodOptions, u, nil)
	pre.Header.Set("Origin", "https://player.example")
	pre.Header.Set("Access-Control-Request-Headers", "range")
	if resp, err := http.DefaultClient.Do(pre); err != nil || resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") {
		t.Fatalf("CORS preflight of a download: %v %v", err, resp)
	}
	if resp, _ := get(t, strings.Split(u, "?")[0], nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned download: %d", resp.StatusCode)
	}
	if resp, _ := get(t, strings.Replace(u, "exp=", "exp=1", 1), nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered download: %d", resp.StatusCode)
	}
	waitUntil(t, "the HLS job's final status", 120*time.Second, func() bool {
		h, ok := s.tap.final("hls-1")
		return ok && h.State == egressapi.StateStopped
	})

	// Deleting: an unknown target is refused before anything is removed;
	// then the HLS stream and the recording (job and file) go.
	code, body, _ = s.call(t, edgeapi.EgressDeletePath, edgeapi.EgressDelete{ID: "hls-1", Files: []egressapi.FileRef{{Storage: "nope", Key: "x"}}})
	wantError(t, "delete from an unknown target", code, body, 400, "files[0].storage", "nope")
	if resp, _ := get(t, base+"/live.m3u8", nil); resp.StatusCode != 200 {
		t.Fatalf("a refused delete removed the HLS stream: %d", resp.StatusCode)
	}
	if code, body, _ = s.call(t, edgeapi.EgressDeletePath, edgeapi.EgressDelete{ID: "hls-1"}); code != 200 {
		t.Fatalf("delete hls: %d %s", code, body)
	}
	if resp, _ := get(t, base+"/live.m3u8", nil); resp.StatusCode != 404 {
		t.Fatalf("deleted HLS stream still served: %d", resp.StatusCode)
	}
	ref := egressapi.FileRef{Storage: f.Storage, Key: f.Key}
	if code, body, _ = s.call(t, edgeapi.EgressDeletePath, edgeapi.EgressDelete{ID: "rec-1", Files: []egressapi.FileRef{ref}}); code != 200 {
		t.Fatalf("delete recording: %d %s", code, body)
	}
	if resp, _ := get(t, u, nil); resp.StatusCode != 404 {
		t.Fatalf("deleted recording still downloads: %d", resp.StatusCode)
	}
	if _, ok := s.edge.Egress().Status("rec-1"); ok {
		t.Fatal("deleted job still known to the edge")
	}
	if code, body, _ = s.call(t, edgeapi.EgressDeletePath, edgeapi.EgressDelete{ID: "rec-1", Files: []egressapi.FileRef{ref}}); code != 200 {
		t.Fatalf("deleting again: %d %s", code, body)
	}
}

// TestEgressStopsWithRoomAndEdge: a room the control plane closes stops
// its jobs, and closing the edge stops the others with their files stored
// and their final statuses delivered to control before Close returns.
func TestEgressStopsWithRoomAndEdge(t *testing.T) {
	s := startEgressStack(t)
	video, audio := egresstest.Media(t)
	egresstest.Publish(t, s.edge.SFU(), "room-a", "alice", video, audio)
	egresstest.Publish(t, s.edge.SFU(), "room-b", "bob", video, audio)
	s.start(t, egressapi.Spec{ID: "rec-a", Kind: egressapi.KindComposite, RoomID: "room-a"})
	s.start(t, egressapi.Spec{ID: "rec-b", Kind: egressapi.KindParticipant, RoomID: "room-b", ParticipantID: "bob"})
	waitUntil(t, "both jobs to record", 60*time.Second, func() bool {
		for _, st := range s.edge.Egress().List() {
			if st.Duration < 2 {
				return false
			}
		}
		return true
	})

	code, body, _ := s.call(t, "/internal/v1/rooms/close", edgeapi.CloseRoom{RoomID: "room-a", Reason: "ended"})
	if code != 200 {
		t.Fatalf("close room: %d %s", code, body)
	}
	waitUntil(t, "the closed room's job to stop", 120*time.Second, func() bool {
		st, ok := s.tap.final("rec-a")
		return ok && st.State == egressapi.StateStopped && len(st.Files) == 1
	})
	if st, _ := s.edge.Egress().Status("rec-b"); st.State != egressapi.StateRunning {
		t.Fatalf("the other room's job is %s", st.State)
	}
	code, body, _ = s.call(t, edgeapi.EgressDeletePath, edgeapi.EgressDelete{ID: "rec-b"})
	wantError(t, "delete a running job", code, body, 409, "", "stop it first")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		s.edge.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("edge Close did not return")
	}
	st, ok := s.tap.final("rec-b")
	if !ok || st.State != egressapi.StateStopped || len(st.Files) != 1 {
		t.Fatalf("after Close, control has %+v for the running job", s.tap.statuses("rec-b"))
	}
	if p, err := s.local.Path(st.Files[0].Key); err != nil {
		t.Fatal(err)
	} else if probe := egresstest.FFprobe(t, p); probe.Codec("video") == "" || probe.Codec("audio") == "" {
		t.Fatalf("participant recording streams %+v", probe.Streams)
	}
}

// TestEgressEndsWithDrain: a draining edge refuses new jobs (503) and,
// once its participants are gone, ends the running ones — file stored,
// status stopped and delivered — before the drain returns.
func TestEgressEndsWithDrain(t *testing.T) {
	s := startEgressStack(t)
	video, audio := egresstest.Media(t)
	egresstest.Publish(t, s.edge.SFU(), "room-d", "alice", video, audio)
	s.start(t, egressapi.Spec{ID: "rec-d", Kind: egressapi.KindComposite, RoomID: "room-d"})
	waitUntil(t, "the job to record", 60*time.Second, func() bool {
		st, _ := s.edge.Egress().Status("rec-d")
		return st.Duration >= 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The publisher joined the SFU directly, not through signalling, so the
	// drain has no participant to wait for: it ends its jobs at once.
	s.edge.Drain(ctx, time.Minute)
	st, ok := s.edge.Egress().Status("rec-d")
	if !ok || st.State != egressapi.StateStopped || len(st.Files) != 1 {
		t.Fatalf("after the drain the job is %+v", st)
	}
	waitUntil(t, "control to receive the final status", 60*time.Second, func() bool {
		_, ok := s.tap.final("rec-d")
		return ok
	})
	code, body, _ := s.call(t, edgeapi.EgressStartPath, egressapi.Spec{ID: "rec-d2", Kind: egressapi.KindComposite, RoomID: "room-d"})
	wantError(t, "start while draining", code, body, 503, "", "draining")
}

// TestEgressStopsWhenControlLostTheEdge: control declares an edge it cannot
// hear from dead (and fails its jobs); when the edge registers again, it
// finishes the jobs that were still running — file kept, final status
// delivered — instead of recording for a job record that has ended.
func TestEgressStopsWhenControlLostTheEdge(t *testing.T) {
	s := startEgressStack(t)
	video, audio := egresstest.Media(t)
	egresstest.Publish(t, s.edge.SFU(), "room-l", "alice", video, audio)
	s.start(t, egressapi.Spec{ID: "rec-l", Kind: egressapi.KindComposite, RoomID: "room-l"})
	regs := s.tap.registers.Load()
	s.tap.cut.Store(true)
	waitUntil(t, "control to declare the edge down", 60*time.Second, func() bool {
		down := false
		s.c.Node(0).Node().FSM().Read(func(st *state.Store) {
			e, ok := st.Edge("edge-eg")
			down = ok && !e.Up
		})
		return down
	})
	if st, _ := s.edge.Egress().Status("rec-l"); st.State != egressapi.StateRunning {
		t.Fatalf("while cut off, the job is %s", st.State)
	}
	s.tap.cut.Store(false)
	waitUntil(t, "the edge to register again", 60*time.Second, func() bool { return s.tap.registers.Load() > regs })
	waitUntil(t, "control to receive the job's final status", 120*time.Second, func() bool {
		st, ok := s.tap.final("rec-l")
		return ok && st.State == egressapi.StateStopped && len(st.Files) == 1
	})
}
