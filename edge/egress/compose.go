package egress

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-video/meridian/shared/egressapi"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// The composer is the media engine of composite recordings, RTMP and HLS:
//
//	SFU taps ─► track readers ─► ffmpeg decoders (one per track)
//	         ─► Go compositor (layout, scaling) + audio mixer, on a clock
//	         ─► ffmpeg encoder (raw video on fd 3, PCM on fd 4) ─► MP4 / FLV / HLS
//
// The clock writes exactly fps pictures and 48000 stereo samples per
// second of wall time, so the output's duration is the job's and audio
// and video stay in step by construction. When the encoder falls behind,
// the clock repeats the last picture instead of composing a new one (a
// repeated picture costs the encoder almost nothing); more than maxLag
// behind, it drops time from the output (both streams) until the encoder
// catches up, and only an encoder that stops reading fails the job.

// composerConfig is what a composing job needs.
type composerConfig struct {
	media   Media
	roomID  string
	cfg     egressapi.Config // normalized
	fps     int
	origin  time.Time
	now     func() time.Time
	env     decoderEnv
	poll    time.Duration
	maxLag  time.Duration
	outArgs []string  // encoder output options and target
	stdout  io.Writer // encoder stdout (FLV for RTMP), nil otherwise
	// onFail is called once if the pipeline breaks while running.
	onFail func(error)
	// onDropped is told of media time dropped because the machine or the
	// encoder was behind real time (see clock).
	onDropped func(time.Duration)
	// onRepeated is told of each picture the clock repeated instead of
	// composing a new one, and why (repeatEncoder, repeatLate, repeatStop):
	// the output shows a still picture for that long.
	onRepeated func(reason string, d time.Duration)
}

// Why the clock repeated a picture (meridian_egress_repeated_media_seconds_total).
const (
	repeatEncoder = "encoder" // every picture buffer was queued: the encoder is behind
	repeatLate    = "late"    // a tick already superseded by a later one (catching up)
	repeatStop    = "stop"    // a tick owed at the stop, written so the output keeps its length
)

type layoutChange struct {
	at    time.Duration // media time
	tiles []tile
}

type composer struct {
	c         composerConfig
	w, h      int
	audioOnly bool
	theme     themeColors
	log       *slog.Logger

	mu        sync.Mutex
	videos    map[string]*videoSource // by participant/track
	audios    map[string]*audioSource
	tiles     []tile
	layoutGen uint64
	speaker   string
	joinOrder map[string]int
	nextOrder int
	history   []layoutChange
	emptyFor  time.Time // since when the room has had nobody (zero: not empty)

	canvasMu sync.Mutex
	canvas   *yuvFrame
	drawn    drawState

	enc    *proc
	videoQ chan *yuvFrame // nil: repeat the last picture
	free   chan *yuvFrame // picture buffers not queued
	audioQ chan []byte
	frames atomic.Int64 // ticks written: the output's media time
	// progress is when an encoder input last took a write (unix ns, the
	// config's clock): an encoder that stops reading fails the job.
	progress atomic.Int64
	failed   atomic.Bool

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	closers  sync.WaitGroup // sources being closed after leaving the layout
}

type drawState struct {
	gen  uint64
	seqs map[string]uint64
}

type themeColors struct{ bg, tile, accent yuvColor }

func themeFor(t string) themeColors {
	if t == egressapi.ThemeLight {
		return themeColors{bg: rgb(236, 236, 236), tile: rgb(200, 200, 204), accent: rgb(30, 110, 255)}
	}
	return themeColors{bg: rgb(20, 20, 22), tile: rgb(52, 52, 58), accent: rgb(60, 140, 255)}
}

