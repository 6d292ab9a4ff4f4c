package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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
	wire "github.com/meridian-video/meridian/shared/signal"
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
	Type string            `json:"webhookType"`
	Data map[string]string `json:"data"`
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
	var jr struct {
		Edges []struct{ SignalingURL, Ticket string }
	}
	if st, b := (recAPI{base: rest.base, token: rtcToken}).do(t, "POST", "/v2/rooms/"+room+"/join", map[string]string{"name": name}, &jr); st != 200 || len(jr.Edges) == 0 {
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
	deadline := time.Now().Add(bound)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s (last: %s)", what, bound, last)
}

// TestRecordingThroughRESTWithRealProcesses: a control process and an edge
// process; two pion participants publish a test pattern and a tone; a
// composite recording is started and stopped through /v2/recordings; the
// job ends stopped with a fileUrl that downloads (no credentials) an MP4
// with audio and video, and a real HTTP receiver gets the recording
// webhooks in lifecycle order with the documented payloads.
func TestRecordingThroughRESTWithRealProcesses(t *testing.T) {
	video, audio := egresstest.Media(t) // fails without ffmpeg under MERIDIAN_REQUIRE_FFMPEG=1
	hooks := newRecHooks(t)
	cl := procs.StartCluster(t, procs.ClusterOptions{Nodes: 1, Args: []string{"--webhook-allow-http", "--webhook-allow-private", "127.0.0.1/32"}})
	edge := procs.StartEdge(t, procs.EdgeOptions{ID: "rec-edge", Region: "eu-west", Controls: cl.URLs(), EdgeToken: cl.EdgeToken,
		Args: []string{"--data", t.TempDir()}})
	edge.WaitHealthy(t, 30*time.Second)
	key := cl.NewAPIKey(t, cl.Nodes[0])
	rest := recAPI{base: cl.Nodes[0].URL, token: key.Crawler(t)}

	var room struct{ RoomID string }
	if st, b := rest.do(t, "POST", "/v2/rooms", map[string]any{"customRoomId": "recorded",
		"webhook": map[string]any{"endPoint": hooks.srv.URL + "/hooks", "events": []string{"recording-*"}}}, &room); st != 200 {
		t.Fatalf("create room: %d %s", st, b)
	}
	recJoinAndPublish(t, rest, key.RTC(t, "alice"), room.RoomID, "Alice", video, audio)
	recJoinAndPublish(t, rest, key.RTC(t, "bob"), room.RoomID, "Bob", video, audio)
	var sessionID string
	recWait(t, "session with two participants", 20*time.Second, func() (bool, string) {
		var l struct {
			Data []struct {
				ID           string
				Participants []struct{ ParticipantID string }
			}
		}
		st, b := rest.do(t, "GET", "/v2/sessions?roomId="+room.RoomID+"&status=ongoing", nil, &l)
		if st != 200 || len(l.Data) != 1 || len(l.Data[0].Participants) != 2 {
			return false, string(b)
		}
		sessionID = l.Data[0].ID
		return true, ""
	})

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
		if e.Data["meetingId"] != room.RoomID || e.Data["sessionId"] != sessionID {
			t.Fatalf("%s payload %v", e.Type, e.Data)
		}
		if e.Type == "recording-stopped" {
			if e.Data["filePath"] != rec.File.FilePath || !strings.Contains(e.Data["fileUrl"], "/egress/files/") {
				t.Fatalf("recording-stopped payload %v (file %s)", e.Data, rec.File.FilePath)
			}
			// The webhook's URL downloads the same file.
			resp, err := http.Get(e.Data["fileUrl"])
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("webhook fileUrl: %v %v", resp, err)
			}
			resp.Body.Close()
		}
	}
	if hooks.sigs != len(want) {
		t.Fatalf("%d of %d webhooks signed", hooks.sigs, len(want))
	}
}
