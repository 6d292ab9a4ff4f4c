// Package jsonappend appends JSON values to a byte slice exactly as
// encoding/json writes them, without its reflection, for the values the
// hot paths write (snapshot rows, proposals, API answers). Only the common
// shapes are spelled out: a string with anything encoding/json escapes,
// a time outside the years it accepts, or any other value goes through
// encoding/json itself, so the bytes never differ.
package jsonappend

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Writer appends; Err is the first error encoding/json returned, after
// which what was appended is not to be used.
type Writer struct {
	Err error
}

// String appends s as a JSON string. Ids, keys and URLs are printable
// ASCII with nothing to escape; any other string goes through
// encoding/json (HTML-safe escapes, U+2028/U+2029, invalid UTF-8 replaced).
func (w *Writer) String(b []byte, s string) []byte {
	if !isPlain(s) {
		return w.Marshal(b, s)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Concat appends a+c as one JSON string without building a+c when
// neither needs escaping (a link: a configured prefix and an id).
func (w *Writer) Concat(b []byte, a, c string) []byte {
	if !isPlain(a) || !isPlain(c) {
		return w.Marshal(b, a+c)
	}
	b = append(b, '"')
	b = append(b, a...)
	b = append(b, c...)
	return append(b, '"')
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			return false
		}
	}
	return true
}

// plain: the bytes encoding/json writes as they are in a string.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// Strings appends ss as a JSON array of strings (a nil slice as [], as the
// callers' omitempty or non-nil slices need; encoding/json writes null).
func (w *Writer) Strings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = w.String(b, s)
	}
	return append(b, ']')
}

// Time appends t as time.Time.MarshalJSON does (RFC 3339 with the fraction
// trimmed); years it refuses are left to it to refuse.
func (w *Writer) Time(b []byte, t time.Time) []byte {
	if y := t.Year(); y < 0 || y > 9999 {
		return w.Marshal(b, t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// Marshal appends encoding/json's bytes for v.
func (w *Writer) Marshal(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil && w.Err == nil {
		w.Err = err
	}
	return append(b, j...)
}
