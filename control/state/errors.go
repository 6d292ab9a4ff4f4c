package state

import (
	"errors"
	"fmt"
)

// Code classifies a rejected command. Codes cross the leader-forwarding
// boundary as strings, so they are stable wire values.
type Code string

const (
	CodeNotFound  Code = "not_found"
	CodeConflict  Code = "conflict"
	CodeInvalid   Code = "invalid"
	CodeForbidden Code = "forbidden"
	CodeGone      Code = "gone"
	// CodeUnprocessable: an Idempotency-Key reused with another request.
	CodeUnprocessable Code = "unprocessable"
)

// Error is a business rule saying no. Apply returns it as a value (never panics
// for it); the API maps Code to an HTTP status.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

func errf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is checks.
var (
	ErrNotFound  = &Error{Code: CodeNotFound}
	ErrConflict  = &Error{Code: CodeConflict}
	ErrInvalid   = &Error{Code: CodeInvalid}
	ErrForbidden = &Error{Code: CodeForbidden}
)

// Is makes errors.Is(err, ErrNotFound) match any *Error with that code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
	}
	return false
}
