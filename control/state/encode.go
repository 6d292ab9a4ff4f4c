package state

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/meridian-video/meridian/shared/jsonappend"
)

// Encoding what a write proposes. Every create passes through here once, on
// the node the client called: its command body, then the request envelope
// around it. encoding/json did both by reflection and then scanned the
// body a second time to compact it as a json.RawMessage (about 6 % of a
// leader's CPU during a fill). Rooms and envelopes are written directly,
// byte for byte as json.Marshal writes them (TestEncodeMatchesEncodingJSON,
// FuzzEncodeRequest), so the FSM's fast decoder takes the same path and
// every replica applies the same bytes.

// MarshalBody encodes a command body as json.Marshal would.
func MarshalBody(body any) ([]byte, error) {
	if c, ok := body.(CreateRoom); ok {
		var w rowBuf
		b := append(make([]byte, 0, roomJSONSize(&c.Room)+10), `{"room":`...)
		b = w.appendRoom(b, &c.Room)
		if b = append(b, '}'); w.Err == nil {
			return b, nil
		}
	}
	return json.Marshal(body)
}

// Encode builds a log entry: type byte followed by the JSON body.
func Encode(t CommandType, body any) ([]byte, error) {
	var b []byte
	var err error
	if c, ok := body.(Request); ok {
		b, err = c.appendJSON(envelopeBuf(t, &c))
	} else {
		b, err = json.Marshal(body)
		b = append([]byte{byte(t)}, b...)
	}
	if err != nil {
		return nil, fmt.Errorf("state: encode command %d: %w", t, err)
	}
	return b, nil
}

// EncodeRequest builds the log entry of req carrying body (a command body
// as MarshalBody encodes it) and returns req with Body set to those bytes
// inside the entry. A room create is appended straight into the entry;
// encoding the body on its own first and then copying it into the envelope
// was one more buffer the size of the room per create on the node a client
// called. The entry is byte for byte what Encode(CmdRequest, req) writes
// for the returned req (TestEncodeRequestMatchesEncode).
func EncodeRequest(req Request, body any) ([]byte, Request, error) {
	if c, ok := body.(CreateRoom); ok {
		req.Compact = true
		var w rowBuf
		b := make([]byte, 1, 108+len(req.ID)+len(req.BodyHash)+roomJSONSize(&c.Room))
		b[0] = byte(CmdRequest)
		b = req.appendHead(&w.Writer, b)
		start := len(b)
		b = append(b, `{"room":`...)
		b = w.appendRoom(b, &c.Room)
		if b = append(b, '}'); w.Err == nil {
			req.Body = b[start:len(b):len(b)] // capped: the closing brace below is not the body's
			return append(b, '}'), req, nil
		}
	}
	raw, err := MarshalBody(body)
	if err != nil {
		return nil, req, err
	}
	req.Body, req.Compact = raw, true
	b, err := Encode(CmdRequest, req)
	return b, req, err
}

// envelopeBuf is the type byte in a buffer with room for the envelope.
func envelopeBuf(t CommandType, c *Request) []byte {
	b := make([]byte, 1, 96+len(c.ID)+len(c.BodyHash)+len(c.Body))
	b[0] = byte(t)
	return b
}

// appendJSON appends the envelope as json.Marshal writes it. The body is
// copied as it is when encoding/json would copy it unchanged: one valid
// value, compact, nothing it escapes again (a body from MarshalBody or
// json.Marshal; Compact says so without a scan). Anything else goes through
// json.Marshal.
func (c *Request) appendJSON(b []byte) ([]byte, error) {
	if c.Body != nil && !c.Compact && !plainCompact(c.Body) {
		j, err := json.Marshal(c)
		return append(b, j...), err
	}
	var w jsonappend.Writer
	b = c.appendHead(&w, b)
	if c.Body == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, c.Body...)
	}
	if w.Err != nil {
		return nil, w.Err
	}
	return append(b, '}'), nil
}

// appendHead appends the envelope up to its body's value.
func (c *Request) appendHead(w *jsonappend.Writer, b []byte) []byte {
	b = append(b, `{"id":`...)
	b = w.String(b, c.ID)
	if c.Key {
		b = append(b, `,"key":true`...)
	}
	if c.BodyHash != "" {
		b = append(b, `,"bodyHash":`...)
		b = w.String(b, c.BodyHash)
	}
	b = append(b, `,"at":`...)
	b = w.Time(b, c.At)
	b = append(b, `,"type":`...)
	b = strconv.AppendUint(b, uint64(c.Type), 10)
	return append(b, `,"body":`...)
}

// plainCompact reports whether encoding/json would copy raw unchanged as a
// json.RawMessage: one valid value without whitespace between tokens and
// without the characters it escapes inside strings (<, >, &, U+2028,
// U+2029).
func plainCompact(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		switch ch := raw[i]; {
		case ch == '<' || ch == '>' || ch == '&':
			return false
		case ch == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9):
			return false
		case inString && ch == '\\':
			i++
		case ch == '"':
			inString = !inString
		case !inString && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'):
			return false
		}
	}
	return json.Valid(raw)
}
