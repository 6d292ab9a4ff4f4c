package edgeapi

import "github.com/meridian-video/meridian/shared/egressapi"

// Egress jobs (recordings, RTMP out, HLS) run on the edge that holds the
// room's media; the control plane owns the replicated job record.
//
// Control → edge (internal URL, same internal authorization as the other
// /internal/v1 calls):
//
//	POST EgressStartPath    body egressapi.Spec   → 200 egressapi.Status
//	POST EgressStopPath     body EgressStop       → 200 egressapi.Status
//	POST EgressStatusPath   body EgressStop       → 200 egressapi.Status
//	POST EgressCapturePath  body EgressCapture    → 200 image bytes (Content-Type image/jpeg|png)
//	POST EgressDeletePath   body EgressDelete     → 200 {"deleted": <files removed or already gone>}
//
// Errors are JSON EgressError with the HTTP status the REST API should
// answer: 400 (Field names the request field, or no storage allowed for
// the room's regions), 404 (room, participant, track or job not on this
// edge), 409 (job id exists, job already ended), 503 (edge draining or
// closing).
//
// Capture also stores the picture (thumbnails/… in the job's storage) and
// describes the stored file in the EgressCaptureFileHeader response header
// (an egressapi.File as JSON), for the REST answer's filePath/fileSize.
//
// Public, on the edge's public URL (PublicURL, the base of its signalling
// URL), no Authorization (players and webhook receivers cannot send one;
// the URLs are capabilities), CORS open to any origin:
//
//	HLS (Status.HLSPath, unguessable):
//	  <edge public URL>/egress/hls/<hlsPath>/index.m3u8   playbackHlsUrl (EVENT list, seekable)
//	  <edge public URL>/egress/hls/<hlsPath>/live.m3u8    livestreamUrl / downstreamUrl (live window)
//	Files of a local storage target (File.Storage, File.Key), signed:
//	  storage.SignURL(ticketKey, <edge public URL>/egress/files/<File.Storage>, File.Storage, File.Key, expiry)
//	  = <edge public URL>/egress/files/<File.Storage>/<File.Key>?exp=…&sig=…   fileUrl (GET/HEAD, Range)
//	Files of an S3 target: S3.PresignGet, not served by the edge.
//
// Edge → control: every change of a job's Status travels in the edge's
// ordered, retried event batch as an Event of Kind EventEgressStatus with
// Egress set (Status.Seq orders reports of one job; a receiver drops one
// whose Seq is not newer than what it has).
const (
	EgressStartPath   = "/internal/v1/egress/start"
	EgressStopPath    = "/internal/v1/egress/stop"
	EgressStatusPath  = "/internal/v1/egress/status"
	EgressCapturePath = "/internal/v1/egress/capture"
	// EgressDeletePath (additive): forget a deleted job, remove its files.
	EgressDeletePath = "/internal/v1/egress/delete"

	EventEgressStatus = "egress-status"

	// EgressHLSPrefix and EgressFilesPrefix are the public routes above
	// (append the HLS path, or the storage name and key).
	EgressHLSPrefix   = "/egress/hls/"
	EgressFilesPrefix = "/egress/files/"
	// EgressCaptureFileHeader carries the stored capture (egressapi.File JSON).
	EgressCaptureFileHeader = "X-Egress-File"
)

// EgressStop names a job (stop, status).
type EgressStop struct {
	ID string `json:"id"`
}

// EgressCapture asks for a picture of an HLS/composite job's current frame.
type EgressCapture struct {
	ID     string `json:"id"`
	Format string `json:"format,omitempty"` // jpeg (default) | png
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	// Time, when set, grabs the picture this many seconds into an HLS
	// stream instead of the live one (REST "time").
	Time *float64 `json:"time,omitempty"`
}

// EgressDelete removes what the edge keeps of a deleted job: with ID, the
// ended job itself and its HLS playlists and segments (409 while it still
// runs); with Files, those stored files, from the edge's storage targets
// of those names (local files live on the edge's disk, so only the edge
// can remove them; 400 naming the field for an unknown target or a bad
// key). Idempotent: an unknown id or a missing file is not an error.
type EgressDelete struct {
	ID    string              `json:"id,omitempty"`
	Files []egressapi.FileRef `json:"files,omitempty"`
}

// EgressError is the body of a failed egress call.
type EgressError struct {
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}
