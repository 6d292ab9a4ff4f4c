package egress

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
)

// job is one running egress job. start sets up its pipeline synchronously;
// loop (one goroutine) owns it afterwards: upkeep every Poll, then the
// graceful finish on Stop or the abort on failure.
type job struct {
	r      *Runner
	spec   egressapi.Spec
	target storage.Target
	dir    string // scratch
	origin time.Time

	mu sync.Mutex
	st egressapi.Status

	stopCh   chan struct{}
	stopOnce sync.Once
	failCh   chan error
	done     chan struct{}

	comp    *composer
	fan     *fanout
	rec     *recorder
	out     string // composite output file
	hlsDir  string
	playMax int // HLS variants to wait for
	cancel  context.CancelFunc
}

func (j *job) status() egressapi.Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := j.st
	st.Files = append([]egressapi.File(nil), j.st.Files...)
	st.Outputs = append([]egressapi.OutputStatus(nil), j.st.Outputs...)
	return st
}

// update changes the status; emit reports it. An HLS stream is marked
// ended as its job's state turns final, before that status goes out.
func (j *job) update(emit bool, fn func(*egressapi.Status)) {
	j.mu.Lock()
	fn(&j.st)
	if j.hlsDir != "" && j.st.State.Final() {
		j.r.hls.end(j.spec.HLS.Path)
	}
	if emit {
		j.st.Seq++
	}
	st := j.st
	st.Files = append([]egressapi.File(nil), j.st.Files...)
	st.Outputs = append([]egressapi.OutputStatus(nil), j.st.Outputs...)
	j.mu.Unlock()
	if emit {
		j.r.emit(st)
	}
}

// fail is the pipeline's failure report (any goroutine, once is enough).
func (j *job) fail(err error) {
	select {
	case j.failCh <- err:
	default:
	}
}

func (j *job) requestStop() (egressapi.Status, error) {
	st := j.status()
	switch {
	case st.State.Final():
		return st, ErrJobEnded
	case st.State == egressapi.StateStopping:
		return st, nil
	}
	stopping := false
	j.stopOnce.Do(func() {
		stopping = true
		close(j.stopCh)
	})
	if stopping && j.spec.Kind != egressapi.KindMerge {
		j.update(true, func(s *egressapi.Status) {
			if !s.State.Final() {
				s.State = egressapi.StateStopping
			}
		})
	}
	if j.cancel != nil {
		j.cancel()
	}
	return j.status(), nil
}

