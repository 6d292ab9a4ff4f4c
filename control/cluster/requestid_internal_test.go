package cluster

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Request ids are unique and in time order, so that every replica inserts
// a new request record beside the previous one (docs/state-store.md).
func TestRequestIDsAreUniqueAndInTimeOrder(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	prev := ""
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := newRequestID(at.Add(time.Duration(i) * time.Microsecond))
		if !strings.HasPrefix(id, "r-") || len(id) != 34 {
			t.Fatalf("%q: want r- and 32 hex digits", id)
		}
		if id <= prev || seen[id] {
			t.Fatalf("%q after %q: not in time order or drawn twice", id, prev)
		}
		prev, seen[id] = id, true
	}
	a, b := newRequestID(at), newRequestID(at)
	if a == b || a[:18] != b[:18] {
		t.Fatalf("same instant: %q and %q should share the time and differ after it", a, b)
	}
	if id, _, key := nextRequestID(context.Background()); key || !strings.HasPrefix(id, "r-") {
		t.Fatalf("nextRequestID without an Idempotency-Key: %q, %v", id, key)
	}
}
