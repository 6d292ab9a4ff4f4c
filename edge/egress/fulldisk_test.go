package egress

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/testneed"
)

// A composite recording whose disk is full fails saying so. It used to
// fail with the symptom ("encoder input: write |1: broken pipe": the
// encoder had exited) or, with that fixed, with ffmpeg's last line, which
// names no cause ("Error initializing output stream 0:1 --").
func TestRecordingOnAFullDiskSaysSo(t *testing.T) {
	workDir := fullDisk(t)
	s := startSFU(t)
	tr := newRunner(t, s, func(c *Config) { c.WorkDir = workDir })
	publish(t, s, "room-full", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	fill(t, workDir)

	if _, err := tr.Start(egressapi.Spec{ID: "rec-full", Kind: egressapi.KindComposite, RoomID: "room-full", SessionID: "sess-1"}); err != nil {
		t.Fatal(err)
	}
	st := tr.waitEnd(t, "rec-full")
	if st.State != egressapi.StateFailed || !strings.Contains(st.Error, "No space left on device") {
		t.Fatalf("recording on a full disk: %s %q, want failed naming the full disk", st.State, st.Error)
	}
}

// fullDisk mounts a 2 MiB tmpfs for the test (root: CI sets
// MERIDIAN_REQUIRE_MOUNT=1) and unmounts it afterwards.
func fullDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		testneed.Missing(t, "MOUNT", fmt.Sprintf("cannot mount a small tmpfs to fill (%v; needs root)", err))
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes into dir until its file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}

// complaint picks the line of ffmpeg's output that names the cause.
func TestComplaintNamesTheCause(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{"Could not write header for output file #0 (incorrect codec parameters ?): No space left on device\nError initializing output stream 0:1 -- \n",
			"Could not write header for output file #0 (incorrect codec parameters ?): No space left on device"},
		{"[tcp @ 0x1] Connection to tcp://127.0.0.1:1 failed: Connection refused\nrtmp://127.0.0.1:1/live: Connection refused\n",
			"rtmp://127.0.0.1:1/live: Connection refused"},
		{"Invalid data found when processing input\nConversion failed!\n", "Conversion failed!"},
		{"\n\n", ""},
	} {
		b := &tailBuffer{max: 4096}
		b.Write([]byte(tc.out))
		if got := b.complaint(); got != tc.want {
			t.Errorf("complaint of %q = %q, want %q", tc.out, got, tc.want)
		}
	}
}