func (j *job) start() error {
	if err := os.MkdirAll(j.dir, 0o750); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	cfg := j.r.cfg
	env := decoderEnv{ffmpeg: cfg.FFmpeg, log: cfg.Logger.With("job", j.spec.ID, "room", j.spec.RoomID), cpu: &j.r.cpu}
	switch j.spec.Kind {
	case egressapi.KindComposite, egressapi.KindRTMP, egressapi.KindHLS:
		members, ok := cfg.Media.Members(j.spec.RoomID)
		if !ok {
			return ErrRoomNotFound
		}
		if len(members) == 0 {
			return ErrNoParticipants
		}
		cc := composerConfig{media: cfg.Media, roomID: j.spec.RoomID, cfg: j.spec.Config, fps: cfg.FrameRate,
			origin: j.origin, now: cfg.Now, env: env, poll: cfg.Poll, maxLag: cfg.MaxLag, onFail: j.fail,
			onDropped: func(d time.Duration) { j.r.dropped.add(string(j.spec.Kind), d) },
			onRepeated: func(reason string, d time.Duration) {
				j.r.repeated.add(RepeatKey{Kind: string(j.spec.Kind), Reason: reason}, d)
			}}
		switch j.spec.Kind {
		case egressapi.KindComposite:
			j.out = filepath.Join(j.dir, "composite.mp4")
			cc.outArgs = mp4Args(j.spec.Config, cfg.FrameRate, j.out)
		case egressapi.KindHLS:
			j.hlsDir = filepath.Join(cfg.WorkDir, "hls", j.spec.HLS.Path)
			if _, err := os.Stat(j.hlsDir); err == nil {
				return fmt.Errorf("%w: hls path %s in use", ErrJobExists, j.spec.HLS.Path)
			}
			j.playMax = len(renditions(j.spec.Config, j.spec.HLS.Renditions))
			if j.spec.Config.Mode == egressapi.ModeAudio {
				j.playMax = 1
			}
			for i := 0; i < j.playMax; i++ {
				if err := os.MkdirAll(filepath.Join(j.hlsDir, fmt.Sprintf("v%d", i)), 0o750); err != nil {
					return err
				}
			}
			cc.outArgs = hlsArgs(j.spec.Config, cfg.FrameRate, j.spec.HLS, j.hlsDir)
			j.r.hls.add(j.spec.HLS.Path, j.hlsDir, j.spec.HLS.WindowSegments)
		case egressapi.KindRTMP:
			j.fan = &fanout{log: env.log, now: cfg.Now, stall: cfg.RTMPStallTimeout, onFail: j.fail, cpu: &j.r.cpu,
				changed: func() { j.update(true, func(s *egressapi.Status) { s.Outputs = j.fan.statuses() }) }}
			if err := startFanout(cfg.FFmpeg, j.spec.Outputs, j.fan); err != nil {
				return err
			}
			cc.outArgs = flvArgs(j.spec.Config, cfg.FrameRate)
			cc.stdout = j.fan
		}
		j.comp = newComposer(cc)
		if err := j.comp.start(); err != nil {
			if j.fan != nil {
				j.fan.abort()
			}
			if j.hlsDir != "" {
				j.r.hls.remove(j.spec.HLS.Path)
				_ = os.RemoveAll(j.hlsDir)
			}
			return err
		}
	case egressapi.KindParticipant, egressapi.KindTrack:
		j.rec = newRecorder(recorderConfig{media: cfg.Media, roomID: j.spec.RoomID, participantID: j.spec.ParticipantID,
			trackKind: j.spec.TrackKind, dir: j.dir, origin: j.origin, now: cfg.Now, log: env.log})
		if j.spec.Kind == egressapi.KindParticipant {
			j.rec.c.trackKind = ""
		}
		if err := j.rec.check(); err != nil {
			return err
		}
		j.rec.refresh()
	case egressapi.KindMerge:
		ctx, cancel := context.WithCancel(context.Background())
		j.cancel = cancel
		j.update(true, func(s *egressapi.Status) { s.State, s.StartedAt = egressapi.StateRunning, j.origin })
		go j.runMerge(ctx, env)
		return nil
	}
	j.update(true, func(s *egressapi.Status) {
		s.State, s.StartedAt = egressapi.StateRunning, j.origin
		if j.fan != nil {
			s.Outputs = j.fan.statuses()
		}
		if j.hlsDir != "" {
			s.HLSPath = j.spec.HLS.Path
		}
	})
	go j.loop()
	return nil
}

func (j *job) loop() {
	defer close(j.done)
	cfg := j.r.cfg
	t := time.NewTicker(cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-j.stopCh:
			j.finish()
			return
		case err := <-j.failCh:
			j.abort(err)
			return
		case <-t.C:
		}
		now := cfg.Now()
		switch {
		case j.comp != nil:
			dur := j.comp.mediaTime().Seconds()
			var size int64
			if j.out != "" {
				if st, err := os.Stat(j.out); err == nil {
					size = st.Size()
				}
			}
			playable := j.hlsDir != "" && hlsPlayable(j.hlsDir, j.playMax)
			j.update(false, func(s *egressapi.Status) { s.Duration, s.Size = dur, size })
			if playable && !j.status().Playable {
				j.update(true, func(s *egressapi.Status) { s.Playable = true })
			}
			if since := j.comp.emptySince(); !since.IsZero() && now.Sub(since) >= cfg.EmptyRoomTimeout &&
				(cfg.OccupiedElsewhere == nil || !cfg.OccupiedElsewhere(j.spec.RoomID)) {
				cfg.Logger.Info("egress: room empty, stopping", "job", j.spec.ID)
				_, _ = j.requestStop()
			}
		case j.rec != nil:
			j.rec.refresh()
			size := j.rec.size()
			j.update(false, func(s *egressapi.Status) { s.Duration, s.Size = now.Sub(j.origin).Seconds(), size })
			if since := j.rec.absentSince(); !since.IsZero() && now.Sub(since) >= cfg.EmptyRoomTimeout {
				cfg.Logger.Info("egress: participant gone, stopping", "job", j.spec.ID)
				_, _ = j.requestStop()
			}
		}
	}
}

