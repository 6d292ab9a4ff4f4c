package webhooks

import "errors"

// Sentinel errors. Wrapped errors carry details; test with errors.Is.
var (
	// ErrUnknownEvent: the event type is not in the catalogue (§11.3).
	ErrUnknownEvent = errors.New("webhooks: unknown event type")
	// ErrPayload: the data does not fit the event type, or is not a JSON object.
	ErrPayload = errors.New("webhooks: invalid payload")
	// ErrInvalidURL: the target URL cannot be parsed or has no host.
	ErrInvalidURL = errors.New("webhooks: invalid target URL")
	// ErrInsecureURL: a plain http:// target while HTTPS is required.
	ErrInsecureURL = errors.New("webhooks: plain http target refused (https required)")
	// ErrDestinationRefused: the target resolves to a loopback, private,
	// link-local or otherwise restricted address that the configuration does
	// not allow (SSRF guard).
	ErrDestinationRefused = errors.New("webhooks: destination address refused")
	// ErrUnknownSecret: the signing secret of a delivery does not exist any
	// more (key deleted or revoked). The delivery fails permanently.
	ErrUnknownSecret = errors.New("webhooks: unknown signing secret")
	// ErrAlreadyRunning: Run was called while another Run is active.
	ErrAlreadyRunning = errors.New("webhooks: dispatcher already running")
	// ErrConfig: the configuration is invalid; the message names the field.
	ErrConfig = errors.New("webhooks: invalid config")
)
