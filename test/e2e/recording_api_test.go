package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/porttest"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/wait"
	"github.com/meridian-video/meridian/test/procs"
)

// recHooks is a real HTTP webhook receiver: it keeps every body in order.
type recHooks struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []recHook
	sigs int
}

type recHook struct {
	Type string         `json:"webhookType"`
	Data map[string]any `json:"data"`
}

// field is a string field of the data.
func (h recHook) field(name string) string {
	v, _ := h.Data[name].(string)
	return v
}

func newRecHooks(t *testing.T) *recHooks {
	h := &recHooks{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev recHook
		if err := json.Unmarshal(b, &ev); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, ev)
		if r.Header.Get("videosdk-signature") != "" {
			h.sigs++
		}
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *recHooks) events() []recHook {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// recAPI calls the REST API of a real control process.
type recAPI struct {
	base, token string
}

func (a recAPI) do(t *testing.T, method, path string, body any, out any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, r)
	req.Header.Set("Authorization", a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, b
}

// recPublisher is a pion participant that joins through the join API and
// the edge's signaling, and publishes real media (VP8 test pattern, Opus
// tone) on its own PeerConnection.
type recPublisher struct {
	cl   *signaltest.Client
	pc   *webrtc.PeerConnection
	stop chan struct{}
	wg   sync.WaitGroup
}

func recPeerAPI(t *testing.T) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
}

func recJoinAndPublish(t *testing.T, rest recAPI, rtcToken, room, name, video, audio string) *recPublisher {
	t.Helper()
	return recJoinAndPublishIn(t, rest, rtcToken, room, name, "", video, audio)
}

// recJoinAndPublishIn is recJoinAndPublish with the client's region hint
// ("" for none), which steers the join to an edge of that region.
func recJoinAndPublishIn(t *testing.T, rest recAPI, rtcToken, room, name, region, video, audio string) *recPublisher {
	t.Helper()
	var jr struct {
		Edges []struct{ SignalingURL, Ticket string }
	}
	body := map[string]string{"name": name}
	if region != "" {
		body["region"] = region
	}
	if st, b := (recAPI{base: rest.base, token: rtcToken}).do(t, "POST", "/v2/rooms/"+room+"/join", body, &jr); st != 200 || len(jr.Edges) == 0 {
		t.Fatalf("join: %d %s", st, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl, err := signaltest.Dial(ctx, signaltest.Config{URL: jr.Edges[0].SignalingURL, PingInterval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &recPublisher{cl: cl, stop: make(chan struct{})}
	t.Cleanup(p.close)
	if _, _, err := cl.Join(ctx, jr.Edges[0].Ticket, name); err != nil {
		t.Fatalf("signaling join: %v", err)
	}
	if p.pc, err = recPeerAPI(t).NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	vt, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera")
	if err != nil {
		t.Fatal(err)
	}
	at, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "camera")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{vt, at} {
		if _, err := p.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		raw := json.RawMessage("null")
		if c != nil {
			raw, _ = json.Marshal(c.ToJSON())
		}
		_ = cl.Send(wire.TypeCandidate, wire.Candidate{Target: wire.TargetPublisher, Candidate: raw})
	})
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(wire.TypeOffer, wire.SDP{Target: wire.TargetPublisher, SDP: offer.SDP}); err != nil {
		t.Fatal(err)
	}
	env, err := cl.WaitFor(ctx, wire.TypeAnswer, func(e wire.Envelope) bool {
		d, err := signaltest.Decode[wire.SDP](e)
		return err == nil && d.Target == wire.TargetPublisher
	})
	if err != nil {
		t.Fatalf("publisher answer: %v", err)
	}
	d, _ := signaltest.Decode[wire.SDP](env)
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: d.SDP}); err != nil {
		t.Fatal(err)
	}
	// The edge's trickled candidates for the publisher reach the signaling
	// client's own (idle) publisher; apply them here, now and as they come.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		seen := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			msgs := cl.Messages()
			for _, m := range msgs[seen:] {
				if m.Type != wire.TypeCandidate {
					continue
				}
				c, err := signaltest.Decode[wire.Candidate](m)
				if err != nil || c.Target != wire.TargetPublisher || string(c.Candidate) == "null" {
					continue
				}
				var init webrtc.ICECandidateInit
				if json.Unmarshal(c.Candidate, &init) == nil {
					_ = p.pc.AddICECandidate(init)
				}
			}
			seen = len(msgs)
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	p.wg.Add(2)
	go p.sendVideo(vt, video)
	go p.sendAudio(at, audio)
	return p
}

func (p *recPublisher) sendVideo(track *webrtc.TrackLocalStaticSample, file string) {
	defer p.wg.Done()
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for {
		f, err := os.Open(file)
		if err != nil {
			return
		}
		r, _, err := ivfreader.NewWith(f)
		for err == nil {
			var frame []byte
			if frame, _, err = r.ParseNextFrame(); err != nil {
				break
			}
			select {
			case <-p.stop:
				f.Close()
				return
			case <-tick.C:
			}
			_ = track.WriteSample(media.Sample{Data: frame, Duration: time.Second / 30})
		}
		f.Close()
	}
}

