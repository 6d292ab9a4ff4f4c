package jsonappend

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestStringsMatchEncodingJSON: String, Concat and Strings write the bytes
// encoding/json writes, for plain strings and every kind it escapes
// (including a multi-byte rune or an invalid byte at a Concat seam).
func TestStringsMatchEncodingJSON(t *testing.T) {
	strs := []string{"", "abcd-efgh", "https://api.example.com/v2/rooms/", "a\"b\\c", "<script>&", "tab\there", "\x00\x1f", "\x7f",
		"héllo", "\u2028\u2029", "bad\xffutf8", "\xe2\x80", "\xa8", "🎥"}
	for _, a := range strs {
		var w Writer
		want, _ := json.Marshal(a)
		if got := w.String([]byte("x"), a); w.Err != nil || !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("String(%q) = %s, want x%s", a, got, want)
		}
		for _, c := range strs {
			want, _ := json.Marshal(a + c)
			if got := w.Concat(nil, a, c); w.Err != nil || !bytes.Equal(got, want) {
				t.Errorf("Concat(%q, %q) = %s, want %s", a, c, got, want)
			}
			want, _ = json.Marshal([]string{a, c})
			if got := w.Strings(nil, []string{a, c}); w.Err != nil || !bytes.Equal(got, want) {
				t.Errorf("Strings(%q, %q) = %s, want %s", a, c, got, want)
			}
		}
	}
}
