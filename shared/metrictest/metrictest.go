// Package metrictest reads Prometheus metrics back in tests: what a
// registry would expose, by family name and labels.
package metrictest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Sum adds up the samples (counters, gauges, untyped) of the family name in
// g whose labels include every name/value pair of labels (nil: every
// sample); found reports whether any sample matched.
func Sum(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (sum float64, found bool) {
	tb.Helper()
	each(tb, g, name, labels, func(m *dto.Metric) {
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		default:
			return
		}
		found = true
	})
	return sum, found
}

// Count adds up the observation counts of the histograms and summaries of
// the family name in g whose labels include labels, as Sum does for values.
func Count(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (count uint64, found bool) {
	tb.Helper()
	count, _, found = Observed(tb, g, name, labels)
	return count, found
}

// Observed adds up what the histograms and summaries of the family name in
// g whose labels include labels observed: their counts and the sums of
// their observations.
func Observed(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (count uint64, sum float64, found bool) {
	tb.Helper()
	each(tb, g, name, labels, func(m *dto.Metric) {
		switch {
		case m.GetHistogram() != nil:
			count += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		case m.GetSummary() != nil:
			count += m.GetSummary().GetSampleCount()
			sum += m.GetSummary().GetSampleSum()
		default:
			return
		}
		found = true
	})
	return count, sum, found
}

// each calls fn for every sample of the family name in g whose labels
// include every name/value pair of labels.
func each(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string, fn func(*dto.Metric)) {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				has := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						has = true
						break
					}
				}
				if !has {
					continue next
				}
			}
			fn(m)
		}
	}
}

// Value is Sum for a sample that must exist: the test fails without one.
func Value(tb testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	tb.Helper()
	v, ok := Sum(tb, g, name, labels)
	if !ok {
		tb.Fatalf("no metric %s%v", name, labels)
	}
	return v
}
