// Package fuzz drives Meridian's HTTP API and edge protocols with arbitrary
// input through the real handlers (in-process, no sockets for the API):
// nothing may panic, answer 5xx, or answer something that is not a JSON
// error. `make fuzz` runs each target longer; `go test` runs the seeds.
package fuzz

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
)

const edgeToken = "fuzz-edge-token"

// routes are the POST endpoints taking a JSON body, with who may call them.
func routes(room string) []struct{ path, who string } {
	return []struct{ path, who string }{
		{"/v2/rooms", "crawler"}, {"/v2/rooms/" + room + "/join", "rtc"}, {"/v2/rooms/" + room + "/meeting-link", "crawler"},
		{"/v2/rooms/deactivate", "crawler"}, {"/v2/rooms/validate/" + room, "crawler"}, {"/v2/rooms/" + room, "crawler"},
		{"/v2/sessions/end", "crawler"}, {"/v2/sessions/participants/remove", "crawler"},
		{"/auth/api-key", ""}, {"/auth/refresh", ""}, {"/admin/v1/keys", "admin"},
		{"/internal/v1/edges/register", "edge"}, {"/internal/v1/edges/heartbeat", "edge"}, {"/internal/v1/edges/events", "edge"},
		{"/internal/v1/edges/stats", "edge"}, {"/internal/v1/rooms/attach", "edge"},
	}
}

// FuzzAPIBodies posts the same arbitrary body to every JSON route.
func FuzzAPIBodies(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[]`, `{"customRoomId":"x","webhook":{"endPoint":"https://a.b/c"}}`, `{"roomId":1}`,
		`{"participantId":"p","region":"eu-west","lat":1e400}`, `{"edgeId":"e","region":"atlantis","signalUrl":"ws://x"}`,
		`{"events":[{"kind":"participant-joined","roomId":"r"}]}`, `{"apiKey":"` + string(make([]byte, 300)) + `"}`, "{\"a\":\"\xff\"}",
		`{"avoidEdges":["` + string(bytes.Repeat([]byte("e"), 200)) + `"]}`} {
		f.Add([]byte(s))
	}
	c, room := startAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, r := range routes(room) {
			req := httptest.NewRequest("POST", r.path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			switch r.who {
			case "crawler":
				req.Header.Set("Authorization", c.Token())
			case "rtc":
				req.Header.Set("Authorization", c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC} }))
			case "admin":
				req.Header.Set("Authorization", "Bearer "+c.AdminToken)
			case "edge":
				req.Header.Set("Authorization", "Bearer "+edgeToken)
			}
			resp, err := c.Node(0).App().Test(req, 10_000)
			if err != nil {
				t.Fatalf("%s: %v", r.path, err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 && resp.StatusCode != 503 {
				t.Fatalf("%s with %q: %d %s", r.path, body, resp.StatusCode, out)
			}
			var v map[string]any
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("%s with %q: %d answer is not a JSON object: %q", r.path, body, resp.StatusCode, out)
			}
		}
	})
}

// startAPI starts one control node with placement for the whole fuzz run.
func startAPI(t testing.TB) (*clustertest.Cluster, string) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
	var room struct{ RoomID string }
	r := clustertest.Do(t, c.Node(0).URL(), "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "fuzz-room"})
	r.JSON(t, &room)
	return c, room.RoomID
}
