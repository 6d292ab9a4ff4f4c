package egress

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// Decoders turn one tapped track into raw media for the compositor: an
// ffmpeg per track reads the frames (IVF or Ogg on fd 3, written by the
// track's reader goroutine) and writes raw yuv420p pictures or 48 kHz mono
// s16le samples to stdout, which a goroutine of ours reads. One process
// per track keeps the composition free to change at any moment (a join is
// a new decoder, a leave closes one) — a single ffmpeg with a filter graph
// fixes its inputs at start.

// tally sums durations by key; safe for concurrent use.
type tally[K comparable] struct {
	mu    sync.Mutex
	byKey map[K]time.Duration
}

func (t *tally[K]) add(key K, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey == nil {
		t.byKey = map[K]time.Duration{}
	}
	t.byKey[key] += d
}

// snapshot is a copy of the sums.
func (t *tally[K]) snapshot() map[K]time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.byKey)
}

// cpuMeter sums the CPU time of finished child processes, in total and
// by role (encoder, video decoder, audio decoder, rtmp relay, mux, …).
type cpuMeter struct {
	ns     atomic.Int64
	byRole tally[string]
}

func (m *cpuMeter) add(p *proc) {
	if m != nil && p != nil {
		m.addRole(p.role, p.usage)
	}
}

func (m *cpuMeter) addRole(role string, d time.Duration) {
	if m == nil {
		return
	}
	m.ns.Add(int64(d))
	m.byRole.add(role, d)
}

func (m *cpuMeter) total() time.Duration {
	if m == nil {
		return 0
	}
	return time.Duration(m.ns.Load())
}

func (m *cpuMeter) roles() map[string]time.Duration { return m.byRole.snapshot() }

type decoderEnv struct {
	ffmpeg string
	log    *slog.Logger
	cpu    *cpuMeter
}

// videoSource is a decoded video track: the latest picture, at a fixed
// size chosen from the first key frame (no larger than the canvas).
type videoSource struct {
	env    decoderEnv
	info   wire.TrackInfo
	codec  codec
	boxW   int // largest output
	boxH   int
	reader *trackReader

	decMu sync.Mutex
	dec   *proc // owned by the reader goroutine; read under decMu by close
	ivf   *ivfWriter

	mu     sync.Mutex
	latest *yuvFrame // nil until the first picture
	seq    uint64    // pictures decoded

	wg sync.WaitGroup
}

func (v *videoSource) sink(f frame) {
	if v.dec == nil {
		if !f.key {
			if v.reader.tap != nil {
				v.reader.tap.RequestKeyframe()
			}
			return
		}
		if err := v.startDecoder(f); err != nil {
			v.env.log.Warn("egress: video decoder", "track", v.info.TrackID, "err", err)
			return
		}
	}
	if err := v.ivf.WriteFrame(f.data, f.pts); err != nil {
		// The decoder died (or is closing): restart it at the next key frame.
		v.decMu.Lock()
		d := v.dec
		v.dec = nil
		v.decMu.Unlock()
		d.kill()
		v.env.cpu.add(d)
		if v.reader.tap != nil {
			v.reader.tap.RequestKeyframe()
		}
	}
}

// outputSize fits the source into the box, even dimensions.
func outputSize(sw, sh, bw, bh int) (int, int) {
	if sw <= 0 || sh <= 0 {
		return even(bw), even(bh)
	}
	if sw <= bw && sh <= bh {
		return max(even(sw), 2), max(even(sh), 2)
	}
	if sw*bh > sh*bw {
		return even(bw), max(even(bw*sh/sw), 2)
	}
	return max(even(bh*sw/sh), 2), even(bh)
}

func (v *videoSource) startDecoder(f frame) error {
	w, h := outputSize(f.width, f.height, v.boxW, v.boxH)
	fourcc := "VP80"
	filter := "scale=" + strconv.Itoa(w) + ":" + strconv.Itoa(h)
	if v.codec == codecH264 {
		// Size unknown until decoded: fit into the box, letterboxed.
		fourcc = "H264"
		filter = fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2", w, h, w, h)
	}
	d, err := startProc(procSpec{
		name: "video decoder " + v.info.ParticipantID + "/" + v.info.TrackID,
		bin:  v.env.ffmpeg,
		args: []string{"-hide_banner", "-loglevel", "error", "-nostdin",
			"-threads", "1", "-probesize", "32", "-analyzeduration", "0", "-fflags", "nobuffer",
			"-f", "ivf", "-i", "pipe:3",
			"-an", "-vf", filter, "-pix_fmt", "yuv420p", "-fps_mode", "passthrough",
			"-flush_packets", "1", "-f", "rawvideo", "pipe:1"},
		inputs:     1,
		stdoutPipe: true,
	})
	if err != nil {
		return err
	}
	v.decMu.Lock()
	v.dec = d
	v.decMu.Unlock()
	v.ivf = newIVFWriter(d.inputs[0], fourcc, f.width, f.height)
	v.wg.Add(1)
	go v.readPictures(d, w, h)
	return nil
}

