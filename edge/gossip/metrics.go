package gossip

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports a pool's metrics, read at scrape time from the values
// the pool keeps anyway (transport counters, member table, atomic counters),
// so nothing is counted twice and no callback touches Prometheus.
type collector struct {
	p *Pool

	bytes, members, metaErrors, refused, published *prometheus.Desc
}

func newCollector(p *Pool) *collector {
	return &collector{
		p: p,
		bytes: prometheus.NewDesc("meridian_gossip_bytes_total",
			"Gossip bytes of this edge's memberlist pool (UDP packets and TCP streams), by direction (sent, received).",
			[]string{"direction"}, nil),
		members: prometheus.NewDesc("meridian_gossip_members",
			"Members of the region's pool as this edge sees them (itself included), by state (alive, suspect, dead, left).",
			[]string{"state"}, nil),
		metaErrors: prometheus.NewDesc("meridian_gossip_meta_errors_total",
			"Node meta refused by the meta ticker (too large or invalid); the last good meta stays published.",
			nil, nil),
		published: prometheus.NewDesc("meridian_gossip_meta_published_total",
			"Node meta publications (each is an alive message memberlist spreads to the whole region).",
			nil, nil),
		refused: prometheus.NewDesc("meridian_gossip_refused_total",
			"Alive or join messages refused because the member is in another region or its meta is unreadable.",
			nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.members
	ch <- c.metaErrors
	ch <- c.refused
	ch <- c.published
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	sent, recv := c.p.Traffic()
	per, _ := c.p.members.counts() // lock released before any send below
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(sent), "sent")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(recv), "received")
	for i, s := range States {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(per[i]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(c.metaErrors, prometheus.CounterValue, float64(c.p.metaErrors.Load()))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(c.p.refused.Load()))
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(c.p.published.Load()))
}

// registration remembers what to unregister on Close.
type registration struct {
	reg prometheus.Registerer
	c   prometheus.Collector
}

func register(reg prometheus.Registerer, c prometheus.Collector) (*registration, error) {
	if reg == nil {
		return nil, nil
	}
	if err := reg.Register(c); err != nil {
		return nil, errors.Join(errors.New("gossip: registering metrics"), err)
	}
	return &registration{reg: reg, c: c}, nil
}

func (r *registration) unregister() {
	if r != nil {
		r.reg.Unregister(r.c)
	}
}