func (p *recPublisher) sendAudio(track *webrtc.TrackLocalStaticRTP, file string) {
	defer p.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var seq uint16
	var ts uint32
	for {
		f, err := os.Open(file)
		if err != nil {
			return
		}
		r, _, err := oggreader.NewWith(f)
		for i := 0; err == nil; i++ {
			var page []byte
			if page, _, err = r.ParseNextPage(); err != nil {
				break
			}
			if i < 1 || bytes.HasPrefix(page, []byte("OpusTags")) || bytes.HasPrefix(page, []byte("OpusHead")) {
				continue
			}
			select {
			case <-p.stop:
				f.Close()
				return
			case <-tick.C:
			}
			_ = track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: page})
			seq++
			ts += 960
		}
		f.Close()
	}
}

func (p *recPublisher) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.wg.Wait()
	if p.pc != nil {
		_ = p.pc.Close()
	}
	p.cl.Close()
}

func recWait(t *testing.T, what string, bound time.Duration, cond func() (bool, string)) {
	t.Helper()
	wait.Until(t, bound, func() string {
		if ok, state := cond(); !ok {
			return what + " (last: " + state + ")"
		}
		return ""
	})
}

// TestRecordingThroughRESTWithRealProcesses: a control process and an edge
// process; two pion participants publish a test pattern and a tone; a
// composite recording is started and stopped through /v2/recordings; the
// job ends stopped with a fileUrl that downloads (no credentials) an MP4
// with audio and video, and a real HTTP receiver gets the recording
// webhooks in lifecycle order with the documented payloads.
// recWorld is one control process and one edge process with egress, a
// webhook receiver and the test media.
type recWorld struct {
	cl           *procs.Cluster
	edge         *procs.Edge
	edgeArgs     []string
	rest         recAPI
	key          procs.APIKey
	hooks        *recHooks
	video, audio string
}

func startRecWorld(t *testing.T, edgeArgs ...string) *recWorld {
	t.Helper()
	return startRecWorldN(t, 1, edgeArgs...)
}

// startRecWorldN is startRecWorld with a cluster of n control nodes (the
// API calls go to the first).
func startRecWorldN(t *testing.T, n int, edgeArgs ...string) *recWorld {
	t.Helper()
	w := &recWorld{hooks: newRecHooks(t), edgeArgs: edgeArgs}
	w.video, w.audio = egresstest.Media(t) // fails without ffmpeg under MERIDIAN_REQUIRE_FFMPEG=1
	cl := procs.StartCluster(t, procs.ClusterOptions{Nodes: n, Args: []string{"--webhook-allow-http", "--webhook-allow-private", "127.0.0.1/32"}})
	w.cl = cl
	w.edge = w.startEdge(t)
	w.key = cl.NewAPIKey(t, cl.Nodes[0])
	w.rest = recAPI{base: cl.Nodes[0].URL, token: w.key.Crawler(t)}
	return w
}

// startEdge starts the edge "rec-edge" (again, after a kill: same id,
// new process and data directory).
func (w *recWorld) startEdge(t *testing.T) *procs.Edge {
	t.Helper()
	edge := procs.StartEdge(t, procs.EdgeOptions{ID: "rec-edge", Region: "eu-west", Controls: w.cl.URLs(), EdgeToken: w.cl.EdgeToken,
		Args: append([]string{"--data", t.TempDir()}, w.edgeArgs...)})
	edge.WaitHealthy(t, 30*time.Second)
	return edge
}

// room creates a room whose webhook gets events, with extra fields.
func (w *recWorld) room(t *testing.T, custom string, events []string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"customRoomId": custom, "webhook": map[string]any{"endPoint": w.hooks.srv.URL + "/hooks", "events": events}}
	for k, v := range extra {
		body[k] = v
	}
	var room struct{ RoomID string }
	if st, b := w.rest.do(t, "POST", "/v2/rooms", body, &room); st != 200 {
		t.Fatalf("create room: %d %s", st, b)
	}
	return room.RoomID
}

// session waits for the room's live session with n participants.
func (w *recWorld) session(t *testing.T, roomID string, n int) string {
	t.Helper()
	var sessionID string
	recWait(t, fmt.Sprintf("session with %d participants", n), 20*time.Second, func() (bool, string) {
		var l struct {
			Data []struct {
				ID           string
				Participants []struct{ ParticipantID string }
			}
		}
		st, b := w.rest.do(t, "GET", "/v2/sessions?roomId="+roomID+"&status=ongoing", nil, &l)
		if st != 200 || len(l.Data) != 1 || len(l.Data[0].Participants) != n {
			return false, string(b)
		}
		sessionID = l.Data[0].ID
		return true, ""
	})
	return sessionID
}

