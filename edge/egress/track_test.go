package egress

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// The trackReader is driven here through its tap side (WriteRTP) with a
// hand-moved clock: where each frame is placed depends only on the RTP
// timestamps and the arrival times the test gives, and finish hands over
// everything written before it, so no test waits on a goroutine.

// opusPacket is a 20 ms CELT Opus packet (TOC config 31, one frame).
var opusPacket = []byte{31 << 3, 0xaa, 0xbb, 0xcc}

type readerRun struct {
	now    time.Time
	origin time.Time
	r      *trackReader

	mu     sync.Mutex
	frames []frame
	seq    uint16
}

func newReaderRun() *readerRun {
	rr := &readerRun{origin: time.Unix(1_000_000, 0)}
	rr.now = rr.origin
	rr.r = newTrackReader(wire.TrackInfo{Kind: "audio"}, codecOpus, 48000, rr.origin,
		func() time.Time { return rr.now }, // only called from the test goroutine (WriteRTP)
		func(f frame) {
			rr.mu.Lock()
			rr.frames = append(rr.frames, f)
			rr.mu.Unlock()
		})
	return rr
}

// send hands the reader a packet with RTP timestamp ts at arrival time at
// (since the origin).
func (rr *readerRun) send(t *testing.T, ts uint32, at time.Duration) {
	t.Helper()
	rr.now = rr.origin.Add(at)
	h := rtp.Header{Version: 2, SequenceNumber: rr.seq, Timestamp: ts, Marker: true}
	rr.seq++
	if _, err := rr.r.WriteRTP(&h, opusPacket); err != nil {
		t.Fatal(err)
	}
}

func (rr *readerRun) result() []frame {
	rr.r.finish()
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.frames
}

// A sender whose RTP clock runs at half the real rate (20 ms packets
// stamped 10 ms apart) is placed on the wall clock: its frames stay
// within driftMax + driftWindow of their arrival instead of falling
// behind by half the elapsed time, and never ahead of it.
func TestTrackReaderFollowsASlowSenderClock(t *testing.T) {
	rr := newReaderRun()
	rr.r.start()
	const n = 200 // 4 s
	for i := 0; i < n; i++ {
		rr.send(t, uint32(i*480), time.Duration(i)*20*time.Millisecond)
	}
	frames := rr.result()
	if len(frames) != n {
		t.Fatalf("%d frames out of %d", len(frames), n)
	}
	for i, f := range frames {
		arrival := time.Duration(i) * 20 * time.Millisecond
		if lag := arrival - f.pts; lag < 0 || lag > driftMax+driftWindow {
			t.Fatalf("frame %d (arrived at %v) placed at %v", i, arrival, f.pts)
		}
	}
	t.Logf("last frame arrived at %v, placed at %v", time.Duration(n-1)*20*time.Millisecond, frames[n-1].pts)
}

// A network stall delays a run of frames, which then arrive at once,
// followed by frames on time: that is no slow clock, and every frame
// keeps its RTP place. The stall starts at every frame of a window, so
// it also starts right after a window ended.
func TestTrackReaderKeepsItsPlacesThroughAStall(t *testing.T) {
	const stall = time.Second
	perWindow := int(driftWindow / (20 * time.Millisecond))
	for start := 30; start < 30+perWindow+2; start++ {
		rr := newReaderRun()
		rr.r.start()
		const n = 150
		for i := 0; i < n; i++ {
			at := time.Duration(i) * 20 * time.Millisecond
			if i >= start && at < time.Duration(start)*20*time.Millisecond+stall {
				at = time.Duration(start)*20*time.Millisecond + stall // held by the stall
			}
			rr.send(t, uint32(i*960), at)
		}
		frames := rr.result()
		if len(frames) != n {
			t.Fatalf("stall at frame %d: %d frames out of %d", start, len(frames), n)
		}
		for i, f := range frames {
			if d := f.pts - frames[0].pts; d != time.Duration(i)*20*time.Millisecond {
				t.Fatalf("stall at frame %d: frame %d placed %v after the first, want %v", start, i, d, time.Duration(i)*20*time.Millisecond)
			}
		}
	}
}

// finish writes every frame that had arrived, the queued ones and the
// last one (which the samplebuilder holds until the next one starts).
func TestTrackReaderFinishWritesWhatArrived(t *testing.T) {
	rr := newReaderRun()
	const n = 100
	for i := 0; i < n; i++ {
		rr.send(t, uint32(i*960), time.Duration(i)*20*time.Millisecond) // queued before the reader runs
	}
	rr.r.start()
	frames := rr.result()
	if len(frames) != n {
		t.Fatalf("%d frames written out of %d that had arrived", len(frames), n)
	}
	if want := time.Duration(n-1) * 20 * time.Millisecond; frames[n-1].pts != want {
		t.Fatalf("last frame at %v, want %v", frames[n-1].pts, want)
	}
}