func (v *videoSource) readPictures(d *proc, w, h int) {
	defer v.wg.Done()
	defer d.stdout.Close()
	buf := newYUVFrame(w, h)
	for {
		if _, err := io.ReadFull(d.stdout, buf.buf); err != nil {
			return
		}
		v.mu.Lock()
		buf, v.latest = v.latest, buf
		v.seq++
		v.mu.Unlock()
		if buf == nil || buf.w != w || buf.h != h {
			buf = newYUVFrame(w, h)
		}
	}
}

// withLatest runs fn with the latest picture (nil before the first) under
// the source's lock.
func (v *videoSource) withLatest(fn func(*yuvFrame, uint64)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fn(v.latest, v.seq)
}

func (v *videoSource) close() {
	v.decMu.Lock()
	d := v.dec
	v.decMu.Unlock()
	if d != nil {
		d.closeInputs() // unblocks a reader stuck writing to it
	}
	v.reader.close()
	v.decMu.Lock()
	d = v.dec
	v.dec = nil
	v.decMu.Unlock()
	if d != nil {
		d.kill()
		v.env.cpu.add(d)
	}
	v.wg.Wait()
}

// audioSource is a decoded audio track: a jitter buffer of 48 kHz mono
// samples the mixer drains.
type audioSource struct {
	env    decoderEnv
	info   wire.TrackInfo
	reader *trackReader

	decMu sync.Mutex
	dec   *proc
	ogg   *oggOpusWriter

	mu     sync.Mutex
	buf    []int16
	primed bool

	wg sync.WaitGroup
}

// Jitter buffer bounds (samples at 48 kHz).
const (
	audioPrime  = 48 * 60  // start playing a track once 60 ms are buffered
	audioTarget = 48 * 100 // trim back to 100 ms …
	audioMax    = 48 * 300 // … when more than 300 ms pile up
)

func (a *audioSource) sink(f frame) {
	if a.dec == nil {
		d, err := startProc(procSpec{
			name: "audio decoder " + a.info.ParticipantID + "/" + a.info.TrackID,
			bin:  a.env.ffmpeg,
			args: []string{"-hide_banner", "-loglevel", "error", "-nostdin",
				"-probesize", "32", "-analyzeduration", "0", "-fflags", "nobuffer",
				"-f", "ogg", "-i", "pipe:3",
				"-vn", "-ac", "1", "-ar", "48000", "-flush_packets", "1", "-f", "s16le", "pipe:1"},
			inputs:     1,
			stdoutPipe: true,
		})
		if err != nil {
			a.env.log.Warn("egress: audio decoder", "track", a.info.TrackID, "err", err)
			return
		}
		a.decMu.Lock()
		a.dec = d
		a.decMu.Unlock()
		a.ogg = newOggOpusWriter(d.inputs[0], 1, 2)
		a.wg.Add(1)
		go a.readSamples(d)
	}
	if err := a.ogg.WritePacket(f.data, f.pts, f.dur); err != nil {
		a.decMu.Lock()
		d := a.dec
		a.dec = nil
		a.decMu.Unlock()
		d.kill()
		a.env.cpu.add(d)
	}
}

func (a *audioSource) readSamples(d *proc) {
	defer a.wg.Done()
	defer d.stdout.Close()
	raw := make([]byte, 960*2)
	for {
		n, err := io.ReadFull(d.stdout, raw)
		if n >= 2 {
			a.mu.Lock()
			for i := 0; i+1 < n; i += 2 {
				a.buf = append(a.buf, int16(binary.LittleEndian.Uint16(raw[i:])))
			}
			if len(a.buf) > audioMax {
				a.buf = append(a.buf[:0], a.buf[len(a.buf)-audioTarget:]...)
			}
			a.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// take adds up to n buffered samples into mix.
func (a *audioSource) take(mix []int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.primed {
		if len(a.buf) < audioPrime {
			return
		}
		a.primed = true
	}
	k := min(len(mix), len(a.buf))
	for i := 0; i < k; i++ {
		mix[i] += int32(a.buf[i])
	}
	if k < len(mix) {
		a.primed = false // underrun: wait for a cushion again
	}
	a.buf = a.buf[:copy(a.buf, a.buf[k:])]
}

func (a *audioSource) close() {
	a.decMu.Lock()
	d := a.dec
	a.decMu.Unlock()
	if d != nil {
		d.closeInputs()
	}
	a.reader.close()
	a.decMu.Lock()
	d = a.dec
	a.dec = nil
	a.decMu.Unlock()
	if d != nil {
		d.kill()
		a.env.cpu.add(d)
	}
	a.wg.Wait()
}