func newComposer(c composerConfig) *composer {
	w, h := c.cfg.Size()
	cp := &composer{c: c, w: w, h: h, audioOnly: c.cfg.Mode == egressapi.ModeAudio, theme: themeFor(c.cfg.Theme),
		log: c.env.log, videos: map[string]*videoSource{}, audios: map[string]*audioSource{},
		joinOrder: map[string]int{}, stop: make(chan struct{})}
	rate := cp.tickRate()
	queue := int(c.maxLag.Seconds()*float64(rate)) + 2*rate
	cp.audioQ = make(chan []byte, queue)
	if !cp.audioOnly {
		cp.canvas = newYUVFrame(w, h)
		cp.canvas.fill(image.Rect(0, 0, w, h), cp.theme.bg)
		cp.videoQ = make(chan *yuvFrame, queue)
		// Pictures in flight (being written or queued): half a second
		// absorbs the encoder's scheduling hiccups on a busy machine; raw
		// pictures are large (1.4 MB at 720p), so beyond this the clock
		// repeats the last one instead.
		inFlight := max(6, rate/2)
		cp.free = make(chan *yuvFrame, inFlight)
		for i := 0; i < inFlight; i++ {
			cp.free <- newYUVFrame(w, h)
		}
	}
	return cp
}

// inputArgs are the encoder's raw inputs: video on fd 3 (unless audio
// only), PCM on the next fd.
func (cp *composer) inputArgs() []string {
	var a []string
	if !cp.audioOnly {
		a = append(a, "-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", fmt.Sprintf("%dx%d", cp.w, cp.h),
			"-framerate", fmt.Sprint(cp.c.fps), "-thread_queue_size", "8", "-i", "pipe:3")
	}
	fd := 3
	if !cp.audioOnly {
		fd = 4
	}
	return append(a, "-f", "s16le", "-ar", "48000", "-ac", "2", "-thread_queue_size", "512", "-i", fmt.Sprintf("pipe:%d", fd))
}

// start refreshes the room once (so the first frames already show who is
// there), starts the encoder and the goroutines.
func (cp *composer) start() error {
	cp.refresh()
	args := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin"}, cp.inputArgs()...)
	args = append(args, cp.c.outArgs...)
	inputs := 2
	if cp.audioOnly {
		inputs = 1
	}
	enc, err := startProc(procSpec{name: "encoder", bin: cp.c.env.ffmpeg, args: args, inputs: inputs, stdout: cp.c.stdout, bigPipes: true})
	if err != nil {
		cp.closeSources()
		return err
	}
	cp.enc = enc
	cp.wg.Add(4)
	go cp.watch()
	go cp.clock()
	go cp.writeAudio(enc.inputs[len(enc.inputs)-1])
	go cp.supervise()
	if !cp.audioOnly {
		cp.wg.Add(1)
		go cp.writeVideo(enc.inputs[0])
	}
	return nil
}

func (cp *composer) fail(err error) {
	if cp.failed.CompareAndSwap(false, true) && cp.c.onFail != nil {
		cp.c.onFail(err)
	}
}

// encoderExitGrace is how long a failed write to the encoder waits for the
// encoder to exit before it is reported itself.
const encoderExitGrace = 2 * time.Second

// failInput reports a failed write to an encoder input, unless the encoder
// exits meanwhile. A write fails ("broken pipe") mostly because the
// encoder has gone, and then its exit, reported by supervise with ffmpeg's
// complaint (tailBuffer.complaint), says why ("No space left on device") where the write's error
// does not: a full disk used to fail recordings with "encoder input: write
// |1: broken pipe".
func (cp *composer) failInput(err error) {
	defer cp.wg.Done()
	t := time.NewTimer(encoderExitGrace)
	defer t.Stop()
	select {
	case <-cp.enc.done:
		return
	case <-cp.stop:
		return
	case <-t.C:
	}
	if !cp.stopping() {
		cp.fail(err)
	}
}

func (cp *composer) stopping() bool {
	select {
	case <-cp.stop:
		return true
	default:
		return false
	}
}

