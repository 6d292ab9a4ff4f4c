package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// MaxBodyBytes caps request bodies on the public API.
const MaxBodyBytes = 1 << 20

// ReadLimitBytes is how much the HTTP server reads before giving up on a
// connection; bodies between MaxBodyBytes and this get a clean JSON 413.
const ReadLimitBytes = 16 << 20

// decodeJSON decodes a request body into v (an owned struct: fiber reuses its
// buffers after the handler returns). Unknown fields are accepted — VideoSDK
// clients send extras — but wrong types, trailing data and bad JSON are 400s
// that name the problem.
func decodeJSON(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(body) > MaxBodyBytes {
		return &Error{Status: fiber.StatusRequestEntityTooLarge, Message: "request body is larger than 1 MiB"}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		body = []byte("{}")
	} else if trimmed[0] != '{' {
		// null, arrays, strings, numbers: every body we take is an object,
		// and `null` must not decode into "all defaults".
		return badRequest("request body must be a JSON object")
	}
	if !utf8.Valid(body) {
		// encoding/json would silently replace bad bytes with U+FFFD, so
		// two different ids could become one.
		return badRequest("request body must be valid UTF-8")
	}
	// The Content-Type is not checked: curl -d sends form-urlencoded by
	// default and the body is JSON regardless; a non-JSON body fails below
	// with a message that says where.
	return decodeBytes(body, v)
}

// maxEchoed bounds what an error message repeats of the client's input.
const maxEchoed = 40

func echo(s string) string {
	if len(s) <= maxEchoed {
		return s
	}
	cut := maxEchoed
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// unsafeText reports characters that have no place in ids and names: C0/C1
// controls and the bidirectional overrides and isolates that make one
// string display as another (Trojan Source).
func unsafeText(s string) bool {
	for _, r := range s {
		switch {
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			return true
		case r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			return true
		case r == 0xfeff || r == utf8.RuneError:
			return true
		}
	}
	return false
}

// decodeBytes decodes one JSON value that must fill the body. Unmarshal
// reads the body where it is (a json.Decoder would first copy it into a
// buffer of its own: a kilobyte per room create) and refuses anything
// after the value with a syntax error that says so.
func decodeBytes(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			switch msg := syn.Error(); {
			case strings.HasSuffix(msg, "after top-level value"):
				return badRequest("request body has data after the JSON value")
			case msg == "unexpected end of JSON input":
				err = io.ErrUnexpectedEOF // as a json.Decoder reports a cut body
			}
		}
		return badRequest(describeJSONError(err))
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, echo(syn.Error()))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("request body must be a JSON %s, not %s", typeName(typ.Type.Kind().String()), echo(typ.Value))
		}
		want, got := typeName(typ.Type.Kind().String()), typ.Value
		if n, ok := strings.CutPrefix(got, "number "); ok && want == "a number" {
			// A number that does not fit (1e400) or, for a whole
			// number, has a fraction (1.5).
			want, got = "a number within range", n
			if k := typ.Type.Kind().String(); strings.Contains(k, "int") {
				want = "a whole number within range"
			}
		}
		return fmt.Sprintf("field %q must be %s, not %s", echo(typ.Field), want, echo(got))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: unexpected end of body"
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.Error()
	}
	return "malformed JSON: " + echo(err.Error())
}

func typeName(kind string) string {
	switch kind {
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "float64", "float32", "int", "int64", "int32", "uint64", "uint32":
		return "a number"
	}
	return kind
}

// fieldError reports a semantic problem with one field.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return fmt.Sprintf("field %q %s", e.field, e.msg) }

func invalidField(field, format string, a ...any) *Error {
	return badRequest((&fieldError{field: field, msg: fmt.Sprintf(format, a...)}).Error())
}
