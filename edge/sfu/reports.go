package sfu

import (
	"errors"
	"time"

	"github.com/pion/rtcp"
)

// reportInterval is how often a subscriber gets sender reports (RFC 3550
// allows more; browsers use them for A/V sync and, with the LSR/DLSR of
// their receiver reports, the edge learns the round trip).
const reportInterval = time.Second

// sendReports sends one compound RTCP packet with a sender report per
// forwarded stream (room goroutine). pion's report interceptor did this
// with a lock and counters updated on every packet; the forwarders already
// count packets and bytes, and the munger knows the last timestamp sent.
func (s *Subscriber) sendReports(fs []*Forwarder, now time.Time) {
	if !s.connected.Load() {
		return
	}
	var pkts []rtcp.Packet
	for _, f := range fs {
		if sr, ok := f.senderReport(now); ok {
			pkts = append(pkts, sr)
		}
	}
	if len(pkts) == 0 {
		return
	}
	if err := s.pc.WriteRTCP(pkts); err != nil && !errors.Is(err, errClosedPipe) {
		s.part.room.sfu.log.Debug("sfu: sender report write failed", "participant", s.part.id, "err", err)
	}
}

// senderReport describes what f has sent so far, with the RTP time of now
// extrapolated from the last packet at the codec's clock rate.
func (f *Forwarder) senderReport(now time.Time) (*rtcp.SenderReport, bool) {
	b := f.dt.b.Load()
	if b == nil {
		return nil, false
	}
	f.mu.Lock()
	started, lastTS, lastAt := f.munger.started, uint32(f.munger.outHighestTS), f.munger.lastArrival
	f.mu.Unlock()
	pk := f.stats.packets.Load()
	if !started || pk == 0 {
		return nil, false
	}
	rtpTime := lastTS
	if el := monoNow() - lastAt; el > 0 {
		rtpTime += uint32(uint64(el) * uint64(f.track.codec.ClockRate) / 1e9)
	}
	return &rtcp.SenderReport{
		SSRC:        b.ssrc,
		NTPTime:     ntpTime(now),
		RTPTime:     rtpTime,
		PacketCount: uint32(pk),
		OctetCount:  uint32(f.stats.bytes.Load() - 12*pk), // payload octets
	}, true
}

// ntpTime is t as a 64-bit NTP timestamp (RFC 3550 §4).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
