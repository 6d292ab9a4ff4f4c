package egress

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// BenchmarkEgressCPU reports the CPU one egress job costs per second of
// media, as a ratio (CPU-seconds / media-second; 1.0 = one core busy):
//
//   - composite: 720p30 grid recording of a 4-person meeting (each
//     publishing 720p30 VP8 + Opus);
//   - hls3: HLS of the same meeting with 3 renditions (720p, 480p, 360p);
//   - track: one video track recording (720p VP8 copied, WebM mux at the end).
//
// ffmpeg's CPU is measured exactly (rusage of the children); the Go side
// of the job (taps, depacketizing, compositing, mixing) is this process's
// CPU during the job minus a baseline run of the same publishers and SFU
// without it, in the same run. benchmarks/egress.sh pins ffmpeg to one
// core and this process to the other. Numbers only: nothing here passes
// or fails on performance. EGRESS_BENCH_SECONDS sets the media length
// (default 10), EGRESS_BENCH_FFMPEG an ffmpeg wrapper (taskset).
func BenchmarkEgressCPU(b *testing.B) {
	secs := 10
	if v, err := strconv.Atoi(os.Getenv("EGRESS_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	d := time.Duration(secs) * time.Second
	for _, sc := range []struct {
		name string
		spec egressapi.Spec
	}{
		{"composite-720p30-4p", egressapi.Spec{Kind: egressapi.KindComposite, Config: egressapi.Config{Quality: "med"}}},
		{"hls-3-renditions-4p", egressapi.Spec{Kind: egressapi.KindHLS, Config: egressapi.Config{Quality: "med"}, HLS: egressapi.HLSOptions{Renditions: 3}}},
		{"track-recording-720p", egressapi.Spec{Kind: egressapi.KindTrack, ParticipantID: "p0", TrackKind: "video"}},
	} {
		b.Run(sc.name, func(b *testing.B) {
			var goCPU, ffCPU, media, base float64
			for i := 0; i < b.N; i++ {
				g, f, m, bl := benchOnce(b, sc.spec, d, i)
				goCPU, ffCPU, media, base = goCPU+g, ffCPU+f, media+m, base+bl
			}
			b.ReportMetric((goCPU+ffCPU)/media, "cpu-s/media-s")
			b.ReportMetric(ffCPU/media, "ffmpeg-cpu-s/media-s")
			b.ReportMetric(goCPU/media, "go-cpu-s/media-s")
			b.ReportMetric(base/float64(b.N)/d.Seconds(), "baseline-cpu-s/s")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchOnce runs the 4 publishers for d without and then with the job and
// returns the job's Go and ffmpeg CPU seconds, its media seconds and the
// baseline CPU seconds.
func benchOnce(b *testing.B, spec egressapi.Spec, d time.Duration, iter int) (goCPU, ffCPU, media, baseline float64) {
	b.StopTimer()
	defer b.StartTimer()
	s := startSFU(b)
	tr := newRunner(b, s, func(c *Config) {
		if ff := os.Getenv("EGRESS_BENCH_FFMPEG"); ff != "" {
			c.FFmpeg = ff
		}
		// On a loaded machine the job may fall behind; measure anyway and
		// report how many pictures were repeated instead of dropping media.
		c.MaxLag = time.Minute
	})
	room := fmt.Sprintf("bench-%d", iter)
	for i := 0; i < 4; i++ {
		publish(b, s, room, fmt.Sprintf("p%d", i), egresstest.Options{Video: mediaFile(b, "pattern720.ivf"), Audio: mediaFile(b, "440.ogg")})
	}
	time.Sleep(time.Second) // let the publishers settle
	c0 := processCPU()
	time.Sleep(d)
	baseline = (processCPU() - c0).Seconds()

	spec.ID, spec.RoomID = fmt.Sprintf("job-%d", iter), room
	ff0, roles0 := tr.ChildCPU(), tr.ChildCPUByRole()
	c0 = processCPU()
	if _, err := tr.Start(spec); err != nil {
		b.Fatal(err)
	}
	time.Sleep(d)
	if _, err := tr.Stop(spec.ID); err != nil {
		st, _ := tr.Status(spec.ID)
		b.Fatalf("job ended before the end of the run: %+v", st)
	}
	st := tr.waitEnd(b, spec.ID)
	total := (processCPU() - c0).Seconds()
	if st.State != egressapi.StateStopped {
		b.Fatalf("job ended %+v", st)
	}
	wall := st.StoppedAt.Sub(st.StartedAt).Seconds()
	goCPU = total - baseline*wall/d.Seconds()
	ffCPU = (tr.ChildCPU() - ff0).Seconds()
	media = st.Duration
	if media == 0 {
		media = d.Seconds()
	}
	late, queued := 0.0, 0.0
	if j := tr.job(spec.ID); j != nil && j.comp != nil && j.comp.frames.Load() > 0 {
		// The runner is this job's alone: its sums are the job's.
		rep, kind, mt := tr.RepeatedMedia(), string(spec.Kind), j.comp.mediaTime().Seconds()
		late = (rep[RepeatKey{kind, repeatLate}] + rep[RepeatKey{kind, repeatStop}]).Seconds() / mt
		queued = rep[RepeatKey{kind, repeatEncoder}].Seconds() / mt
	}
	var split []string
	for role, v := range tr.ChildCPUByRole() {
		split = append(split, fmt.Sprintf("%s %.2f", role, (v-roles0[role]).Seconds()))
	}
	sort.Strings(split)
	b.Logf("%s: pictures repeated %.1f%% (clock late) + %.1f%% (encoder behind), media %.1f s, wall %.1f s, ffmpeg %.2f CPU-s [%s], Go %.2f CPU-s (process %.2f minus baseline %.2f/%.0f s)",
		spec.Kind, 100*late, 100*queued, media, wall, ffCPU, strings.Join(split, ", "), goCPU, total, baseline, d.Seconds())
	return goCPU, ffCPU, media, baseline
}
