package egress

import (
	"bytes"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
)

func httpGet(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

var (
	reSeq  = regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	reSegs = regexp.MustCompile(`(?m)^seg_\d+\.ts$`)
)

func mediaSequence(playlist []byte) int {
	m := reSeq.FindSubmatch(playlist)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// HLS with two renditions is served by the edge: a seekable index.m3u8
// with every segment, a live.m3u8 that keeps the configured window and
// slides, segments ffprobe can read, a JPEG of the current picture, and an
// MP4 of the stream when recording is on.
func TestHLS(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	srv := httptest.NewServer(http.StripPrefix("/hls", tr.HLSHandler()))
	defer srv.Close()
	publish(t, s, "room-h", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	st, err := tr.Start(egressapi.Spec{ID: "hls-1", Kind: egressapi.KindHLS, RoomID: "room-h", SessionID: "sess",
		Config: egressapi.Config{Quality: "low"},
		HLS:    egressapi.HLSOptions{SegmentSeconds: 1, WindowSegments: 3, Renditions: 2, Record: true, Path: "p4th"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.HLSPath != "p4th" {
		t.Fatalf("status %+v", st)
	}
	base := srv.URL + "/hls/p4th/"
	waitFor(t, "hls playable", func() bool {
		_, ok := tr.log.find("hls-1", func(s egressapi.Status) bool { return s.Playable })
		return ok
	})
	code, ctype, master := httpGet(t, base+"index.m3u8")
	if code != 200 || ctype != "application/vnd.apple.mpegurl" {
		t.Fatalf("master: %d %s", code, ctype)
	}
	if n := strings.Count(string(master), "#EXT-X-STREAM-INF"); n != 2 ||
		!strings.Contains(string(master), "RESOLUTION=854x480") || !strings.Contains(string(master), "RESOLUTION=640x360") {
		t.Fatalf("master playlist:\n%s", master)
	}
	_, _, liveMaster := httpGet(t, base+"live.m3u8")
	if !strings.Contains(string(liveMaster), "v0/live.m3u8") || strings.Contains(string(liveMaster), "index.m3u8") {
		t.Fatalf("live master:\n%s", liveMaster)
	}

	// The live window: exactly WindowSegments segments, the last ones of
	// the full playlist, with the media sequence counting the others.
	var full, live []byte
	waitFor(t, "five segments", func() bool {
		_, _, full = httpGet(t, base+"v0/index.m3u8")
		return len(reSegs.FindAll(full, -1)) >= 5
	})
	_, _, live = httpGet(t, base+"v0/live.m3u8")
	_, _, full = httpGet(t, base+"v0/index.m3u8")
	fullSegs, liveSegs := reSegs.FindAll(full, -1), reSegs.FindAll(live, -1)
	if len(liveSegs) != 3 {
		t.Fatalf("live window has %d segments, want 3:\n%s", len(liveSegs), live)
	}
	if !bytes.Equal(liveSegs[2], fullSegs[len(fullSegs)-1]) && !bytes.Equal(liveSegs[2], fullSegs[len(fullSegs)-2]) {
		t.Fatalf("live window %s does not end with the newest segments %s", liveSegs, fullSegs)
	}
	seq := mediaSequence(live)
	if seq < 2 || strings.Contains(string(live), "PLAYLIST-TYPE") {
		t.Fatalf("live playlist (media sequence %d):\n%s", seq, live)
	}
	if !strings.Contains(string(full), "#EXT-X-PLAYLIST-TYPE:EVENT") || mediaSequence(full) != 0 {
		t.Fatalf("index playlist is not the full event playlist:\n%s", full)
	}
	waitFor(t, "the live window to slide", func() bool {
		_, _, l := httpGet(t, base+"v0/live.m3u8")
		return mediaSequence(l) > seq
	})
	code, ctype, seg := httpGet(t, base+"v1/"+string(liveSegs[0]))
	if code != 200 || ctype != "video/mp2t" || len(seg) == 0 {
		t.Fatalf("segment: %d %s %d bytes", code, ctype, len(seg))
	}
	p := egresstest.FFprobe(t, base+"index.m3u8")
	widths := map[int]bool{}
	for _, s := range p.Streams {
		widths[s.Width] = true
	}
	if c := p.Codecs(); c["video"] != "h264" || c["audio"] != "aac" || !widths[854] || !widths[640] {
		t.Fatalf("ffprobe of the HLS stream: %+v", p.Streams)
	}

	// Capture: a JPEG of the live picture at the asked size.
	f, img, err := tr.Capture("hls-1", CaptureOptions{Width: 320, Height: 180})
	if err != nil {
		t.Fatal(err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img))
	if err != nil || format != "jpeg" || cfg.Width != 320 || cfg.Height != 180 {
		t.Fatalf("capture: %v %s %+v", err, format, cfg)
	}
	pic, _ := jpeg.Decode(bytes.NewReader(img))
	if colours := distinctColours(pic); colours < 20 {
		t.Fatalf("capture has %d distinct colours: not the test pattern", colours)
	}
	if !strings.HasPrefix(f.Key, "thumbnails/hls-1_") || f.Size != int64(len(img)) {
		t.Fatalf("capture file %+v", f)
	}
	storedPath(t, tr.local, f.Key)
	at := 1.0
	if _, img2, err := tr.Capture("hls-1", CaptureOptions{At: &at, Format: "png"}); err != nil || !bytes.HasPrefix(img2, []byte("\x89PNG")) {
		t.Fatalf("capture at 1 s: %v", err)
	}

	st = tr.stopAndWait(t, "hls-1")
	if st.State != egressapi.StateStopped || len(st.Files) != 1 || !strings.HasPrefix(st.Files[0].Key, "hls-recordings/sess/hls-1") {
		t.Fatalf("after stop: %+v", st)
	}
	rec := egresstest.FFprobe(t, storedPath(t, tr.local, st.Files[0].Key))
	if w, h := rec.VideoSize(); w != 854 || h != 480 || rec.Codecs()["audio"] != "aac" {
		t.Fatalf("HLS recording: %+v", rec.Streams)
	}
	// Still playable after the end (playback), with the end marked.
	if _, _, full = httpGet(t, base+"v0/index.m3u8"); !strings.Contains(string(full), "#EXT-X-ENDLIST") {
		t.Fatalf("ended playlist:\n%s", full)
	}
	if err := tr.Forget("hls-1"); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := httpGet(t, base+"index.m3u8"); code != 404 {
		t.Fatalf("forgotten stream still served: %d", code)
	}
}

func distinctColours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 12, g >> 12, bl >> 12}] = true
		}
	}
	return len(seen)
}
