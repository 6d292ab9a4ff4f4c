package egress

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// A composite recording of two participants publishing a test pattern and
// a tone is an MP4 with H.264 and AAC at the configured size, as long as
// the recording ran.
func TestCompositeRecording(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	publish(t, s, "room-c", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	publish(t, s, "room-c", "bob", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "880.ogg")})

	begin := time.Now()
	st, err := tr.Start(egressapi.Spec{ID: "rec-1", Kind: egressapi.KindComposite, RoomID: "room-c", SessionID: "sess-1"})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != egressapi.StateRunning || st.StartedAt.IsZero() || st.Storage != "local" {
		t.Fatalf("after start: %+v", st)
	}
	time.Sleep(4 * time.Second)
	stopAt := time.Now()
	st = tr.stopAndWait(t, "rec-1")
	elapsed := stopAt.Sub(begin).Seconds()

	if st.State != egressapi.StateStopped || st.Error != "" {
		t.Fatalf("final status: %+v", st)
	}
	// Statuses reach OnStatus from the runner's queue, so the last report
	// may follow Wait's return by a moment.
	waitFor(t, "the stopped status reported", func() bool {
		_, ok := tr.log.find("rec-1", func(s egressapi.Status) bool { return s.State == egressapi.StateStopped })
		return ok
	})
	if got := tr.log.states("rec-1"); len(got) != 3 || got[0] != egressapi.StateRunning || got[1] != egressapi.StateStopping || got[2] != egressapi.StateStopped {
		t.Fatalf("reported states %v, want running, stopping, stopped", got)
	}
	if len(st.Files) != 1 {
		t.Fatalf("files: %+v", st.Files)
	}
	f := st.Files[0]
	if f.Key != "recordings/sess-1/rec-1.mp4" || f.Storage != "local" || f.Region != "local" || f.Type != "video" {
		t.Fatalf("file: %+v", f)
	}
	probe := egresstest.FFprobe(t, storedPath(t, tr.local, f.Key))
	if c := probe.Codecs(); c["video"] != "h264" || c["audio"] != "aac" {
		t.Fatalf("codecs %v, want h264 + aac", c)
	}
	if w, h := probe.VideoSize(); w != 1280 || h != 720 {
		t.Fatalf("resolution %dx%d, want 1280x720 (quality med, landscape)", w, h)
	}
	if d := probe.Duration(); !near(d, elapsed, 1) {
		t.Fatalf("duration %.2f s, want %.2f ± 1 s", d, elapsed)
	}
	// Each stream, not just the longer one, lasts as long as the recording.
	for _, typ := range []string{"video", "audio"} {
		if d := probe.StreamDuration(typ); !near(d, elapsed, 1) {
			t.Fatalf("%s stream lasts %.2f s, want %.2f ± 1 s", typ, d, elapsed)
		}
	}
	if !near(f.Duration, probe.Duration(), 0.05) || f.Width != 1280 || f.Height != 720 || f.Size != st.Size || f.Size == 0 {
		t.Fatalf("reported file %+v does not match the stored file (%.2f s)", f, probe.Duration())
	}
	if !st.StoppedAt.After(st.StartedAt) {
		t.Fatalf("times: %+v", st)
	}
}

// frames decodes a video to RGB pictures of w×h at fps.
func frames(t *testing.T, file string, fps, w, h int) [][]byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", file,
		"-vf", fmt.Sprintf("fps=%d,scale=%d:%d", fps, w, h), "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	var fs [][]byte
	for len(out) >= w*h*3 {
		fs = append(fs, out[:w*h*3])
		out = out[w*h*3:]
	}
	return fs
}

// colorAt names the colour around (x, y) of an RGB picture of width w.
func colorAt(pic []byte, w, x, y int) string {
	var r, g, b int
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			i := ((y+dy)*w + x + dx) * 3
			r, g, b = r+int(pic[i]), g+int(pic[i+1]), b+int(pic[i+2])
		}
	}
	r, g, b = r/9, g/9, b/9
	switch {
	case r > 150 && g < 90 && b < 90:
		return "red"
	case b > 150 && r < 90 && g < 90:
		return "blue"
	case g > 110 && r < 90 && b < 90:
		return "green"
	case max(r, g, b)-min(r, g, b) < 25 && r > 25 && r < 100:
		return "tile" // placeholder of a participant without video
	}
	return fmt.Sprintf("rgb(%d,%d,%d)", r, g, b)
}

