package api

import (
	"errors"
	"testing"
	"time"
)

// TestInflightKeysSerialiseCopies: a copy of a keyed request waits until
// the one running on this node has left (and then reads its stored
// answer); other keys do not wait; a copy that waits too long gets a
// retryable 409 instead of running beside it.
func TestInflightKeysSerialiseCopies(t *testing.T) {
	var f inflightKeys
	leaveFirst, err := f.enter("key-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	leaveOther, err := f.enter("key-b", time.Minute)
	if err != nil {
		t.Fatalf("another key waited: %v", err)
	}
	leaveOther()

	entered := make(chan func(), 1)
	go func() {
		leave, err := f.enter("key-a", time.Minute)
		if err != nil {
			t.Error(err)
		}
		entered <- leave
	}()
	// The copy must still be waiting: the first has not left. Check with a
	// claim that cannot wait — it must be refused while the key is held.
	var busy *Error
	if _, err := f.enter("key-a", 0); !errors.As(err, &busy) || busy.Status != 409 || busy.RetryAfter == 0 {
		t.Fatalf("a copy that cannot wait: %v, want a 409 with Retry-After", err)
	}
	select {
	case <-entered:
		t.Fatal("a copy ran while the first was still running")
	default:
	}
	leaveFirst()
	leave := <-entered // it runs once the first left
	leave()
	if len(f.m) != 0 {
		t.Fatalf("keys left behind: %v", f.m)
	}
}
