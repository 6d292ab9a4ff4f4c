// Package egressapi holds the egress job messages between the control plane
// and an edge: what to run (Spec), how it is going (Status), and the
// composition config the REST API accepts (Config). Validation lives here so
// the API (400 naming the field) and the edge (which re-checks what it is
// asked to run) agree.
package egressapi

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Kind is what a job produces.
type Kind string

const (
	// KindComposite is a meeting recording: one grid-layout MP4.
	KindComposite Kind = "composite"
	// KindParticipant records one participant (camera + microphone) to one file.
	KindParticipant Kind = "participant"
	// KindTrack records one track kind of a participant; a new file starts
	// each time the track is re-enabled.
	KindTrack Kind = "track"
	// KindMerge mixes participant recordings into a two-channel MP3.
	KindMerge Kind = "merge"
	// KindRTMP streams the composition to RTMP servers.
	KindRTMP Kind = "rtmp"
	// KindHLS serves the composition as HLS from the edge.
	KindHLS Kind = "hls"
)

// Noun names a job of this kind in messages ("livestream %q not found").
func (k Kind) Noun() string {
	switch k {
	case KindRTMP:
		return "livestream"
	case KindHLS:
		return "HLS stream"
	case KindMerge:
		return "merge"
	case KindTrack:
		return "track recording"
	case KindParticipant:
		return "participant recording"
	}
	return "recording"
}

// State is a job's lifecycle state. A job goes starting → running →
// stopping → stopped, or to failed from any state; stopped and failed are
// final. For merges, stopped means completed.
type State string

const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
	StateFailed   State = "failed"
)

// Final reports whether no further change can happen.
func (s State) Final() bool { return s == StateStopped || s == StateFailed }

// FieldError is a validation error naming the offending request field
// (JSON path, e.g. "config.layout.type").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Layout values.
const (
	LayoutGrid      = "GRID"
	LayoutSpotlight = "SPOTLIGHT"
	LayoutSidebar   = "SIDEBAR"

	PrioritySpeaker = "SPEAKER"
	PriorityPin     = "PIN"

	ThemeDark    = "DARK"
	ThemeLight   = "LIGHT"
	ThemeDefault = "DEFAULT"

	ModeVideoAndAudio = "video-and-audio"
	ModeAudio         = "audio"

	QualityLow   = "low"
	QualityMed   = "med"
	QualityHigh  = "high"
	QualityUltra = "ultra"

	OrientationLandscape = "landscape"
	OrientationPortrait  = "portrait"
)

// Layout is config.layout.
type Layout struct {
	Type     string `json:"type,omitempty"`
	Priority string `json:"priority,omitempty"`
	GridSize int    `json:"gridSize,omitempty"`
}

// Config is the composition config shared by composite recordings, RTMP
// and HLS (the REST "config" object).
type Config struct {
	Layout      Layout `json:"layout,omitzero"`
	Theme       string `json:"theme,omitempty"`
	Mode        string `json:"mode,omitempty"`
	Quality     string `json:"quality,omitempty"`
	Orientation string `json:"orientation,omitempty"`
}

// MaxGridSize is the largest config.layout.gridSize per job kind.
func MaxGridSize(k Kind) int {
	if k == KindHLS {
		return 25
	}
	return 4
}

