package webhooks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// nodeDir holds the Node verification test and its package.json.
const nodeDir = "../../test/node-webhooks"

// TestNodeVerification sends real deliveries to a loopback receiver, writes
// what arrived (bodies and headers) to a temp dir, and has
// test/node-webhooks/verify.test.js verify them with the `standardwebhooks`
// and `@videosdk.live/server-sdk` packages. It needs node >= 18 and
// `npm ci --prefix test/node-webhooks`; without them it skips, unless
// MERIDIAN_REQUIRE_NODE_TESTS=1 (CI) turns the skip into a failure.
func TestNodeVerification(t *testing.T) {
	node, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "node is not installed"
	case !exists(filepath.Join(nodeDir, "node_modules", "standardwebhooks", "package.json")) ||
		!exists(filepath.Join(nodeDir, "node_modules", "@videosdk.live", "server-sdk", "package.json")):
		missing = "test/node-webhooks/node_modules is missing (run: npm ci --prefix test/node-webhooks)"
	}
	if missing != "" {
		if os.Getenv("MERIDIAN_REQUIRE_NODE_TESTS") == "1" {
			t.Fatalf("node verification required but %s", missing)
		}
		t.Skipf("skipping Node verification: %s", missing)
	}

	// Real clock: standardwebhooks checks webhook-timestamp against now.
	rc := newReceiver(t, nil)
	cfg := testConfig(newFakeClock())
	cfg.Now = time.Now
	o := newFakeOutbox()
	now := time.Now()
	events := []struct {
		id, event string
		data      any
	}{
		{"msg_joined", EventParticipantJoined, Participant{"jvsg-8rjn-j304", "613731342f27f56e4fc4b6d0", "fkd74h",
			"<b>Zoë & \"Jo\"</b> \\ \u2028\u2029 \x01\t\n 😀"}},
		{"msg_started", EventSessionStarted, SessionStarted{"613731342f27f56e4fc4b6d0", "jvsg-8rjn-j304", At(now)}},
		{"msg_track", EventTrackRecordingStopped, TrackRecordingStopped{"jvsg-8rjn-j304", "613731342f27f56e4fc4b6d0", "abcd", "audio",
			FileDetails{{FilePath: "/encoded/a.webm", FileURL: "https://cdn.example/a.webm?x=1&y=<2>"}}}},
		{"msg_raw", EventMergeRecordingFailed, json.RawMessage(`{"id":"bf37fabb","meetingId":"m","sessionId":"s","message":"\u003cfail\u003e","n":[1.50,-0,1e21]}`)},
	}
	for _, e := range events {
		body, err := Envelope(e.event, e.data)
		if err != nil {
			t.Fatal(err)
		}
		o.add(Delivery{ID: e.id, EventType: e.event, RoomID: "jvsg-8rjn-j304", URL: rc.URL, Body: body,
			SecretRef: testSecretRef, NextAttempt: now, CreatedAt: now})
	}
	startDispatcher(t, cfg, o)
	for _, e := range events {
		waitStatus(t, o, e.id, StatusDelivered, 1)
	}

	pemStr, err := testSigner(t).PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	type fixtureCase struct {
		EventType  string            `json:"eventType"`
		BodyBase64 string            `json:"bodyBase64"`
		Headers    map[string]string `json:"headers"`
	}
	fx := struct {
		PublicKeyPEM string        `json:"publicKeyPem"`
		Secret       string        `json:"secret"`
		Cases        []fixtureCase `json:"cases"`
	}{PublicKeyPEM: pemStr, Secret: testSecret()}
	byID := map[string]string{}
	for _, e := range events {
		byID[e.id] = e.event
	}
	for _, r := range rc.requests() {
		h := map[string]string{}
		for _, k := range []string{HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature, HeaderVideoSDKSignature} {
			h[k] = r.header.Get(k)
		}
		fx.Cases = append(fx.Cases, fixtureCase{EventType: byID[h[HeaderWebhookID]], BodyBase64: base64.StdEncoding.EncodeToString(r.body), Headers: h})
	}
	dir := t.TempDir()
	raw, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fixtures.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "verify.test.js")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "MERIDIAN_WEBHOOK_FIXTURES="+dir, "NODE_OPTIONS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed: %v\n%s", err, out)
	}
	t.Logf("node --test:\n%s", tail(out, 600))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[len(b)-n:])
}
