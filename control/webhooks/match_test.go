package webhooks

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		patterns []string
		event    string
		want     bool
	}{
		{[]string{"*"}, "session-started", true},
		{[]string{"*"}, "", true},
		{[]string{"session-started"}, "session-started", true},
		{[]string{"session-started"}, "session-ended", false},
		{[]string{"session*"}, "session-started", true},
		{[]string{"session*"}, "session-ended", true},
		{[]string{"session-*"}, "session-ended", true},
		{[]string{"recording-*"}, "recording-started", true},
		{[]string{"recording-*"}, "recording-", true},
		{[]string{"recording-*"}, "recording", false},
		{[]string{"recording-*"}, "participant-recording-started", false},
		{[]string{"recording-*"}, "participant-track-recording-stopped", false},
		{[]string{"participant-*"}, "participant-track-recording-stopped", true},
		{[]string{"hls-*"}, "hls-playable", true},
		{[]string{"*-started"}, "session-started", false}, // "*" only counts at the end
		{[]string{"*-started"}, "*-started", true},        // elsewhere it is literal
		{[]string{"rec*ing-started"}, "recording-started", false},
		{[]string{"Session-Started"}, "session-started", false}, // case-sensitive
		{[]string{"session-started "}, "session-started", false},
		{[]string{""}, "session-started", false},
		{[]string{""}, "", true},
		{nil, "session-started", false},
		{[]string{}, "session-started", false},
		{[]string{"hls-*", "session-ended"}, "session-ended", true},
		{[]string{"hls-*", "session-ended"}, "session-started", false},
		{[]string{"**"}, "session-started", false},
		{[]string{"**"}, "*x", true},
	}
	for _, tc := range tests {
		if got := Match(tc.patterns, tc.event); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.patterns, tc.event, got, tc.want)
		}
	}
}

// matchRef is an independent reference: a pattern is a regexp anchored at both
// ends where only a final "*" means ".*".
func matchRef(p, event string) bool {
	var expr string
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		expr = "^" + regexp.QuoteMeta(prefix) + "(?s:.*)$"
	} else {
		expr = "^" + regexp.QuoteMeta(p) + "$"
	}
	return regexp.MustCompile(expr).MatchString(event)
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"*", "session-started"}, {"recording-*", "participant-recording-started"},
		{"session*", "session-ended"}, {"hls-playable", "hls-playable"}, {"a*b*", "a*bc"}, {"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, event string) {
		got := Match([]string{pattern}, event)
		// Event names are always valid UTF-8, and regexp cannot express other
		// bytes: compare with the reference only then; the invariants below
		// hold for all inputs.
		if utf8.ValidString(pattern) && utf8.ValidString(event) {
			if want := matchRef(pattern, event); got != want {
				t.Fatalf("Match([%q], %q) = %v, reference says %v", pattern, event, got, want)
			}
		}
		if !Match([]string{"*"}, event) || !Match([]string{event}, event) || !Match([]string{event + "*"}, event) {
			t.Fatalf("%q must match \"*\", itself and itself+\"*\"", event)
		}
		if got && !strings.HasSuffix(pattern, "*") && pattern != event {
			t.Fatalf("non-wildcard %q matched a different event %q", pattern, event)
		}
		// Adding patterns never removes a match; order does not matter.
		if got && (!Match([]string{"zzz", pattern}, event) || !Match([]string{pattern, "zzz"}, event)) {
			t.Fatal("match lost when another pattern was added")
		}
	})
}
