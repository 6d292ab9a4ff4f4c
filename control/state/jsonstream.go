package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// jsonStream reads a snapshot's JSON one value at a time: it finds where
// the next value ends and hands its bytes to a decoder. A snapshot of a
// million rooms is ~450 MB of JSON, and json.Decoder scanned every byte of
// it twice before a room's own decoder saw it (Decode into a RawMessage
// runs the scanner over the value, then again to skip it): a quarter of a
// restore's CPU. Finding a value's end needs no validation (only strings,
// escapes and bracket depth), so it is one short loop per byte here, and
// the value is then checked in full by whoever decodes it: the rooms' fast
// decoder, or json.Unmarshal for everything else. A malformed snapshot
// therefore still fails to restore, with the error of the decoder that
// rejected it (FuzzJSONStream holds the value boundaries to
// encoding/json's).
type jsonStream struct {
	r   io.Reader
	buf []byte // buf[pos:] is read and not yet consumed
	pos int
	off int64 // stream offset of buf[0], for error messages
	err error // the read error that ended the stream (io.EOF at the end)
	val []byte
}

func newJSONStream(r io.Reader) *jsonStream {
	return &jsonStream{r: r, buf: make([]byte, 0, 256<<10)}
}

// fill reads more input; false when none is left. Every caller has
// consumed the buffer first (peek skips to its end, value copies what it
// scanned into val), so it starts over instead of keeping a tail.
func (s *jsonStream) fill() bool {
	if s.err != nil {
		return false
	}
	s.off += int64(len(s.buf))
	n, err := s.r.Read(s.buf[:cap(s.buf)])
	s.buf, s.pos = s.buf[:n], 0
	if err != nil {
		s.err = err
	}
	return n > 0 || err == nil
}

// failure is the error for input that ends or goes wrong at the current
// position.
func (s *jsonStream) failure(want string) error {
	if s.pos >= len(s.buf) {
		if s.err != nil && !errors.Is(s.err, io.EOF) {
			return s.err
		}
		return fmt.Errorf("unexpected end of snapshot at byte %d, expected %s", s.off+int64(s.pos), want)
	}
	return fmt.Errorf("unexpected %q at byte %d, expected %s", s.buf[s.pos], s.off+int64(s.pos), want)
}

// peek skips whitespace and returns the next byte, unconsumed.
func (s *jsonStream) peek() (byte, bool) {
	for {
		for s.pos < len(s.buf) {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, true
			}
		}
		if !s.fill() {
			return 0, false
		}
	}
}

// array reads an array (or null) and calls fn to read each element.
func (s *jsonStream) array(fn func() error) error {
	return s.elements('[', ']', fn)
}

// object reads an object (or null) and calls fn with each member's name to
// read its value.
func (s *jsonStream) object(fn func(name string) error) error {
	return s.elements('{', '}', func() error {
		name, err := s.key()
		if err != nil {
			return err
		}
		return fn(name)
	})
}

// elements reads the start of an array or object (open), or a null in its
// place, then calls each until the closing delimiter, consuming the commas
// between elements.
func (s *jsonStream) elements(open, close byte, each func() error) error {
	c, ok := s.peek()
	switch {
	case ok && c == 'n':
		v, err := s.value()
		if err == nil && string(v) != "null" {
			err = fmt.Errorf("expected %q or null, got %.20q", open, v)
		}
		return err
	case !ok || c != open:
		return s.failure(fmt.Sprintf("%q", open))
	}
	s.pos++
	for first := true; ; first = false {
		c, ok := s.peek()
		switch {
		case ok && c == close:
			s.pos++
			return nil
		case ok && c == ',' && !first:
			s.pos++
		case !ok || !first:
			return s.failure(fmt.Sprintf("',' or %q", close))
		}
		if err := each(); err != nil {
			return err
		}
	}
}

// key reads an object's member name and the colon after it.
func (s *jsonStream) key() (string, error) {
	if c, ok := s.peek(); !ok || c != '"' {
		return "", s.failure("a member name")
	}
	raw, err := s.value()
	if err != nil {
		return "", err
	}
	name, plain := string(raw[1:len(raw)-1]), true
	for i := 1; i < len(raw)-1; i++ {
		if c := raw[i]; c < 0x20 || c >= 0x80 || c == '\\' {
			plain = false
			break
		}
	}
	if !plain {
		if err := json.Unmarshal(raw, &name); err != nil {
			return "", err
		}
	}
	if c, ok := s.peek(); !ok || c != ':' {
		return "", s.failure("':'")
	}
	s.pos++
	return name, nil
}

// decode reads the next value into v as json.Unmarshal does.
func (s *jsonStream) decode(v any) error {
	raw, err := s.value()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// value cuts out the next value and returns its bytes, valid until the
// next call. Only its end is found here: a string ends at its first
// unescaped quote, an object or array where its brackets balance (strings
// inside skipped), anything else at the next delimiter or whitespace.
func (s *jsonStream) value() ([]byte, error) {
	first, ok := s.peek()
	if !ok {
		return nil, s.failure("a value")
	}
	s.val = s.val[:0]
	var (
		depth       int
		inStr, done bool
		escaped     bool
	)
	scalar := first != '"' && first != '{' && first != '['
	for !done {
		b, i := s.buf, s.pos
		if scalar {
			for ; i < len(b); i++ {
				if c := b[i]; c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
					done = true
					break
				}
			}
		} else {
			for i < len(b) && !done {
				c := b[i]
				i++
				switch {
				case inStr:
					if escaped {
						escaped = false
					} else if c == '\\' {
						escaped = true
					} else if c == '"' {
						inStr = false
						done = depth == 0 // a string of its own
					}
				case c == '"':
					inStr = true
				case c == '{' || c == '[':
					depth++
				case c == '}' || c == ']':
					depth--
					done = depth <= 0
				}
			}
		}
		s.val = append(s.val, b[s.pos:i]...)
		s.pos = i
		if !done && !s.fill() {
			if scalar && len(s.val) > 0 {
				break // a number or literal ends the input
			}
			return nil, s.failure("the rest of a value")
		}
	}
	if len(s.val) == 0 {
		return nil, s.failure("a value")
	}
	return s.val, nil
}
