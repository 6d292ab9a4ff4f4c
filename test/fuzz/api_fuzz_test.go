// Package fuzz drives Meridian's HTTP API and edge protocols with arbitrary
// input through the real handlers (in-process, no sockets for the API):
// nothing may panic, answer 5xx (other than a documented 503), or answer
// something that is not a JSON object; a refused request changes no stored
// record, and the server still answers afterwards. `make fuzz` runs each
// target longer; `go test` runs the seeds.
package fuzz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/console"
	"github.com/meridian-video/meridian/control/egress"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

const (
	edgeToken  = "fuzz-edge-token"
	localAdmin = "fuzz-admin"
	localPass  = "fuzz-password-0123"
)

// route is a POST endpoint taking a JSON body, with who may call it.
type route struct{ path, who string }

// routes are every POST endpoint of a control node that reads a JSON body:
// the rooms and sessions API, sign-in, admin keys, the recording, RTMP and
// HLS routes, the console's local sign-in and the edges' internal calls.
func routes(room string) []route {
	rs := []route{
		{"/v2/rooms", "crawler"}, {"/v2/rooms/" + room + "/join", "rtc"}, {"/v2/rooms/" + room + "/meeting-link", "crawler"},
		{"/v2/rooms/deactivate", "crawler"}, {"/v2/rooms/validate/" + room, "crawler"}, {"/v2/rooms/" + room, "crawler"},
		{"/v2/sessions/end", "crawler"}, {"/v2/sessions/participants/remove", "crawler"},
		{"/auth/api-key", ""}, {"/auth/refresh", ""}, {"/admin/v1/keys", "admin"},
		{"/console/auth/local", ""},
		{"/internal/v1/edges/register", "edge"}, {"/internal/v1/edges/heartbeat", "edge"}, {"/internal/v1/edges/events", "edge"},
		{"/internal/v1/edges/stats", "edge"}, {"/internal/v1/rooms/attach", "edge"},
	}
	for _, p := range egressPOSTs {
		rs = append(rs, route{"/v2" + p, "crawler"})
	}
	return rs
}

// egressPOSTs are control/api's egress routes that take a body (§5-10 of
// the VideoSDK contract and the server SDK's composite family).
var egressPOSTs = []string{
	"/recordings/start", "/recordings/stop", "/recordings/end",
	"/recordings/composite/start", "/recordings/composite/stop", "/recordings/composite/end",
	"/recordings/participant/start", "/recordings/participant/stop", "/recordings/participant/end",
	"/recordings/participant/track/start", "/recordings/participant/track/stop", "/recordings/participant/track/end",
	"/recordings/participant/merge",
	"/livestreams/start", "/livestreams/stop", "/livestreams/end",
	"/hls/start", "/hls/stop", "/hls/end", "/hls/capture",
}

// guarded are the tables a refused request must leave alone. The others
// (edges, placements, sessions, jobs, outbox) are also changed by the
// leader's loops (liveness, auto-close, egress, delivery), so a change
// there during a refusal proves nothing.
var guarded = [...]string{"rooms", "keys", "refresh"}

// FuzzAPIBodies posts the same arbitrary body to every JSON route.
func FuzzAPIBodies(f *testing.F) {
	c, room := startAPI(f)
	for _, s := range []string{`{}`, `null`, `[]`, `{"customRoomId":"x","webhook":{"endPoint":"https://a.b/c"}}`, `{"roomId":1}`,
		`{"participantId":"p","region":"eu-west","lat":1e400}`, `{"edgeId":"e","region":"atlantis","signalUrl":"ws://x"}`,
		`{"events":[{"kind":"participant-joined","roomId":"r"}]}`, `{"apiKey":"` + string(make([]byte, 300)) + `"}`, "{\"a\":\"\xff\"}",
		`{"avoidEdges":["` + string(bytes.Repeat([]byte("e"), 200)) + `"]}`,
		// Bodies that get past decoding into the egress handlers.
		`{"roomId":"` + room + `"}`, `{"roomId":"` + room + `","config":{"layout":{"type":"GRID","gridSize":99}}}`,
		`{"roomId":"` + room + `","participantId":"p","kind":"video"}`, `{"roomId":"` + room + `","outputs":[{"url":"rtmp://x/y","streamKey":"k"}]}`,
		`{"id":"` + strings.Repeat("a", 24) + `"}`, `{"sessionId":"x","participantIds":["a","b"],"fileFormat":"mp4"}`,
		`{"roomId":"` + room + `","config":{"recording":{"enabled":true}},"templateUrl":"javascript:1"}`,
		// The console's local sign-in.
		`{"username":"` + localAdmin + `","password":"wrong"}`, `{"username":"` + localAdmin + `"}`, `{"username":1,"password":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, r := range routes(room) {
			before := tableIndexes(c)
			status, out := post(t, c, r, body)
			if status >= 500 && status != fiber.StatusServiceUnavailable {
				t.Fatalf("%s with %q: %d %s", r.path, body, status, out)
			}
			var v map[string]any
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("%s with %q: %d answer is not a JSON object: %q", r.path, body, status, out)
			}
			if status >= 400 {
				if _, ok := v["message"].(string); !ok {
					t.Fatalf("%s with %q: %d error without a message: %s", r.path, body, status, out)
				}
				if after := tableIndexes(c); after != before {
					t.Fatalf("%s with %q was refused (%d %s) but changed stored records: %s -> %s", r.path, body, status, out, before, after)
				}
			}
		}
		// The node still serves a valid request after the batch.
		if status, out := get(t, c, "/v2/rooms/"+room); status != fiber.StatusOK {
			t.Fatalf("after %q: GET the fuzz room: %d %s", body, status, out)
		}
	})
}

func post(t *testing.T, c *clustertest.Cluster, r route, body []byte) (int, []byte) {
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
	return do(t, c, req)
}

func get(t *testing.T, c *clustertest.Cluster, path string) (int, []byte) {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", c.Token())
	return do(t, c, req)
}

func do(t *testing.T, c *clustertest.Cluster, req *http.Request) (int, []byte) {
	resp, err := c.Node(0).App().Test(req, 10_000)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// indexes is the last Raft index that changed each guarded table.
type indexes [len(guarded)]uint64

func (x indexes) String() string { return fmt.Sprint([len(guarded)]uint64(x)) }

func tableIndexes(c *clustertest.Cluster) (x indexes) {
	c.Node(0).Node().FSM().Read(func(st *state.Store) {
		for i, t := range guarded {
			x[i] = st.TableIndex(t)
		}
	})
	return x
}

// startAPI starts one control node with placement, egress and the console
// (one local admin) for the whole fuzz run, and a room to aim at.
func startAPI(t testing.TB) (*clustertest.Cluster, string) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		ec := egress.PluginConfig{Config: egress.Config{EdgeToken: edgeToken, CheckEvery: time.Hour}}
		cc := console.DefaultConfig()
		cc.PublicURL = "http://127.0.0.1"
		cc.Dev = true
		cc.LocalAdmins = []console.LocalAdmin{{Username: localAdmin, Password: localPass}}
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), egress.Plugin(ec), console.Plugin(cc))
	}})
	var room struct{ RoomID string }
	r := clustertest.Do(t, c.Node(0).URL(), "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "fuzz-room"})
	r.JSON(t, &room)
	return c, room.RoomID
}
