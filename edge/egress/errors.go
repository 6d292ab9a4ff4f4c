package egress

import "errors"

// Errors returned by the Runner; the agent maps them to answers for the
// control plane (4xx for the caller's mistakes).
var (
	ErrClosed            = errors.New("egress: runner closed")
	ErrRoomNotFound      = errors.New("egress: room has no live session on this edge")
	ErrNoParticipants    = errors.New("egress: room has no participants")
	ErrParticipantAbsent = errors.New("egress: participant is not in the room")
	ErrTrackAbsent       = errors.New("egress: participant does not publish that track")
	ErrJobExists         = errors.New("egress: a job with this id exists")
	ErrJobNotFound       = errors.New("egress: no such job")
	ErrJobEnded          = errors.New("egress: job already ended")
	ErrNotCapturable     = errors.New("egress: job has no video to capture")
	ErrNoFFmpeg          = errors.New("egress: ffmpeg not found")
)
