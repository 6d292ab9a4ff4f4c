package sfu

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// atomicFloat is a float64 readable from any goroutine.
type atomicFloat struct{ v atomic.Uint64 }

func (a *atomicFloat) Load() float64   { return math.Float64frombits(a.v.Load()) }
func (a *atomicFloat) Store(f float64) { a.v.Store(math.Float64bits(f)) }

// rateMeter turns a growing counter into a rate. update runs on the room's
// housekeeping goroutine only; Rate may be read anywhere.
type rateMeter struct {
	last   uint64
	lastAt time.Time
	rate   atomicFloat
}

func (r *rateMeter) update(now time.Time, total uint64) {
	if !r.lastAt.IsZero() {
		if dt := now.Sub(r.lastAt).Seconds(); dt > 0 {
			cur := float64(total-r.last) / dt
			prev := r.rate.Load()
			if prev == 0 {
				r.rate.Store(cur)
			} else {
				r.rate.Store(0.5*cur + 0.5*prev)
			}
		}
	}
	r.last, r.lastAt = total, now
}

// inboundStats are kept by one layer's reader goroutine (the only writer).
type inboundStats struct {
	packets  atomic.Uint64
	bytes    atomic.Uint64
	frames   atomic.Uint64
	firstExt atomic.Uint64
	highExt  atomic.Uint64
	width    atomic.Int32
	height   atomic.Int32
	jitter   atomicFloat // in seconds

	// reader-goroutine private
	started     bool
	lastTransit float64
	jit         float64

	bitrate rateMeter // bytes/s
	fps     rateMeter
}

func (s *inboundStats) onPacket(seq uint16, ts uint32, size int, arrival int64, clockRate uint32, marker bool) {
	s.packets.Add(1)
	s.bytes.Add(uint64(size))
	if marker {
		s.frames.Add(1)
	}
	if !s.started {
		s.started = true
		ext := seqBase + uint64(seq)
		s.firstExt.Store(ext)
		s.highExt.Store(ext)
	} else if ext := unwrap16(seq, s.highExt.Load()); ext > s.highExt.Load() {
		s.highExt.Store(ext)
	}
	if clockRate > 0 {
		// RFC 3550 §6.4.1 interarrival jitter, in seconds.
		transit := float64(arrival)/1e9 - float64(ts)/float64(clockRate)
		if s.lastTransit != 0 {
			d := math.Abs(transit - s.lastTransit)
			if d < 10 { // ignore timestamp jumps (source restarts)
				s.jit += (d - s.jit) / 16
				s.jitter.Store(s.jit)
			}
		}
		s.lastTransit = transit
	}
}

// lost is expected minus received packets (never negative).
func (s *inboundStats) lost() int64 {
	p := s.packets.Load()
	if p == 0 {
		return 0
	}
	expected := s.highExt.Load() - s.firstExt.Load() + 1
	if expected <= p {
		return 0
	}
	return int64(expected - p)
}

// outboundStats belong to one Forwarder.
type outboundStats struct {
	packets atomic.Uint64
	bytes   atomic.Uint64
	frames  atomic.Uint64
	nacks   atomic.Uint64 // sequence numbers NACKed by the subscriber
	plis    atomic.Uint64
	// retransmits are packets resent from the retransmission buffer.
	retransmits atomic.Uint64
	// Packets of the forwarded layer that were not sent, by reason.
	skipNotConnected atomic.Uint64 // subscriber transport not up yet
	skipNoKeyframe   atomic.Uint64 // nothing forwarded yet on this track: waiting for a keyframe
	skipMunger       atomic.Uint64 // duplicate or too old
	writeErrors      atomic.Uint64
	totalLost        atomic.Int64
	fraction         atomicFloat // 0..1 from the latest receiver report
	jitter           atomicFloat // seconds
	rtt              atomicFloat // seconds

	bitrate rateMeter
}

// ntpMiddle returns the middle 32 bits of the NTP time of t.
func ntpMiddle(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return uint32((secs<<32 | frac) >> 16)
}

// onReport folds one RTCP reception report about this stream in.
func (s *outboundStats) onReport(r rtcp.ReceptionReport, now time.Time, clockRate uint32) {
	s.totalLost.Store(int64(r.TotalLost))
	s.fraction.Store(float64(r.FractionLost) / 256)
	if clockRate > 0 {
		s.jitter.Store(float64(r.Jitter) / float64(clockRate))
	}
	if r.LastSenderReport != 0 {
		rtt := ntpMiddle(now) - r.LastSenderReport - r.Delay
		if sec := float64(rtt) / 65536; sec < 10 {
			s.rtt.Store(sec)
		}
	}
}

// iceRTT is the round trip, in seconds, of the latest ICE consent check on
// pc's selected candidate pair (0 before one answered): pion's ICE agent
// sends a STUN binding request on it every 2 s (RFC 7675) and times the
// answer, whichever side offered. It is the round trip the edge measures
// on a publisher connection: RTCP gives none there (the client receives no
// media from the edge, so it sends no receiver reports to time), and on a
// subscriber connection it stands in until the first receiver report with
// an LSR has been timed.
func iceRTT(pc *webrtc.PeerConnection) float64 {
	if pc == nil {
		return 0
	}
	sctp := pc.SCTP()
	if sctp == nil {
		return 0
	}
	dt := sctp.Transport()
	if dt == nil {
		return 0
	}
	it := dt.ICETransport()
	// Until the transport starts (it leaves New), pion may still be setting
	// its gatherer, which GetSelectedCandidatePairStats reads unlocked.
	// A closed (or failed) agent answers with an error that pion logs at
	// ERROR level on every call: a participant on its way out has no RTT.
	if it == nil {
		return 0
	}
	switch it.State() {
	case webrtc.ICETransportStateNew, webrtc.ICETransportStateClosed, webrtc.ICETransportStateFailed:
		return 0
	}
	if pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
		return 0
	}
	st, ok := it.GetSelectedCandidatePairStats()
	if !ok || st.CurrentRoundTripTime <= 0 || st.CurrentRoundTripTime >= 10 {
		return 0
	}
	return st.CurrentRoundTripTime
}

// qualityScore maps loss, RTT and jitter to 0..5 (5 best), a MOS-like scale.
func qualityScore(lossFraction, rttSec, jitterSec float64) float64 {
	score := 5.0
	score -= math.Min(3, lossFraction*30)              // 10 % loss costs 3 points
	score -= math.Min(1.5, math.Max(0, rttSec-0.15)*3) // above 150 ms
	score -= math.Min(0.5, math.Max(0, jitterSec-0.03)*10)
	return math.Max(0, math.Round(score*10)/10)
}
