package sfu

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// retiredTotals keeps the counts of forwarders that went away, so the
// exported counters never go backwards when participants leave.
type retiredTotals struct {
	packets, bytes, nacks, plis, retransmits atomic.Uint64
	skips                                    [nSkipReasons]atomic.Uint64
}

// Skip reasons, the label values of meridian_sfu_forward_skips_total.
const (
	skipNotConnected = iota
	skipNoKeyframe
	skipMunger
	skipWriteError
	nSkipReasons
)

var skipReasonNames = [nSkipReasons]string{"not-connected", "waiting-keyframe", "duplicate-or-old", "write-error"}

func (s *outboundStats) skipCounts() [nSkipReasons]uint64 {
	return [nSkipReasons]uint64{s.skipNotConnected.Load(), s.skipNoKeyframe.Load(), s.skipMunger.Load(), s.writeErrors.Load()}
}

func (s *SFU) retire(f *Forwarder) {
	s.retired.packets.Add(f.stats.packets.Load())
	s.retired.bytes.Add(f.stats.bytes.Load())
	s.retired.nacks.Add(f.stats.nacks.Load())
	s.retired.plis.Add(f.stats.plis.Load())
	s.retired.retransmits.Add(f.stats.retransmits.Load())
	for i, n := range f.stats.skipCounts() {
		s.retired.skips[i].Add(n)
	}
}

var (
	descRooms        = prometheus.NewDesc("meridian_sfu_rooms", "Rooms on this edge.", nil, nil)
	descParticipants = prometheus.NewDesc("meridian_sfu_participants", "Participants on this edge.", nil, nil)
	descTracks       = prometheus.NewDesc("meridian_sfu_tracks", "Published tracks on this edge.", nil, nil)
	descEgress       = prometheus.NewDesc("meridian_sfu_egress_bits_per_second", "Current forwarded bitrate.", nil, nil)
	descPackets      = prometheus.NewDesc("meridian_sfu_forwarded_packets_total", "RTP packets forwarded to subscribers, including cascade legs to other edges (meridian_cascade_packets_total counts those alone).", nil, nil)
	descBytes        = prometheus.NewDesc("meridian_sfu_forwarded_bytes_total", "RTP bytes forwarded to subscribers, including cascade legs to other edges.", nil, nil)
	descNACKs        = prometheus.NewDesc("meridian_sfu_nacks_received_total", "Sequence numbers NACKed by subscribers.", nil, nil)
	descPLIs         = prometheus.NewDesc("meridian_sfu_plis_received_total", "Keyframe requests (PLI/FIR) from subscribers.", nil, nil)
	descSkips        = prometheus.NewDesc("meridian_sfu_forward_skips_total", "Packets of a subscriber's layer that were not forwarded, by reason.", []string{"reason"}, nil)
	descRetransmits  = prometheus.NewDesc("meridian_sfu_retransmitted_packets_total", "Packets resent to subscribers from the retransmission buffers (answers to NACKs).", nil, nil)
	descSendCalls    = prometheus.NewDesc("meridian_sfu_udp_send_calls_total", "sendmmsg and sendto calls on the edge's media sockets (cascade legs have sockets of their own and are not counted).", nil, nil)
	descSentDgrams   = prometheus.NewDesc("meridian_sfu_udp_sent_datagrams_total", "Datagrams those calls sent; divided by the calls, how well fan-outs are batched.", nil, nil)
	descSendErrors   = prometheus.NewDesc("meridian_sfu_udp_send_errors_total", "Datagrams the kernel refused in batched sends on the media sockets.", nil, nil)
	descKeyframes    = prometheus.NewDesc("meridian_sfu_keyframe_requests_total", "Keyframe requests (PLI) the edge made to publishers (for a relayed track, to the edge it comes from), by outcome: sent, or deferred by the per-layer limit (at most one per KeyframeInterval while unanswered) and sent later or merged with the next.", []string{"outcome"}, nil)
	descDirectSRTP   = prometheus.NewDesc("meridian_sfu_direct_srtp_packets_total", "RTP packets to subscribers the edge encrypted itself (direct SRTP) rather than through pion's send path.", nil, nil)
)

// Collector exports SFU metrics computed at scrape time (nothing on the
// packet path beyond the per-forwarder counters that already exist).
func (s *SFU) Collector() prometheus.Collector { return sfuCollector{s} }

type sfuCollector struct{ s *SFU }

func (c sfuCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRooms, descParticipants, descTracks, descEgress, descPackets, descBytes, descNACKs, descPLIs, descSkips,
		descRetransmits, descSendCalls, descSentDgrams, descSendErrors, descDirectSRTP, descKeyframes} {
		ch <- d
	}
}

func (c sfuCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	l := s.Load()
	packets, bytes := s.retired.packets.Load(), s.retired.bytes.Load()
	nacks, plis, rtx := s.retired.nacks.Load(), s.retired.plis.Load(), s.retired.retransmits.Load()
	var skips [nSkipReasons]uint64
	for i := range skips {
		skips[i] = s.retired.skips[i].Load()
	}
	for _, r := range s.roomList() {
		for _, p := range r.all() {
			if p.sub == nil {
				continue
			}
			for _, f := range p.sub.forwarders() {
				packets += f.stats.packets.Load()
				bytes += f.stats.bytes.Load()
				nacks += f.stats.nacks.Load()
				plis += f.stats.plis.Load()
				rtx += f.stats.retransmits.Load()
				for i, n := range f.stats.skipCounts() {
					skips[i] += n
				}
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(l.Rooms))
	ch <- prometheus.MustNewConstMetric(descParticipants, prometheus.GaugeValue, float64(l.Participants))
	ch <- prometheus.MustNewConstMetric(descTracks, prometheus.GaugeValue, float64(l.Tracks))
	ch <- prometheus.MustNewConstMetric(descEgress, prometheus.GaugeValue, float64(l.EgressBps))
	ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(packets))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(descNACKs, prometheus.CounterValue, float64(nacks))
	ch <- prometheus.MustNewConstMetric(descPLIs, prometheus.CounterValue, float64(plis))
	for i, n := range skips {
		ch <- prometheus.MustNewConstMetric(descSkips, prometheus.CounterValue, float64(n), skipReasonNames[i])
	}
	ch <- prometheus.MustNewConstMetric(descRetransmits, prometheus.CounterValue, float64(rtx))
	ch <- prometheus.MustNewConstMetric(descKeyframes, prometheus.CounterValue, float64(s.keyframes.sent.Load()), "sent")
	ch <- prometheus.MustNewConstMetric(descKeyframes, prometheus.CounterValue, float64(s.keyframes.deferred.Load()), "deferred")
	if b := s.media.batch; b != nil {
		ch <- prometheus.MustNewConstMetric(descSendCalls, prometheus.CounterValue, float64(b.syscalls.Load()))
		ch <- prometheus.MustNewConstMetric(descSentDgrams, prometheus.CounterValue, float64(b.packets.Load()))
		ch <- prometheus.MustNewConstMetric(descSendErrors, prometheus.CounterValue, float64(b.errors.Load()))
		ch <- prometheus.MustNewConstMetric(descDirectSRTP, prometheus.CounterValue, float64(b.direct.Load()))
	}
}