// supervise reports an encoder that exits on its own.
func (cp *composer) supervise() {
	defer cp.wg.Done()
	select {
	case <-cp.enc.done:
		if !cp.stopping() {
			err := cp.enc.err
			if err == nil {
				err = errors.New("encoder exited")
			}
			cp.fail(err)
		}
	case <-cp.stop:
	}
}

// watch follows the room: sources, layout, keyframe upkeep.
func (cp *composer) watch() {
	defer cp.wg.Done()
	t := time.NewTicker(cp.c.poll)
	defer t.Stop()
	for {
		select {
		case <-cp.stop:
			return
		case <-t.C:
		}
		cp.refresh()
	}
}

// refresh reconciles decoders with the room and recomputes the layout.
func (cp *composer) refresh() {
	members, _ := cp.c.media.Members(cp.c.roomID)
	speakers := cp.c.media.ActiveSpeakers(cp.c.roomID)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(members) == 0 {
		if cp.emptyFor.IsZero() {
			cp.emptyFor = cp.c.now()
		}
	} else {
		cp.emptyFor = time.Time{}
	}
	present := map[string]bool{}
	var entries []entry
	wantAudio := map[string]wire.TrackInfo{}
	videoOf := map[string]wire.TrackInfo{}
	for _, m := range members {
		present[m.ID] = true
		if _, ok := cp.joinOrder[m.ID]; !ok {
			cp.joinOrder[m.ID] = cp.nextOrder
			cp.nextOrder++
		}
		cam := entry{participantID: m.ID, name: m.Name, order: cp.joinOrder[m.ID]}
		for _, t := range m.Tracks {
			switch {
			case t.Kind == "audio":
				wantAudio[m.ID+"/"+t.TrackID] = t
			case t.Source == "screen":
				e := entry{participantID: m.ID, name: m.Name, trackID: t.TrackID, muted: t.Muted, screen: true, order: cp.joinOrder[m.ID]}
				entries = append(entries, e)
				videoOf[e.key()] = t
			case cam.trackID == "":
				cam.trackID, cam.muted = t.TrackID, t.Muted
				videoOf[cam.key()] = t
			}
		}
		entries = append(entries, cam)
	}
	for id := range cp.joinOrder {
		if !present[id] {
			delete(cp.joinOrder, id) // a rejoin goes to the end
		}
	}
	for _, s := range speakers {
		if present[s] {
			cp.speaker = s
			break
		}
	}
	if !present[cp.speaker] {
		cp.speaker = ""
	}
	var tiles []tile
	if !cp.audioOnly {
		tiles = layoutTiles(cp.c.cfg, cp.w, cp.h, entries, cp.speaker)
	}
	wantVideo := map[string]wire.TrackInfo{}
	for _, t := range tiles {
		if t.trackID != "" {
			info := videoOf[t.key()]
			wantVideo[info.ParticipantID+"/"+info.TrackID] = info
		}
	}
	// Drop what is no longer wanted or whose track ended (a republished
	// track has a new id and gets a new source).
	var closing []interface{ close() }
	for k, v := range cp.videos {
		if _, ok := wantVideo[k]; !ok || (v.reader.tap != nil && v.reader.tap.Ended()) {
			closing = append(closing, v)
			delete(cp.videos, k)
		} else if v.reader.tap != nil {
			v.reader.tap.Maintain()
		}
	}
	for k, a := range cp.audios {
		if _, ok := wantAudio[k]; !ok || (a.reader.tap != nil && a.reader.tap.Ended()) {
			closing = append(closing, a)
			delete(cp.audios, k)
		}
	}
	for k, info := range wantVideo {
		if cp.videos[k] == nil {
			if v := cp.openVideo(info); v != nil {
				cp.videos[k] = v
			}
		}
	}
	for k, info := range wantAudio {
		if cp.audios[k] == nil {
			if a := cp.openAudio(info); a != nil {
				cp.audios[k] = a
			}
		}
	}
	if !sameTiles(tiles, cp.tiles) {
		cp.tiles = tiles
		cp.layoutGen++
		cp.history = append(cp.history, layoutChange{at: cp.mediaTime(), tiles: tiles})
	}
	if len(closing) > 0 {
		// Closing waits for goroutines; never with cp.mu held by them.
		cp.closers.Add(1)
		go func() {
			defer cp.closers.Done()
			for _, c := range closing {
				c.close()
			}
		}()
	}
}

