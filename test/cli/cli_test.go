// Package cli tests the meridian binary as an operator uses it: `dev` with
// flags and MERIDIAN_* variables, clean shutdown on SIGTERM, restart with the
// same data, and the token / keys / rooms commands.
package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/test/procs"
)

func repoRoot(t *testing.T) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meridian")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meridian")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// outputKeep is how much of a child's output a test keeps: far more than
// any run writes, a bound all the same.
const outputKeep = 16 << 20

type devProc struct {
	cmd *exec.Cmd
	out *procs.LogBuffer
	url string
}

func startDev(t *testing.T, bin string, env []string, args ...string) *devProc {
	t.Helper()
	out := procs.NewLogBuffer(outputKeep)
	cmd := exec.Command(bin, append([]string{"dev"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &devProc{cmd: cmd, out: out}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

func (p *devProc) waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(p.out.String(), "Meridian dev is running") {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("dev not healthy:\n%s", p.out.String())
}

func (p *devProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v after SIGTERM:\n%s", err, p.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("dev did not stop on SIGTERM:\n%s", p.out.String())
	}
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("meridian %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestDevFirstRunRestartAndCLI(t *testing.T) {
	bin := build(t)
	data := t.TempDir()
	addr := porttest.Addr(t)
	url := "http://" + addr
	// Flags through the environment, as the README documents.
	env := []string{"MERIDIAN_HTTP=" + addr, "MERIDIAN_DATA=" + data}
	turn := []string{"--turn-udp", "127.0.0.1:0", "--turn-tcp", "127.0.0.1:0"}
	p := startDev(t, bin, env, turn...)
	p.waitHealthy(t, url)

	var creds struct{ APIKey, APISecret string }
	b, err := os.ReadFile(filepath.Join(data, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &creds); err != nil || creds.APIKey == "" || creds.APISecret == "" {
		t.Fatalf("credentials.json: %v\n%s", err, b)
	}
	if !strings.Contains(p.out.String(), creds.APIKey) || !strings.Contains(p.out.String(), creds.APISecret) || !strings.Contains(p.out.String(), url) {
		t.Fatalf("dev did not print its key, secret and URL:\n%s", p.out.String())
	}

	created := run(t, bin, "rooms", "create", "--server", url, "--api-key", creds.APIKey, "--api-secret", creds.APISecret, "--custom-room-id", "keep-me")
	var room struct{ RoomID string }
	if err := json.Unmarshal([]byte(created), &room); err != nil || room.RoomID == "" {
		t.Fatalf("rooms create: %s", created)
	}
	tok := run(t, bin, "token", "--api-key", creds.APIKey, "--api-secret", creds.APISecret, "--roles", "crawler", "--ttl", "10m")
	req, _ := http.NewRequest("GET", url+"/v2/rooms/keep-me", nil)
	req.Header.Set("Authorization", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token from the CLI rejected: %v %v", err, resp)
	}
	resp.Body.Close()

	// Keys: create, list, revoke (admin token read from the data dir).
	var key struct{ APIKey, Secret string }
	createdKey := run(t, bin, "keys", "create", "--server", url, "--data", data, "--name", "ci")
	if err := json.Unmarshal([]byte(createdKey), &key); err != nil || key.APIKey == "" || key.Secret == "" {
		t.Fatalf("keys create printed no key (%v):\n%s", err, createdKey)
	}
	// Before the revocation the key works: the refusal below is then caused
	// by the revocation, not by a key that never worked.
	run(t, bin, "rooms", "list", "--server", url, "--api-key", key.APIKey, "--api-secret", key.Secret)
	if list := run(t, bin, "keys", "list", "--server", url, "--data", data); !strings.Contains(list, key.APIKey) {
		t.Fatalf("keys list lacks the new key:\n%s", list)
	}
	run(t, bin, "keys", "revoke", "--server", url, "--data", data, key.APIKey)
	out, err := exec.Command(bin, "rooms", "list", "--server", url, "--api-key", key.APIKey, "--api-secret", key.Secret).CombinedOutput()
	if err == nil {
		t.Fatalf("revoked key still works:\n%s", out)
	}
	// The CLI must fail because the server refused the revoked key (401 with
	// the revocation reason, as control/auth answers it), not for any other
	// reason such as a crash, a bad flag or an unreachable server.
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("revoked key: %v, want exit status 1:\n%s", err, out)
	}
	const prefix = "meridian: GET /v2/rooms: 401 Unauthorized: "
	body, found := strings.CutPrefix(strings.TrimSpace(string(out)), prefix)
	if !found {
		t.Fatalf("revoked key: want %q and the error body, got:\n%s", prefix, out)
	}
	var refusal struct {
		StatusCode int    `json:"statusCode"`
		Message    string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &refusal); err != nil {
		t.Fatalf("revoked key: error body is not JSON (%v): %s", err, body)
	}
	if refusal.StatusCode != 401 || refusal.Message != "invalid token: apikey has been revoked" {
		t.Fatalf("revoked key refused for another reason: %+v", refusal)
	}
	p.stop(t)

	// Restart with the same data directory (now through flags): the room is still there.
	p2 := startDev(t, bin, nil, append([]string{"--http", addr, "--data", data}, turn...)...)
	p2.waitHealthy(t, url)
	got := run(t, bin, "rooms", "get", "--server", url, "--api-key", creds.APIKey, "--api-secret", creds.APISecret, "keep-me")
	if !strings.Contains(got, room.RoomID) {
		t.Fatalf("room lost across restart:\n%s", got)
	}
	p2.stop(t)
}

func TestBadFlagsFailClearly(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		args []string
		want string // the message must name the problem
	}{
		{[]string{"dev", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"token", "--api-key", "k"}, "secret"},
		{[]string{"dev", "--turn-udp", "not-an-address", "--data", t.TempDir(), "--http", porttest.Addr(t)}, "not-an-address"},
		{[]string{"frobnicate"}, "frobnicate"},
		{[]string{"dev", "--raft-log-store", "rocks", "--data", t.TempDir(), "--http", porttest.Addr(t)}, `--raft-log-store "rocks"`},
		{[]string{"dev", "--raft-snapshot-interval", "10ms", "--data", t.TempDir(), "--http", porttest.Addr(t)}, "--raft-snapshot-interval 10ms"},
		{[]string{"dev", "--rejoin-grace", "-5s", "--data", t.TempDir(), "--http", porttest.Addr(t)}, "--rejoin-grace -5s: want 0 to 10m0s"},
	} {
		// A case that is wrongly accepted would start a server: bound it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, tc.args...).CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut {
			t.Errorf("meridian %v succeeded:\n%s", tc.args, out)
		}
		if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "panic") {
			t.Errorf("meridian %v: output does not say %q:\n%s", tc.args, tc.want, out)
		}
	}
}
