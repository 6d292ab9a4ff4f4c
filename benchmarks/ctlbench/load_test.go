package main

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
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
