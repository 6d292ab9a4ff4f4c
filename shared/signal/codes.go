package signal

// Error codes carried by Error.Code. The join codes are listed in
// docs/signaling.md; after a failed join the edge closes the socket. The
// remaining codes answer a bad message on an established session, which
// stays open.
const (
	CodeInvalidTicket = "invalid-ticket" // malformed, bad signature, unknown or expired resume token
	CodeTicketExpired = "ticket-expired"
	CodeRoomFull      = "room-full"
	CodeWrongEdge     = "wrong-edge" // ticket bound to another edge, or this edge's region is not allowed
	CodeRoomClosed    = "room-closed"
	CodeForbidden     = "forbidden" // missing permission (publish, moderate)

	CodeBadRequest  = "bad-request"  // unparsable frame, missing field, message not valid now
	CodeUnknownType = "unknown-type" // a message type the edge does not know
	CodeNotFound    = "not-found"    // the named participant or track does not exist
	CodeBadSDP      = "bad-sdp"      // an offer, answer or candidate was rejected
	CodeUnavailable = "unavailable"  // the edge cannot admit anyone right now (not registered, shutting down)
)

// Reasons carried by Removed.Reason and ParticipantLeft.Reason.
const (
	ReasonLeft       = "left"
	ReasonRemoved    = "removed"
	ReasonDenied     = "denied"
	ReasonRoomClosed = "room-closed"
	ReasonDuplicate  = "duplicate"
	ReasonTimeout    = "timeout"
	// ReasonMoved (client → edge, in `leave`): the participant is leaving
	// this edge because another edge has admitted it (make before break).
	// Nobody is told it left unless it fails to appear through the other
	// edge within the remote grace period.
	ReasonMoved = "moved"
)
