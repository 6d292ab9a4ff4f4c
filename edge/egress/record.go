package egress

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// Participant and track recordings copy media without transcoding while
// they run: each track's frames go to an IVF (video) or Ogg (Opus) file in
// the job's work directory, stamped on the job's timeline. When a segment
// ends, one ffmpeg run muxes its files into the requested format (WebM by
// stream copy; MP4 or MP3 by transcoding) with -copyts, so the audio and
// video of one participant keep their relative offset. Recording costs no
// encoder while the meeting runs; a crash loses at most the final mux
// (the raw files are complete up to the crash).

type recorderConfig struct {
	media         Media
	roomID        string
	participantID string
	trackKind     string // "" for a participant recording (camera + microphone)
	dir           string
	origin        time.Time
	now           func() time.Time
	log           *slog.Logger
}

// segFile is one raw track file of a segment.
type segFile struct {
	path      string
	f         *os.File
	bw        *bufio.Writer
	ivf       *ivfWriter
	ogg       *oggOpusWriter
	codec     codec
	frames    int
	first     time.Duration
	last      time.Duration
	lastEnd   time.Duration
	writeErr  error
	widthHint int
}

func (s *segFile) close() error {
	if s.f == nil {
		return s.writeErr
	}
	err := s.bw.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if s.writeErr != nil {
		return s.writeErr
	}
	return err
}

// segment is one output file's worth of media.
type segment struct {
	index int
	video *segFile
	audio *segFile
}

func (s *segment) frames() int {
	n := 0
	if s.video != nil {
		n += s.video.frames
	}
	if s.audio != nil {
		n += s.audio.frames
	}
	return n
}

type recorder struct {
	c recorderConfig

	mu       sync.Mutex // cur, segments, files and the writes into them
	cur      *segment
	done     []*segment
	nextSeg  int
	readers  map[string]*trackReader // by track id
	wasMuted map[string]bool
	absent   time.Time // since when the participant is gone (zero: present)
	err      error     // first write error
	// paused: a track recording's track is muted; nothing is written
	// until it is re-enabled (which starts a new file).
	paused bool
}

func newRecorder(c recorderConfig) *recorder {
	return &recorder{c: c, readers: map[string]*trackReader{}, wasMuted: map[string]bool{}}
}

// wants reports whether a track belongs in this recording.
func (r *recorder) wants(t wire.TrackInfo) bool {
	switch r.c.trackKind {
	case "":
		return (t.Kind == "audio" && t.Source == "microphone") || (t.Kind == "video" && t.Source == "camera")
	case egressapi.TrackAudio:
		return t.Kind == "audio" && t.Source == "microphone"
	case egressapi.TrackVideo:
		return t.Kind == "video" && t.Source == "camera"
	case egressapi.TrackScreenAudio:
		return t.Kind == "audio" && t.Source == "screen_audio"
	case egressapi.TrackScreenVideo:
		return t.Kind == "video" && t.Source == "screen"
	}
	return false
}

