package signal

import (
	"testing"
	"time"
)

// TestRecentSet: a key is held for ttl after its time by the given clock, a
// later time wins over an earlier one, and keys past ttl leave the map as
// others are noted, so it never grows beyond ttl's worth of them.
func TestRecentSet(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRecentSet[string](time.Minute)
	r.note("a", t0, t0)
	r.note("a", t0.Add(-time.Second), t0) // an older time does not win
	if at, ok := r.get("a", t0.Add(59*time.Second)); !ok || !at.Equal(t0) {
		t.Fatalf("a within ttl: %v %v", at, ok)
	}
	if _, ok := r.get("a", t0.Add(time.Minute)); ok {
		t.Fatal("a held past its ttl")
	}
	r.note("a", t0.Add(30*time.Second), t0.Add(30*time.Second))
	if at, ok := r.get("a", t0.Add(80*time.Second)); !ok || !at.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("a noted again later: %v %v", at, ok)
	}
	r.forget("a")
	if _, ok := r.get("a", t0); ok {
		t.Fatal("a held after forget")
	}
	for i := 0; i < 1000; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		r.note(string(rune('a'+i%26))+now.String(), now, now)
		if len(r.at) > 68 { // a minute's keys and the eighth of one between sweeps, and one
			t.Fatalf("%d keys held after %d s of one key a second", len(r.at), i)
		}
	}
}
