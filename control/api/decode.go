package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

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
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	// The Content-Type is not checked: curl -d sends form-urlencoded by
	// default and the body is JSON regardless; a non-JSON body fails below
	// with a message that says where.
	return decodeBytes(body, v)
}

func decodeBytes(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return badRequest(describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body has data after the JSON value")
	}
	return nil
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("request body must be a JSON %s, not %s", typeName(typ.Type.Kind().String()), typ.Value)
		}
		return fmt.Sprintf("field %q must be %s, not %s", typ.Field, typeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: unexpected end of body"
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe.Error()
	}
	return "malformed JSON: " + err.Error()
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