func sameTiles(a, b []tile) bool {
	return slices.EqualFunc(a, b, func(x, y tile) bool { return x == y })
}

func (cp *composer) mediaTime() time.Duration { return cp.ticksTime(cp.frames.Load()) }

// ticksTime is the media time n ticks of the clock stand for.
func (cp *composer) ticksTime(n int64) time.Duration {
	return time.Duration(n) * time.Second / time.Duration(cp.tickRate())
}

func (cp *composer) tickRate() int {
	if cp.audioOnly {
		return 50
	}
	return cp.c.fps
}

func (cp *composer) openVideo(info wire.TrackInfo) *videoSource {
	v := &videoSource{env: cp.c.env, info: info, boxW: cp.w, boxH: cp.h}
	r, err := cp.tap(info, func(r *trackReader) func(frame) {
		v.codec, v.reader = r.codec, r
		return v.sink
	})
	if err != nil {
		return nil
	}
	if !v.codec.video() {
		r.close()
		return nil
	}
	return v
}

func (cp *composer) openAudio(info wire.TrackInfo) *audioSource {
	a := &audioSource{env: cp.c.env, info: info}
	r, err := cp.tap(info, func(r *trackReader) func(frame) {
		a.reader = r
		return a.sink
	})
	if err != nil {
		return nil
	}
	if r.codec != codecOpus {
		r.close()
		return nil
	}
	return a
}

// tap attaches a track reader to a track and starts it.
func (cp *composer) tap(info wire.TrackInfo, sinkFor func(*trackReader) func(frame)) (*trackReader, error) {
	return openTrack(cp.c.media, cp.c.roomID, info, cp.c.origin, cp.c.now, sinkFor)
}

// openTrack taps a track with a reader feeding the sink sinkFor returns
// (it is given the reader before the reader starts).
func openTrack(m Media, roomID string, info wire.TrackInfo, origin time.Time, now func() time.Time, sinkFor func(*trackReader) func(frame)) (*trackReader, error) {
	r := newTrackReader(info, codecUnknown, 0, origin, now, nil)
	tp, err := m.Tap(roomID, info.ParticipantID, info.TrackID, r)
	if err != nil {
		return nil, err
	}
	c := tp.Codec()
	r.codec, r.clock, r.tap = codecOf(c.MimeType), c.ClockRate, tp
	if r.clock == 0 {
		r.clock = 90000
	}
	r.sink = sinkFor(r)
	r.start()
	return r, nil
}

