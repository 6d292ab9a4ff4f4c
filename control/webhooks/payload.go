package webhooks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Event types of the catalogue (videosdk-v2.md §11.3). Names that upstream
// lists but Meridian does not implement are deliberately absent.
const (
	EventSessionStarted    = "session-started"
	EventSessionEnded      = "session-ended"
	EventParticipantJoined = "participant-joined"
	EventParticipantLeft   = "participant-left"

	EventRecordingStarting = "recording-starting"
	EventRecordingStarted  = "recording-started"
	EventRecordingStopping = "recording-stopping"
	EventRecordingStopped  = "recording-stopped"
	EventRecordingFailed   = "recording-failed"

	EventParticipantRecordingStarting = "participant-recording-starting"
	EventParticipantRecordingStarted  = "participant-recording-started"
	EventParticipantRecordingStopping = "participant-recording-stopping"
	EventParticipantRecordingStopped  = "participant-recording-stopped"
	EventParticipantRecordingFailed   = "participant-recording-failed"

	EventTrackRecordingStarting = "participant-track-recording-starting"
	EventTrackRecordingStarted  = "participant-track-recording-started"
	EventTrackRecordingStopping = "participant-track-recording-stopping"
	EventTrackRecordingStopped  = "participant-track-recording-stopped"
	EventTrackRecordingFailed   = "participant-track-recording-failed"

	EventMergeRecordingCompleted = "merge-recording-completed"
	EventMergeRecordingFailed    = "merge-recording-failed"

	EventTranscriptionStarted   = "transcription-started"
	EventTranscriptionStopped   = "transcription-stopped"
	EventTranscriptionFailed    = "transcription-failed"
	EventTranscriptionCompleted = "transcription-completed"

	EventLivestreamStarting = "livestream-starting"
	EventLivestreamStarted  = "livestream-started"
	EventLivestreamStopping = "livestream-stopping"
	EventLivestreamStopped  = "livestream-stopped"
	EventLivestreamFailed   = "livestream-failed"

	EventHLSStarting = "hls-starting"
	EventHLSStarted  = "hls-started"
	EventHLSPlayable = "hls-playable"
	EventHLSStopping = "hls-stopping"
	EventHLSStopped  = "hls-stopped"
	EventHLSFailed   = "hls-failed"
)

// Time is an instant rendered the way webhook payloads carry it:
// UTC, milliseconds, "+00:00" offset (2022-07-05T15:55:35.047+00:00).
// The zero Time encodes as null.
type Time struct{ time.Time }

// WebhookTimeLayout is the layout of [Time] (always formatted in UTC).
const WebhookTimeLayout = "2006-01-02T15:04:05.000+00:00"

// At wraps t as a webhook timestamp.
func At(t time.Time) Time { return Time{t} }

// String formats t as in a payload (empty for the zero Time).
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(WebhookTimeLayout)
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return strconv.AppendQuote(nil, t.String()), nil
}

// Data objects, one per payload shape. Field order is the documented key
// order; do not reorder fields.

// SessionStarted is the data of session-started.
type SessionStarted struct {
	SessionID string `json:"sessionId"`
	MeetingID string `json:"meetingId"`
	Start     Time   `json:"start"`
}

// SessionEnded is the data of session-ended.
type SessionEnded struct {
	SessionID string `json:"sessionId"`
	MeetingID string `json:"meetingId"`
	Start     Time   `json:"start"`
	End       Time   `json:"end"`
}

// Participant is the data of participant-joined and participant-left.
type Participant struct {
	MeetingID       string `json:"meetingId"`
	SessionID       string `json:"sessionId"`
	ParticipantID   string `json:"participantId"`
	ParticipantName string `json:"participantName"`
}

// Meeting is the data of the lifecycle events that carry only the meeting
// and session: recording-{starting,started,stopping,failed},
// livestream-*, hls-{starting,stopping,stopped,failed}.
type Meeting struct {
	MeetingID string `json:"meetingId"`
	SessionID string `json:"sessionId"`
}

