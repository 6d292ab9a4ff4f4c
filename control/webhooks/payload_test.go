package webhooks

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustTime(t *testing.T, s string) Time {
	t.Helper()
	tt, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return At(tt)
}

// The examples of videosdk-v2.md §11.4, byte for byte.
func TestEnvelopeMatchesDocumentedExamples(t *testing.T) {
	const (
		meeting = "jvsg-8rjn-j304"
		session = "613731342f27f56e4fc4b6d0"
		file    = "/encoded/videos/62d148951a1eb20029fc9b05.mp4"
		fileURL = "https://cdn.videosdk.live/encoded/videos/62d148951a1eb20029fc9b05.mp4"
		hls     = "https://cdn.videosdk.live/meetings-hls/b8a770ef-d713-4a27-9ab7-e5a0b724caaf/"
	)
	start := mustTime(t, "2022-07-05T15:55:35.047Z")
	end := mustTime(t, "2022-07-05T17:00:35.047+01:00") // rendered in UTC
	tests := []struct {
		event string
		data  any
		want  string
	}{
		{EventParticipantJoined, Participant{meeting, session, "fkd74h", "John"},
			`{"webhookType":"participant-joined","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","participantId":"fkd74h","participantName":"John"}}`},
		{EventSessionStarted, SessionStarted{session, meeting, start},
			`{"webhookType":"session-started","data":{"sessionId":"613731342f27f56e4fc4b6d0","meetingId":"jvsg-8rjn-j304","start":"2022-07-05T15:55:35.047+00:00"}}`},
		{EventSessionEnded, &SessionEnded{session, meeting, start, end},
			`{"webhookType":"session-ended","data":{"sessionId":"613731342f27f56e4fc4b6d0","meetingId":"jvsg-8rjn-j304","start":"2022-07-05T15:55:35.047+00:00","end":"2022-07-05T16:00:35.047+00:00"}}`},
		{EventRecordingStopped, RecordingStopped{meeting, session, file, fileURL},
			`{"webhookType":"recording-stopped","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","filePath":"/encoded/videos/62d148951a1eb20029fc9b05.mp4","fileUrl":"https://cdn.videosdk.live/encoded/videos/62d148951a1eb20029fc9b05.mp4"}}`},
		{EventTrackRecordingStopped, TrackRecordingStopped{meeting, session, "abcd", "audio", FileDetails{{file, fileURL}}},
			`{"webhookType":"participant-track-recording-stopped","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","participantId":"abcd","kind":"audio","fileDetails":[{"filePath":"/encoded/videos/62d148951a1eb20029fc9b05.mp4","fileUrl":"https://cdn.videosdk.live/encoded/videos/62d148951a1eb20029fc9b05.mp4"}]}}`},
		{EventParticipantRecordingStarted, ParticipantRecording{meeting, session, "abcd", "webm"},
			`{"webhookType":"participant-recording-started","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","participantId":"abcd","fileFormat":"webm"}}`},
		{EventMergeRecordingFailed, MergeRecordingFailed{"bf37fabb-6e34-418b-bc29-97f053fc6cfe", meeting, session, "error message, if any"},
			`{"webhookType":"merge-recording-failed","data":{"id":"bf37fabb-6e34-418b-bc29-97f053fc6cfe","meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","message":"error message, if any"}}`},
		{EventHLSPlayable, HLSPlayable{MeetingID: meeting, SessionID: session, PlaybackHLSURL: hls + "index.m3u8", LivestreamURL: hls + "live.m3u8"},
			`{"webhookType":"hls-playable","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","playbackHlsUrl":"https://cdn.videosdk.live/meetings-hls/b8a770ef-d713-4a27-9ab7-e5a0b724caaf/index.m3u8","livestreamUrl":"https://cdn.videosdk.live/meetings-hls/b8a770ef-d713-4a27-9ab7-e5a0b724caaf/live.m3u8"}}`},
		// Beyond the documented examples: shapes from the §11.3 table.
		{EventParticipantRecordingStopped, ParticipantRecordingStopped{meeting, session, "abcd", nil},
			`{"webhookType":"participant-recording-stopped","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","participantId":"abcd","fileDetails":[]}}`},
		{EventTranscriptionStarted, Transcription{"t1", "realtime", meeting, session},
			`{"webhookType":"transcription-started","data":{"id":"t1","type":"realtime","meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0"}}`},
		{EventHLSStarted, HLSStarted{MeetingID: meeting, SessionID: session, PlaybackHLSURL: "p", LivestreamURL: "l", DownstreamURL: "p"},
			`{"webhookType":"hls-started","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0","playbackHlsUrl":"p","livestreamUrl":"l","downstreamUrl":"p"}}`},
		{EventLivestreamFailed, Meeting{meeting, session},
			`{"webhookType":"livestream-failed","data":{"meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0"}}`},
		{EventMergeRecordingFailed, MergeRecordingFailed{ID: "m", MeetingID: meeting, SessionID: session},
			`{"webhookType":"merge-recording-failed","data":{"id":"m","meetingId":"jvsg-8rjn-j304","sessionId":"613731342f27f56e4fc4b6d0"}}`},
		{EventRecordingStarted, json.RawMessage(` { "meetingId" : "m",  "sessionId":"s" } `),
			`{"webhookType":"recording-started","data":{"meetingId":"m","sessionId":"s"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.event, func(t *testing.T) {
			got, err := Envelope(tc.event, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Envelope(%s)\n got %s\nwant %s", tc.event, got, tc.want)
			}
		})
	}
}

func TestEveryCatalogueEventEncodes(t *testing.T) {
	for _, ev := range EventTypes() {
		zero := catalogue[ev]
		data := reflectNew(zero)
		body, err := Envelope(ev, data)
		if err != nil {
			t.Errorf("%s: %v", ev, err)
			continue
		}
		var env struct {
			WebhookType string         `json:"webhookType"`
			Data        map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.WebhookType != ev || env.Data == nil {
			t.Errorf("%s: body %s does not decode as an envelope: %v", ev, body, err)
		}
	}
	if len(EventTypes()) != 36 {
		t.Errorf("catalogue has %d events, want 36", len(EventTypes()))
	}
}

func reflectNew(t reflect.Type) any { return reflect.New(t).Interface() }

func TestEnvelopeRejects(t *testing.T) {
	tests := []struct {
		name  string
		event string
		data  any
		want  error
	}{
		{"unknown event", "agent-session-started", Meeting{}, ErrUnknownEvent},
		{"wrong data type", EventSessionStarted, Meeting{}, ErrPayload},
		{"map data", EventRecordingStarted, map[string]string{"meetingId": "x"}, ErrPayload},
		{"nil data", EventRecordingStarted, nil, ErrPayload},
		{"nil pointer", EventRecordingStarted, (*Meeting)(nil), ErrPayload},
		{"raw array", EventRecordingStarted, json.RawMessage(`[1]`), ErrPayload},
		{"raw invalid", EventRecordingStarted, json.RawMessage(`{"a":`), ErrPayload},
		{"raw duplicate key", EventRecordingStarted, json.RawMessage(`{"a":1,"a":2}`), ErrPayload},
		{"raw trailing value", EventRecordingStarted, json.RawMessage(`{} {}`), ErrPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Envelope(tc.event, tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// JSON.stringify escapes only '"', '\\' and control characters; encoding/json
// would also escape <, >, &, U+2028 and U+2029 and break receivers that verify
// a re-serialised body. The node test checks the same bodies against a real
// JSON.stringify.
func TestEnvelopeWritesStringsLikeJSONStringify(t *testing.T) {
	name := "<b>Tom & \"Jerry\"</b> \\ \u2028\u2029 \x00\x01\b\f\n\r\t\x1f\x7f é 😀 \xff"
	body, err := Envelope(EventParticipantLeft, Participant{"m", "s", "p", name})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"webhookType":"participant-left","data":{"meetingId":"m","sessionId":"s","participantId":"p","participantName":` +
		`"<b>Tom & \"Jerry\"</b> \\ ` + "\u2028\u2029" + ` \u0000\u0001\b\f\n\r\t\u001f` + "\x7f é 😀 \uFFFD" + `"}}`
	if string(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
	var back Participant
	if err := json.Unmarshal(body[strings.Index(string(body), `"data":`)+7:len(body)-1], &back); err != nil {
		t.Fatal(err)
	}
	if back.ParticipantName != strings.ToValidUTF8(name, "\uFFFD") {
		t.Errorf("round trip changed the name: %q", back.ParticipantName)
	}
}

func TestCanonicalJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{` { "b" : [ 1 , 2.50, -0, 1e2, 1E-7, 123456789012345678901234 ] , "a" : { } } `,
			`{"b":[1,2.5,0,100,1e-7,1.2345678901234569e+23],"a":{}}`},
		{`"\u003c\u0026\u003e\/"`, `"<&>/"`},
		{`[true,false,null,"",[],{}]`, `[true,false,null,"",[],{}]`},
		{`{"x":{"y":{"z":[{"k":"v"}]}}}`, `{"x":{"y":{"z":[{"k":"v"}]}}}`},
	}
	for _, tc := range tests {
		got, err := canonicalJSON([]byte(tc.in))
		if err != nil {
			t.Errorf("canonicalJSON(%s): %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("canonicalJSON(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{``, ` `, `{`, `{"a":1,}`, `[1 2]`, `1 2`, `{"a":1,"a":1}`, `1e999`} {
		if got, err := canonicalJSON([]byte(bad)); err == nil {
			t.Errorf("canonicalJSON(%q) = %s, want an error", bad, got)
		}
	}
}

func TestTimeFormat(t *testing.T) {
	tt := time.Date(2022, 7, 5, 17, 55, 35, 47_900_000, time.FixedZone("CEST", 2*3600))
	b, err := json.Marshal(At(tt))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `"2022-07-05T15:55:35.047+00:00"` {
		t.Errorf("got %s", b)
	}
	if b, _ := json.Marshal(Time{}); string(b) != "null" {
		t.Errorf("zero Time = %s, want null", b)
	}
}

func FuzzCanonicalJSONIdempotent(f *testing.F) {
	for _, s := range []string{`{"a":"<>&\u2028"}`, `[1.5e300,-0,"\ud83d\ude00"]`, `{"k":{"n":null}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		once, err := canonicalJSON(in)
		if err != nil {
			return
		}
		twice, err := canonicalJSON(once)
		if err != nil {
			t.Fatalf("canonical output %q does not parse: %v", once, err)
		}
		if string(once) != string(twice) {
			t.Fatalf("not idempotent: %q -> %q", once, twice)
		}
		if !json.Valid(once) {
			t.Fatalf("invalid JSON %q", once)
		}
	})
}
