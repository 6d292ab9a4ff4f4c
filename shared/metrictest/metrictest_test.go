package metrictest

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSumAndValue(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"dir", "peer"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "y", Help: "y"})
	reg.MustRegister(c, g)
	c.WithLabelValues("in", "a").Add(2)
	c.WithLabelValues("in", "b").Add(3)
	c.WithLabelValues("out", "a").Add(5)
	g.Set(7)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
		found  bool
	}{
		{"x_total", nil, 10, true},
		{"x_total", map[string]string{"dir": "in"}, 5, true},
		{"x_total", map[string]string{"dir": "in", "peer": "b"}, 3, true},
		{"x_total", map[string]string{"peer": "in"}, 0, false}, // a value under another label's name
		{"x_total", map[string]string{"dir": "sideways"}, 0, false},
		{"y", nil, 7, true},
		{"z", nil, 0, false},
	} {
		if v, ok := Sum(t, reg, tc.name, tc.labels); v != tc.want || ok != tc.found {
			t.Errorf("Sum(%s, %v) = %v, %v; want %v, %v", tc.name, tc.labels, v, ok, tc.want, tc.found)
		}
	}
	if v := Value(t, reg, "x_total", map[string]string{"dir": "out"}); v != 5 {
		t.Errorf("Value = %v, want 5", v)
	}
}

func TestCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d_seconds", Help: "d"}, []string{"result"})
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s_seconds", Help: "s"})
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "c"})
	reg.MustRegister(h, s, c)
	h.WithLabelValues("2xx").Observe(0.1)
	h.WithLabelValues("2xx").Observe(0.2)
	h.WithLabelValues("4xx").Observe(0.3)
	s.Observe(1)
	c.Inc()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   uint64
		found  bool
	}{
		{"d_seconds", nil, 3, true},
		{"d_seconds", map[string]string{"result": "2xx"}, 2, true},
		{"d_seconds", map[string]string{"result": "5xx"}, 0, false},
		{"s_seconds", nil, 1, true},
		{"c_total", nil, 0, false}, // a counter has values, not observations
	} {
		if n, ok := Count(t, reg, tc.name, tc.labels); n != tc.want || ok != tc.found {
			t.Errorf("Count(%s, %v) = %v, %v; want %v, %v", tc.name, tc.labels, n, ok, tc.want, tc.found)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		count  uint64
		sum    float64
		found  bool
	}{
		{"d_seconds", nil, 3, 0.6, true},
		{"d_seconds", map[string]string{"result": "4xx"}, 1, 0.3, true},
		{"s_seconds", nil, 1, 1, true},
		{"c_total", nil, 0, 0, false},
	} {
		n, sum, ok := Observed(t, reg, tc.name, tc.labels)
		if n != tc.count || math.Abs(sum-tc.sum) > 1e-9 || ok != tc.found {
			t.Errorf("Observed(%s, %v) = %v, %v, %v; want %v, %v, %v", tc.name, tc.labels, n, sum, ok, tc.count, tc.sum, tc.found)
		}
	}
}
