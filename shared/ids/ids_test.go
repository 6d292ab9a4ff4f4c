package ids

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"
)

func TestDocIDStartsWithItsSecond(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	a, err := newDocIDAt(rand.Reader, at)
	if err != nil {
		t.Fatal(err)
	}
	if !IsDocID(string(a)) {
		t.Fatalf("%q is not a document id", a)
	}
	if want := hex.EncodeToString([]byte{0x6b, 0x12, 0x2c, 0xb0}); string(a[:8]) != want {
		t.Fatalf("%q: want the Unix second %s first (ObjectId layout)", a, want)
	}
	b, _ := newDocIDAt(rand.Reader, at)
	if a == b || a[:8] != b[:8] {
		t.Fatalf("same second: %q and %q should share the prefix and nothing else", a, b)
	}
	if c, _ := newDocIDAt(rand.Reader, at.Add(time.Second)); c <= a || c <= b {
		t.Fatalf("a later second: %q sorts before %q or %q", c, a, b)
	}
	now, err := NewDocID(nil)
	if err != nil || !IsDocID(string(now)) {
		t.Fatalf("NewDocID: %q, %v", now, err)
	}
}

func TestDocIDsAreUnique(t *testing.T) {
	seen := map[DocID]bool{}
	ids, err := NewDocIDs(nil, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if seen[DocID(id)] {
			t.Fatalf("%q drawn twice", id)
		}
		seen[DocID(id)] = true
	}
}
