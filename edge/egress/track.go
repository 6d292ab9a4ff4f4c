package egress

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	wire "github.com/meridian-video/meridian/shared/signal"
)

type codec uint8

const (
	codecUnknown codec = iota
	codecVP8
	codecH264
	codecOpus
)

func codecOf(mime string) codec {
	switch strings.ToLower(mime) {
	case "video/vp8":
		return codecVP8
	case "video/h264":
		return codecH264
	case "audio/opus":
		return codecOpus
	}
	return codecUnknown
}

func (c codec) video() bool { return c == codecVP8 || c == codecH264 }

// frame is one depacketized frame on the job's timeline.
type frame struct {
	data []byte
	pts  time.Duration // since the job's origin
	dur  time.Duration
	key  bool
	// width and height of a VP8 key frame (0 otherwise).
	width, height int
}

// trackReader turns the RTP packets of one tap into frames: packets are
// copied off the SFU's reader goroutine into a bounded queue (dropped when
// full: the SFU never waits for egress), reordered and reassembled by
// pion's samplebuilder on the reader's own goroutine, and stamped with
// their time since the job's origin: the arrival of the first frame
// anchors the track, RTP timestamps place the rest — as long as they keep
// up with the wall clock (see driftWindow).
type trackReader struct {
	info   wire.TrackInfo
	codec  codec
	clock  uint32
	tap    Tap
	origin time.Time
	now    func() time.Time
	sink   func(frame) // runs on the reader goroutine; may block

	in   chan arrivedPacket
	done chan struct{}
	wg   sync.WaitGroup

	dropped atomic.Uint64
	frames  atomic.Uint64
	// needKey drops video frames until the next keyframe after a loss.
	needKey atomic.Bool
	// drain: on close, the reader first writes what is queued (finish).
	drain atomic.Bool

	closeOnce sync.Once
}

// queue bound: about 1 s of 2.5 Mbit/s video.
const trackQueue = 256

// A sender's RTP clock need not follow the wall clock: a sender that is
// starved of CPU sends fewer frames than real time yet stamps each one a
// frame period after the last (pion's sample tracks do; the test
// publishers did, losing ticks with 2 CPU hogs beside them), so its RTP
// time falls behind. Placed by RTP time alone, such a track's file was
// shorter than the recording with no gap in it — the last seconds seemed
// lost — and drifted off the participant's other track. So the reader
// compares each frame's place with its arrival: when every frame of a
// driftWindow (of arrival time) arrived more than driftMax later than its
// place, the track is re-anchored by the smallest of those delays (a
// network or scheduling delay shows only on some frames: the least
// delayed frame of a window is the sender's clock). Frames are never
// placed earlier than before: the correction only moves forward, leaving
// a gap where the sender's clock lost time.
const (
	driftWindow = 500 * time.Millisecond
	driftMax    = 200 * time.Millisecond
)

func newTrackReader(info wire.TrackInfo, c codec, clock uint32, origin time.Time, now func() time.Time, sink func(frame)) *trackReader {
	return &trackReader{info: info, codec: c, clock: clock, origin: origin, now: now, sink: sink,
		in: make(chan arrivedPacket, trackQueue), done: make(chan struct{})}
}

// arrivedPacket is a queued packet and when the SFU handed it over (the
// reader's own goroutine may run late on a busy machine).
type arrivedPacket struct {
	p  *rtp.Packet
	at time.Time
}

// WriteRTP implements sfu.TapWriter: copy and enqueue, never block.
func (t *trackReader) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := &rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)}
	p.Header.Extensions = nil
	select {
	case <-t.done:
	case t.in <- arrivedPacket{p, t.now()}:
	default:
		if t.dropped.Add(1) == 1 || t.codec.video() {
			t.needKey.Store(true)
		}
	}
	return len(payload), nil
}

func (t *trackReader) start() {
	t.wg.Add(1)
	go t.run()
}