func (w *recWorld) publish(t *testing.T, roomID, pid string) *recPublisher {
	t.Helper()
	return recJoinAndPublish(t, w.rest, w.key.RTC(t, pid), roomID, "name-"+pid, w.video, w.audio)
}

// hookTypes lists the received webhook types that start with prefix.
func (w *recWorld) hookTypes(prefix string) []string {
	var out []string
	for _, e := range w.hooks.events() {
		if strings.HasPrefix(e.Type, prefix) {
			out = append(out, e.Type)
		}
	}
	return out
}

func (w *recWorld) hook(typ string) (recHook, bool) {
	for _, e := range w.hooks.events() {
		if e.Type == typ {
			return e, true
		}
	}
	return recHook{}, false
}

func TestRecordingThroughRESTWithRealProcesses(t *testing.T) {
	w := startRecWorld(t)
	rest, hooks := w.rest, w.hooks
	room := struct{ RoomID string }{w.room(t, "recorded", []string{"recording-*"}, nil)}
	w.publish(t, room.RoomID, "alice")
	w.publish(t, room.RoomID, "bob")
	sessionID := w.session(t, room.RoomID, 2)

	var msg string
	if st, b := rest.do(t, "POST", "/v2/recordings/start", map[string]any{"roomId": room.RoomID, "config": map[string]any{"layout": map[string]any{"type": "GRID"}, "quality": "low"}}, &msg); st != 200 || msg != "Recording started successfully" {
		t.Fatalf("start: %d %s", st, b)
	}
	// A second start while it runs is a conflict.
	if st, b := rest.do(t, "POST", "/v2/recordings/start", map[string]any{"roomId": room.RoomID}, nil); st != 409 {
		t.Fatalf("second start: %d %s", st, b)
	}
	type fileT struct {
		Meta struct {
			Resolution struct{ Width, Height int }
			Format     string
			Duration   float64
		}
		FilePath string
		FileURL  string `json:"fileUrl"`
		Size     int64
	}
	type recT struct {
		ID, RoomID, SessionID, Status, Error string
		File                                 *fileT
	}
	var list struct {
		PageInfo struct{ Total int }
		Data     []recT
	}
	if st, b := rest.do(t, "GET", "/v2/recordings?roomId=recorded", nil, &list); st != 200 || list.PageInfo.Total != 1 || list.Data[0].Status != "running" || list.Data[0].SessionID != sessionID {
		t.Fatalf("list while running: %d %s", st, b)
	}
	id := list.Data[0].ID
	// Let a few seconds of the meeting be recorded (media time, not an assertion).
	time.Sleep(4 * time.Second)
	if st, b := rest.do(t, "POST", "/v2/recordings/end", map[string]any{"roomId": room.RoomID}, &msg); st != 200 || msg != "Recording ended successfully" {
		t.Fatalf("end: %d %s", st, b)
	}
	var rec recT
	recWait(t, "recording stopped with its file", 60*time.Second, func() (bool, string) {
		st, b := rest.do(t, "GET", "/v2/recordings/"+id, nil, &rec)
		return st == 200 && rec.Status == "stopped" && rec.File != nil && rec.File.FileURL != "", string(b)
	})
	if st, b := rest.do(t, "POST", "/v2/recordings/end", map[string]any{"roomId": room.RoomID, "id": id}, nil); st != 409 {
		t.Fatalf("stopping a stopped recording: %d %s", st, b)
	}

	// The file downloads without credentials and is an MP4 with both streams.
	resp, err := http.Get(rec.File.FileURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || int64(len(body)) != rec.File.Size {
		t.Fatalf("download %s: %d, %d bytes (record says %d)", rec.File.FileURL, resp.StatusCode, len(body), rec.File.Size)
	}
	path := filepath.Join(t.TempDir(), "recording.mp4")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	pr := egresstest.FFprobe(t, path)
	if pr.Codec("video") != "h264" || pr.Codec("audio") != "aac" || pr.Duration() < 2 {
		t.Fatalf("ffprobe: video %q audio %q duration %.2f", pr.Codec("video"), pr.Codec("audio"), pr.Duration())
	}
	t.Logf("recording %s: %d bytes, %.2f s (video %.2f s, audio %.2f s), %dx%d", id, len(body), pr.Duration(), pr.StreamDuration("video"), pr.StreamDuration("audio"),
		rec.File.Meta.Resolution.Width, rec.File.Meta.Resolution.Height)
	if !strings.Contains(rec.File.Meta.Format, "mp4") || rec.File.Meta.Resolution.Width != 854 || rec.File.Meta.Resolution.Height != 480 {
		t.Fatalf("file meta %+v", rec.File.Meta)
	}
	// A tampered URL is refused.
	if resp, err := http.Get(strings.Replace(rec.File.FileURL, "sig=", "sig=A", 1)); err != nil || resp.StatusCode != 403 {
		t.Fatalf("tampered download: %v %v", resp, err)
	}

	// The receiver got the lifecycle in order, with the documented payloads.
	want := []string{"recording-starting", "recording-started", "recording-stopping", "recording-stopped"}
	recWait(t, "recording webhooks", 30*time.Second, func() (bool, string) {
		var types []string
		for _, e := range hooks.events() {
			types = append(types, e.Type)
		}
		return slices.Equal(types, want), fmt.Sprint(types)
	})
	for _, e := range hooks.events() {
		if e.field("meetingId") != room.RoomID || e.field("sessionId") != sessionID {
			t.Fatalf("%s payload %v", e.Type, e.Data)
		}
		if e.Type == "recording-stopped" {
			if e.field("filePath") != rec.File.FilePath || !strings.Contains(e.field("fileUrl"), "/egress/files/") {
				t.Fatalf("recording-stopped payload %v (file %s)", e.Data, rec.File.FilePath)
			}
			// The webhook's URL downloads the same file.
			resp, err := http.Get(e.field("fileUrl"))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("webhook fileUrl: %v %v", resp, err)
			}
			resp.Body.Close()
		}
	}
	if hooks.sigs != len(want) {
		t.Fatalf("%d of %d webhooks signed", hooks.sigs, len(want))
	}
	// §11.5: the recording carries its delivery summary once they are recorded.
	recWait(t, "delivery summary", 30*time.Second, func() (bool, string) {
		var v struct {
			Webhook struct {
				TotalCount, SuccessCount int
				Data                     []struct{ Type string }
			}
		}
		_, b := rest.do(t, "GET", "/v2/recordings/"+id, nil, &v)
		return v.Webhook.TotalCount == 4 && v.Webhook.SuccessCount == 4 && len(v.Webhook.Data) == 4 && v.Webhook.Data[3].Type == "recording-stopped", string(b)
	})
}