// clock paces the output. It never blocks on the encoder: pictures and
// samples go through queues to one writer goroutine per encoder input
// (ffmpeg reads its inputs in its own order: at start it probes the video
// input before opening the audio one, so a single writer would deadlock).
// When the video writer is behind, the clock queues "repeat the last
// picture" instead of composing.
//
// A machine too busy for real time degrades the output rather than end
// the job (and lose a recording to a few seconds of starvation): when the
// encoder's queue holds more than maxLag, or the clock itself wakes more
// than maxLag late, the ticks beyond are dropped — neither a picture nor
// samples, so audio and video stay in step and the output skips that
// time — and counted (onDropped: the runner's metric; one warning per
// episode). Dropping goes on until the queue is down to half of maxLag, so
// the output skips in a few long steps rather than stuttering. Only an
// encoder that reads nothing at all for stallAfter (4 × maxLag) fails the
// job. When the job stops, the ticks owed up to that instant are still
// written (repeats), so a clock running late does not shorten the output.
func (cp *composer) clock() {
	defer cp.wg.Done()
	defer close(cp.audioQ)
	if cp.videoQ != nil {
		defer close(cp.videoQ)
	}
	rate := cp.tickRate()
	tick := time.Second / time.Duration(rate)
	start := cp.c.now()
	deadline := func(n int64) time.Time { return start.Add(cp.ticksTime(n)) }
	timer := time.NewTimer(0)
	defer timer.Stop()
	mix := make([]int32, 48000/rate+1)
	maxBacklog := int(cp.c.maxLag.Seconds()*float64(rate)) + 1
	stallAfter := 4 * cp.c.maxLag
	cp.progress.Store(start.UnixNano())
	var lag lagEpisode
	final := false // stopping: write what is owed up to stopAt, then end
	var stopAt time.Time
	for n := int64(0); ; n++ {
		if final {
			if deadline(n).After(stopAt) {
				lag.end(cp, true)
				return
			}
		} else if d := deadline(n).Sub(cp.c.now()); d > 0 {
			timer.Reset(d)
			select {
			case <-cp.stop:
				lag.end(cp, true)
				return
			case <-timer.C:
			}
		} else if cp.stopping() {
			final, stopAt = true, cp.c.now()
		}
		now := cp.c.now()
		if final {
			now = stopAt
		}
		late := now.Sub(deadline(n))
		if late > cp.c.maxLag {
			// The clock's goroutine was starved: skip to the present. The
			// encoder's writers were starved as well, so its stall is
			// timed afresh.
			k := int64(late / tick)
			cp.progress.Store(max(cp.progress.Load(), now.UnixNano()))
			lag.drop(cp, k, "the compositor's clock", late)
			n += k
			late = now.Sub(deadline(n))
		}
		backlog := len(cp.audioQ) // the encoder's pace: video's queue, else audio's
		if cp.videoQ != nil {
			backlog = len(cp.videoQ)
		}
		if backlog > maxBacklog || (lag.active && backlog > maxBacklog/2) {
			if idle := now.Sub(time.Unix(0, cp.progress.Load())); idle > stallAfter {
				cp.fail(fmt.Errorf("encoder stalled: it read nothing for %s", idle.Round(time.Millisecond)))
				return
			}
			lag.drop(cp, 1, "the encoder", time.Duration(backlog)*tick)
			continue
		}
		lag.end(cp, false)
		if cp.videoQ != nil {
			var pic *yuvFrame
			// Compose the newest picture owed; ones already superseded by
			// a later deadline are repeats (catching up after a stall).
			// With every buffer queued the encoder is behind, and that is
			// the reason reported even for a tick the clock is late for:
			// on a busy machine the clock wakes late often, and the repeats
			// an encoder stall causes would be blamed on the clock.
			switch {
			case final:
				cp.repeated(repeatStop, tick)
			case len(cp.free) == 0:
				cp.repeated(repeatEncoder, tick)
			case late >= tick:
				cp.repeated(repeatLate, tick)
			default:
				pic = <-cp.free // only this goroutine takes buffers
				cp.canvasMu.Lock()
				cp.compose()
				copy(pic.buf, cp.canvas.buf)
				cp.canvasMu.Unlock()
			}
			select {
			case cp.videoQ <- pic:
			default:
				cp.fail(errors.New("encoder too slow: video queue full"))
				return
			}
		}
		samples := int(48000*(n+1)/int64(rate) - 48000*n/int64(rate))
		select {
		case cp.audioQ <- cp.mix(mix[:samples]):
		default:
			cp.fail(errors.New("encoder stopped reading audio"))
			return
		}
		cp.frames.Add(1)
	}
}

func (cp *composer) repeated(reason string, d time.Duration) {
	if cp.c.onRepeated != nil {
		cp.c.onRepeated(reason, d)
	}
}

// lagEpisode is a run of dropped ticks, reported once when it begins and
// once when it ends.
type lagEpisode struct {
	active bool
	ticks  int64
}

