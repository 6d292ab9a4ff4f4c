package main

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoaderRunsEveryRequestOnceAndStopsAtTheFirstError: the clients
// share one request counter (each index once), and the first failing
// request ends the phase with its error, the other clients stopping
// instead of running the rest.
func TestLoaderRunsEveryRequestOnceAndStopsAtTheFirstError(t *testing.T) {
	self := &node{Name: "self", PID: os.Getpid()}
	l := &loader{servers: []*node{self}, serverCPU: -1}

	seen := make([]atomic.Int32, 500)
	ph, err := l.run(spec{via: self, clients: 4, total: len(seen), op: func(w, i int) error { seen[i].Add(1); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if ph.N != len(seen) || ph.Clients != 4 {
		t.Fatalf("phase: %d requests by %d clients, want %d by 4", ph.N, ph.Clients, len(seen))
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("request %d ran %d times", i, n)
		}
	}

	boom := errors.New("boom")
	var ran atomic.Int32
	_, err = l.run(spec{via: self, clients: 4, total: 100_000, op: func(w, i int) error {
		ran.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("phase error %v, want %v", err, boom)
	}
	// Each other client finishes at most the request it was in when the
	// first one failed, and then stops.
	if n := ran.Load(); n >= 100_000 {
		t.Fatalf("%d requests ran after the failure: the other clients did not stop", n)
	}
}

// TestPacedPhaseCountsAStallFromWhenRequestsWereDue: a paced phase keeps
// its schedule (it cannot finish before its last request is due), and when
// every client is held up, the requests due meanwhile count the wait in
// their latency. Here all four clients stall 300 ms on their first
// requests, so three quarters of the 400 requests were due during the
// stall and start late by up to 300 ms: the median is ~100 ms. Counting
// from when a client got to a request, as a closed loop does, it is ~0.
func TestPacedPhaseCountsAStallFromWhenRequestsWereDue(t *testing.T) {
	self := &node{Name: "self", PID: os.Getpid()}
	l := &loader{servers: []*node{self}, serverCPU: -1}
	const rate, total = 1000, 400
	ph, err := l.run(spec{via: self, clients: 4, total: total, rate: rate, op: func(w, i int) error {
		if i < 4 {
			time.Sleep(300 * time.Millisecond)
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ph.N != total || ph.Rate != rate {
		t.Fatalf("phase: %d requests at rate %v, want %d at %d", ph.N, ph.Rate, total, rate)
	}
	if min := float64(total-1) / rate; ph.Seconds < min {
		t.Fatalf("phase took %.3f s, but its last request was due at %.3f s", ph.Seconds, min)
	}
	if ph.P50Ms < 50 {
		t.Fatalf("p50 %.2f ms: the requests due during the stall were not charged for it", ph.P50Ms)
	}
}