// recDownload fetches url without credentials into a temp file.
func recDownload(t *testing.T, url, name string) (string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("download %s: %d %s", url, resp.StatusCode, body)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, body
}

func recChannels(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=channels,codec_name", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// TestHLSParticipantTrackMergeAndRTMPThroughREST drives the other job
// kinds through the REST API against real processes: HLS (object answer,
// playable playlists at the documented URLs, active, capture), a
// participant recording and an audio track recording, their merge into a
// two-channel MP3, and a livestream to an unreachable RTMP server that
// fails with a reason and livestream-failed.
func TestHLSParticipantTrackMergeAndRTMPThroughREST(t *testing.T) {
	w := startRecWorld(t)
	rest := w.rest
	roomID := w.room(t, "broadcast", []string{"hls-*", "participant-recording-*", "participant-track-recording-*", "merge-*", "livestream-*"}, nil)
	w.publish(t, roomID, "alice")
	w.publish(t, roomID, "bob")
	sessionID := w.session(t, roomID, 2)

	// HLS.
	var hls struct {
		ID, SessionID, RoomID, Status                string
		PlaybackHlsURL, LivestreamURL, DownstreamURL string
	}
	if st, b := rest.do(t, "POST", "/v2/hls/start", map[string]any{"roomId": roomID, "config": map[string]any{"quality": "low"},
		"hls": map[string]any{"segmentSeconds": 1, "windowSegments": 3}}, &hls); st != 200 || hls.ID == "" || hls.SessionID != sessionID ||
		!strings.HasSuffix(hls.PlaybackHlsURL, "/index.m3u8") || !strings.HasSuffix(hls.LivestreamURL, "/live.m3u8") || hls.DownstreamURL != hls.PlaybackHlsURL {
		t.Fatalf("hls start: %d %s", st, b)
	}
	recWait(t, "hls-playable", 30*time.Second, func() (bool, string) {
		_, ok := w.hook("hls-playable")
		return ok, fmt.Sprint(w.hookTypes("hls-"))
	})
	if e, _ := w.hook("hls-playable"); e.field("playbackHlsUrl") != hls.PlaybackHlsURL || e.field("livestreamUrl") != hls.LivestreamURL || e.field("sessionId") != sessionID {
		t.Fatalf("hls-playable payload %v", e.Data)
	}
	for _, u := range []string{hls.PlaybackHlsURL, hls.LivestreamURL} {
		_, body := recDownload(t, u, "list.m3u8")
		if !bytes.HasPrefix(body, []byte("#EXTM3U")) {
			t.Fatalf("%s is not a playlist: %s", u, body)
		}
	}
	var active struct {
		Code int
		Data struct{ ID, PlaybackHlsURL string }
	}
	if st, b := rest.do(t, "GET", "/v2/hls/broadcast/active", nil, &active); st != 200 || active.Code != 200 || active.Data.ID != hls.ID {
		t.Fatalf("hls active: %d %s", st, b)
	}
	var capture struct {
		Message, RoomID, FilePath, FileName string
		FileSize                            int64
		Meta                                struct {
			Width, Height int
			Format        string
		}
	}
	if st, b := rest.do(t, "POST", "/v2/hls/capture", map[string]any{"roomId": roomID}, &capture); st != 200 || capture.Message != "captured thumbnail successfully" ||
		capture.Meta.Format != "jpg" || capture.FileSize <= 0 || capture.FileName == "" {
		t.Fatalf("capture: %d %s", st, b)
	}
	_, pic := recDownload(t, capture.FilePath, "capture.jpg")
	if img, err := jpeg.Decode(bytes.NewReader(pic)); err != nil || img.Bounds().Dx() != capture.Meta.Width || int64(len(pic)) != capture.FileSize {
		t.Fatalf("capture file: %v (%d bytes, meta %+v)", err, len(pic), capture.Meta)
	}

	// Participant and track recordings.
	var msg string
	if st, b := rest.do(t, "POST", "/v2/recordings/participant/start", map[string]any{"roomId": roomID, "participantId": "alice"}, &msg); st != 200 || msg != "participant recording started successfully." {
		t.Fatalf("participant start: %d %s", st, b)
	}
	if st, b := rest.do(t, "POST", "/v2/recordings/participant/track/start", map[string]any{"roomId": roomID, "participantId": "bob", "kind": "audio"}, &msg); st != 200 || msg != "track recording started successfully." {
		t.Fatalf("track start: %d %s", st, b)
	}
	if st, b := rest.do(t, "POST", "/v2/recordings/participant/start", map[string]any{"roomId": roomID, "participantId": "alice"}, nil); st != 409 {
		t.Fatalf("second recording of alice: %d %s", st, b)
	}
	if st, b := rest.do(t, "POST", "/v2/recordings/participant/start", map[string]any{"roomId": roomID, "participantId": "nobody"}, nil); st != 404 {
		t.Fatalf("recording of an absent participant: %d %s", st, b)
	}
	time.Sleep(3 * time.Second) // media time
	if st, b := rest.do(t, "POST", "/v2/recordings/participant/stop", map[string]any{"roomId": roomID, "participantId": "alice"}, &msg); st != 200 || msg != "participant recording ended successfully." {
		t.Fatalf("participant stop: %d %s", st, b)
	}
	if st, b := rest.do(t, "POST", "/v2/recordings/participant/track/stop", map[string]any{"roomId": roomID, "participantId": "bob", "kind": "audio"}, &msg); st != 200 || msg != "track recording ended successfully." {
		t.Fatalf("track stop: %d %s", st, b)
	}
	type fileT struct {
		FilePath string
		FileURL  string `json:"fileUrl"`
		Type     string
	}
	type indT struct {
		ID, ParticipantID, Kind, Mode, Status, FileFormat string
		Files                                             []fileT
	}
	var parts, tracks struct {
		PageInfo struct{ Total int }
		Data     []indT
	}
	recWait(t, "participant and track recordings stopped", 60*time.Second, func() (bool, string) {
		_, b1 := rest.do(t, "GET", "/v2/recordings/participant?roomId="+roomID, nil, &parts)
		_, b2 := rest.do(t, "GET", "/v2/recordings/participant/track?roomId="+roomID+"&participantId=bob", nil, &tracks)
		done := len(parts.Data) == 1 && parts.Data[0].Status == "stopped" && len(parts.Data[0].Files) > 0 &&
			len(tracks.Data) == 1 && tracks.Data[0].Status == "stopped" && len(tracks.Data[0].Files) > 0
		return done, string(b1) + " " + string(b2)
	})
	if p := parts.Data[0]; p.ParticipantID != "alice" || p.Kind != "audio_video" || p.Mode != "participant" || p.FileFormat != "webm" {
		t.Fatalf("participant recording %+v", p)
	}
	if tr := tracks.Data[0]; tr.ParticipantID != "bob" || tr.Kind != "audio" || tr.Mode != "track" {
		t.Fatalf("track recording %+v", tr)
	}
	ppath, _ := recDownload(t, parts.Data[0].Files[0].FileURL, "alice.webm")
	if pr := egresstest.FFprobe(t, ppath); pr.Codec("video") != "vp8" || pr.Codec("audio") != "opus" {
		t.Fatalf("participant file: video %q audio %q", pr.Codec("video"), pr.Codec("audio"))
	}
	for _, typ := range []string{"participant-recording-", "participant-track-recording-"} {
		want := []string{typ + "starting", typ + "started", typ + "stopping", typ + "stopped"}
		recWait(t, typ+"* webhooks", 30*time.Second, func() (bool, string) {
			got := w.hookTypes(typ)
			return slices.Equal(got, want), fmt.Sprint(got)
		})
	}
	if e, _ := w.hook("participant-recording-stopped"); e.field("participantId") != "alice" || fmt.Sprint(e.Data["fileDetails"]) == "[]" {
		t.Fatalf("participant-recording-stopped payload %v", e.Data)
	}
	if e, _ := w.hook("participant-track-recording-stopped"); e.field("participantId") != "bob" || e.field("kind") != "audio" {
		t.Fatalf("participant-track-recording-stopped payload %v", e.Data)
	}

	// Merge alice's recording (left) with bob's audio track (right).
	var merge struct {
		Message   string
		Recording struct {
			ID, Status, MeetingID, SessionID string
			Channel1, Channel2               []struct{ ParticipantID, RecordingID string }
		}
	}
	if st, b := rest.do(t, "POST", "/v2/recordings/participant/merge", map[string]any{"sessionId": sessionID,
		"channel1": []map[string]string{{"participantId": "alice"}}, "channel2": []map[string]string{{"participantId": "bob"}}}, &merge); st != 200 ||
		merge.Message != "Merge recording job started successfully." || merge.Recording.MeetingID != roomID || len(merge.Recording.Channel1) != 1 ||
		merge.Recording.Channel1[0].RecordingID != parts.Data[0].ID || merge.Recording.Channel2[0].RecordingID != tracks.Data[0].ID {
		t.Fatalf("merge: %d %s", st, b)
	}
	var done struct {
		Status string
		File   *fileT
	}
	recWait(t, "merge completed", 60*time.Second, func() (bool, string) {
		_, b := rest.do(t, "GET", "/v2/recordings/participant/merge/"+merge.Recording.ID, nil, &done)
		return done.Status == "completed" && done.File != nil, string(b)
	})
	mpath, _ := recDownload(t, done.File.FileURL, "merged.mp3")
	if got := recChannels(t, mpath); got != "mp3,2" {
		t.Fatalf("merged file: %q, want a two-channel mp3", got)
	}
	var merges struct {
		PageInfo   struct{ Total int }
		Recordings []struct{ ID, Status string }
	}
	if st, b := rest.do(t, "GET", "/v2/recordings/participant/merge?status=completed&sessionId="+sessionID, nil, &merges); st != 200 || merges.PageInfo.Total != 1 || merges.Recordings[0].ID != merge.Recording.ID {
		t.Fatalf("merge list: %d %s", st, b)
	}
	recWait(t, "merge-recording-completed", 30*time.Second, func() (bool, string) {
		e, ok := w.hook("merge-recording-completed")
		return ok && e.field("id") == merge.Recording.ID, fmt.Sprint(w.hookTypes("merge-"))
	})

	// A livestream to a port nothing listens on fails with a reason (one
	// from porttest: no other process's ":0" listener can be given it).
	dead := porttest.Addr(t)
	if st, b := rest.do(t, "POST", "/v2/livestreams/start", map[string]any{"roomId": roomID, "outputs": []map[string]string{{"url": "rtmp://" + dead + "/live", "streamKey": "secret-key"}}}, &msg); st != 200 || msg != "Livestream started successfully" {
		t.Fatalf("livestream start: %d %s", st, b)
	}
	var ls struct {
		Data []struct {
			ID, Status, Error string
			Outputs           []struct{ URL, StreamKey, Status, Error string }
		}
	}
	recWait(t, "livestream failed", 60*time.Second, func() (bool, string) {
		_, b := rest.do(t, "GET", "/v2/livestreams?roomId="+roomID, nil, &ls)
		return len(ls.Data) == 1 && ls.Data[0].Status == "failed", string(b)
	})
	if l := ls.Data[0]; l.Error == "" || strings.Contains(l.Error, "secret-key") || len(l.Outputs) != 1 || l.Outputs[0].StreamKey != "secret-key" || l.Outputs[0].Status != "failed" {
		t.Fatalf("failed livestream %+v", l)
	}
	recWait(t, "livestream-failed", 30*time.Second, func() (bool, string) {
		_, ok := w.hook("livestream-failed")
		return ok, fmt.Sprint(w.hookTypes("livestream-"))
	})

	// HLS ends; its list shows it stopped with a duration.
	if st, b := rest.do(t, "POST", "/v2/hls/end", map[string]any{"roomId": roomID}, &msg); st != 200 || msg != "HLS ended successfully" {
		t.Fatalf("hls end: %d %s", st, b)
	}
	want := []string{"hls-starting", "hls-started", "hls-playable", "hls-stopping", "hls-stopped"}
	recWait(t, "hls webhooks", 30*time.Second, func() (bool, string) {
		got := w.hookTypes("hls-")
		return slices.Equal(got, want), fmt.Sprint(got)
	})
	var hv struct {
		Status   string
		Duration float64
	}
	if st, b := rest.do(t, "GET", "/v2/hls/"+hls.ID, nil, &hv); st != 200 || hv.Status != "stopped" || hv.Duration <= 0 {
		t.Fatalf("hls after end: %d %s", st, b)
	}
	if st, b := rest.do(t, "GET", "/v2/hls/broadcast/active", nil, nil); st != 404 {
		t.Fatalf("active after end: %d %s", st, b)
	}
	if st, b := rest.do(t, "DELETE", "/v2/hls/"+hls.ID, nil, &msg); st != 200 || msg != "Room Hls Recording deleted successfully !" {
		t.Fatalf("hls delete: %d %s", st, b)
	}
	// Deleting removes what the edge kept: the playlists and the files.
	if st := recStatus(t, hls.PlaybackHlsURL); st != http.StatusNotFound {
		t.Fatalf("playlist of the deleted HLS job: %d, want 404", st)
	}
	aliceFile := parts.Data[0].Files[0].FileURL
	if st, b := rest.do(t, "DELETE", "/v2/recordings/participant/"+parts.Data[0].ID, nil, &msg); st != 200 {
		t.Fatalf("participant recording delete: %d %s", st, b)
	}
	if st := recStatus(t, aliceFile); st != http.StatusNotFound {
		t.Fatalf("file of the deleted participant recording: %d, want 404", st)
	}
	if st, b := rest.do(t, "GET", "/v2/recordings/participant/"+parts.Data[0].ID, nil, nil); st != 404 {
		t.Fatalf("deleted participant recording: %d %s", st, b)
	}
}

// recStatus is the HTTP status of a GET of url.
func recStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAutoStartConfigRecordsWhenTheSessionStarts: a room created with
// autoStartConfig.recording starts its recording when the first
// participant's session begins.
func TestAutoStartConfigRecordsWhenTheSessionStarts(t *testing.T) {
	w := startRecWorld(t)
	roomID := w.room(t, "auto", []string{"recording-*"}, map[string]any{"autoStartConfig": map[string]any{"recording": map[string]any{"config": map[string]any{"quality": "low"}}}})
	var list struct {
		PageInfo struct{ Total int }
	}
	if st, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &list); st != 200 || list.PageInfo.Total != 0 {
		t.Fatalf("a recording before anyone joined: %d %s", st, b)
	}
	w.publish(t, roomID, "carol")
	sessionID := w.session(t, roomID, 1)
	var rec struct {
		Data []struct{ ID, Status, SessionID string }
	}
	recWait(t, "auto-started recording", 30*time.Second, func() (bool, string) {
		_, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &rec)
		return len(rec.Data) == 1 && rec.Data[0].Status == "running" && rec.Data[0].SessionID == sessionID, string(b)
	})
	var msg string
	if st, b := w.rest.do(t, "POST", "/v2/recordings/end", map[string]any{"roomId": roomID}, &msg); st != 200 {
		t.Fatalf("end: %d %s", st, b)
	}
	recWait(t, "recording-stopped", 60*time.Second, func() (bool, string) {
		e, ok := w.hook("recording-stopped")
		return ok && e.field("sessionId") == sessionID, fmt.Sprint(w.hookTypes("recording-"))
	})
	// Only one recording for the session, however often the loop looked.
	if _, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &rec); len(rec.Data) != 1 {
		t.Fatalf("recordings of the auto room: %s", b)
	}
}

