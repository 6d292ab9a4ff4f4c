package egress

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// composer is a composing job's compositor.
func (tr *testRunner) composer(t *testing.T, id string) *composer {
	t.Helper()
	tr.mu.Lock()
	j := tr.jobs[id]
	tr.mu.Unlock()
	if j == nil || j.comp == nil || j.comp.enc == nil {
		t.Fatalf("job %s has no encoder", id)
	}
	return j.comp
}

// encoderPid is the pid of a composing job's encoder.
func (tr *testRunner) encoderPid(t *testing.T, id string) int {
	t.Helper()
	return tr.composer(t, id).enc.cmd.Process.Pid
}

// checkDroppedRecording probes a stopped composite recording: it lasts the
// time the job's clock ran less what was dropped, and both streams do (in
// step).
func checkDroppedRecording(t *testing.T, tr *testRunner, st egressapi.Status, ran, dropped time.Duration) {
	t.Helper()
	if st.State != egressapi.StateStopped || st.Error != "" || len(st.Files) != 1 {
		t.Fatalf("final status: %+v", st)
	}
	probe := egresstest.FFprobe(t, storedPath(t, tr.local, st.Files[0].Key))
	want := (ran - dropped).Seconds()
	t.Logf("ran %.2f s, dropped %.2f s: file %.2f s (video %.2f, audio %.2f)", ran.Seconds(), dropped.Seconds(),
		probe.Duration(), probe.StreamDuration("video"), probe.StreamDuration("audio"))
	for _, typ := range []string{"video", "audio"} {
		if d := probe.StreamDuration(typ); !near(d, want, 1) {
			t.Errorf("%s stream lasts %.2f s, want %.2f ± 1 s (ran %.2f s, dropped %.2f s)", typ, d, want, ran.Seconds(), dropped.Seconds())
		}
	}
	if v, a := probe.StreamDuration("video"), probe.StreamDuration("audio"); !near(v, a, 0.3) {
		t.Errorf("video %.2f s and audio %.2f s are out of step", v, a)
	}
}

// An encoder that is stopped for a while (a starved or descheduled
// process) costs the recording the time it fell more than MaxLag behind,
// not the recording: the job keeps running, drops that time from both
// streams, reports it, and the file is whole when the job stops.
func TestCompositeDropsTimeWhileItsEncoderIsStopped(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, func(c *Config) { c.MaxLag = time.Second })
	publish(t, s, "room-lag", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})

	begin := time.Now()
	if _, err := tr.Start(egressapi.Spec{ID: "rec-lag", Kind: egressapi.KindComposite, RoomID: "room-lag", SessionID: "s",
		Config: egressapi.Config{Quality: "low"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	pid := tr.encoderPid(t, "rec-lag")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // three times MaxLag, less than the 4 × MaxLag that fails a stalled encoder
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if st, ok := tr.Status("rec-lag"); !ok || st.State != egressapi.StateRunning {
		t.Fatalf("after the encoder was stopped for 3 s: %+v", st)
	}
	ran := time.Since(begin)
	st := tr.stopAndWait(t, "rec-lag")
	dropped := tr.DroppedMedia()[string(egressapi.KindComposite)]
	// At least the 3 s less MaxLag less what the pipes and ffmpeg's input
	// queue took while it was stopped.
	if dropped < time.Second {
		t.Fatalf("dropped %v of media while the encoder was stopped 3 s with MaxLag 1 s", dropped)
	}
	// Before the queue held MaxLag, the clock repeated pictures for want of
	// a free buffer: reported as the encoder's, for an operator to tell
	// from a participant's video stopping.
	rep := tr.RepeatedMedia()[RepeatKey{Kind: string(egressapi.KindComposite), Reason: repeatEncoder}]
	t.Logf("repeated for the encoder: %v", rep)
	if rep < 500*time.Millisecond {
		t.Fatalf("%v of repeated pictures reported for the encoder while it was stopped 3 s with MaxLag 1 s (all: %v)", rep, tr.RepeatedMedia())
	}
	checkDroppedRecording(t, tr, st, ran, dropped)
}

// A clock that wakes late, but by less than MaxLag, writes the ticks it
// owes as repeats of the newest picture (nothing is dropped) and reports
// them as late repeats; a clock on time repeats nothing.
func TestCompositeRepeatsThePicturesItsClockOwes(t *testing.T) {
	var offset atomic.Int64 // added to the wall clock the runner sees
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s := startSFU(t)
	tr := newRunner(t, s, func(c *Config) { c.MaxLag = 2 * time.Second; c.Now = now })
	publish(t, s, "room-owe", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "rec-owe", Kind: egressapi.KindComposite, RoomID: "room-owe", SessionID: "s",
		Config: egressapi.Config{Quality: "low"}}); err != nil {
		t.Fatal(err)
	}
	late := RepeatKey{Kind: string(egressapi.KindComposite), Reason: repeatLate}
	comp := tr.composer(t, "rec-owe")
	// composed is the media time of the pictures the clock composed rather
	// than repeated (this job is the runner's only one).
	composed := func() time.Duration {
		var rep time.Duration
		for k, d := range tr.RepeatedMedia() {
			if k.Kind == string(egressapi.KindComposite) {
				rep += d
			}
		}
		return comp.mediaTime() - rep
	}
	time.Sleep(1500 * time.Millisecond)
	before, composedBefore := tr.RepeatedMedia()[late], composed()
	offset.Store(int64(time.Second))
	// The second owed is written first, as repeats; then the clock is on
	// time again and composes fresh pictures. Waiting for five of them
	// (rather than a fixed time) keeps a starved machine's own late ticks
	// out of the sum as far as can be; a clock that counted every tick
	// after the jump as late would never compose one.
	tick := comp.ticksTime(1)
	deadline := time.Now().Add(15 * time.Second)
	for composed()-composedBefore < 5*tick {
		if time.Now().After(deadline) {
			t.Fatalf("no fresh picture composed in the 15 s after a 1 s clock jump (%v composed since it; repeats: %v)",
				composed()-composedBefore, tr.RepeatedMedia())
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := tr.RepeatedMedia()[late]
	st := tr.stopAndWait(t, "rec-owe")
	if st.State != egressapi.StateStopped {
		t.Fatalf("final status %+v", st)
	}
	// At least the second owed (the pictures the clock caught up with were
	// reported as late repeats, not composed, dropped or blamed on the
	// encoder).
	if got := after - before; got < 800*time.Millisecond {
		t.Fatalf("the clock jumped 1 s: %v of late repeats reported, want at least 0.8 s (all: %v)", got, tr.RepeatedMedia())
	}
	if d := tr.DroppedMedia()[string(egressapi.KindComposite)]; d != 0 {
		t.Fatalf("dropped %v of media after a 1 s jump with MaxLag 2 s", d)
	}
	// The edge's /metrics exports the same sums.
	reg := prometheus.NewRegistry()
	reg.MustRegister(tr.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[RepeatKey]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "meridian_egress_repeated_media_seconds_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var k RepeatKey
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "kind":
					k.Kind = l.GetValue()
				case "reason":
					k.Reason = l.GetValue()
				}
			}
			exported[k] = m.GetCounter().GetValue()
		}
	}
	sums := tr.RepeatedMedia()
	if len(exported) != len(sums) || exported[late] != sums[late].Seconds() {
		t.Fatalf("exported repeated media %v, the runner's sums %v", exported, sums)
	}
}