// RecordingStopped is the data of recording-stopped.
type RecordingStopped struct {
	MeetingID string `json:"meetingId"`
	SessionID string `json:"sessionId"`
	FilePath  string `json:"filePath"`
	FileURL   string `json:"fileUrl"`
}

// FileDetail is one finalised file.
type FileDetail struct {
	FilePath string `json:"filePath"`
	FileURL  string `json:"fileUrl"`
}

// FileDetails is a list of finalised files; nil encodes as [] so receivers can
// always iterate it.
type FileDetails []FileDetail

// MarshalJSON implements json.Marshaler.
func (f FileDetails) MarshalJSON() ([]byte, error) {
	if f == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]FileDetail(f))
}

// ParticipantRecording is the data of participant-recording-{starting,started,stopping}.
type ParticipantRecording struct {
	MeetingID     string `json:"meetingId"`
	SessionID     string `json:"sessionId"`
	ParticipantID string `json:"participantId"`
	FileFormat    string `json:"fileFormat"`
}

// ParticipantRecordingStopped is the data of participant-recording-stopped.
type ParticipantRecordingStopped struct {
	MeetingID     string      `json:"meetingId"`
	SessionID     string      `json:"sessionId"`
	ParticipantID string      `json:"participantId"`
	FileDetails   FileDetails `json:"fileDetails"`
}

// ParticipantRecordingFailed is the data of participant-recording-failed.
type ParticipantRecordingFailed struct {
	MeetingID     string `json:"meetingId"`
	SessionID     string `json:"sessionId"`
	ParticipantID string `json:"participantId"`
}

// TrackRecording is the data of participant-track-recording-{starting,started,stopping,failed}.
type TrackRecording struct {
	MeetingID     string `json:"meetingId"`
	SessionID     string `json:"sessionId"`
	ParticipantID string `json:"participantId"`
	Kind          string `json:"kind"`
}

// TrackRecordingStopped is the data of participant-track-recording-stopped.
type TrackRecordingStopped struct {
	MeetingID     string      `json:"meetingId"`
	SessionID     string      `json:"sessionId"`
	ParticipantID string      `json:"participantId"`
	Kind          string      `json:"kind"`
	FileDetails   FileDetails `json:"fileDetails"`
}

// MergeRecordingCompleted is the data of merge-recording-completed.
type MergeRecordingCompleted struct {
	ID        string `json:"id"`
	MeetingID string `json:"meetingId"`
	SessionID string `json:"sessionId"`
}

// MergeRecordingFailed is the data of merge-recording-failed.
type MergeRecordingFailed struct {
	ID        string `json:"id"`
	MeetingID string `json:"meetingId"`
	SessionID string `json:"sessionId"`
	Message   string `json:"message,omitempty"`
}

// Transcription is the data of transcription-{started,stopped,failed}.
// Type is "realtime" or "post".
type Transcription struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	MeetingID string `json:"meetingId"`
	SessionID string `json:"sessionId"`
}

// TranscriptionCompleted is the data of transcription-completed (payload
// undocumented upstream; this shape is the spec's suggestion).
type TranscriptionCompleted struct {
	ID          string `json:"id"`
	MeetingID   string `json:"meetingId"`
	SessionID   string `json:"sessionId"`
	RecordingID string `json:"recordingId,omitempty"`
}

// HLSStarted is the data of hls-started.
type HLSStarted struct {
	MeetingID      string `json:"meetingId"`
	SessionID      string `json:"sessionId"`
	PlaybackHLSURL string `json:"playbackHlsUrl"`
	LivestreamURL  string `json:"livestreamUrl,omitempty"`
	DownstreamURL  string `json:"downstreamUrl,omitempty"`
}

// HLSPlayable is the data of hls-playable.
type HLSPlayable struct {
	MeetingID      string `json:"meetingId"`
	SessionID      string `json:"sessionId"`
	PlaybackHLSURL string `json:"playbackHlsUrl"`
	LivestreamURL  string `json:"livestreamUrl"`
	DownstreamURL  string `json:"downstreamUrl,omitempty"`
}