// TestRecordingOnARestartedEdgeFails: the edge running a recording is
// killed and started again with the same id before the control plane
// declares it dead. The new process does not have the job; the control
// plane notices when the edge registers again and fails the job with the
// reason (and recording-failed) instead of showing it running forever.
func TestRecordingOnARestartedEdgeFails(t *testing.T) {
	w := startRecWorld(t)
	roomID := w.room(t, "restarted", []string{"recording-*"}, nil)
	w.publish(t, roomID, "dave")
	w.session(t, roomID, 1)
	if st, b := w.rest.do(t, "POST", "/v2/recordings/start", map[string]any{"roomId": roomID, "config": map[string]any{"quality": "low"}}, nil); st != 200 {
		t.Fatalf("start: %d %s", st, b)
	}
	var rec struct {
		Data []struct{ ID, Status, Error string }
	}
	if _, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &rec); len(rec.Data) != 1 || rec.Data[0].Status != "running" {
		t.Fatalf("recording: %s", b)
	}
	w.edge.Kill(t)
	w.edge = w.startEdge(t)
	recWait(t, "recording failed", 30*time.Second, func() (bool, string) {
		_, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &rec)
		return rec.Data[0].Status == "failed", string(b)
	})
	if !strings.Contains(rec.Data[0].Error, "no longer runs the job") {
		t.Fatalf("reason %q (the edge was restarted, not lost)", rec.Data[0].Error)
	}
	recWait(t, "recording-failed", 30*time.Second, func() (bool, string) {
		_, ok := w.hook("recording-failed")
		return ok, fmt.Sprint(w.hookTypes("recording-"))
	})
}

