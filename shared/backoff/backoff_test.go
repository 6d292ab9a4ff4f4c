package backoff

import (
	"math"
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{-1, 100 * time.Millisecond},
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{5, 3200 * time.Millisecond},
		{6, 5 * time.Second}, // 6.4 s capped
		{7, 5 * time.Second},
		{math.MaxInt, 5 * time.Second},
	}
	for _, tc := range tests {
		if got := p.Ceiling(tc.attempt); got != tc.want {
			t.Errorf("Ceiling(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestCeilingEdges(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		attempt int
		want    time.Duration
	}{
		{"no delay", Policy{Min: 0, Max: time.Second}, 3, 0},
		{"negative min", Policy{Min: -time.Second, Max: time.Second}, 3, 0},
		{"max below min: no growth", Policy{Min: time.Second, Max: time.Millisecond}, 3, time.Second},
		{"max equals min", Policy{Min: time.Second, Max: time.Second}, 3, time.Second},
		{"cap not a power of two away", Policy{Min: 3 * time.Second, Max: 10 * time.Second}, 2, 10 * time.Second},
		// Doubling toward a huge cap must stop before it overflows.
		{"no overflow", Policy{Min: time.Nanosecond, Max: math.MaxInt64}, 200, math.MaxInt64},
		{"exact at 2^62", Policy{Min: time.Nanosecond, Max: math.MaxInt64}, 62, 1 << 62},
	}
	for _, tc := range tests {
		if got := tc.p.Ceiling(tc.attempt); got != tc.want {
			t.Errorf("%s: Ceiling(%d) = %v, want %v", tc.name, tc.attempt, got, tc.want)
		}
	}
}

func TestJittered(t *testing.T) {
	p := Policy{Min: 5 * time.Second, Max: 10 * time.Minute}
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{0, 0.99, 5 * time.Second}, // window [5s, 5s]
		{1, 0, 5 * time.Second},
		{1, 0.5, 7500 * time.Millisecond}, // [5s, 10s]
		{2, 1, 20 * time.Second},
		{3, 0.5, 22500 * time.Millisecond},
		{7, 1, 10 * time.Minute},
		{1, -3, 5 * time.Second},
		{1, 7, 10 * time.Second},
		{1, math.NaN(), 5 * time.Second},
		{1, math.Inf(1), 10 * time.Second},
	}
	for _, tc := range tests {
		if got := p.Jittered(tc.attempt, tc.r); got != tc.want {
			t.Errorf("Jittered(%d, %v) = %v, want %v", tc.attempt, tc.r, got, tc.want)
		}
	}
	// Full jitter: the whole window is used, nothing outside it.
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for i := range 1000 {
		d := p.Jittered(4, float64(i)/1000)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo != 5*time.Second || hi < 79*time.Second || hi >= 80*time.Second {
		t.Errorf("attempt 4 spread [%v, %v], want [5s, 80s)", lo, hi)
	}
	if got := (Policy{}).Jittered(3, 0.5); got != 0 {
		t.Errorf("zero policy: %v", got)
	}
}