func (t *trackReader) run() {
	defer t.wg.Done()
	var sb *samplebuilder.SampleBuilder
	switch t.codec {
	case codecVP8:
		sb = samplebuilder.New(256, &codecs.VP8Packet{}, t.clock, samplebuilder.WithMaxTimeDelay(500*time.Millisecond))
	case codecH264:
		sb = samplebuilder.New(256, &codecs.H264Packet{}, t.clock, samplebuilder.WithMaxTimeDelay(500*time.Millisecond))
	case codecOpus:
		sb = samplebuilder.New(64, &codecs.OpusPacket{}, t.clock, samplebuilder.WithMaxTimeDelay(200*time.Millisecond))
	default:
		return
	}
	var (
		anchored  bool
		anchorPTS time.Duration // place of the first sample's RTP time
		extTS     int64         // extended RTP timestamp of the last sample, relative to the first
		lastTS    uint32
		lastPTS   time.Duration = -1
		winEnd    time.Duration // end of the current drift window (arrival time; 0: none yet)
		winLate   time.Duration // least lateness of the window's frames
	)
	// A frame's arrival is that of its first packet. The samplebuilder
	// hands a frame over only when the next one starts (a frame later, up
	// to seconds for a still screen share), so the arrivals of the last
	// RTP timestamps pushed are kept.
	var (
		arrivals [64]struct {
			ts uint32
			at time.Duration
		}
		nArr int
	)
	push := func(ap arrivedPacket) {
		at := ap.at.Sub(t.origin)
		if nArr == 0 || arrivals[(nArr-1)%len(arrivals)].ts != ap.p.Timestamp {
			arrivals[nArr%len(arrivals)].ts, arrivals[nArr%len(arrivals)].at = ap.p.Timestamp, at
			nArr++
		}
		sb.Push(ap.p)
	}
	arrivalOf := func(ts uint32) time.Duration {
		for i := nArr - 1; i >= 0 && i >= nArr-len(arrivals); i-- {
			if a := arrivals[i%len(arrivals)]; a.ts == ts {
				return a.at
			}
		}
		return arrivals[(nArr-1)%len(arrivals)].at // older than the kept ones: the latest
	}
	// pop hands the samplebuilder's complete frames to the sink.
	pop := func() {
		for s := sb.Pop(); s != nil; s = sb.Pop() {
			if len(s.Data) == 0 {
				continue
			}
			f := frame{data: s.Data, dur: s.Duration}
			switch t.codec {
			case codecVP8:
				f.key = s.Data[0]&0x01 == 0
				if f.key && len(s.Data) >= 10 && s.Data[3] == 0x9d && s.Data[4] == 0x01 && s.Data[5] == 0x2a {
					f.width = int(uint16(s.Data[6])|uint16(s.Data[7])<<8) & 0x3fff
					f.height = int(uint16(s.Data[8])|uint16(s.Data[9])<<8) & 0x3fff
				}
			case codecH264:
				f.key = h264Keyframe(s.Data)
			case codecOpus:
				f.key = true
				if d := opusDuration(s.Data); d > 0 {
					f.dur = d
				}
			}
			if t.codec.video() && (s.PrevDroppedPackets > 0 || t.needKey.Load()) {
				if !f.key {
					t.needKey.Store(true)
					if t.tap != nil {
						t.tap.RequestKeyframe()
					}
					continue
				}
				t.needKey.Store(false)
			}
			arrival := arrivalOf(s.PacketTimestamp)
			if !anchored {
				anchored = true
				anchorPTS, lastTS = arrival, s.PacketTimestamp
			}
			extTS += int64(int32(s.PacketTimestamp - lastTS))
			lastTS = s.PacketTimestamp
			rtpTime := time.Duration(extTS) * time.Second / time.Duration(t.clock)
			late := arrival - (anchorPTS + rtpTime)
			if winEnd == 0 {
				// A window starts at a frame, so one late frame after a
				// silence (a network stall) is never a window of its own.
				winEnd, winLate = arrival+driftWindow, late
			}
			winLate = min(winLate, late)
			if arrival >= winEnd {
				if winLate > driftMax {
					anchorPTS += winLate
				}
				winEnd = 0
			}
			f.pts = anchorPTS + rtpTime
			if f.pts <= lastPTS {
				f.pts = lastPTS + time.Millisecond
			}
			lastPTS = f.pts
			t.frames.Add(1)
			t.sink(f)
		}
	}
	for {
		select {
		case <-t.done:
			if !t.drain.Load() {
				return
			}
			for {
				select {
				case ap := <-t.in:
					push(ap)
					pop()
					continue
				default:
				}
				break
			}
			sb.Flush()
			pop()
			return
		case ap := <-t.in:
			push(ap)
			pop()
		}
	}
}

// finish is close for a recording: the frames that had arrived — still
// queued, or the last one the samplebuilder holds until the next starts —
// go to the sink first (a stop must not lose what had arrived).
func (t *trackReader) finish() {
	t.drain.Store(true)
	t.close()
}

// close detaches the tap and stops the reader (the sink is not called
// after close returns). Idempotent.
func (t *trackReader) close() {
	t.closeOnce.Do(func() {
		if t.tap != nil {
			t.tap.Close()
		}
		close(t.done)
		t.wg.Wait()
	})
}

// h264Keyframe reports whether an Annex-B access unit holds an IDR slice.
func h264Keyframe(b []byte) bool {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if t := b[i+3] & 0x1f; t == 5 {
				return true
			}
			i += 2
		}
	}
	return false
}
