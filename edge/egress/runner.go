// Package egress is the media side of recordings, RTMP out and HLS on an
// edge. The control plane (control/egress) decides what runs where; an
// edge's Runner runs it against the SFU that holds the room's tracks:
//
//   - composite recordings, RTMP and HLS compose the room (Go compositor,
//     ffmpeg decoders and encoder; compose.go);
//   - participant and track recordings copy media to files without
//     transcoding (record.go);
//   - merges mix participant recordings into a stereo MP3 (merge.go).
//
// Finished files go to the storage target selected for the job's allowed
// regions (shared/storage). Status changes are reported through
// Config.OnStatus, which the edge agent forwards to the control plane.
// docs/egress.md explains the design.
package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
)

// Config configures a Runner. Build it with DefaultConfig; New calls Validate.
type Config struct {
	// Media is the edge's SFU (FromSFU).
	Media Media
	// Storage lists the targets in order of preference; a job uses the
	// first one tagged with a region it may store in.
	Storage []storage.Target
	// WorkDir holds jobs in progress and HLS output. Its "jobs" and "hls"
	// subdirectories are emptied by New (leftovers of a crash).
	WorkDir string
	// FFmpeg and FFprobe are the binaries (looked up in PATH when bare names).
	FFmpeg  string
	FFprobe string
	// FrameRate of composed outputs.
	FrameRate int
	// Poll is how often jobs look at their room (joins, mutes, speakers).
	Poll time.Duration
	// MaxLag fails a composing job whose encoder is this far behind real time.
	MaxLag time.Duration
	// StopTimeout bounds the encoder's drain and a file's final mux.
	StopTimeout time.Duration
	// RTMPStallTimeout fails an RTMP destination that accepted no data for
	// this long (unreachable, or connected and silent).
	RTMPStallTimeout time.Duration
	// EmptyRoomTimeout stops a composing job whose room has had nobody for
	// this long, and a participant or track recording whose participant has
	// been gone this long, so nothing records an empty room forever if the
	// control plane is unreachable.
	EmptyRoomTimeout time.Duration
	// OccupiedElsewhere reports whether the room still has participants on
	// other edges (the cascade knows it serves the room with peers). While
	// it does, an empty room here is a relay leg that is down or coming up,
	// not the end of the meeting: EmptyRoomTimeout does not stop a
	// composing job. Nil: the edge is alone.
	OccupiedElsewhere func(roomID string) bool
	// OnStatus hears every status change, in order, from one goroutine. It
	// should return quickly (enqueue).
	OnStatus func(egressapi.Status)
	Logger   *slog.Logger
	Now      func() time.Time
}

// DefaultConfig returns production defaults (Media, Storage and WorkDir
// must still be set).
func DefaultConfig() Config {
	return Config{
		FFmpeg: "ffmpeg", FFprobe: "ffprobe",
		FrameRate: 30, Poll: 250 * time.Millisecond, MaxLag: 5 * time.Second,
		StopTimeout: 60 * time.Second, RTMPStallTimeout: 10 * time.Second,
		EmptyRoomTimeout: 60 * time.Second,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Media == nil:
		return errors.New("egress: Media is required")
	case c.WorkDir == "":
		return errors.New("egress: WorkDir is required")
	case c.FrameRate < 1 || c.FrameRate > 60:
		return fmt.Errorf("egress: FrameRate %d out of range 1..60", c.FrameRate)
	case c.Poll <= 0 || c.MaxLag <= 0 || c.StopTimeout <= 0 || c.RTMPStallTimeout <= 0 || c.EmptyRoomTimeout <= 0:
		return errors.New("egress: Poll, MaxLag, StopTimeout, RTMPStallTimeout and EmptyRoomTimeout must be positive")
	}
	return nil
}