// TestPinnedRoomWithoutAllowedStorageCannotRecord: a room fenced to the
// EU meets on the EU edge, but the edge's only storage is tagged us-east:
// a recording start is refused with a 400 that says why, and nothing is
// recorded (no job, no webhook).
func TestPinnedRoomWithoutAllowedStorageCannotRecord(t *testing.T) {
	w := startRecWorld(t, "--storage-region", "us-east")
	roomID := w.room(t, "pinned", []string{"recording-*"}, map[string]any{"geoFence": "eu001"})
	w.publish(t, roomID, "erin")
	w.session(t, roomID, 1)
	st, b := w.rest.do(t, "POST", "/v2/recordings/start", map[string]any{"roomId": roomID}, nil)
	var e struct{ Message string }
	_ = json.Unmarshal(b, &e)
	if st != 400 || !strings.Contains(e.Message, "no storage") || !strings.Contains(e.Message, "eu-west") || !strings.Contains(e.Message, "us-east") {
		t.Fatalf("start in a pinned room without allowed storage: %d %s", st, b)
	}
	var list struct {
		PageInfo struct{ Total int }
	}
	if st, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &list); st != 200 || list.PageInfo.Total != 0 {
		t.Fatalf("a refused start left a job: %d %s", st, b)
	}
	// A participant recording is refused the same way.
	if st, b := w.rest.do(t, "POST", "/v2/recordings/participant/start", map[string]any{"roomId": roomID, "participantId": "erin"}, nil); st != 400 {
		t.Fatalf("participant recording in the pinned room: %d %s", st, b)
	}
	// Nothing was enqueued for the room (the delivery log is the outbox).
	var dl struct {
		PageInfo struct{ Total int }
	}
	if st, b := w.rest.do(t, "GET", "/v2/webhooks/deliveries?roomId="+roomID, nil, &dl); st != 200 || dl.PageInfo.Total != 0 {
		t.Fatalf("deliveries for a refused start: %d %s", st, b)
	}
}

