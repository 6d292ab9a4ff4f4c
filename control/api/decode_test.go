package api

import (
	"encoding/json"
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
