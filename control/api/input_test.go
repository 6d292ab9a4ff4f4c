package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/webhooks"
)

// TestBadInputIsRefusedClearly: every case is a 4xx JSON error that names
// the problem, echoes at most a little of the input, and changes nothing.
func TestBadInputIsRefusedClearly(t *testing.T) {
	c := newNode(t)
	tok := c.Token()
	raw := func(method, path, body, authz string) clustertest.Response {
		t.Helper()
		req, _ := http.NewRequest(method, c.Node(0).URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", authz)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return clustertest.Response{Status: resp.StatusCode, Body: b, Header: resp.Header}
	}
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	manyIDs := make([]string, api.MaxAllowedParticipantIDs+1)
	for i := range manyIDs {
		manyIDs[i] = fmt.Sprintf("p%d", i)
	}
	manyEvents := make([]string, len(webhooks.EventTypes())+5)
	for i := range manyEvents {
		manyEvents[i] = "session-started"
	}
	webhookWith := func(events []string) string {
		return jsonString(map[string]any{"webhook": map[string]any{"endPoint": "https://hooks.example.com/h", "events": events}})
	}
	now := time.Now().Unix()
	cases := []struct {
		name, method, path, body string
		authz                    string
		status                   int
		mention                  string
	}{
		{"long room id", "GET", "/v2/rooms/" + strings.Repeat("a", 300), "", tok, 400, "at most 256"},
		{"null body", "POST", "/v2/rooms", "null", tok, 400, "JSON object"},
		{"array body", "POST", "/v2/rooms", "[]", tok, 400, "JSON object"},
		{"invalid UTF-8 in customRoomId", "POST", "/v2/rooms", "{\"customRoomId\":\"a\xffb\"}", tok, 400, "UTF-8"},
		{"bidi override in customRoomId", "POST", "/v2/rooms", "{\"customRoomId\":\"abc\u202edcba\"}", tok, 400, "customRoomId"},
		{"deep autoStartConfig", "POST", "/v2/rooms", `{"autoStartConfig":` + deep + `}`, tok, 400, "autoStartConfig"},
		{"huge autoStartConfig", "POST", "/v2/rooms", `{"autoStartConfig":{"x":"` + strings.Repeat("y", 20000) + `"}}`, tok, 400, "autoStartConfig"},
		{"numeric webhook host", "POST", "/v2/rooms", `{"webhook":{"endPoint":"https://2130706433/x"}}`, tok, 400, "webhook.endPoint"},
		{"hex webhook host", "POST", "/v2/rooms", `{"webhook":{"endPoint":"https://0x7f000001/x"}}`, tok, 400, "webhook.endPoint"},
		{"dotted hex webhook host", "POST", "/v2/rooms", `{"webhook":{"endPoint":"https://127.0.0.0x1/x"}}`, tok, 400, "webhook.endPoint"},
		{"short dotted webhook host", "POST", "/v2/rooms", `{"webhook":{"endPoint":"https://127.1/x"}}`, tok, 400, "webhook.endPoint"},
		{"1,001 allowedParticipantIds", "POST", "/v2/rooms", jsonString(map[string]any{"allowedParticipantIds": manyIDs}), tok, 400, `allowedParticipantIds\" must list at most 1000`},
		{"more webhook events than event types", "POST", "/v2/rooms", webhookWith(manyEvents), tok, 400, `webhook.events\" must list at most`},
		{"unknown webhook event", "POST", "/v2/rooms", webhookWith([]string{"session-started", "sesion-ended"}), tok, 400, `webhook.events[1]`},
		{"webhook pattern matching no event", "POST", "/v2/rooms", webhookWith([]string{"meeting-*"}), tok, 400, `webhook.events[0]`},
		{"string exp", "GET", "/v2/rooms", "", hs256(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"apikey":%q,"exp":"%d"}`, c.APIKey, now+3600), []byte(c.APISecret)), 401, "exp"},
		{"iat in the future", "GET", "/v2/rooms", "", hs256(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"apikey":%q,"iat":%d,"exp":%d}`, c.APIKey, now+3600, now+7200), []byte(c.APISecret)), 401, "future"},
	}
	for _, tc := range cases {
		r := raw(tc.method, tc.path, tc.body, tc.authz)
		if r.Status != tc.status || !strings.Contains(string(r.Body), tc.mention) || !strings.HasPrefix(strings.TrimSpace(string(r.Body)), "{") {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, r.Status, r.Body, tc.status, tc.mention)
		}
	}
	// A 400-digit number is not echoed back.
	r := raw("POST", "/v2/rooms", `{"maxParticipants":"`+strings.Repeat("9", 400)+`"}`, tok)
	if r.Status != 400 || bytes.Count(r.Body, []byte("9")) > 60 {
		t.Errorf("huge value echoed: %d %s", r.Status, r.Body)
	}
	if n := roomCount(c); n != 0 {
		t.Fatalf("bad requests created %d rooms", n)
	}
	// At the limits, and names upstream documents without Meridian sending
	// them, rooms are created.
	r = raw("POST", "/v2/rooms", jsonString(map[string]any{"allowedParticipantIds": manyIDs[:api.MaxAllowedParticipantIDs],
		"webhook": map[string]any{"endPoint": "https://hooks.example.com/h", "events": []string{"*", "recording-*", "participant-joined", "resource-acquired", "agent-session-*"}}}), tok)
	if r.Status != 200 {
		t.Fatalf("room at the limits: %d %s", r.Status, r.Body)
	}
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestOversizedBodiesGetJSON413: bodies over 1 MiB, and far over the read
// limit, are answered with a JSON 413, not a reset connection.
func TestOversizedBodiesGetJSON413(t *testing.T) {
	c := newNode(t)
	for _, size := range []int{2 << 20, 20 << 20} {
		req, _ := http.NewRequest("POST", c.Node(0).URL()+"/v2/rooms", bytes.NewReader(bytes.Repeat([]byte(" "), size)))
		req.Header.Set("Authorization", c.Token())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d bytes: %v (want a JSON 413)", size, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(b), "larger than") {
			t.Fatalf("%d bytes: %d %s", size, resp.StatusCode, b)
		}
	}
}

