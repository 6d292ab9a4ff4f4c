package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/test/procs"
)

// TestEdgeEgressFlags: `meridian edge` runs egress with the storage its
// flags describe — S3 (secret from the environment) preferred, then the
// local directory under --data, each tagged with its region — and serves
// the egress calls behind its edge token; contradictory storage flags stop
// it with a message naming them.
func TestEdgeEgressFlags(t *testing.T) {
	egresstest.NeedFFmpeg(t)
	bin := build(t)
	httpAddr, raftAddr, edgeAddr := porttest.Addr(t), porttest.Addr(t), porttest.Addr(t)
	ctl := start(t, bin, "control", "--id", "c1", "--http", httpAddr, "--raft", raftAddr, "--data", t.TempDir(), "--bootstrap",
		"--cluster-key", strings.Repeat("ab", 32), "--edge-token", "edge-secret-token", "--admin-token", "admin-secret")
	waitOK(t, "http://"+httpAddr+"/healthz", ctl)

	data := t.TempDir()
	edgeArgs := []string{"edge", "--id", "paris-1", "--region", "eu-west", "--http", edgeAddr, "--control", "http://" + httpAddr,
		"--edge-token", "edge-secret-token", "--turn-udp", "127.0.0.1:0", "--turn-tcp", "", "--turn-public-ip", "127.0.0.1",
		"--gossip", "", "--loopback-candidates", "--insecure-cluster-links", "--data", data}
	out := procs.NewLogBuffer(outputKeep)
	cmd := exec.Command(bin, append(edgeArgs, "--s3-endpoint", "http://127.0.0.1:9", "--s3-bucket", "recordings",
		"--s3-region-tag", "eu-central", "--s3-access-key", "AKID")...)
	cmd.Env = append(os.Environ(), "MERIDIAN_S3_SECRET_KEY=from-env")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitOK(t, "http://"+edgeAddr+"/healthz", &proc{cmd: cmd, out: out})

	call := func(path string, body any, token string) (int, edgeapi.EgressError) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, "http://"+edgeAddr+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e edgeapi.EgressError
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	code, e := call(edgeapi.EgressStartPath, egressapi.Spec{ID: "j1", Kind: egressapi.KindComposite, RoomID: "r1", AllowedRegions: []string{"us-east"}}, "edge-secret-token")
	if code != 400 || !strings.Contains(e.Message, "us-east") || !strings.Contains(e.Message, "s3 (region eu-central), local (region eu-west)") {
		t.Fatalf("pinned start: %d %+v\n%s", code, e, out.String())
	}
	if code, e = call(edgeapi.EgressStartPath, egressapi.Spec{ID: "j2", Kind: egressapi.KindComposite, RoomID: "r1"}, "edge-secret-token"); code != 404 {
		t.Fatalf("start in a room with nobody here: %d %+v", code, e)
	}
	if code, _ = call(edgeapi.EgressStartPath, egressapi.Spec{ID: "j3", Kind: egressapi.KindComposite, RoomID: "r1"}, "wrong"); code != 401 {
		t.Fatalf("start with a wrong edge token: %d", code)
	}
	for _, sub := range []string{"recordings", "egress/jobs", "egress/hls"} {
		if st, err := os.Stat(filepath.Join(data, sub)); err != nil || !st.IsDir() {
			t.Fatalf("%s under --data: %v", sub, err)
		}
	}

	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--s3-bucket", "b"}, "", "--s3-endpoint and --s3-bucket go together"},
		{[]string{"--s3-endpoint", "ftp://x", "--s3-bucket", "b"}, "", `--s3-endpoint "ftp://x"`},
		{[]string{"--s3-endpoint", "https://s3.example.com", "--s3-bucket", "b", "--s3-access-key", "A"}, "AWS_SECRET_ACCESS_KEY=", "--s3-secret-key"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		args := append(append([]string(nil), edgeArgs...), tc.args...)
		for i := range args[:len(args)-1] {
			switch args[i] {
			case "--http":
				args[i+1] = porttest.Addr(t) // never the running edge's
			case "--data":
				args[i+1] = t.TempDir() // the running edge holds its own
			}
		}
		c := exec.CommandContext(ctx, bin, args...)
		c.Env = append(os.Environ(), "MERIDIAN_S3_SECRET_KEY=", tc.env)
		b, err := c.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil || timedOut || !strings.Contains(string(b), tc.want) {
			t.Errorf("meridian edge %v: want a failure saying %q, got %v:\n%s", tc.args, tc.want, err, b)
		}
	}
}

// TestDevEgressUnderData: `meridian dev` runs egress in its one process,
// with recordings and work files under its --data, and serves HLS on its
// one listener.
func TestDevEgressUnderData(t *testing.T) {
	egresstest.NeedFFmpeg(t)
	bin := build(t)
	data, addr := t.TempDir(), porttest.Addr(t)
	p := startDev(t, bin, []string{"MERIDIAN_DATA=" + data}, "--http", addr, "--turn-udp", "127.0.0.1:0", "--turn-tcp", "127.0.0.1:0")
	p.waitHealthy(t, "http://"+addr)
	for _, sub := range []string{"recordings", "egress/jobs", "egress/hls"} {
		if st, err := os.Stat(filepath.Join(data, sub)); err != nil || !st.IsDir() {
			t.Fatalf("%s under the dev --data: %v\n%s", sub, err, p.out.String())
		}
	}
	resp, err := http.Get("http://" + addr + edgeapi.EgressHLSPrefix + "nope/live.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("unknown HLS stream on dev: %d %v", resp.StatusCode, resp.Header)
	}
	p.stop(t)
}