// catalogue maps every event type Meridian emits to its data type.
var catalogue = map[string]reflect.Type{
	EventSessionStarted:    reflect.TypeFor[SessionStarted](),
	EventSessionEnded:      reflect.TypeFor[SessionEnded](),
	EventParticipantJoined: reflect.TypeFor[Participant](),
	EventParticipantLeft:   reflect.TypeFor[Participant](),

	EventRecordingStarting: reflect.TypeFor[Meeting](),
	EventRecordingStarted:  reflect.TypeFor[Meeting](),
	EventRecordingStopping: reflect.TypeFor[Meeting](),
	EventRecordingStopped:  reflect.TypeFor[RecordingStopped](),
	EventRecordingFailed:   reflect.TypeFor[Meeting](),

	EventParticipantRecordingStarting: reflect.TypeFor[ParticipantRecording](),
	EventParticipantRecordingStarted:  reflect.TypeFor[ParticipantRecording](),
	EventParticipantRecordingStopping: reflect.TypeFor[ParticipantRecording](),
	EventParticipantRecordingStopped:  reflect.TypeFor[ParticipantRecordingStopped](),
	EventParticipantRecordingFailed:   reflect.TypeFor[ParticipantRecordingFailed](),

	EventTrackRecordingStarting: reflect.TypeFor[TrackRecording](),
	EventTrackRecordingStarted:  reflect.TypeFor[TrackRecording](),
	EventTrackRecordingStopping: reflect.TypeFor[TrackRecording](),
	EventTrackRecordingStopped:  reflect.TypeFor[TrackRecordingStopped](),
	EventTrackRecordingFailed:   reflect.TypeFor[TrackRecording](),

	EventMergeRecordingCompleted: reflect.TypeFor[MergeRecordingCompleted](),
	EventMergeRecordingFailed:    reflect.TypeFor[MergeRecordingFailed](),

	EventTranscriptionStarted:   reflect.TypeFor[Transcription](),
	EventTranscriptionStopped:   reflect.TypeFor[Transcription](),
	EventTranscriptionFailed:    reflect.TypeFor[Transcription](),
	EventTranscriptionCompleted: reflect.TypeFor[TranscriptionCompleted](),

	EventLivestreamStarting: reflect.TypeFor[Meeting](),
	EventLivestreamStarted:  reflect.TypeFor[Meeting](),
	EventLivestreamStopping: reflect.TypeFor[Meeting](),
	EventLivestreamStopped:  reflect.TypeFor[Meeting](),
	EventLivestreamFailed:   reflect.TypeFor[Meeting](),

	EventHLSStarting: reflect.TypeFor[Meeting](),
	EventHLSStarted:  reflect.TypeFor[HLSStarted](),
	EventHLSPlayable: reflect.TypeFor[HLSPlayable](),
	EventHLSStopping: reflect.TypeFor[Meeting](),
	EventHLSStopped:  reflect.TypeFor[Meeting](),
	EventHLSFailed:   reflect.TypeFor[Meeting](),
}

