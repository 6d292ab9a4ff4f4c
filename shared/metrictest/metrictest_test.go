package metrictest

import (
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