// pending is a finished local file to probe and store.
type pending struct {
	path, key, ctype string
	trackKind, pid   string
	start, end       time.Time
	expectAudioVideo bool
}

// minHLSRecording is the media an HLS job must have encoded for a failed
// remux of its recording to fail the job (TestHLSRecordingStoppedAtOnce).
const minHLSRecording = 500 * time.Millisecond

func (j *job) finish() {
	cfg := j.r.cfg
	var files []pending
	var err error
	switch {
	case j.comp != nil:
		err = j.comp.finish(cfg.StopTimeout)
		if j.fan != nil {
			j.fan.finish(cfg.StopTimeout)
			j.update(true, func(s *egressapi.Status) { s.Outputs = j.fan.statuses() })
		}
		end := cfg.Now()
		switch j.spec.Kind {
		case egressapi.KindComposite:
			files = append(files, pending{path: j.out, key: j.key("recordings", j.session(), j.spec.ID+".mp4"), ctype: "video/mp4", start: j.origin, end: end})
		case egressapi.KindHLS:
			if err == nil && j.spec.HLS.Record && hlsPlayable(j.hlsDir, 1) {
				out := filepath.Join(j.dir, "hls.mp4")
				if rerr := remuxHLS(cfg.FFmpeg, filepath.Join(j.hlsDir, "v0", "index.m3u8"), out, cfg.StopTimeout, &j.r.cpu); rerr == nil {
					files = append(files, pending{path: out, key: j.key("hls-recordings", j.session(), j.spec.ID+".mp4"), ctype: "video/mp4", start: j.origin, end: end})
				} else if j.comp.mediaTime() >= minHLSRecording {
					err = rerr
				}
				// Else the job was stopped within a frame or two of its start:
				// ffmpeg's only segment (one frame, a target duration of 0)
				// does not remux, and there is nothing to record. Stopped,
				// without a file.
			}
		}
		j.update(false, func(s *egressapi.Status) { s.Duration = j.comp.mediaTime().Seconds() })
	case j.rec != nil:
		var segs []*segment
		segs, err = j.rec.finish()
		if err == nil {
			files, err = j.muxSegments(segs)
		}
	}
	stored, serr := j.store(files)
	if err == nil {
		err = serr
	}
	now := cfg.Now()
	if err != nil {
		cfg.Logger.Warn("egress: job failed while stopping", "job", j.spec.ID, "kind", j.spec.Kind, "room", j.spec.RoomID, "err", err)
	}
	j.update(true, func(s *egressapi.Status) {
		s.Files = append(s.Files, stored...)
		s.Size = 0
		for _, f := range s.Files {
			s.Size += f.Size
		}
		if j.spec.Kind != egressapi.KindRTMP && j.spec.Kind != egressapi.KindHLS && len(s.Files) > 0 {
			s.Duration = 0
			for _, f := range s.Files {
				s.Duration = max(s.Duration, f.Duration)
			}
		}
		s.StoppedAt = now
		if err != nil {
			s.State, s.Error = egressapi.StateFailed, err.Error()
		} else {
			s.State = egressapi.StateStopped
		}
	})
	_ = os.RemoveAll(j.dir)
}

func (j *job) abort(cause error) {
	// An operator learns of a failed job from the log as well as from the
	// status the control plane keeps (and its webhook).
	j.r.cfg.Logger.Warn("egress: job failed", "job", j.spec.ID, "kind", j.spec.Kind, "room", j.spec.RoomID, "err", cause)
	switch {
	case j.comp != nil:
		j.comp.abort()
		if j.fan != nil {
			j.fan.abort()
		}
	case j.rec != nil:
		j.rec.abort()
	}
	now := j.r.cfg.Now()
	j.update(true, func(s *egressapi.Status) {
		if j.fan != nil {
			s.Outputs = j.fan.statuses()
		}
		if j.comp != nil {
			s.Duration = j.comp.mediaTime().Seconds()
		}
		s.State, s.Error, s.StoppedAt = egressapi.StateFailed, cause.Error(), now
	})
	_ = os.RemoveAll(j.dir)
}