// EventTypes lists every event type of the catalogue, sorted.
func EventTypes() []string {
	out := make([]string, 0, len(catalogue))
	for k := range catalogue {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// KnownEvent reports whether eventType is in the catalogue.
func KnownEvent(eventType string) bool {
	_, ok := catalogue[eventType]
	return ok
}

// Envelope returns the body of a webhook: compact JSON
// {"webhookType":"<eventType>","data":{...}}.
//
// data is the catalogue struct of eventType (value or pointer), or a
// json.RawMessage holding a JSON object whose key order the caller owns. The
// result is canonical: no insignificant whitespace, and strings and numbers
// written exactly as JavaScript's JSON.stringify writes them (no HTML
// escaping), so JSON.stringify(JSON.parse(body)) reproduces the body byte for
// byte. The returned bytes are what is stored in the outbox and signed.
func Envelope(eventType string, data any) ([]byte, error) {
	want, ok := catalogue[eventType]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEvent, eventType)
	}
	var raw []byte
	switch v := data.(type) {
	case json.RawMessage:
		raw = v
	default:
		t := reflect.TypeOf(data)
		if t != nil && t.Kind() == reflect.Pointer {
			if reflect.ValueOf(data).IsNil() {
				return nil, fmt.Errorf("%w: nil %s data for %s", ErrPayload, t, eventType)
			}
			t = t.Elem()
		}
		if t != want {
			return nil, fmt.Errorf("%w: %s takes %s data, got %v", ErrPayload, eventType, want.Name(), t)
		}
		var err error
		if raw, err = json.Marshal(data); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrPayload, eventType, err)
		}
	}
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: %s data must be a JSON object", ErrPayload, eventType)
	}
	env := make([]byte, 0, len(raw)+len(eventType)+32)
	env = append(env, `{"webhookType":`...)
	env = appendJSString(env, eventType)
	env = append(env, `,"data":`...)
	env = append(env, raw...)
	env = append(env, '}')
	out, err := canonicalJSON(env)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPayload, eventType, err)
	}
	return out, nil
}

// canonicalJSON re-encodes one JSON value the way JSON.stringify(JSON.parse(x))
// would: keys kept in order, no whitespace, strings with only the escapes
// JavaScript uses, numbers in ECMAScript's shortest form. Duplicate object
// keys are rejected (JavaScript would silently keep the last one).
func canonicalJSON(in []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	type frame struct {
		object bool
		n      int // tokens written at this level (keys and values)
		keys   map[string]struct{}
	}
	var (
		out   = make([]byte, 0, len(in))
		stack []frame
		roots int
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			out = append(out, byte(d))
			stack = stack[:len(stack)-1]
			continue
		}
		if len(stack) == 0 {
			if roots++; roots > 1 {
				return nil, fmt.Errorf("more than one JSON value")
			}
		} else {
			f := &stack[len(stack)-1]
			switch {
			case f.object && f.n%2 == 0: // a key
				key := tok.(string) // the decoder guarantees keys are strings
				if _, dup := f.keys[key]; dup {
					return nil, fmt.Errorf("duplicate key %q", key)
				}
				f.keys[key] = struct{}{}
				if f.n > 0 {
					out = append(out, ',')
				}
				f.n++
				out = appendJSString(out, key)
				continue
			case f.object:
				out = append(out, ':')
			case f.n > 0:
				out = append(out, ',')
			}
			f.n++
		}
		switch v := tok.(type) {
		case json.Delim:
			out = append(out, byte(v))
			fr := frame{object: v == '{'}
			if fr.object {
				fr.keys = map[string]struct{}{}
			}
			stack = append(stack, fr)
		case string:
			out = appendJSString(out, v)
		case json.Number:
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return nil, fmt.Errorf("number %s: %v", v, err)
			}
			if f == 0 { // JSON.stringify(-0) is "0"
				f = 0
			}
			b, err := json.Marshal(f) // encoding/json formats float64 like ECMAScript
			if err != nil {
				return nil, err
			}
			out = append(out, b...)
		case bool:
			out = strconv.AppendBool(out, v)
		case nil:
			out = append(out, "null"...)
		}
	}
	if roots == 0 || len(stack) > 0 {
		return nil, fmt.Errorf("incomplete JSON")
	}
	return out, nil
}

// appendJSString appends s as JSON.stringify quotes it: only '"', '\\' and
// control characters are escaped, with the short forms where JavaScript has
// them and lower-case \u00xx otherwise. s must be valid UTF-8 (strings from
// encoding/json always are).
func appendJSString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20:
			dst = append(dst, c)
		case c == '\b':
			dst = append(dst, '\\', 'b')
		case c == '\f':
			dst = append(dst, '\\', 'f')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	return append(dst, '"')
}