// check verifies the participant (and, for a track recording, the track)
// is there, for Start's synchronous errors.
func (r *recorder) check() error {
	members, ok := r.c.media.Members(r.c.roomID)
	if !ok {
		return ErrRoomNotFound
	}
	for _, m := range members {
		if m.ID != r.c.participantID {
			continue
		}
		if r.c.trackKind == "" {
			return nil
		}
		for _, t := range m.Tracks {
			if r.wants(t) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s has no %s track", ErrTrackAbsent, r.c.participantID, r.c.trackKind)
	}
	return fmt.Errorf("%w: %s", ErrParticipantAbsent, r.c.participantID)
}

// refresh follows the participant's tracks: taps new ones, drops ended
// ones, and (track recordings) starts a new segment when the track is
// re-enabled or replaced.
func (r *recorder) refresh() {
	members, _ := r.c.media.Members(r.c.roomID)
	var tracks []wire.TrackInfo
	present := false
	for _, m := range members {
		if m.ID == r.c.participantID {
			present = true
			for _, t := range m.Tracks {
				if r.wants(t) {
					tracks = append(tracks, t)
				}
			}
		}
	}
	r.mu.Lock()
	if present {
		r.absent = time.Time{}
	} else if r.absent.IsZero() {
		r.absent = r.c.now()
	}
	live := map[string]bool{}
	var stale []*trackReader
	for _, t := range tracks {
		live[t.TrackID] = true
	}
	for id, rd := range r.readers {
		if !live[id] || (rd.tap != nil && rd.tap.Ended()) {
			stale = append(stale, rd)
			delete(r.readers, id)
		} else if rd.tap != nil {
			rd.tap.Maintain()
		}
	}
	r.mu.Unlock()
	// Ended readers write what had arrived before a replacement ends the
	// segment below.
	for _, rd := range stale {
		rd.finish()
	}
	r.mu.Lock()
	var open []wire.TrackInfo
	for _, t := range tracks {
		if r.c.trackKind != "" {
			// A new file each time the track is re-enabled (or replaced).
			// Muting ends the file and pauses writing; the first frame
			// after re-enabling opens the next one.
			if was, seen := r.wasMuted[t.TrackID]; t.Muted && (!seen || !was) {
				r.endSegmentLocked()
			}
			r.wasMuted[t.TrackID] = t.Muted
			r.paused = t.Muted
		}
		if r.readers[t.TrackID] == nil {
			if r.c.trackKind != "" && len(r.readers) == 0 && len(stale) > 0 {
				r.endSegmentLocked() // the track was replaced
			}
			open = append(open, t)
		}
	}
	r.mu.Unlock()
	for _, t := range open {
		rd, err := openTrack(r.c.media, r.c.roomID, t, r.c.origin, r.c.now,
			func(rd *trackReader) func(frame) { return func(f frame) { r.write(rd, f) } })
		if err != nil {
			continue
		}
		r.mu.Lock()
		if r.readers[t.TrackID] != nil {
			r.mu.Unlock()
			rd.close()
			continue
		}
		r.readers[t.TrackID] = rd
		r.mu.Unlock()
	}
}

// write appends a frame to the current segment (the track readers'
// goroutines).
func (r *recorder) write(rd *trackReader, f frame) {
	c := rd.codec
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paused {
		return
	}
	if r.cur == nil {
		r.cur = &segment{index: r.nextSeg}
		r.nextSeg++
	}
	seg := r.cur
	var sf **segFile
	if c.video() {
		sf = &seg.video
	} else if c == codecOpus {
		sf = &seg.audio
	} else {
		return
	}
	if *sf == nil {
		if c.video() && !f.key {
			if rd.tap != nil {
				rd.tap.RequestKeyframe() // a new segment starts at a key frame
			}
			return
		}
		ext := "ogg"
		if c.video() {
			ext = "ivf"
		}
		p := filepath.Join(r.c.dir, fmt.Sprintf("seg%03d.%s", seg.index, ext))
		fh, err := os.Create(p)
		if err != nil {
			r.setErr(err)
			return
		}
		nf := &segFile{path: p, f: fh, bw: bufio.NewWriterSize(fh, 256<<10), codec: c, first: f.pts}
		switch c {
		case codecVP8:
			nf.ivf = newIVFWriter(nf.bw, "VP80", f.width, f.height)
		case codecH264:
			nf.ivf = newIVFWriter(nf.bw, "H264", 0, 0)
		case codecOpus:
			nf.ogg = newOggOpusWriter(nf.bw, uint32(seg.index+1), 2)
		}
		*sf = nf
	}
	s := *sf
	if s.f == nil || s.codec != c {
		return // finished, or a republished track changed codec mid-segment
	}
	if f.pts <= s.last && s.frames > 0 {
		f.pts = s.last + time.Millisecond
	}
	var err error
	if s.ivf != nil {
		err = s.ivf.WriteFrame(f.data, f.pts)
	} else {
		err = s.ogg.WritePacket(f.data, f.pts, f.dur)
	}
	if err != nil {
		s.writeErr = err
		r.setErr(err)
		return
	}
	s.frames++
	s.last = f.pts
	s.lastEnd = f.pts + f.dur
}

func (r *recorder) setErr(err error) {
	if r.err == nil {
		r.err = err
		r.c.log.Warn("egress: recording write failed", "participant", r.c.participantID, "err", err)
	}
}

// endSegmentLocked closes the current segment's files (r.mu held).
func (r *recorder) endSegmentLocked() {
	if r.cur == nil {
		return
	}
	for _, s := range []*segFile{r.cur.video, r.cur.audio} {
		if s != nil {
			if err := s.close(); err != nil {
				r.setErr(err)
			}
		}
	}
	if r.cur.frames() > 0 {
		r.done = append(r.done, r.cur)
	}
	r.cur = nil
}

// absentSince reports since when the participant has been gone.
func (r *recorder) absentSince() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.absent
}

