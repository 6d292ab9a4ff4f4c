package webhooks

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome label values of meridian_webhook_deliveries_total.
const (
	outcomeDelivered = "delivered" // 2xx
	outcomeRetry     = "retry"     // failed attempt, another one scheduled
	outcomeFailed    = "failed"    // gave up (MaxAge, 410, refused, unknown secret)
)

type metrics struct {
	outcomes     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	depth        prometheus.Gauge
	inFlight     prometheus.Gauge
	recordErrors prometheus.Counter
	scanErrors   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meridian", Subsystem: "webhook", Name: "deliveries_total",
			Help: "Webhook delivery attempts by outcome: delivered, retry (another attempt scheduled), failed (given up).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "meridian", Subsystem: "webhook", Name: "attempt_duration_seconds",
			Help:    "Duration of webhook delivery attempts, by result class (2xx, 3xx, 4xx, 5xx, error).",
			Buckets: prometheus.DefBuckets,
		}, []string{"result"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "meridian", Subsystem: "webhook", Name: "queue_depth",
			Help: "Pending webhook deliveries in the outbox at the last full scan.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "meridian", Subsystem: "webhook", Name: "workers_busy",
			Help: "Webhook workers currently delivering.",
		}),
		recordErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "meridian", Subsystem: "webhook", Name: "record_errors_total",
			Help: "Failed attempts to replicate a delivery outcome.",
		}),
		scanErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "meridian", Subsystem: "webhook", Name: "scan_errors_total",
			Help: "Failed reads of the pending outbox.",
		}),
	}
	for _, o := range []string{outcomeDelivered, outcomeRetry, outcomeFailed} {
		m.outcomes.WithLabelValues(o) // export zeros
	}
	if reg != nil {
		cs := []prometheus.Collector{m.outcomes, m.latency, m.depth, m.inFlight, m.recordErrors, m.scanErrors}
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				for _, done := range cs[:i] {
					reg.Unregister(done)
				}
				return nil, fmt.Errorf("webhooks: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func resultClass(code int) string {
	switch {
	case code >= 200 && code < 300:
		return "2xx"
	case code >= 300 && code < 400:
		return "3xx"
	case code >= 400 && code < 500:
		return "4xx"
	case code >= 500 && code < 600:
		return "5xx"
	default:
		return "error"
	}
}
