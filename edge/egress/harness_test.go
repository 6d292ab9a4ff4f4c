package egress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/egressapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/storage"
	"github.com/meridian-video/meridian/shared/wait"
)

// Test media, generated once per test binary by ffmpeg: VP8 in IVF
// (keyframe every 0.5 s) and Opus in Ogg (one 20 ms packet per page).
var (
	mediaOnce sync.Once
	mediaDir  string
	mediaErr  error
)

type testMedia struct{ video, audio string }

func mediaFile(t testing.TB, name string) string {
	t.Helper()
	egresstest.NeedFFmpeg(t)
	mediaOnce.Do(func() {
		mediaDir, mediaErr = os.MkdirTemp("", "egress-media-")
	})
	if mediaErr != nil {
		t.Fatal(mediaErr)
	}
	p := filepath.Join(mediaDir, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	var args []string
	switch {
	case name == "pattern.ivf":
		args = []string{"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "6"}
	case name == "pattern720.ivf":
		args = []string{"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "6"}
	case filepath.Ext(name) == ".ivf": // a solid colour: red.ivf, blue.ivf …
		args = []string{"-f", "lavfi", "-i", "color=c=" + name[:len(name)-4] + ":size=640x360:rate=30", "-t", "2"}
	case filepath.Ext(name) == ".ogg": // a tone: 440.ogg …
		args = []string{"-f", "lavfi", "-i", "sine=frequency=" + name[:len(name)-4] + ":sample_rate=48000", "-t", "4"}
	default:
		t.Fatalf("unknown test media %s", name)
	}
	if filepath.Ext(name) == ".ivf" {
		args = append(args, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-g", "15", "-auto-alt-ref", "0", "-f", "ivf")
	} else {
		args = append(args, "-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg")
	}
	tmp := p + ".tmp"
	out, err := exec.Command("ffmpeg", append(append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...), tmp)...).CombinedOutput()
	if err != nil {
		t.Fatalf("generate %s: %v: %s", name, err, out)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mediaDir != "" {
		os.RemoveAll(mediaDir)
	}
	os.Exit(code)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startSFU(t testing.TB) *sfu.SFU {
	t.Helper()
	c := sfu.DefaultConfig()
	c.IncludeLoopbackCandidate = true
	c.DisableMDNS = true
	c.Logger = quietLogger()
	s, err := sfu.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// statusLog records what OnStatus reports.
type statusLog struct {
	mu  sync.Mutex
	evs []egressapi.Status
}

func (l *statusLog) add(s egressapi.Status) {
	l.mu.Lock()
	l.evs = append(l.evs, s)
	l.mu.Unlock()
}

func (l *statusLog) states(id string) []egressapi.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []egressapi.State
	for _, s := range l.evs {
		if s.ID == id && (len(out) == 0 || out[len(out)-1] != s.State) {
			out = append(out, s.State)
		}
	}
	return out
}

func (l *statusLog) find(id string, pred func(egressapi.Status) bool) (egressapi.Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.evs {
		if s.ID == id && pred(s) {
			return s, true
		}
	}
	return egressapi.Status{}, false
}

type testRunner struct {
	*Runner
	local *storage.Local
	log   *statusLog
}

func newRunner(t testing.TB, s *sfu.SFU, mod func(*Config)) *testRunner {
	t.Helper()
	egresstest.NeedFFmpeg(t)
	local, err := storage.NewLocal(storage.LocalConfig{Region: "local", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	log := &statusLog{}
	cfg := DefaultConfig()
	cfg.Media = FromSFU(s)
	cfg.Storage = []storage.Target{local}
	cfg.WorkDir = t.TempDir()
	cfg.Logger = quietLogger()
	cfg.OnStatus = log.add
	cfg.StopTimeout = 30 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &testRunner{Runner: r, local: local, log: log}
}

// waitEnd waits for a job to end; a job that never ends fails the test
// (the bound is generous: it catches hangs, it does not measure speed).
func (tr *testRunner) waitEnd(t testing.TB, id string) egressapi.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := tr.Wait(ctx, id)
	if err != nil {
		t.Fatalf("job %s did not end: %v (status %+v)", id, err, st)
	}
	return st
}

// stopAndWait stops a job and waits for its final status.
func (tr *testRunner) stopAndWait(t testing.TB, id string) egressapi.Status {
	t.Helper()
	if _, err := tr.Stop(id); err != nil {
		t.Fatalf("stop %s: %v", id, err)
	}
	return tr.waitEnd(t, id)
}

// publisher is a pion participant that publishes looped test media into
// the SFU over loopback.
type publisher struct {
	id    string
	part  *sfu.Participant
	pc    *webrtc.PeerConnection
	level atomic.Int32 // RFC 6464 audio level sent (0 loud .. 127 silent)
	stop  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	mu      sync.Mutex
	pending []webrtc.ICECandidateInit
	remote  bool
}

// pubSink receives what the SFU tells the publisher (only candidates matter).
type pubSink struct{ p *publisher }

func (s pubSink) SubscriberOffer(string) {}
func (s pubSink) Candidate(target string, c *webrtc.ICECandidateInit) {
	if c == nil || target != sfu.TargetPublisher {
		return
	}
	p := s.p
	p.mu.Lock()
	if !p.remote {
		p.pending = append(p.pending, *c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = p.pc.AddICECandidate(*c)
}
func (pubSink) TrackPublished(wire.TrackInfo)                     {}
func (pubSink) TrackUnpublished(string, string)                   {}
func (pubSink) ActiveSpeakers([]string)                           {}
func (pubSink) ConnectionQuality(participantID string, _ float64) {}

func testAPI(t testing.TB) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
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

const audioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// pubOptions: what to publish. Empty file names publish nothing of that kind.
type pubOptions struct {
	video, audio string // test media files (ivf, ogg)
	stream       string // "camera" (default) or "screen"
	level        int    // initial audio level (default 127: silent)
}

// publish joins room as id and publishes; it returns once the SFU has the
// tracks.
func publish(t testing.TB, s *sfu.SFU, room, id string, o pubOptions) *publisher {
	t.Helper()
	p := &publisher{id: id, stop: make(chan struct{})}
	if o.level == 0 {
		o.level = 127
	}
	p.level.Store(int32(o.level))
	if o.stream == "" {
		o.stream = "camera"
	}
	part, err := s.Join(room, sfu.ParticipantConfig{ID: id, Name: "name-" + id, CanPublish: true, Sink: pubSink{p}})
	if err != nil {
		t.Fatal(err)
	}
	if err := part.Start(); err != nil {
		t.Fatal(err)
	}
	p.part = part
	pc, err := testAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p.pc = pc
	var vt *webrtc.TrackLocalStaticSample
	var at *webrtc.TrackLocalStaticRTP
	var asender *webrtc.RTPSender
	if o.video != "" {
		vt, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video-"+o.stream, o.stream)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(vt, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	if o.audio != "" {
		at, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio-"+o.stream, o.stream)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := pc.AddTransceiverFromTrack(at, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		asender = tr.Sender()
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	answer, err := part.HandleOffer(pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.remote = true
	pend := p.pending
	p.pending = nil
	p.mu.Unlock()
	for _, c := range pend {
		_ = pc.AddICECandidate(c)
	}
	if vt != nil {
		p.wg.Add(1)
		go p.sendVideo(t, vt, o.video)
	}
	if at != nil {
		p.wg.Add(1)
		go p.sendAudio(t, at, asender, o.audio)
	}
	t.Cleanup(p.leave)
	want := 0
	if vt != nil {
		want++
	}
	if at != nil {
		want++
	}
	waitFor(t, "tracks of "+id+" in the SFU", func() bool { return len(part.Tracks()) == want })
	return p
}

// sendVideo loops an IVF file at its frame rate.
func (p *publisher) sendVideo(t testing.TB, track *webrtc.TrackLocalStaticSample, file string) {
	defer p.wg.Done()
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for {
		f, err := os.Open(file)
		if err != nil {
			return
		}
		r, _, err := ivfreader.NewWith(f)
		if err != nil {
			f.Close()
			return
		}
		for {
			frame, _, err := r.ParseNextFrame()
			if err != nil {
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

// sendAudio loops an Ogg Opus file, one packet per 20 ms, with the audio
// level extension.
func (p *publisher) sendAudio(t testing.TB, track *webrtc.TrackLocalStaticRTP, sender *webrtc.RTPSender, file string) {
	defer p.wg.Done()
	var levelID uint8
	for _, e := range sender.GetParameters().HeaderExtensions {
		if e.URI == audioLevelURI {
			levelID = uint8(e.ID)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	seq, ts := uint16(rand.Uint32()), rand.Uint32()
	for {
		f, err := os.Open(file)
		if err != nil {
			return
		}
		r, _, err := oggreader.NewWith(f)
		if err != nil {
			f.Close()
			return
		}
		for i := 0; ; i++ {
			page, _, err := r.ParseNextPage()
			if err != nil {
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
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: page}
			if levelID != 0 {
				lv := uint8(p.level.Load())
				if lv < 127 {
					lv |= 0x80
				}
				_ = pkt.Header.SetExtension(levelID, []byte{lv})
			}
			seq++
			ts += 960
			_ = track.WriteRTP(&pkt)
		}
		f.Close()
	}
}

// setMuted marks the publisher's tracks of kind muted, as its client's
// mute message does.
func (p *publisher) setMuted(kind string, muted bool) {
	p.part.SetTrackMuted("", kind, muted)
}

// leave stops sending and leaves the room. Idempotent.
func (p *publisher) leave() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.part.Close()
		_ = p.pc.Close()
	})
}

// waitFor polls cond (a state, never a speed: the bound only catches hangs).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wait.Until(t, 30*time.Second, func() string {
		if cond() {
			return ""
		}
		return "waiting for " + what
	})
}

// ffprobe is the tests' own reading of a file or URL (independent of the
// package's probe helper).
type ffprobeOut struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		CodecType     string `json:"codec_type"`
		CodecName     string `json:"codec_name"`
		Width         int    `json:"width"`
		Height        int    `json:"height"`
		Channels      int    `json:"channels"`
		ChannelLayout string `json:"channel_layout"`
		Duration      string `json:"duration"`
	} `json:"streams"`
}

// streamDuration is the duration of the first stream of a type (video,
// audio), or -1 if the container does not say.
func (o ffprobeOut) streamDuration(typ string) float64 {
	for _, s := range o.Streams {
		if s.CodecType == typ {
			if d, err := strconv.ParseFloat(s.Duration, 64); err == nil {
				return d
			}
			return -1
		}
	}
	return -1
}

func ffprobe(t testing.TB, target string) ffprobeOut {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", target).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ffprobe %s: %v: %s", target, err, ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v", target, err)
	}
	var v ffprobeOut
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (o ffprobeOut) duration() float64 {
	d, _ := strconv.ParseFloat(o.Format.Duration, 64)
	return d
}

func (o ffprobeOut) codecs() map[string]string {
	m := map[string]string{}
	for _, s := range o.Streams {
		if _, ok := m[s.CodecType]; !ok {
			m[s.CodecType] = s.CodecName
		}
	}
	return m
}

func (o ffprobeOut) videoSize() (int, int) {
	for _, s := range o.Streams {
		if s.CodecType == "video" {
			return s.Width, s.Height
		}
	}
	return 0, 0
}

// streamSpan reads a stream's packets (typ "v" or "a") and returns the
// time from its first to its last packet: works for containers that do
// not state stream durations (WebM).
func streamSpan(t testing.TB, file, typ string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", typ+":0", "-show_entries", "packet=pts_time",
		"-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v", file, err)
	}
	first, last, n := 0.0, 0.0, 0
	for _, l := range bytes.Fields(out) {
		v, err := strconv.ParseFloat(strings.TrimRight(string(l), ","), 64)
		if err != nil {
			continue
		}
		if n == 0 || v < first {
			first = v
		}
		last = max(last, v)
		n++
	}
	if n == 0 {
		return 0
	}
	return last - first
}

// near reports |a-b| <= tol.
func near(a, b, tol float64) bool { return a-b <= tol && b-a <= tol }

func storedPath(t testing.TB, l *storage.Local, key string) string {
	t.Helper()
	p, err := l.Path(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("stored file %s: %v", key, err)
	}
	if keep := os.Getenv("EGRESS_TEST_KEEP"); keep != "" {
		// Debugging aid: keep a copy of every output to look at.
		if b, err := os.ReadFile(p); err == nil {
			_ = os.WriteFile(filepath.Join(keep, t.Name()+"-"+filepath.Base(p)), b, 0o644)
		}
	}
	return p
}

var _ = fmt.Sprint