// size sums the raw bytes written so far.
func (r *recorder) size() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	segs := append([]*segment(nil), r.done...)
	if r.cur != nil {
		segs = append(segs, r.cur)
	}
	for _, s := range segs {
		for _, f := range []*segFile{s.video, s.audio} {
			if f != nil {
				if st, err := os.Stat(f.path); err == nil {
					n += st.Size()
				}
			}
		}
	}
	return n
}

// finish stops the readers (each writes what had arrived first), closes
// the last segment and returns the segments to mux.
func (r *recorder) finish() ([]*segment, error) {
	r.mu.Lock()
	rs := r.readers
	r.readers = map[string]*trackReader{}
	r.mu.Unlock()
	for _, rd := range rs {
		rd.finish()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endSegmentLocked()
	return r.done, r.err
}

func (r *recorder) abort() {
	_, _ = r.finish()
}

// muxSegment turns a segment's raw files into the output file.
func muxSegment(ctx context.Context, ffmpeg string, seg *segment, format, out string, cpu *cpuMeter) error {
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-copyts"}
	var maps []string
	in := 0
	if seg.video != nil && seg.video.frames > 0 && format != "mp3" {
		args = append(args, "-f", "ivf", "-i", seg.video.path)
		maps = append(maps, "-map", fmt.Sprintf("%d:v", in))
		in++
	}
	hasVideo := len(maps) > 0
	if seg.audio != nil && seg.audio.frames > 0 {
		args = append(args, "-f", "ogg", "-i", seg.audio.path)
		maps = append(maps, "-map", fmt.Sprintf("%d:a", in))
		in++
	}
	if in == 0 {
		return fmt.Errorf("egress: segment has no media")
	}
	args = append(args, maps...)
	switch format {
	case "webm":
		if hasVideo && seg.video.codec == codecH264 {
			args = append(args, "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1500k")
		} else {
			args = append(args, "-c:v", "copy")
		}
		args = append(args, "-c:a", "copy", "-f", "webm")
	case "mp4":
		if hasVideo && seg.video.codec == codecH264 {
			args = append(args, "-c:v", "copy")
		} else {
			args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p")
		}
		args = append(args, "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4")
	case "mp3":
		args = append(args, "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3")
	default:
		return fmt.Errorf("egress: unknown format %q", format)
	}
	args = append(args, "-avoid_negative_ts", "make_zero", out)
	p, err := startProc(procSpec{name: "mux", bin: ffmpeg, args: args})
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
	cpu.add(p)
	return p.err
}

// span is the segment's time on the job's timeline.
func (s *segment) span() (start, end time.Duration) {
	first := true
	for _, f := range []*segFile{s.video, s.audio} {
		if f == nil || f.frames == 0 {
			continue
		}
		if first || f.first < start {
			start = f.first
		}
		if first || f.lastEnd > end {
			end = f.lastEnd
		}
		first = false
	}
	return start, end
}
