package egress

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// TestHLSRecordingStoppedAtOnce: an HLS job with a recording stopped
// moments after it started (before or while its first segment is written)
// ends stopped, never failed: a recording too short to hold a picture is
// left out, as when no segment was written at all. (Which case a stop at
// once meets depends on timing: an empty segment here, one frame under
// -race and load.)
func TestHLSRecordingStoppedAtOnce(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	publish(t, s, "room-q", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	for i, after := range []time.Duration{0, 0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 700 * time.Millisecond, 1200 * time.Millisecond} {
		id := fmt.Sprintf("hls-q%d", i)
		if _, err := tr.Start(egressapi.Spec{ID: id, Kind: egressapi.KindHLS, RoomID: "room-q", SessionID: "sess",
			Config: egressapi.Config{Quality: "low"},
			HLS:    egressapi.HLSOptions{SegmentSeconds: 1, WindowSegments: 3, Renditions: 1, Record: true}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		st := tr.stopAndWait(t, id)
		t.Logf("stopped after %v: %s %q, %d files", after, st.State, st.Error, len(st.Files))
		if st.State != egressapi.StateStopped {
			t.Errorf("stopped after %v: %s (%s), want stopped", after, st.State, st.Error)
		}
	}
}

// TestHLSPlayableNeedsASegmentWithData: a variant playlist that lists only
// the empty segment an ffmpeg stopped at once leaves is neither playable
// nor a recording; one segment with data makes it both.
func TestHLSPlayableNeedsASegmentWithData(t *testing.T) {
	dir := t.TempDir()
	v0 := filepath.Join(dir, "v0")
	if err := os.MkdirAll(v0, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "index.m3u8"), "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv0/index.m3u8\n")
	write(filepath.Join(v0, "index.m3u8"), "#EXTM3U\n#EXT-X-TARGETDURATION:1\n")
	if hlsPlayable(dir, 1) {
		t.Fatal("no segment listed: playable")
	}
	write(filepath.Join(v0, "index.m3u8"), "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.040000,\nseg_00000.ts\n#EXT-X-ENDLIST\n")
	write(filepath.Join(v0, "seg_00000.ts"), "")
	if hlsPlayable(dir, 1) {
		t.Fatal("only an empty segment listed: playable")
	}
	write(filepath.Join(v0, "seg_00000.ts"), "\x47 some transport stream")
	if !hlsPlayable(dir, 1) {
		t.Fatal("a segment with data: not playable")
	}
	if hlsPlayable(dir, 2) {
		t.Fatal("a second variant without a playlist: playable")
	}
}
