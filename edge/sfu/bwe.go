package sfu

import (
	"math"
	"sync"
	"sync/atomic"
)

// Transport-wide congestion control for one subscriber PeerConnection,
// replacing pion's gcc and TWCC header interceptors on the send path (gcc
// allocated an attributes map and a history entry per packet, and its
// NoOp pacer held one lock across SRTP and sendto). The forwarders stamp a
// transport-wide sequence number into a reused header and record the send
// time in a fixed ring; the subscriber's transport-cc feedback is decoded
// in place (walkTWCC) and folded into a small estimator. Nothing here
// allocates per packet or per feedback message.
//
// The estimate only steers simulcast layer selection (selectLayersFor), so
// it is deliberately simple, after GCC's shape: a delay signal (queueing
// delay over the recent minimum one-way delay), a loss signal, and an
// additive-multiplicative rate controller bounded by the configured
// bitrates. Without probing it grows slowly (8 %/s) and falls fast.

// twccHistory is the send-history ring (packets). Feedback comes every
// 50-100 ms (browsers), so a packet must stay findable for a round trip
// plus that interval. 1024 packets are 1.2 s at the highest rate a
// subscriber is allowed (DefaultConfig's MaxBitrate, 8 Mbit/s, is about
// 830 video packets/s of 1200 B, plus 50 audio), 4-5 s at a typical
// 2 Mbit/s: more than the feedback delay of any path worth estimating. An
// acknowledgement for a packet already overwritten is ignored (ack checks
// the sequence number). 8 kB per subscriber (was 16 with 2048).
const twccHistory = 1024

// twccSent is one sent packet in one word, so a forwarder writes it with
// one atomic store and feedback never sees half of it: the transport
// sequence number (bits 48-63), the size in bytes (bits 32-47, never 0)
// and the send time in µs since monoEpoch modulo 2^32 (71 minutes, far
// longer than any feedback delay; unwrapped against the feedback's time).
type twccSent struct{ v atomic.Uint64 }

// Estimator tuning.
const (
	bweOveruseUs    = 30_000 // queueing delay that means the path is congested
	bweUnderuseUs   = 15_000 // below this (and little loss) the estimate may grow
	bweHighLoss     = 0.10
	bweLowLoss      = 0.02
	bweIncrease     = 0.08 // per second
	bweBackoff      = 0.85 // of the acknowledged rate on overuse
	bweBaseWindowNs = 5e9  // one-way delay minimum is taken over 5-10 s
	bweRateWindowNs = 500e6
)

type twccSender struct {
	next atomic.Uint32
	hist [twccHistory]twccSent

	target atomic.Int64 // bit/s

	mu sync.Mutex
	e  bweState
}

type bweState struct {
	est, min, max float64

	lastUpdate int64 // ns (mono) of the last estimate change

	// One-way delay minimum (µs, receiver clock minus our clock, so offset
	// by an unknown constant) over the current and the previous window.
	curMin, prevMin int64
	winStart        int64

	// Acknowledged rate over ~bweRateWindowNs of arrivals.
	rateBytes     int64
	rateStartUs   int64
	rateLastUs    int64
	acked         float64 // bit/s, 0 until measured
	haveRateStart bool

	// scratch for one feedback message
	fb    feedbackSum
	nowUs int64 // the feedback's arrival, µs since monoEpoch
}

type feedbackSum struct {
	total, lost int
	owdSum      int64
	owdMin      int64
	owdN        int
}

func newTWCCSender(initial, minRate, maxRate int) *twccSender {
	t := &twccSender{}
	t.e = bweState{est: float64(initial), min: float64(minRate), max: float64(maxRate), curMin: math.MaxInt64, prevMin: math.MaxInt64}
	t.target.Store(int64(initial))
	return t
}

// nextSeq reserves the transport-wide sequence number of the next packet.
func (t *twccSender) nextSeq() uint16 { return uint16(t.next.Add(1) - 1) }

// sent records that packet seq of size bytes left at at (ns since monoEpoch).
func (t *twccSender) sent(seq uint16, size int, at int64) {
	size = min(max(size, 1), 0xffff)
	t.hist[seq%twccHistory].v.Store(uint64(seq)<<48 | uint64(size)<<32 | uint64(uint32(at/1000)))
}

// Estimate is the current target bitrate (bit/s).
func (t *twccSender) Estimate() int { return int(t.target.Load()) }

// onFeedback folds one transport-cc feedback FCI in; now is ns since monoEpoch.
func (t *twccSender) onFeedback(fci []byte, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := &t.e
	e.fb = feedbackSum{owdMin: math.MaxInt64}
	e.nowUs = now / 1000
	if walkTWCC(fci, t.ack) != nil {
		return
	}
	e.update(now)
	t.target.Store(int64(e.est))
}

// ack handles one packet status of a feedback message (t.mu held).
func (t *twccSender) ack(seq uint16, received bool, arrivalUs int64) {
	v := t.hist[seq%twccHistory].v.Load()
	if uint32(v>>32)&0xffff == 0 || uint16(v>>48) != seq {
		return // not ours, or too old
	}
	e := &t.e
	// The send time, unwrapped: the latest time at or before now with
	// these low 32 bits.
	sentUs := e.nowUs - int64(uint32(e.nowUs)-uint32(v))
	e.fb.total++
	if !received {
		e.fb.lost++
		return
	}
	owd := arrivalUs - sentUs
	e.fb.owdSum += owd
	e.fb.owdN++
	e.fb.owdMin = min(e.fb.owdMin, owd)
	size := int64(uint32(v>>32) & 0xffff)
	if !e.haveRateStart || arrivalUs < e.rateStartUs {
		e.haveRateStart, e.rateStartUs, e.rateLastUs, e.rateBytes = true, arrivalUs, arrivalUs, 0
	}
	e.rateBytes += size
	e.rateLastUs = max(e.rateLastUs, arrivalUs)
}

// update runs the rate controller on the feedback just summed up.
func (e *bweState) update(now int64) {
	fb := e.fb
	if fb.total == 0 {
		return
	}
	if span := e.rateLastUs - e.rateStartUs; span*1000 >= bweRateWindowNs {
		e.acked = float64(e.rateBytes*8) / (float64(span) / 1e6)
		e.haveRateStart = false
	}
	if now-e.winStart > bweBaseWindowNs {
		e.prevMin, e.curMin, e.winStart = e.curMin, math.MaxInt64, now
	}
	queueUs := int64(0)
	if fb.owdN > 0 {
		e.curMin = min(e.curMin, fb.owdMin)
		queueUs = fb.owdSum/int64(fb.owdN) - min(e.curMin, e.prevMin)
	}
	loss := float64(fb.lost) / float64(fb.total)
	dt := float64(now-e.lastUpdate) / 1e9
	if e.lastUpdate == 0 || dt > 1 {
		dt = 0.1
	}
	switch {
	case loss > bweHighLoss:
		e.est *= 1 - 0.5*loss
	case queueUs > bweOveruseUs:
		if e.acked > 0 {
			e.est = min(e.est, bweBackoff*e.acked)
		} else {
			e.est *= bweBackoff
		}
	case loss < bweLowLoss && queueUs < bweUnderuseUs:
		e.est *= 1 + bweIncrease*dt
	}
	e.est = min(max(e.est, e.min), e.max)
	e.lastUpdate = now
}
