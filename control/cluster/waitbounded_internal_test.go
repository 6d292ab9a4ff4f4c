package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWaitBoundedEndsOnTimeoutStopOrCaller: the wait for a committed write
// to be applied locally (waitCommittedApplied) ends when it is done, after
// its timeout, when the node stops, or when the caller gives up, and says
// which: a commit this node is never told about must not hold the write's
// caller forever.
func TestWaitBoundedEndsOnTimeoutStopOrCaller(t *testing.T) {
	blocks := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	run := func(name string, ctx, stop context.Context, timeout time.Duration, wait func(context.Context) error) (bool, error) {
		t.Helper()
		type result struct {
			bounded bool
			err     error
		}
		out := make(chan result, 1)
		go func() {
			b, err := waitBounded(ctx, stop, timeout, wait)
			out <- result{b, err}
		}()
		select {
		case r := <-out:
			return r.bounded, r.err
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: the wait did not end", name)
			return false, nil
		}
	}
	never := context.Background()

	if b, err := run("done at once", context.Background(), never, time.Hour, func(context.Context) error { return nil }); b || err != nil {
		t.Fatalf("done at once: bounded %v, err %v", b, err)
	}
	if b, err := run("timeout", context.Background(), never, 50*time.Millisecond, blocks); !b || err != nil {
		t.Fatalf("timeout: bounded %v, err %v; want bounded, no error", b, err)
	}
	stopped, halt := context.WithCancel(context.Background())
	halt()
	if b, err := run("node stopped", context.Background(), stopped, time.Hour, blocks); !b || err != nil {
		t.Fatalf("node stopped: bounded %v, err %v; want bounded, no error", b, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b, err := run("caller gave up", ctx, never, time.Hour, blocks); b || !errors.Is(err, context.Canceled) {
		t.Fatalf("caller gave up: bounded %v, err %v; want its context.Canceled", b, err)
	}
}