func (l *lagEpisode) drop(cp *composer, ticks int64, who string, behind time.Duration) {
	if !l.active {
		l.active = true
		cp.log.Warn("egress: behind real time, dropping media until it catches up", "behind", who, "by", behind.Round(time.Millisecond))
	}
	l.ticks += ticks
	if cp.c.onDropped != nil {
		cp.c.onDropped(cp.ticksTime(ticks))
	}
}

func (l *lagEpisode) end(cp *composer, stopping bool) {
	if !l.active {
		return
	}
	d := cp.ticksTime(l.ticks)
	if stopping {
		cp.log.Warn("egress: stopped while behind real time", "dropped", d.Round(time.Millisecond))
	} else {
		cp.log.Info("egress: caught up with real time", "dropped", d.Round(time.Millisecond))
	}
	*l = lagEpisode{}
}

// writeVideo feeds the encoder's video input; a nil picture repeats the
// previous one.
func (cp *composer) writeVideo(w io.WriteCloser) {
	defer cp.wg.Done()
	defer w.Close()
	var last *yuvFrame
	broken := false
	for pic := range cp.videoQ {
		if pic == nil {
			pic = last
		} else if last != nil && last != pic {
			cp.free <- last
		}
		last = pic
		if pic == nil || broken {
			continue
		}
		if _, err := w.Write(pic.buf); err != nil {
			broken = true // keep draining so the clock never blocks
			if !cp.stopping() {
				cp.wg.Add(1)
				go cp.failInput(fmt.Errorf("encoder input: %w", err))
			}
			continue
		}
		cp.progress.Store(cp.c.now().UnixNano())
	}
}

func (cp *composer) writeAudio(w io.WriteCloser) {
	defer cp.wg.Done()
	defer w.Close()
	broken := false
	for b := range cp.audioQ {
		if broken {
			continue
		}
		if _, err := w.Write(b); err != nil {
			broken = true
			if !cp.stopping() {
				cp.wg.Add(1)
				go cp.failInput(fmt.Errorf("encoder audio input: %w", err))
			}
			continue
		}
		cp.progress.Store(cp.c.now().UnixNano())
	}
}

// mix sums every audio source into stereo s16le.
func (cp *composer) mix(acc []int32) []byte {
	clear(acc)
	cp.mu.Lock()
	for _, a := range cp.audios {
		a.take(acc)
	}
	cp.mu.Unlock()
	out := make([]byte, len(acc)*4)
	for i, s := range acc {
		s = max(min(s, 32767), -32768)
		binary.LittleEndian.PutUint16(out[4*i:], uint16(int16(s)))
		binary.LittleEndian.PutUint16(out[4*i+2:], uint16(int16(s)))
	}
	return out
}