// phases collapses per-picture states into the sequence of distinct states.
func phases(states []string) []string {
	var out []string
	for _, s := range states {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// inOrder reports whether want appears in got as a subsequence.
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// The grid follows the room: a join adds a tile, a muted camera turns
// into a placeholder, a leave removes the tile.
func TestCompositeLayoutFollowsJoinsLeavesMutes(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	alice := publish(t, s, "room-l", "alice", egresstest.Options{Video: mediaFile(t, "red.ivf"), Audio: mediaFile(t, "440.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "rec-l", Kind: egressapi.KindComposite, RoomID: "room-l",
		Config: egressapi.Config{Layout: egressapi.Layout{Type: "GRID"}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	bob := publish(t, s, "room-l", "bob", egresstest.Options{Video: mediaFile(t, "blue.ivf"), Audio: mediaFile(t, "880.ogg")})
	time.Sleep(2 * time.Second)
	alice.SetMuted("video", true)
	time.Sleep(2 * time.Second)
	bob.Leave()
	time.Sleep(2 * time.Second)
	st := tr.stopAndWait(t, "rec-l")
	if st.State != egressapi.StateStopped {
		t.Fatalf("status %+v", st)
	}
	file := storedPath(t, tr.local, st.Files[0].Key)
	const w, h = 160, 90
	var states []string
	for _, pic := range frames(t, file, 5, w, h) {
		// Left sample: inside the left tile's picture, away from the
		// placeholder's square; right sample likewise in the right tile.
		states = append(states, colorAt(pic, w, 16, 45)+"|"+colorAt(pic, w, 100, 45))
	}
	got := phases(states)
	t.Logf("phases: %v", got)
	want := []string{"red|red", "red|blue", "tile|blue", "tile|tile"}
	if !inOrder(got, want) {
		t.Fatalf("layout phases %v, want %v in this order\nlayout changes: %v", got, want, historyOf(tr, "rec-l"))
	}
}

func historyOf(tr *testRunner, id string) []string {
	j := tr.job(id)
	if j == nil || j.comp == nil {
		return nil
	}
	var out []string
	for _, c := range j.comp.layoutHistory() {
		out = append(out, fmt.Sprintf("%.1fs: %s", c.at.Seconds(), describe(c.tiles)))
	}
	return out
}

// With SIDEBAR and priority SPEAKER the active speaker gets the large tile
// and the others the sidebar; the large tile follows who speaks.
func TestCompositeActiveSpeakerLarger(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	alice := publish(t, s, "room-s", "alice", egresstest.Options{Video: mediaFile(t, "red.ivf"), Audio: mediaFile(t, "440.ogg"), Level: 10})
	bob := publish(t, s, "room-s", "bob", egresstest.Options{Video: mediaFile(t, "blue.ivf"), Audio: mediaFile(t, "880.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "rec-s", Kind: egressapi.KindComposite, RoomID: "room-s",
		Config: egressapi.Config{Layout: egressapi.Layout{Type: "SIDEBAR", Priority: "SPEAKER"}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	alice.SetLevel(127)
	bob.SetLevel(10)
	time.Sleep(3 * time.Second)
	st := tr.stopAndWait(t, "rec-s")
	if st.State != egressapi.StateStopped {
		t.Fatalf("status %+v", st)
	}
	file := storedPath(t, tr.local, st.Files[0].Key)
	const w, h = 160, 90
	var states []string
	for _, pic := range frames(t, file, 5, w, h) {
		// Main tile: the left three quarters; sidebar: the right quarter.
		states = append(states, colorAt(pic, w, 40, 45)+"|"+colorAt(pic, w, 140, 45))
	}
	got := phases(states)
	t.Logf("phases: %v", got)
	if !inOrder(got, []string{"red|blue", "blue|red"}) {
		t.Fatalf("main|sidebar phases %v, want red|blue (alice speaks) then blue|red (bob speaks)\nlayout changes: %v", got, historyOf(tr, "rec-s"))
	}
}