// Normalize validates c for a job of kind k and fills the defaults (GRID,
// SPEAKER, the largest grid, DARK, video-and-audio, med, landscape). Errors
// are *FieldError naming the field under prefix (usually "config").
func (c Config) Normalize(k Kind, prefix string) (Config, error) {
	f := func(name string) string { return prefix + "." + name }
	up := func(s string) string { return strings.ToUpper(strings.TrimSpace(s)) }
	low := func(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
	c.Layout.Type = up(c.Layout.Type)
	switch c.Layout.Type {
	case "":
		c.Layout.Type = LayoutGrid
	case LayoutGrid, LayoutSpotlight, LayoutSidebar:
	default:
		return c, fieldErr(f("layout.type"), "must be GRID, SPOTLIGHT or SIDEBAR, not %q", c.Layout.Type)
	}
	c.Layout.Priority = up(c.Layout.Priority)
	switch c.Layout.Priority {
	case "":
		c.Layout.Priority = PrioritySpeaker
	case PrioritySpeaker, PriorityPin:
	default:
		return c, fieldErr(f("layout.priority"), "must be SPEAKER or PIN, not %q", c.Layout.Priority)
	}
	maxGrid := MaxGridSize(k)
	switch {
	case c.Layout.GridSize == 0:
		c.Layout.GridSize = maxGrid
	case c.Layout.GridSize < 1 || c.Layout.GridSize > maxGrid:
		return c, fieldErr(f("layout.gridSize"), "must be between 1 and %d, not %d", maxGrid, c.Layout.GridSize)
	}
	c.Theme = up(c.Theme)
	switch c.Theme {
	case "":
		c.Theme = ThemeDefault
	case ThemeDark, ThemeLight, ThemeDefault:
	default:
		return c, fieldErr(f("theme"), "must be DARK, LIGHT or DEFAULT, not %q", c.Theme)
	}
	c.Mode = low(c.Mode)
	switch c.Mode {
	case "":
		c.Mode = ModeVideoAndAudio
	case ModeVideoAndAudio, ModeAudio:
	default:
		return c, fieldErr(f("mode"), "must be video-and-audio or audio, not %q", c.Mode)
	}
	c.Quality = low(c.Quality)
	switch c.Quality {
	case "":
		c.Quality = QualityMed
	case QualityLow, QualityMed, QualityHigh, QualityUltra:
	default:
		return c, fieldErr(f("quality"), "must be low, med, high or ultra, not %q", c.Quality)
	}
	c.Orientation = low(c.Orientation)
	switch c.Orientation {
	case "":
		c.Orientation = OrientationLandscape
	case OrientationLandscape, OrientationPortrait:
	default:
		return c, fieldErr(f("orientation"), "must be landscape or portrait, not %q", c.Orientation)
	}
	return c, nil
}

// Size is the output frame size of a normalized config: low 854×480, med
// 1280×720, high and ultra 1920×1080 (ultra is accepted for SDK
// compatibility and rendered as high), swapped for portrait.
func (c Config) Size() (w, h int) {
	switch c.Quality {
	case QualityLow:
		w, h = 854, 480
	case QualityHigh, QualityUltra:
		w, h = 1920, 1080
	default:
		w, h = 1280, 720
	}
	if c.Orientation == OrientationPortrait {
		w, h = h, w
	}
	return w, h
}

// RTMPOutput is one livestream destination.
type RTMPOutput struct {
	URL       string `json:"url"`
	StreamKey string `json:"streamKey,omitempty"`
}

// Target is where ffmpeg publishes: the URL with the stream key appended.
func (o RTMPOutput) Target() string {
	if o.StreamKey == "" {
		return o.URL
	}
	return strings.TrimRight(o.URL, "/") + "/" + o.StreamKey
}

// HLSOptions tunes an HLS job.
type HLSOptions struct {
	// SegmentSeconds is the target segment duration (default 2).
	SegmentSeconds float64 `json:"segmentSeconds,omitempty"`
	// WindowSegments is how many segments live.m3u8 lists (default 6);
	// index.m3u8 keeps every segment so players can seek back.
	WindowSegments int `json:"windowSegments,omitempty"`
	// Renditions is the number of renditions, 1–3 (default 1): the config
	// size, then lower heights from 720, 480, 360.
	Renditions int `json:"renditions,omitempty"`
	// Record also stores the top rendition as an MP4 when the job ends.
	Record bool `json:"record,omitempty"`
	// Path is the job's directory in HLS URLs (default the job id). Control
	// makes it unguessable: HLS URLs are capabilities (players cannot send
	// credentials with every segment request).
	Path string `json:"path,omitempty"`
}

// FileRef names a stored file.
type FileRef struct {
	Storage string `json:"storage"`
	Key     string `json:"key"`
}

// MergeInput is one participant recording in a merge channel.
type MergeInput struct {
	ParticipantID string  `json:"participantId"`
	RecordingID   string  `json:"recordingId,omitempty"`
	File          FileRef `json:"file"`
	// Start is the wall-clock time of the recording's first sample: inputs
	// are laid on one timeline by it.
	Start time.Time `json:"start"`
}

// Spec is what an edge is asked to run. IDs and times are made by the
// control plane.
type Spec struct {
	ID        string `json:"id"`
	Kind      Kind   `json:"kind"`
	RoomID    string `json:"roomId"`
	SessionID string `json:"sessionId,omitempty"`
	// AllowedRegions is the room's pin policy resolved to regions (empty:
	// anywhere); outputs are only stored in storage tagged for one of them.
	AllowedRegions []string `json:"allowedRegions,omitempty"`
	// DirPath prefixes every stored key (awsDirPath / bucketDirPath / dirPath).
	DirPath string `json:"dirPath,omitempty"`

	// Config: composite, rtmp, hls.
	Config Config `json:"config,omitzero"`
	// ParticipantID: participant, track.
	ParticipantID string `json:"participantId,omitempty"`
	// TrackKind: track (audio, video, screen_audio, screen_video).
	TrackKind string `json:"trackKind,omitempty"`
	// FileFormat: participant (webm, mp4), track (webm, mp4, mp3 for audio).
	FileFormat string `json:"fileFormat,omitempty"`
	// Outputs: rtmp.
	Outputs []RTMPOutput `json:"outputs,omitempty"`
	// HLS: hls.
	HLS HLSOptions `json:"hls,omitzero"`
	// Channel1 (left) and Channel2 (right): merge.
	Channel1 []MergeInput `json:"channel1,omitempty"`
	Channel2 []MergeInput `json:"channel2,omitempty"`
}

// Track kinds of track recordings.
const (
	TrackAudio       = "audio"
	TrackVideo       = "video"
	TrackScreenAudio = "screen_audio"
	TrackScreenVideo = "screen_video"
)

// Normalize validates s and fills defaults; errors are *FieldError with
// REST field names.
func (s Spec) Normalize() (Spec, error) {
	if s.ID == "" {
		return s, fieldErr("id", "is required")
	}
	if strings.ContainsAny(s.ID, "/\\") || strings.Contains(s.ID, "..") {
		return s, fieldErr("id", "must not contain path separators")
	}
	switch s.Kind {
	case KindComposite, KindParticipant, KindTrack, KindMerge, KindRTMP, KindHLS:
	default:
		return s, fieldErr("kind", "unknown job kind %q", s.Kind)
	}
	if s.Kind != KindMerge && s.RoomID == "" {
		return s, fieldErr("roomId", "is required")
	}
	var err error
	switch s.Kind {
	case KindComposite, KindHLS:
		s.Config, err = s.Config.Normalize(s.Kind, "config")
	case KindRTMP:
		s.Config, err = s.Config.Normalize(s.Kind, "config")
		if err == nil {
			err = validateOutputs(s.Outputs)
		}
	case KindParticipant:
		if s.ParticipantID == "" {
			return s, fieldErr("participantId", "is required")
		}
		s.FileFormat, err = format(s.FileFormat, "webm", "webm", "mp4")
	case KindTrack:
		if s.ParticipantID == "" {
			return s, fieldErr("participantId", "is required")
		}
		switch s.TrackKind {
		case TrackAudio, TrackScreenAudio:
			s.FileFormat, err = format(s.FileFormat, "webm", "webm", "mp4", "mp3")
		case TrackVideo, TrackScreenVideo:
			s.FileFormat, err = format(s.FileFormat, "webm", "webm", "mp4")
		default:
			return s, fieldErr("kind", "must be audio, video, screen_audio or screen_video, not %q", s.TrackKind)
		}
	case KindMerge:
		if s.SessionID == "" {
			return s, fieldErr("sessionId", "is required")
		}
		if len(s.Channel1) == 0 && len(s.Channel2) == 0 {
			return s, fieldErr("channel1", "channel1 and channel2 are both empty")
		}
		for name, ch := range map[string][]MergeInput{"channel1": s.Channel1, "channel2": s.Channel2} {
			for i, in := range ch {
				if in.File.Key == "" {
					return s, fieldErr(fmt.Sprintf("%s[%d].recordingId", name, i), "no recording file for participant %q", in.ParticipantID)
				}
			}
		}
	default:
		return s, fieldErr("kind", "unknown job kind %q", s.Kind)
	}
	if err != nil {
		return s, err
	}
	if s.Kind == KindHLS {
		h := &s.HLS
		if h.SegmentSeconds == 0 {
			h.SegmentSeconds = 2
		}
		if h.SegmentSeconds < 1 || h.SegmentSeconds > 10 {
			return s, fieldErr("hls.segmentSeconds", "must be between 1 and 10")
		}
		if h.WindowSegments == 0 {
			h.WindowSegments = 6
		}
		if h.WindowSegments < 2 || h.WindowSegments > 100 {
			return s, fieldErr("hls.windowSegments", "must be between 2 and 100")
		}
		if h.Renditions == 0 {
			h.Renditions = 1
		}
		if h.Renditions < 1 || h.Renditions > 3 {
			return s, fieldErr("hls.renditions", "must be between 1 and 3")
		}
		if h.Path == "" {
			h.Path = s.ID
		}
		if !safeSegment(h.Path) {
			return s, fieldErr("hls.path", "must be letters, digits, '-' or '_'")
		}
	}
	return s, nil
}

func format(v, def string, allowed ...string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return def, nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return v, fieldErr("fileFormat", "must be one of %s, not %q", strings.Join(allowed, ", "), v)
}

func validateOutputs(outs []RTMPOutput) error {
	if len(outs) == 0 {
		return fieldErr("outputs", "at least one output is required")
	}
	if len(outs) > 8 {
		return fieldErr("outputs", "at most 8 outputs")
	}
	for i, o := range outs {
		u, err := url.Parse(o.URL)
		if err != nil || (u.Scheme != "rtmp" && u.Scheme != "rtmps") || u.Host == "" {
			return fieldErr(fmt.Sprintf("outputs[%d].url", i), "must be an rtmp:// or rtmps:// URL")
		}
		if strings.ContainsAny(o.StreamKey, " \t\r\n") {
			return fieldErr(fmt.Sprintf("outputs[%d].streamKey", i), "must not contain whitespace")
		}
	}
	return nil
}

func safeSegment(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// File is one stored output.
type File struct {
	Storage string `json:"storage"`
	Region  string `json:"region"`
	Key     string `json:"key"`
	Size    int64  `json:"size"`
	// Duration in seconds, Width and Height in pixels (0 without video),
	// Format is ffprobe's format name list (e.g. "mov,mp4,m4a,3gp,3g2,mj2").
	Duration float64 `json:"duration"`
	Width    int     `json:"width,omitempty"`
	Height   int     `json:"height,omitempty"`
	Format   string  `json:"format"`
	// Type is "video" when the file has a video stream, else "audio".
	Type string `json:"type"`
	// TrackKind and ParticipantID describe track and participant files.
	TrackKind     string `json:"trackKind,omitempty"`
	ParticipantID string `json:"participantId,omitempty"`
	// Start and End are the wall-clock span the file covers.
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
}

// OutputStatus is one RTMP destination's state (the stream key is not echoed).
type OutputStatus struct {
	URL   string `json:"url"`
	State State  `json:"state"`
	Error string `json:"error,omitempty"`
}

// Status is a job's state as the edge reports it.
type Status struct {
	ID        string    `json:"id"`
	Kind      Kind      `json:"kind"`
	RoomID    string    `json:"roomId,omitempty"`
	SessionID string    `json:"sessionId,omitempty"`
	State     State     `json:"state"`
	Error     string    `json:"error,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	StoppedAt time.Time `json:"stoppedAt,omitzero"`
	// Size (bytes) and Duration (seconds) so far, final once stopped.
	Size     int64   `json:"size"`
	Duration float64 `json:"duration"`
	Files    []File  `json:"files,omitempty"`
	// Storage and Region name where files go.
	Storage string `json:"storage,omitempty"`
	Region  string `json:"region,omitempty"`
	// Outputs: rtmp.
	Outputs []OutputStatus `json:"outputs,omitempty"`
	// Playable: hls, once every rendition lists a segment. HLSPath is the
	// job's directory under the edge's HLS handler.
	Playable bool   `json:"playable,omitempty"`
	HLSPath  string `json:"hlsPath,omitempty"`
	// Seq increases with every change, so a receiver can drop stale reports.
	Seq uint64 `json:"seq"`
}
