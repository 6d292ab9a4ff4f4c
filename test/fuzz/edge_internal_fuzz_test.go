package fuzz

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/storage"
)

// edgeRoutes are the edge's internal POST routes: what the control plane
// (and, for peers, the placement push) sends an edge.
var edgeRoutes = []string{
	"/internal/v1/rooms/remove-participant", "/internal/v1/rooms/close", "/internal/v1/rooms/peers", "/internal/v1/drain",
	edgeapi.EgressStartPath, edgeapi.EgressStopPath, edgeapi.EgressStatusPath, edgeapi.EgressCapturePath, edgeapi.EgressDeletePath,
}

// FuzzEdgeInternalBodies posts the same arbitrary body to every internal
// route of a real edge (signalling, cascade, drain and an egress runner
// with a local storage target), mounted on an in-process app: no panic, no
// 5xx but 503, a JSON object with a message on every refusal, no egress
// job or participant appearing on a refusal, and the edge still answering.
func FuzzEdgeInternalBodies(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `[]`, `""`, "{\"roomId\":\"\xff\"}", `{"roomId":"r","participantId":"p","reason":"x"}`,
		`{"roomId":"r","epoch":18446744073709551615,"member":true,"home":"e2","peers":[{"edgeId":"e2","region":"x","internalUrl":"http://127.0.0.1:1"}]}`,
		`{"draining":false}`, `{"draining":true,"deadlineSeconds":-1}`, `{"draining":false,"deadlineSeconds":86401}`,
		`{"id":"aaaaaaaaaaaaaaaaaaaaaa01","kind":"hls","roomId":"r","sessionId":"s","hls":{}}`,
		`{"id":"aaaaaaaaaaaaaaaaaaaaaa02","kind":"merge","roomId":"r","channel1":[{"key":"../../etc/passwd"}]}`,
		`{"id":"aaaaaaaaaaaaaaaaaaaaaa03","kind":"rtmp","roomId":"r","outputs":[{"url":"file:///etc/passwd"}]}`,
		`{"id":"aaaaaaaaaaaaaaaaaaaaaa01","format":"gif","width":-1,"height":1e9}`, `{"id":"x","files":[{"target":"local","key":"../x"}]}`} {
		f.Add([]byte(s))
	}
	app, n := startEdgeNode(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range edgeRoutes {
			jobs, people := jobCount(n), n.SFU().Load()
			req := httptest.NewRequest("POST", path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+edgeToken)
			resp, err := app.Test(req, 10_000)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 && resp.StatusCode != fiber.StatusServiceUnavailable {
				t.Fatalf("%s with %q: %d %s", path, body, resp.StatusCode, out)
			}
			if resp.StatusCode < 400 {
				continue // a capture answers image bytes
			}
			var v map[string]any
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("%s with %q: %d answer is not a JSON object: %q", path, body, resp.StatusCode, out)
			}
			if _, ok := v["message"].(string); !ok {
				t.Fatalf("%s with %q: %d error without a message: %s", path, body, resp.StatusCode, out)
			}
			if j, p := jobCount(n), n.SFU().Load(); j != jobs || p != people {
				t.Fatalf("%s with %q was refused (%d %s) but jobs %d -> %d, load %v -> %v", path, body, resp.StatusCode, out, jobs, j, people, p)
			}
		}
		req := httptest.NewRequest("POST", "/internal/v1/rooms/peers", bytes.NewReader([]byte(`{"roomId":"probe"}`)))
		req.Header.Set("Authorization", "Bearer "+edgeToken)
		if resp, err := app.Test(req, 10_000); err != nil || resp.StatusCode != fiber.StatusOK {
			t.Fatalf("after %q the edge stopped answering: %v %v", body, resp, err)
		}
	})
}

func jobCount(n *edgenode.Node) int {
	if n.Egress() == nil {
		return 0
	}
	return len(n.Egress().List())
}

// startEdgeNode builds a real edge (not connected to any control plane:
// its agent is never started) with egress on a temporary directory.
func startEdgeNode(tb testing.TB) (*fiber.App, *edgenode.Node) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := tb.TempDir()
	local, err := storage.NewLocal(storage.LocalConfig{Region: "eu-west", Dir: dir + "/files"})
	if err != nil {
		tb.Fatal(err)
	}
	sc := sfu.DefaultConfig()
	sc.IncludeLoopbackCandidate, sc.DisableMDNS = true, true
	n, err := edgenode.New(edgenode.Config{EdgeID: "fuzz-edge", Region: "eu-west", PublicURL: "http://127.0.0.1:1", EdgeToken: edgeToken, AllowedOrigins: []string{"*"}, ControlURLs: []string{"http://127.0.0.1:1"},
		SFU: sc, Logger: quiet, Egress: edgenode.EgressConfig{WorkDir: dir + "/work", Storage: []storage.Target{local}}})
	if err != nil {
		tb.Fatal(err)
	}
	if n.Egress() == nil {
		// Without ffmpeg the egress routes only answer 503; the rest is
		// still worth fuzzing, but CI installs ffmpeg and must reach them.
		if os.Getenv("MERIDIAN_REQUIRE_FFMPEG") != "" {
			tb.Fatal("MERIDIAN_REQUIRE_FFMPEG is set but egress is off on the fuzzed edge (ffmpeg/ffprobe missing?)")
		}
		tb.Log("egress is off (no ffmpeg): its routes are fuzzed for their 503 only")
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	n.Mount(app)
	tb.Cleanup(func() { _ = n.Close() })
	return app, n
}
