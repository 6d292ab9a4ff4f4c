package state

import (
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// Equal strings come back as one copy, and the table never holds more
// than its bound however many distinct values pass through it.
func TestInternSharesAndStaysBounded(t *testing.T) {
	a := intern(strings.Repeat("key-", 4))
	b := intern(strings.Repeat("key-", 4)) // another copy of the same bytes
	if a != b || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatal("equal strings are not shared")
	}
	for i := range 3 * internLimit {
		v := fmt.Sprintf("participant-%d", i)
		if got := intern(v); got != v {
			t.Fatalf("intern(%q) = %q", v, got)
		}
		if n := len(internedStrings.m); n > internLimit {
			t.Fatalf("%d interned strings held, bound %d", n, internLimit)
		}
	}
	c := intern(strings.Repeat("key-", 4)) // a new generation: shared again from here on
	if d := intern(strings.Repeat("key-", 4)); c != a || unsafe.StringData(c) != unsafe.StringData(d) {
		t.Fatal("equal strings are not shared after a new generation")
	}
	if intern("") != "" {
		t.Fatal("empty string")
	}
}

// Rooms with equal webhook configs share one; a different config is not
// confused with it, and the table stays bounded.
func TestInternWebhookSharesEqualConfigs(t *testing.T) {
	hook := func(endPoint string, events ...string) *RoomWebhook {
		return &RoomWebhook{EndPoint: endPoint, Events: events}
	}
	a := internWebhook(hook("https://a.example/hook", "session-started", "session-ended"))
	if b := internWebhook(hook("https://a.example/hook", "session-started", "session-ended")); b != a {
		t.Fatal("equal configs are not shared")
	}
	for _, other := range []*RoomWebhook{
		hook("https://a.example/hook", "session-started"),
		hook("https://a.example/hook", "session-ended", "session-started"),
		hook("https://b.example/hook", "session-started", "session-ended"),
		hook("https://a.example/hook\x00session-started", "session-ended"), // same key bytes, other config
	} {
		got := internWebhook(other)
		if got == a || got.EndPoint != other.EndPoint || strings.Join(got.Events, ",") != strings.Join(other.Events, ",") {
			t.Errorf("config %+v interned as %+v", other, got)
		}
	}
	for i := range 2 * internLimit {
		internWebhook(hook("https://c.example/"+strconv.Itoa(i), "session-started"))
		if n := len(sharedWebhooks.m); n > internLimit {
			t.Fatalf("%d webhook configs held, bound %d", n, internLimit)
		}
	}
	if internWebhook(nil) != nil {
		t.Fatal("nil config")
	}
}

// The state package must not turn weak pointers into strong ones on the
// apply path: unique.Make of a known value and weak.Pointer.Value park the
// caller until the collector's marking ends whenever a first attempt to
// end it found more work, and the FSM goroutine interns on every create —
// a 1 GB heap's marking stopped every write of a cluster for seconds
// (intern.go). This holds the package to it.
func TestStateUsesNoWeakPointers(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range parsed.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "unique" || p == "weak" {
				t.Errorf("%s imports %q; intern with intern.go's tables instead", f, p)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d files checked", checked)
	}
}