// TestStreamedBodiesReadWhole: the server streams request bodies
// (limitBody reads them): a body of declared length arrives whole (the
// room gets its customRoomId), one cut short by the client is a JSON 400
// naming the body, and a chunked one is read as before.
func TestStreamedBodiesReadWhole(t *testing.T) {
	c := newNode(t)
	addr := strings.TrimPrefix(c.Node(0).URL(), "http://")
	send := func(t *testing.T, head, body string, halfClose bool) (int, string) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "POST /v2/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: "+c.Token()+"\r\nContent-Type: application/json\r\nConnection: close\r\n"+head+"\r\n"+body); err != nil {
			t.Fatal(err)
		}
		if halfClose {
			conn.(*net.TCPConn).CloseWrite()
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}

	body := `{"customRoomId":"streamed-body-room"}`
	status, got := send(t, fmt.Sprintf("Content-Length: %d\r\n", len(body)), body, false)
	if status != 200 || !strings.Contains(got, `"customRoomId":"streamed-body-room"`) {
		t.Fatalf("declared length: %d %s", status, got)
	}

	// 20 KB does not fit the server's first read, so it reaches limitBody
	// as a stream (a small body cut short fails in fasthttp's own read,
	// before any handler: errors.go gives that the same message).
	big := strings.Repeat(" ", 20_000) + strings.Replace(body, "streamed-body-room", "streamed-big-room", 1)
	status, got = send(t, fmt.Sprintf("Content-Length: %d\r\n", len(big)), big, false)
	if status != 200 || !strings.Contains(got, `"customRoomId":"streamed-big-room"`) {
		t.Fatalf("declared length, streamed: %d %s", status, got)
	}

	for _, b := range []string{body, big} {
		status, got = send(t, fmt.Sprintf("Content-Length: %d\r\n", len(b)+40), b, true)
		if status != 400 || !strings.Contains(got, "ended before its declared Content-Length") {
			t.Fatalf("%d-byte body cut short: %d %s (want a JSON 400 naming the body)", len(b), status, got)
		}
	}

	// Go's client sends a body of unknown length (a MultiReader) chunked.
	req, _ := http.NewRequest("POST", c.Node(0).URL()+"/v2/rooms", io.MultiReader(strings.NewReader(`{"customRoomId":`), strings.NewReader(`"chunked-body-room"}`)))
	req.Header.Set("Authorization", c.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"customRoomId":"chunked-body-room"`) {
		t.Fatalf("chunked: %d %s", resp.StatusCode, b)
	}
}

// TestParticipantNamesArePrintable: a participant's name is shown to every
// other participant and sent in webhooks, so the join and meeting-link
// routes refuse control and bidirectional-override characters (a name
// that reads "exe.gnp" but is "png.exe") as customRoomId already was.
func TestParticipantNamesArePrintable(t *testing.T) {
	c := newNode(t)
	room := createRoom(t, c, "names").RoomID
	rtc := c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC} })
	for _, name := range []string{"evil\u202egnp.exe", "bell\u0007", "zero\u200fwidth", "del\u007f"} {
		expectError(t, c.Do(0, "POST", "/v2/rooms/"+room+"/join", rtc, map[string]any{"name": name}), 400, "name")
		expectError(t, c.Do(0, "POST", "/v2/rooms/"+room+"/meeting-link", c.Token(), map[string]any{"name": name}), 400, "name")
	}
	if r := c.Do(0, "POST", "/v2/rooms/"+room+"/meeting-link", c.Token(), map[string]any{"name": "Zoë Ångström 李"}); r.Status != 200 {
		t.Fatalf("a meeting link for a name in other scripts: %d %s", r.Status, r.Body)
	}
}

// TestLargeTokensReachTheAuthenticator: a valid token up to
// auth.MaxTokenBytes is accepted (fasthttp's 4 KB header buffer answered
// 431 to a 4.3 KB one), and a larger one gets the authenticator's 401
// naming its size, not a bare 431.
func TestLargeTokensReachTheAuthenticator(t *testing.T) {
	c := newNode(t)
	now := time.Now().Unix()
	token := func(pad int) string {
		return hs256(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"apikey":%q,"permissions":["allow_join"],"version":2,"roles":["crawler"],"exp":%d,"pad":%q}`,
			c.APIKey, now+3600, strings.Repeat("x", pad)), []byte(c.APISecret))
	}
	big := token(5200)
	if len(big) < 7000 || len(big) > auth.MaxTokenBytes {
		t.Fatalf("token of %d bytes: want 7,000 to %d", len(big), auth.MaxTokenBytes)
	}
	if r := c.Do(0, "GET", "/v2/rooms", big, nil); r.Status != 200 {
		t.Fatalf("a valid %d-byte token: %d %s", len(big), r.Status, r.Body)
	}
	huge := token(7000)
	expectError(t, c.Do(0, "GET", "/v2/rooms", huge, nil), 401, "")
}
