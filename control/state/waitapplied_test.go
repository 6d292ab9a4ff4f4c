package state

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// WaitApplied answers at once for an applied index, wakes when the index
// is applied, and gives up when its context ends while it waits.
func TestWaitAppliedWakesOnApplyOrContext(t *testing.T) {
	f := NewFSM(slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.markApplied(5)
	if !f.WaitApplied(context.Background(), 5) {
		t.Fatal("index 5 is applied: WaitApplied said no")
	}

	result := func(ctx context.Context, index uint64) <-chan bool {
		out := make(chan bool, 1)
		go func() { out <- f.WaitApplied(ctx, index) }()
		return out
	}
	within := func(what string, ch <-chan bool) bool {
		t.Helper()
		select {
		case v := <-ch:
			return v
		case <-time.After(10 * time.Second): // a hang, not a speed
			t.Fatalf("%s: WaitApplied still blocked after 10 s", what)
			return false
		}
	}

	applied := result(context.Background(), 7)
	time.Sleep(20 * time.Millisecond) // usually blocked by now; either way it must answer true
	f.markApplied(6)
	select {
	case <-applied:
		t.Fatal("index 7 waited for, 6 applied: WaitApplied answered")
	case <-time.After(50 * time.Millisecond):
	}
	f.markApplied(7)
	if !within("index applied", applied) {
		t.Fatal("index 7 applied: WaitApplied said no")
	}

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := result(ctx, 100)
	time.Sleep(20 * time.Millisecond)
	cancel()
	if within("context cancelled", gaveUp) {
		t.Fatal("index 100 never applied: WaitApplied said yes")
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if within("context already done", result(ctx, 100)) {
		t.Fatal("index 100 never applied, context done before the call: WaitApplied said yes")
	}
}