// Runner runs the egress jobs of one edge. Its methods are safe for
// concurrent use.
type Runner struct {
	cfg Config
	log *slog.Logger
	cpu cpuMeter
	hls hlsDirs

	// dropped is media time composing jobs dropped while behind real
	// time, by job kind (meridian_egress_dropped_media_seconds_total).
	dropped tally[string]
	// repeated is media time composing jobs showed as a repeated picture,
	// by kind and reason (meridian_egress_repeated_media_seconds_total).
	repeated tally[RepeatKey]

	mu     sync.Mutex
	jobs   map[string]*job
	closed bool

	evMu   sync.Mutex
	events []egressapi.Status
	evKick chan struct{}
	evDone chan struct{}
}

// New checks the configuration and the tools, and prepares WorkDir.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, bin := range []*string{&cfg.FFmpeg, &cfg.FFprobe} {
		p, err := exec.LookPath(*bin)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNoFFmpeg, *bin, err)
		}
		*bin = p
	}
	for _, sub := range []string{"jobs", "hls"} {
		d := filepath.Join(cfg.WorkDir, sub)
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("egress: clean %s: %w", d, err)
		}
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("egress: %w", err)
		}
	}
	r := &Runner{cfg: cfg, log: cfg.Logger, jobs: map[string]*job{}, evKick: make(chan struct{}, 1), evDone: make(chan struct{})}
	go r.dispatch()
	return r, nil
}

// HLSHandler serves every HLS job's playlists and segments at
// "/<hls path>/…"; mount it under the edge's HLS base URL with
// http.StripPrefix.
func (r *Runner) HLSHandler() http.Handler { return &r.hls }

// ChildCPU is the CPU time used by finished ffmpeg processes so far.
func (r *Runner) ChildCPU() time.Duration { return r.cpu.total() }

// ChildCPUByRole splits ChildCPU by process role (encoder, video decoder,
// audio decoder, rtmp relay, mux, merge, probe, …).
func (r *Runner) ChildCPUByRole() map[string]time.Duration { return r.cpu.roles() }

// DroppedMedia is the media time composing jobs have dropped because the
// machine or their encoder was behind real time, by job kind.
func (r *Runner) DroppedMedia() map[string]time.Duration { return r.dropped.snapshot() }

// RepeatedMedia is the media time composing jobs have shown as a repeated
// (still) picture instead of a new one, by job kind and reason: "encoder"
// (the encoder was behind), "late" (the clock caught up after a stall),
// "stop" (ticks owed when the job stopped).
func (r *Runner) RepeatedMedia() map[RepeatKey]time.Duration { return r.repeated.snapshot() }

// RepeatKey names a sum of RepeatedMedia.
type RepeatKey struct{ Kind, Reason string }

// Start runs a job. It returns once the job is running (or has failed to
// start: then no job is kept and the error says why — a *egressapi.FieldError,
// storage.ErrNoStorageForRegion, ErrRoomNotFound, ErrNoParticipants,
// ErrParticipantAbsent, ErrTrackAbsent, ErrJobExists, or a start failure).
func (r *Runner) Start(spec egressapi.Spec) (egressapi.Status, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return egressapi.Status{}, err
	}
	var target storage.Target
	if spec.Kind != egressapi.KindRTMP {
		if target, err = storage.Select(r.cfg.Storage, spec.AllowedRegions); err != nil {
			return egressapi.Status{}, err
		}
	}
	now := r.cfg.Now()
	j := &job{r: r, spec: spec, target: target, origin: now,
		dir:    filepath.Join(r.cfg.WorkDir, "jobs", spec.ID),
		stopCh: make(chan struct{}), failCh: make(chan error, 1), done: make(chan struct{})}
	j.st = egressapi.Status{ID: spec.ID, Kind: spec.Kind, RoomID: spec.RoomID, SessionID: spec.SessionID, State: egressapi.StateStarting}
	if target != nil {
		j.st.Storage, j.st.Region = target.Name(), target.Region()
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return egressapi.Status{}, ErrClosed
	}
	if r.jobs[spec.ID] != nil {
		r.mu.Unlock()
		return egressapi.Status{}, ErrJobExists
	}
	r.jobs[spec.ID] = j
	r.mu.Unlock()
	if err := j.start(); err != nil {
		r.mu.Lock()
		delete(r.jobs, spec.ID)
		r.mu.Unlock()
		_ = os.RemoveAll(j.dir)
		return egressapi.Status{}, err
	}
	return j.status(), nil
}