// An encoder that reads nothing for 4 × MaxLag fails the job, naming it.
func TestCompositeFailsWhenItsEncoderStalls(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, func(c *Config) { c.MaxLag = 500 * time.Millisecond })
	publish(t, s, "room-stall", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "rec-stall", Kind: egressapi.KindComposite, RoomID: "room-stall", SessionID: "s",
		Config: egressapi.Config{Quality: "low"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	pid := tr.encoderPid(t, "rec-stall")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	st := tr.waitEnd(t, "rec-stall")
	if st.State != egressapi.StateFailed || !strings.Contains(st.Error, "encoder stalled") {
		t.Fatalf("a stopped encoder: %+v, want failed naming the stalled encoder", st)
	}
}

// A clock that wakes far behind real time (the machine paused the edge)
// skips to the present: the job goes on, and the recording lasts the time
// the clock ran less the skipped time.
func TestCompositeSkipsTimeItsClockMissed(t *testing.T) {
	var offset atomic.Int64 // added to the wall clock the runner sees
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s := startSFU(t)
	tr := newRunner(t, s, func(c *Config) { c.MaxLag = time.Second; c.Now = now })
	publish(t, s, "room-skip", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})

	begin := now()
	if _, err := tr.Start(egressapi.Spec{ID: "rec-skip", Kind: egressapi.KindComposite, RoomID: "room-skip", SessionID: "s",
		Config: egressapi.Config{Quality: "low"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	offset.Store(int64(4 * time.Second))
	time.Sleep(1500 * time.Millisecond)
	if st, ok := tr.Status("rec-skip"); !ok || st.State != egressapi.StateRunning {
		t.Fatalf("after the clock jumped 4 s: %+v", st)
	}
	ran := now().Sub(begin)
	st := tr.stopAndWait(t, "rec-skip")
	dropped := tr.DroppedMedia()[string(egressapi.KindComposite)]
	if dropped < 3500*time.Millisecond {
		t.Fatalf("dropped %v of media after the clock jumped 4 s", dropped)
	}
	checkDroppedRecording(t, tr, st, ran, dropped)
}

// An HLS stream whose job ends before ffmpeg wrote its first segment says
// so on its playlists instead of "not started yet" for ever.
func TestHLSEndedBeforeItsFirstSegment(t *testing.T) {
	s := startSFU(t)
	tr := newRunner(t, s, func(c *Config) { c.MaxLag = 250 * time.Millisecond })
	srv := httptest.NewServer(http.StripPrefix("/hls", tr.HLSHandler()))
	defer srv.Close()
	publish(t, s, "room-hx", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "hls-x", Kind: egressapi.KindHLS, RoomID: "room-hx", SessionID: "s",
		Config: egressapi.Config{Quality: "low"}, HLS: egressapi.HLSOptions{SegmentSeconds: 2, Renditions: 1, Path: "px"}}); err != nil {
		t.Fatal(err)
	}
	// Stopped before it can have encoded a 2-s segment: the job fails
	// with a stalled encoder 1 s later.
	pid := tr.encoderPid(t, "hls-x")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	for _, name := range []string{"live.m3u8", "index.m3u8"} {
		if code, _, body := httpGet(t, srv.URL+"/hls/px/"+name); code != 404 || !strings.Contains(string(body), "not started yet") {
			t.Fatalf("%s of a running stream without segments: %d %s", name, code, body)
		}
	}
	if st := tr.waitEnd(t, "hls-x"); st.State != egressapi.StateFailed {
		t.Fatalf("a stalled encoder: %+v", st)
	}
	for _, name := range []string{"live.m3u8", "index.m3u8", "v0/live.m3u8"} {
		if code, _, body := httpGet(t, srv.URL+"/hls/px/"+name); code != 404 || !strings.Contains(string(body), "ended before its first segment") {
			t.Fatalf("%s of a stream that ended without a segment: %d %s", name, code, body)
		}
	}
}
