package api_test

import (
	"strings"
	"testing"
)

// TestWebhookURLPortAndUserinfo: a webhook URL with a port no connection
// can use, or with user info (whose password the room and the delivery log
// would show), is refused with a 400 naming the field and the problem; the
// room is not created.
func TestWebhookURLPortAndUserinfo(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	for _, tc := range []struct{ url, msg string }{
		{"http://localhost:99999/x", "port 99999, which is not a TCP port (1-65535)"},
		{"http://localhost:0/x", "port 0, which is not a TCP port"},
		{"https://hooks.example.com:65536/x", "port 65536"},
		{"https://user:hunter2@hooks.example.com/x", "must not contain a user name or password"},
		{"https://user@hooks.example.com/x", "must not contain a user name or password"},
	} {
		for _, f := range []struct{ field, body string }{
			{"webhook.endPoint", `{"webhook":{"endPoint":"` + tc.url + `"}}`},
			{"autoStartConfig.recording.webhookUrl", `{"autoStartConfig":{"recording":{"webhookUrl":"` + tc.url + `"}}}`},
		} {
			before := roomCount(c)
			r := c.Do(0, "POST", "/v2/rooms", tok, f.body)
			expectError(t, r, 400, `field "`+f.field+`"`)
			expectError(t, r, 400, tc.msg)
			if strings.Contains(string(r.Body), "hunter2") {
				t.Fatalf("%s: the error shows the password: %s", tc.url, r.Body)
			}
			if roomCount(c) != before {
				t.Fatalf("%s: a room was created", tc.url)
			}
		}
	}
	for _, u := range []string{"https://hooks.example.com:1/x", "https://hooks.example.com:65535/x", "https://hooks.example.com:/x", "https://hooks.example.com/x?token=abc"} {
		if r := c.Do(0, "POST", "/v2/rooms", tok, `{"webhook":{"endPoint":"`+u+`"}}`); r.Status != 200 {
			t.Fatalf("%s refused: %d %s", u, r.Status, r.Body)
		}
	}
}
