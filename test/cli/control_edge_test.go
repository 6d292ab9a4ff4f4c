package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/test/procs"
)

type proc struct {
	cmd *exec.Cmd
	out *procs.LogBuffer
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	out := procs.NewLogBuffer(outputKeep)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return &proc{cmd: cmd, out: out}
}

func waitOK(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200:\n%s", url, p.out.String())
}

// TestControlAndEdgeProcesses: `meridian control` and `meridian edge` run as
// separate processes; the edge registers, serves /metrics, and joins are
// placed on it with its region.
func TestControlAndEdgeProcesses(t *testing.T) {
	bin := build(t)
	httpAddr, raftAddr, edgeAddr := porttest.Addr(t), porttest.Addr(t), porttest.Addr(t)
	key := strings.Repeat("ab", 32)
	data := t.TempDir()
	ctl := start(t, bin, "control", "--id", "c1", "--http", httpAddr, "--raft", raftAddr, "--data", data, "--bootstrap",
		"--cluster-key", key, "--edge-token", "edge-secret-token", "--admin-token", "admin-secret")
	waitOK(t, "http://"+httpAddr+"/healthz", ctl)

	var created struct{ APIKey, Secret string }
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/admin/v1/keys", strings.NewReader(`{"name":"t"}`))
	req.Header.Set("Authorization", "Bearer admin-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create key: %v %v\n%s", err, resp, ctl.out.String())
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()

	edge := start(t, bin, "edge", "--id", "paris-1", "--region", "eu-west", "--http", edgeAddr, "--control", "http://"+httpAddr,
		"--edge-token", "edge-secret-token", "--turn-udp", "127.0.0.1:0", "--turn-tcp", "127.0.0.1:0", "--turn-public-ip", "127.0.0.1",
		"--loopback-candidates", "--insecure-cluster-links", "--data", t.TempDir())
	waitOK(t, "http://"+edgeAddr+"/healthz", edge)
	resp, err = http.Get("http://" + edgeAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), "meridian_sfu_participants") || !strings.Contains(metrics.String(), "meridian_turn_allocations") {
		t.Fatalf("edge /metrics lacks SFU/TURN metrics")
	}

	crawler, _ := auth.Mint(auth.MintOptions{APIKey: created.APIKey, Secret: []byte(created.Secret), Permissions: []string{"allow_join"}, Roles: []string{"crawler"}, TTL: time.Hour})
	rtc, _ := auth.Mint(auth.MintOptions{APIKey: created.APIKey, Secret: []byte(created.Secret), Permissions: []string{"allow_join"}, Roles: []string{"rtc"}, TTL: time.Hour})
	do := func(method, path, tok, body string) (int, []byte) {
		req, _ := http.NewRequest(method, "http://"+httpAddr+path, strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	_, body := do("POST", "/v2/rooms", crawler, `{}`)
	var room struct{ RoomID string }
	json.Unmarshal(body, &room)
	status, body := do("POST", "/v2/rooms/"+room.RoomID+"/join", rtc, `{"name":"x"}`)
	var join struct {
		Edges []struct{ EdgeID, Region, SignalingURL string }
	}
	json.Unmarshal(body, &join)
	if status != 200 || len(join.Edges) != 1 || join.Edges[0].EdgeID != "paris-1" || join.Edges[0].Region != "eu-west" ||
		join.Edges[0].SignalingURL != "ws://"+edgeAddr+"/rtc" {
		t.Fatalf("join: %d %s\nedge log:\n%s", status, body, edge.out.String())
	}
}