// Stop asks a job to finish: it goes to stopping at once and to stopped
// (files stored) or failed later, as OnStatus reports. Stopping a job
// that is already stopping returns its status; one that ended returns
// ErrJobEnded.
func (r *Runner) Stop(id string) (egressapi.Status, error) {
	j := r.job(id)
	if j == nil {
		return egressapi.Status{}, ErrJobNotFound
	}
	return j.requestStop()
}

// Status returns a job's current status.
func (r *Runner) Status(id string) (egressapi.Status, bool) {
	j := r.job(id)
	if j == nil {
		return egressapi.Status{}, false
	}
	return j.status(), true
}

// List returns every job the runner knows, by start time.
func (r *Runner) List() []egressapi.Status {
	r.mu.Lock()
	js := make([]*job, 0, len(r.jobs))
	for _, j := range r.jobs {
		js = append(js, j)
	}
	r.mu.Unlock()
	out := make([]egressapi.Status, 0, len(js))
	for _, j := range js {
		out = append(out, j.status())
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].StartedAt.Equal(out[b].StartedAt) {
			return out[a].StartedAt.Before(out[b].StartedAt)
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// Wait blocks until the job has ended (stopped or failed) or ctx ends.
func (r *Runner) Wait(ctx context.Context, id string) (egressapi.Status, error) {
	j := r.job(id)
	if j == nil {
		return egressapi.Status{}, ErrJobNotFound
	}
	select {
	case <-j.done:
		return j.status(), nil
	case <-ctx.Done():
		return j.status(), ctx.Err()
	}
}

// Forget drops an ended job and its HLS files (after the control plane
// deleted it). Stored files are the control plane's to delete.
func (r *Runner) Forget(id string) error {
	j := r.job(id)
	if j == nil {
		return ErrJobNotFound
	}
	if !j.status().State.Final() {
		return fmt.Errorf("egress: job %s is still running", id)
	}
	r.mu.Lock()
	delete(r.jobs, id)
	r.mu.Unlock()
	if j.hlsDir != "" {
		r.hls.remove(j.spec.HLS.Path)
		return os.RemoveAll(j.hlsDir)
	}
	return nil
}

func (r *Runner) job(id string) *job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.jobs[id]
}

// Close stops every running job (as Stop does, waiting for the files to
// be stored) and the event dispatcher. Idempotent.
func (r *Runner) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	js := make([]*job, 0, len(r.jobs))
	for _, j := range r.jobs {
		js = append(js, j)
	}
	r.mu.Unlock()
	for _, j := range js {
		_, _ = j.requestStop()
	}
	for _, j := range js {
		<-j.done
	}
	close(r.evKick)
	<-r.evDone
	return nil
}

// emit queues a status for OnStatus.
func (r *Runner) emit(st egressapi.Status) {
	if r.cfg.OnStatus == nil {
		return
	}
	r.evMu.Lock()
	r.events = append(r.events, st)
	r.evMu.Unlock()
	select {
	case r.evKick <- struct{}{}:
	default:
	}
}

func (r *Runner) dispatch() {
	defer close(r.evDone)
	for {
		_, ok := <-r.evKick
		for {
			r.evMu.Lock()
			evs := r.events
			r.events = nil
			r.evMu.Unlock()
			if len(evs) == 0 {
				break
			}
			for _, ev := range evs {
				r.cfg.OnStatus(ev)
			}
		}
		if !ok {
			return
		}
	}
}