func (j *job) muxSegments(segs []*segment) ([]pending, error) {
	cfg := j.r.cfg
	ext := j.spec.FileFormat
	ctype := map[string]string{"webm": "video/webm", "mp4": "video/mp4", "mp3": "audio/mpeg"}[ext]
	var out []pending
	for _, seg := range segs {
		s, e := seg.span()
		start, end := j.origin.Add(s), j.origin.Add(e)
		ms := start.UnixMilli()
		pid := safeName(j.spec.ParticipantID)
		var key string
		if j.spec.Kind == egressapi.KindParticipant {
			key = j.key("individual-recordings", j.session(), pid, fmt.Sprintf("participant_recording_%s_%d.%s", pid, ms, ext))
		} else {
			key = j.key("individual-recordings", j.session(), pid, j.spec.TrackKind,
				fmt.Sprintf("track_recording_%s_%s_%d.%s", pid, j.spec.TrackKind, ms, ext))
		}
		path := filepath.Join(j.dir, fmt.Sprintf("out%03d.%s", seg.index, ext))
		ctx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
		err := muxSegment(ctx, cfg.FFmpeg, seg, ext, path, &j.r.cpu)
		cancel()
		if err != nil {
			return out, fmt.Errorf("egress: mux: %w", err)
		}
		out = append(out, pending{path: path, key: key, ctype: ctype, trackKind: j.spec.TrackKind, pid: j.spec.ParticipantID, start: start, end: end})
	}
	return out, nil
}

// store probes and uploads finished files.
func (j *job) store(files []pending) ([]egressapi.File, error) {
	cfg := j.r.cfg
	var out []egressapi.File
	for _, p := range files {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
		pr, err := probe(ctx, cfg.FFprobe, p.path, &j.r.cpu)
		if err != nil {
			cancel()
			return out, fmt.Errorf("egress: output unreadable: %w", err)
		}
		size, err := j.target.Put(ctx, p.key, p.path, p.ctype)
		cancel()
		if err != nil {
			return out, err
		}
		f := egressapi.File{Storage: j.target.Name(), Region: j.target.Region(), Key: p.key, Size: size,
			Duration: pr.Duration, Width: pr.Width, Height: pr.Height, Format: pr.Format, Type: "audio",
			TrackKind: p.trackKind, ParticipantID: p.pid, Start: p.start, End: p.end}
		if pr.Video {
			f.Type = "video"
		}
		out = append(out, f)
	}
	return out, nil
}

func (j *job) runMerge(ctx context.Context, env decoderEnv) {
	defer close(j.done)
	cfg := j.r.cfg
	out := filepath.Join(j.dir, "merge.mp3")
	err := runMerge(ctx, env, cfg.FFprobe, cfg.Storage, j.spec, j.dir, out)
	var stored []egressapi.File
	if err == nil {
		stored, err = j.store([]pending{{path: out, key: j.key("merged-recordings", j.session(), j.spec.ID+".mp3"), ctype: "audio/mpeg",
			start: j.origin, end: cfg.Now()}})
	}
	if errors.Is(err, context.Canceled) {
		err = errors.New("merge cancelled")
	}
	now := cfg.Now()
	j.update(true, func(s *egressapi.Status) {
		s.Files, s.StoppedAt = stored, now
		for _, f := range stored {
			s.Size, s.Duration = s.Size+f.Size, max(s.Duration, f.Duration)
		}
		if err != nil {
			s.State, s.Error = egressapi.StateFailed, err.Error()
		} else {
			s.State = egressapi.StateStopped
		}
	})
	_ = os.RemoveAll(j.dir)
}

func (j *job) session() string {
	if j.spec.SessionID == "" {
		return "no-session"
	}
	return safeName(j.spec.SessionID)
}

func (j *job) key(parts ...string) string {
	return storage.JoinKey(j.spec.DirPath, strings.Join(parts, "/"))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// safeName makes an id usable as one key element.
func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}

// remuxHLS turns a finished HLS rendition into an MP4 (HLS recording).
func remuxHLS(ffmpeg, playlist, out string, timeout time.Duration, cpu *cpuMeter) error {
	p, err := startProc(procSpec{name: "hls remux", bin: ffmpeg, args: []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-i", playlist, "-c", "copy", "-movflags", "+faststart", "-f", "mp4", out}})
	if err != nil {
		return err
	}
	defer cpu.add(p)
	return p.wait(timeout)
}
