package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meridian-video/meridian/geo"
)

// FuzzCreateRoomDecode: any body either decodes and validates, or yields a
// 4xx *Error with a message — never a panic or a 5xx.
func FuzzCreateRoomDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"customRoomId":"a"}`, `{"webhook":{"endPoint":"https://x.y","events":["*"]}}`, `{"maxParticipants":3}`,
		`{"autoCloseConfig":{"type":"session-ends","duration":1}}`, `[`, `null`, `{"pin":{"regions":["eu-west"]}}`, `{"autoStartConfig":{"hls":{}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createRoomRequest
		if err := decodeBytes(body, &req); err != nil {
			e, ok := err.(*Error)
			if !ok || e.Status != 400 || e.Message == "" {
				t.Fatalf("decode error %T %v", err, err)
			}
			return
		}
		if _, err := req.toRoom(nil, geo.DefaultFences()); err != nil {
			e, ok := err.(*Error)
			if !ok || e.Status != 400 || e.Message == "" {
				t.Fatalf("validate error %T %v", err, err)
			}
		}
	})
}

func FuzzGenericDecode(f *testing.F) {
	f.Add([]byte(`{"roomId":"abcd-efgh-ijkl","sessionId":"0123456789abcdef01234567"}`))
	f.Add([]byte(`{"participantId":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var a endSessionRequest
		var b removeParticipantRequest
		var c json.RawMessage
		for _, v := range []any{&a, &b, &c} {
			if err := decodeBytes(body, v); err != nil {
				if e, ok := err.(*Error); !ok || e.Status != 400 {
					t.Fatalf("%T", err)
				}
			}
		}
	})
}

// TestDecodeBytesMessages: what a client hears about a body that does not
// decode names the problem — a second value or other data after the object,
// a body cut short, a wrong type (with the field), a syntax error (with the
// byte) — and whitespace around the object is fine.
func TestDecodeBytesMessages(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"customRoomId":"a"} x`, "request body has data after the JSON value"},
		{`{"customRoomId":"a"}{"customRoomId":"b"}`, "request body has data after the JSON value"},
		{`{"customRoomId":"a"} null`, "request body has data after the JSON value"},
		{`{"customRoomId":`, "malformed JSON: unexpected end of body"},
		{`{"customRoomId":"a"`, "malformed JSON: unexpected end of body"},
		{`{"customRoomId":3}`, `field "customRoomId" must be a string, not number`},
		{`{"maxParticipants":1e400}`, `field "maxParticipants" must be a number within range, not 1e400`},
		{`{"customRoomId" "a"}`, "malformed JSON at byte 17"},
		{" \n{\"customRoomId\":\"a\"}\t\n", ""},
	} {
		var req createRoomRequest
		err := decodeBytes([]byte(tc.body), &req)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want it decoded", tc.body, err)
		case tc.want == "" && (req.CustomRoomID == nil || *req.CustomRoomID != "a"):
			t.Errorf("%q: decoded %+v", tc.body, req)
		case tc.want != "":
			e, ok := err.(*Error)
			if !ok || e.Status != 400 || !strings.Contains(e.Message, tc.want) {
				t.Errorf("%q: %v, want a 400 saying %q", tc.body, err, tc.want)
			}
		}
	}
}