// TestRecordingSurvivesALeaderKill: three control processes; a recording
// is started, the control leader is killed (SIGKILL), and the recording is
// read, stopped and downloaded through a surviving node. Its status, file
// and webhooks come through the new leader.
func TestRecordingSurvivesALeaderKill(t *testing.T) {
	w := startRecWorldN(t, 3)
	roomID := w.room(t, "survivor", []string{"recording-*"}, nil)
	w.publish(t, roomID, "frank")
	sessionID := w.session(t, roomID, 1)
	var msg string
	if st, b := w.rest.do(t, "POST", "/v2/recordings/start", map[string]any{"roomId": roomID, "config": map[string]any{"quality": "low"}}, &msg); st != 200 {
		t.Fatalf("start: %d %s", st, b)
	}
	var rec struct {
		Data []struct{ ID string }
	}
	if _, b := w.rest.do(t, "GET", "/v2/recordings?roomId="+roomID, nil, &rec); len(rec.Data) != 1 {
		t.Fatalf("recording: %s", b)
	}
	id := rec.Data[0].ID
	time.Sleep(2 * time.Second) // media time
	leader := w.cl.Leader(t, 10*time.Second)
	leader.Kill(t)
	var survivor *procs.Control
	for _, c := range w.cl.Nodes {
		if c != leader {
			survivor = c
			break
		}
	}
	rest := recAPI{base: survivor.URL, token: w.rest.token}
	type recT struct {
		Status, SessionID string
		File              *struct {
			FileURL string `json:"fileUrl"`
		}
	}
	var r recT
	recWait(t, "the recording read through a survivor", 30*time.Second, func() (bool, string) {
		st, b := rest.do(t, "GET", "/v2/recordings/"+id+"?consistent=true", nil, &r)
		return st == 200 && r.Status == "running" && r.SessionID == sessionID, string(b)
	})
	recWait(t, "stop through a survivor", 30*time.Second, func() (bool, string) {
		st, b := rest.do(t, "POST", "/v2/recordings/end", map[string]any{"roomId": roomID}, &msg)
		return st == 200 && msg == "Recording ended successfully", string(b)
	})
	recWait(t, "recording stopped with its file", 60*time.Second, func() (bool, string) {
		st, b := rest.do(t, "GET", "/v2/recordings/"+id, nil, &r)
		return st == 200 && r.Status == "stopped" && r.File != nil && r.File.FileURL != "", string(b)
	})
	path, _ := recDownload(t, r.File.FileURL, "survivor.mp4")
	if pr := egresstest.FFprobe(t, path); pr.Codec("video") != "h264" || pr.Codec("audio") != "aac" {
		t.Fatalf("file: video %q audio %q", pr.Codec("video"), pr.Codec("audio"))
	}
	recWait(t, "recording-stopped from the new leader", 60*time.Second, func() (bool, string) {
		e, ok := w.hook("recording-stopped")
		return ok && e.field("sessionId") == sessionID, fmt.Sprint(w.hookTypes("recording-"))
	})
}
