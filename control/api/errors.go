package api

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
)

// Error is an API error with a status and a message safe to show clients.
type Error struct {
	Status     int
	Message    string
	RetryAfter int // seconds; 0 = no header
	// Reason is a machine-readable cause where one helps clients tell
	// errors of the same status apart ("retention": the record existed and
	// the retention policy removed it).
	Reason string
}

func (e *Error) Error() string { return e.Message }

// msgBodyCutShort answers a request whose connection ended before the
// body it declared had arrived.
const msgBodyCutShort = "could not read the request body: the connection ended before its declared Content-Length"

func badRequest(msg string) *Error { return &Error{Status: http.StatusBadRequest, Message: msg} }
func notFound(msg string) *Error   { return &Error{Status: http.StatusNotFound, Message: msg} }

// removedByRetention answers a lookup of a record the retention policy
// removed; a room-scoped token for another room learns nothing (nil).
func removedByRetention(p *auth.Principal, t *state.Tombstone) *Error {
	if t == nil || p.CheckRoom(t.RoomID) != nil {
		return nil
	}
	return &Error{Status: http.StatusNotFound, Message: state.RemovedMessage(t.Kind, truncateForMsg(t.ID), t.RemovedAt), Reason: "retention"}
}

// errorBody is the JSON error shape: consumers read `error` and `message`.
type errorBody struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	Reason     string `json:"reason,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
}

// errorHandler maps every package's errors to one status + JSON body. Unknown
// errors become a generic 500 and are logged; their text never reaches clients.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		status, msg, retry := classify(err)
		var reason string
		if ae := (*Error)(nil); errors.As(err, &ae) {
			reason = ae.Reason
		}
		if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusNotImplemented {
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err, "request_id", requestID(c))
		}
		if retry > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(retry))
		}
		return c.Status(status).JSON(errorBody{StatusCode: status, Error: http.StatusText(status), Message: msg, Reason: reason, RequestID: requestID(c)})
	}
}

func classify(err error) (status int, msg string, retryAfter int) {
	var ae *Error
	var se *state.Error
	var authErr *auth.AuthError
	var fe *fiber.Error
	var storageErr *cluster.StorageError
	var tokenErr *cluster.TokenRefusedError
	var lagErr *cluster.LagError
	switch {
	case errors.As(err, &ae):
		return ae.Status, ae.Message, ae.RetryAfter
	case errors.As(err, &authErr):
		if errors.Is(authErr.Kind, auth.ErrForbidden) {
			return http.StatusForbidden, authErr.Message, 0
		}
		return http.StatusUnauthorized, authErr.Message, 0
	case errors.As(err, &se):
		switch se.Code {
		case state.CodeNotFound:
			return http.StatusNotFound, se.Message, 0
		case state.CodeConflict:
			return http.StatusConflict, se.Message, 0
		case state.CodeForbidden:
			return http.StatusForbidden, se.Message, 0
		case state.CodeGone:
			return http.StatusGone, se.Message, 0
		case state.CodeUnprocessable:
			return http.StatusUnprocessableEntity, se.Message, 0
		default:
			return http.StatusBadRequest, se.Message, 0
		}
	case errors.As(err, &tokenErr):
		return http.StatusServiceUnavailable, "this control node cannot forward writes to the leader: it refused this node's cluster token (every control node needs the same --cluster-token); retry shortly", 2
	case errors.As(err, &lagErr):
		return http.StatusServiceUnavailable, lagErr.Error() + "; retry shortly or ask another control node", 2
	case errors.As(err, &storageErr):
		return http.StatusServiceUnavailable, "the control plane cannot store writes right now: writing its Raft log failed (" + storageErr.Cause() + "); retry shortly", 2
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrClosed):
		return http.StatusServiceUnavailable, "the control plane has no leader right now; retry shortly", 2
	case errors.As(err, &fe):
		switch fe.Code {
		case http.StatusRequestEntityTooLarge:
			return fe.Code, "request body is larger than 1 MiB", 0
		case http.StatusNotFound:
			return fe.Code, "no such route", 0
		case http.StatusMethodNotAllowed:
			return fe.Code, "method not allowed on this route", 0
		case http.StatusBadRequest:
			// fasthttp reading a small body before any handler runs.
			if fe.Message == io.ErrUnexpectedEOF.Error() {
				return fe.Code, msgBodyCutShort, 0
			}
		}
		if fe.Code < 500 {
			return fe.Code, fe.Message, 0
		}
	}
	return http.StatusInternalServerError, "internal error", 0
}