// compose draws the current layout into the canvas (canvasMu held),
// skipping the work when neither the layout nor any picture changed.
func (cp *composer) compose() {
	cp.mu.Lock()
	tiles, gen := cp.tiles, cp.layoutGen
	srcs := make([]*videoSource, len(tiles))
	for i, t := range tiles {
		if t.trackID != "" {
			srcs[i] = cp.videos[t.participantID+"/"+t.trackID]
		}
	}
	cp.mu.Unlock()
	seqs := make(map[string]uint64, len(tiles))
	changed := gen != cp.drawn.gen || cp.drawn.seqs == nil
	for i, s := range srcs {
		if s != nil && !tiles[i].muted {
			s.withLatest(func(_ *yuvFrame, seq uint64) { seqs[tiles[i].key()] = seq })
			if seqs[tiles[i].key()] != cp.drawn.seqs[tiles[i].key()] {
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	if gen != cp.drawn.gen {
		cp.canvas.fill(image.Rect(0, 0, cp.w, cp.h), cp.theme.bg)
	}
	for i, t := range tiles {
		drew := false
		if s := srcs[i]; s != nil && !t.muted {
			s.withLatest(func(pic *yuvFrame, _ uint64) {
				if pic == nil {
					return
				}
				r := fitRect(t.rect, pic.w, pic.h)
				if r != t.rect {
					cp.canvas.fill(t.rect, cp.theme.bg)
				}
				cp.canvas.blit(r, pic)
				drew = true
			})
		}
		if !drew {
			cp.placeholder(t)
		}
		if t.speaking && cp.c.cfg.Layout.Type != egressapi.LayoutSpotlight && len(tiles) > 1 {
			cp.border(t.rect, cp.theme.accent)
		}
	}
	cp.drawn = drawState{gen: gen, seqs: seqs}
}

// placeholder draws a tile without video: the tile colour and a square
// in a colour of the participant's own.
func (cp *composer) placeholder(t tile) {
	cp.canvas.fill(t.rect, cp.theme.tile)
	side := even(min(t.rect.Dx(), t.rect.Dy()) / 3)
	c := t.rect.Min.Add(t.rect.Size().Div(2))
	h := fnv.New32a()
	h.Write([]byte(t.participantID))
	v := h.Sum32()
	cp.canvas.fill(image.Rect(c.X-side/2, c.Y-side/2, c.X+side/2, c.Y+side/2), rgb(uint8(80+v%120), uint8(80+(v>>8)%120), uint8(80+(v>>16)%120)))
}

func (cp *composer) border(r image.Rectangle, c yuvColor) {
	const b = 4
	cp.canvas.fill(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+b), c)
	cp.canvas.fill(image.Rect(r.Min.X, r.Max.Y-b, r.Max.X, r.Max.Y), c)
	cp.canvas.fill(image.Rect(r.Min.X, r.Min.Y, r.Min.X+b, r.Max.Y), c)
	cp.canvas.fill(image.Rect(r.Max.X-b, r.Min.Y, r.Max.X, r.Max.Y), c)
}

// snapshot copies the current picture (nil for audio-only jobs).
func (cp *composer) snapshot() *yuvFrame {
	if cp.audioOnly {
		return nil
	}
	cp.canvasMu.Lock()
	defer cp.canvasMu.Unlock()
	return cp.canvas.clone()
}

// emptySince reports since when the room has been empty (zero if not).
func (cp *composer) emptySince() time.Time {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.emptyFor
}

// layoutHistory returns the layout changes so far.
func (cp *composer) layoutHistory() []layoutChange {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]layoutChange(nil), cp.history...)
}

// finish stops the clock, lets the encoder drain and finish its outputs,
// and closes every source.
func (cp *composer) finish(timeout time.Duration) error {
	cp.stopOnce.Do(func() { close(cp.stop) })
	drained := make(chan struct{})
	go func() {
		cp.wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(timeout):
		cp.enc.kill() // stuck: the writers' pending writes fail
		<-drained
	}
	cp.enc.closeInputs()
	err := cp.enc.wait(timeout)
	cp.c.env.cpu.add(cp.enc)
	cp.closeSources()
	return err
}

// abort kills the encoder at once (the job failed).
func (cp *composer) abort() {
	cp.stopOnce.Do(func() { close(cp.stop) })
	if cp.enc != nil {
		cp.enc.kill()
		cp.c.env.cpu.add(cp.enc)
	}
	cp.wg.Wait()
	cp.closeSources()
}

func (cp *composer) closeSources() {
	cp.closers.Wait()
	cp.mu.Lock()
	var all []interface{ close() }
	for k, v := range cp.videos {
		all = append(all, v)
		delete(cp.videos, k)
	}
	for k, a := range cp.audios {
		all = append(all, a)
		delete(cp.audios, k)
	}
	cp.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.close()
		}()
	}
	wg.Wait()
}

// describe renders tiles for logs and test failures.
func describe(ts []tile) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "[%s %v muted=%v main=%v speaking=%v] ", t.key(), t.rect, t.muted, t.main, t.speaking)
	}
	return b.String()
}
