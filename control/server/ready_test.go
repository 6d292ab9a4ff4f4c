package server

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitProgressingWaitsAsLongAsTheReplayMoves: a long replay that keeps
// applying is waited for well past the stall period (a restart at a
// million rooms applies for minutes); one that stops applying fails after
// the stall period; ready ends the wait at once.
func TestWaitProgressingWaitsAsLongAsTheReplayMoves(t *testing.T) {
	const stall = 500 * time.Millisecond
	var applied atomic.Uint64
	// Every look at the replay finds one more entry applied; ready only
	// after more than twice the stall period.
	moving := func() (uint64, uint64) { return applied.Add(1), 1 << 40 }
	start := time.Now()
	ready := func() bool { return time.Since(start) > 2*stall+200*time.Millisecond }
	var reports atomic.Int32
	if err := waitProgressing(context.Background(), ready, moving, stall, 5*time.Millisecond, 100*time.Millisecond, func(a, b uint64) { reports.Add(1) }); err != nil {
		t.Fatalf("a replay that kept applying for %v was given up: %v", time.Since(start), err)
	}
	if reports.Load() == 0 {
		t.Fatal("no progress was reported during a replay of more than a second")
	}
	where := func() (uint64, uint64) { return applied.Load(), 1 << 40 }

	// Nothing applied any more and not ready: fails after the stall period.
	err := waitProgressing(context.Background(), func() bool { return false }, where, stall, 5*time.Millisecond, time.Second, nil)
	if !errors.Is(err, errStalled) {
		t.Fatalf("a stalled start answered %v", err)
	}

	// No stall limit: only the context ends it.
	ctx, cancel := context.WithTimeout(context.Background(), stall)
	defer cancel()
	if err := waitProgressing(ctx, func() bool { return false }, where, 0, 5*time.Millisecond, time.Second, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without a stall limit: %v", err)
	}
}
