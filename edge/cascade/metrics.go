package cascade

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descLegs    = prometheus.NewDesc("meridian_cascade_legs", "Cascade relay legs by remote edge and direction (in: we pull its media; out: it pulls ours) and state (connected; connecting; idle: up, but no track to carry yet; events: up, room events only, as the pulling edge has no subscriber).", []string{"peer", "direction", "state"}, nil)
	descPackets = prometheus.NewDesc("meridian_cascade_packets_total", "RTP packets on cascade legs, by remote edge and direction.", []string{"peer", "direction"}, nil)
	descBytes   = prometheus.NewDesc("meridian_cascade_bytes_total", "RTP bytes on cascade legs, by remote edge and direction.", []string{"peer", "direction"}, nil)
	descBitrate = prometheus.NewDesc("meridian_cascade_bits_per_second", "Current bitrate on cascade legs, by remote edge and direction.", []string{"peer", "direction"}, nil)
	descRTT     = prometheus.NewDesc("meridian_cascade_rtt_seconds", "Round-trip time of the legs this edge serves, by remote edge (from receiver reports).", []string{"peer"}, nil)
)

// metrics exports leg figures computed at scrape time; counters of legs
// that ended are kept so totals never go backwards.
type metrics struct {
	m          *Manager
	refused    *prometheus.CounterVec
	legsOpened *prometheus.CounterVec

	mu      sync.Mutex
	retired map[[2]string][2]uint64 // (peer, direction) -> packets, bytes
}

func newMetrics(m *Manager) *metrics {
	return &metrics{m: m, retired: map[[2]string][2]uint64{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_cascade_refused_total",
			Help: "Cascade legs refused, by reason (ticket, proof, stale, protocol, peer-proof)."}, []string{"reason"}),
		legsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_cascade_legs_opened_total",
			Help: "Cascade legs set up, by direction."}, []string{"direction"}),
	}
}

func (x *metrics) retire(li LegInfo) {
	x.mu.Lock()
	k := [2]string{li.PeerEdgeID, li.Direction}
	v := x.retired[k]
	x.retired[k] = [2]uint64{v[0] + li.Stats.Packets, v[1] + li.Stats.Bytes}
	x.mu.Unlock()
}

func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLegs, descPackets, descBytes, descBitrate, descRTT} {
		ch <- d
	}
	x.refused.Describe(ch)
	x.legsOpened.Describe(ch)
}

func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	type agg struct {
		up, down, idle, events int
		packets, bytes         uint64
		bitrate                float64
		rtt                    float64
		rttN                   int
	}
	byKey := map[[2]string]*agg{}
	get := func(k [2]string) *agg {
		a := byKey[k]
		if a == nil {
			a = &agg{}
			byKey[k] = a
		}
		return a
	}
	x.mu.Lock()
	for k, v := range x.retired {
		a := get(k)
		a.packets, a.bytes = v[0], v[1]
	}
	x.mu.Unlock()
	for _, li := range x.m.Legs() {
		a := get([2]string{li.PeerEdgeID, li.Direction})
		switch {
		case li.Connected:
			a.up++
		case li.EventsOnly:
			a.events++
		case li.Idle:
			a.idle++
		default:
			a.down++
		}
		a.packets += li.Stats.Packets
		a.bytes += li.Stats.Bytes
		a.bitrate += li.Stats.Bitrate
		if li.Stats.RTTMs > 0 {
			a.rtt += li.Stats.RTTMs / 1000
			a.rttN++
		}
	}
	for k, a := range byKey {
		ch <- prometheus.MustNewConstMetric(descLegs, prometheus.GaugeValue, float64(a.up), k[0], k[1], "connected")
		ch <- prometheus.MustNewConstMetric(descLegs, prometheus.GaugeValue, float64(a.down), k[0], k[1], "connecting")
		ch <- prometheus.MustNewConstMetric(descLegs, prometheus.GaugeValue, float64(a.idle), k[0], k[1], "idle")
		ch <- prometheus.MustNewConstMetric(descLegs, prometheus.GaugeValue, float64(a.events), k[0], k[1], "events")
		ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(a.packets), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(a.bytes), k[0], k[1])
		ch <- prometheus.MustNewConstMetric(descBitrate, prometheus.GaugeValue, a.bitrate, k[0], k[1])
		if k[1] == "out" && a.rttN > 0 {
			ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, a.rtt/float64(a.rttN), k[0])
		}
	}
	x.refused.Collect(ch)
	x.legsOpened.Collect(ch)
}
