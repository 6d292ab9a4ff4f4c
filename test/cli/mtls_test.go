package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/shared/porttest"
)

// TestClusterLinksNeedMutualTLS: a control node with peers or --join, and
// every edge, refuse to start without mutual TLS unless the operator says
// --insecure-cluster-links; the message names both ways out.
func TestClusterLinksNeedMutualTLS(t *testing.T) {
	bin := build(t)
	key := strings.Repeat("cd", 32)
	cases := map[string][]string{
		"control --peers": {"control", "--id", "a", "--http", porttest.Addr(t), "--raft", porttest.Addr(t), "--data", t.TempDir(), "--cluster-key", key,
			"--bootstrap", "--peers", "a=127.0.0.1:7000,b=127.0.0.1:7001,c=127.0.0.1:7002"},
		"control --join": {"control", "--id", "b", "--http", porttest.Addr(t), "--raft", porttest.Addr(t), "--data", t.TempDir(), "--cluster-key", key,
			"--join", "http://127.0.0.1:1"},
		"edge": {"edge", "--id", "e1", "--http", porttest.Addr(t), "--control", "http://127.0.0.1:1", "--edge-token", "t", "--no-turn", "--gossip", ""},
	}
	for name, args := range cases {
		cmd := exec.Command(bin, args...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%s: still running without mutual TLS:\n%s", name, out)
		}
		if err == nil || !strings.Contains(string(out), "--mtls-cert") || !strings.Contains(string(out), "--insecure-cluster-links") {
			t.Errorf("%s: err %v, want a refusal naming --mtls-* and --insecure-cluster-links:\n%s", name, err, out)
		}
	}
}

// TestCertsAndMutualTLSProcesses: `meridian certs` makes a CA and node
// certificates (keys 0600); a control node and an edge run with them: the
// edge registers over mTLS, its /internal/ routes need a certificate
// (`meridian edge drain` presents one with --mtls-*), and the join API
// hands out wss:// signaling URLs.
func TestCertsAndMutualTLSProcesses(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	caDir, pki := filepath.Join(dir, "ca"), filepath.Join(dir, "pki")
	run(t, bin, "certs", "ca", "--out", caDir)
	run(t, bin, "certs", "node", "--ca", caDir, "--name", "c1", "--hosts", "127.0.0.1,c1.internal", "--role", "control", "--out", pki)
	run(t, bin, "certs", "node", "--ca", caDir, "--name", "paris-1", "--hosts", "127.0.0.1", "--role", "edge", "--out", pki)
	if out, err := exec.Command(bin, "certs", "ca", "--out", caDir).CombinedOutput(); err == nil {
		t.Fatalf("certs ca replaced an existing CA without --force:\n%s", out)
	}
	for _, f := range []string{filepath.Join(caDir, "ca.key"), filepath.Join(pki, "c1.key"), filepath.Join(pki, "paris-1.key")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	browser := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	mtls := func(name string) []string {
		return []string{"--mtls-cert", filepath.Join(pki, name+".crt"), "--mtls-key", filepath.Join(pki, name+".key"), "--mtls-ca", filepath.Join(pki, "ca.crt")}
	}

	httpAddr, raftAddr, edgeAddr := porttest.Addr(t), porttest.Addr(t), porttest.Addr(t)
	ctl := start(t, bin, append([]string{"control", "--id", "c1", "--http", httpAddr, "--raft", raftAddr, "--data", t.TempDir(), "--bootstrap",
		"--cluster-key", strings.Repeat("ef", 32), "--edge-token", "edge-secret-token", "--admin-token", "admin-secret"}, mtls("c1")...)...)
	waitTLS(t, browser, "https://"+httpAddr+"/healthz", ctl)

	edge := start(t, bin, append([]string{"edge", "--id", "paris-1", "--region", "eu-west", "--http", edgeAddr, "--control", "https://" + httpAddr,
		"--edge-token", "edge-secret-token", "--no-turn", "--gossip", "", "--loopback-candidates", "--data", t.TempDir()}, mtls("paris-1")...)...)
	waitTLS(t, browser, "https://"+edgeAddr+"/healthz", edge)

	// /internal/ on the edge: the token alone is refused; with a cluster
	// certificate the drain command gets through.
	if out, err := exec.Command(bin, "edge", "drain", "--edge", "https://"+edgeAddr, "--edge-token", "edge-secret-token", "--cancel").CombinedOutput(); err == nil {
		t.Fatalf("edge drain without a certificate succeeded:\n%s", out)
	}
	if out := run(t, bin, append([]string{"edge", "drain", "--edge", "https://" + edgeAddr, "--edge-token", "edge-secret-token", "--cancel"}, mtls("c1")...)...); !strings.Contains(out, "draining=false") {
		t.Fatalf("edge drain --cancel: %s", out)
	}

	req, _ := http.NewRequest("POST", "https://"+httpAddr+"/admin/v1/keys", strings.NewReader(`{"name":"t"}`))
	req.Header.Set("Authorization", "Bearer admin-secret")
	resp, err := browser.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create key: %v %v\n%s", err, resp, ctl.out.String())
	}
	var created struct{ APIKey, Secret string }
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	crawler, _ := auth.Mint(auth.MintOptions{APIKey: created.APIKey, Secret: []byte(created.Secret), Permissions: []string{"allow_join"}, Roles: []string{"crawler"}, TTL: time.Hour})
	rtc, _ := auth.Mint(auth.MintOptions{APIKey: created.APIKey, Secret: []byte(created.Secret), Permissions: []string{"allow_join"}, Roles: []string{"rtc"}, TTL: time.Hour})
	post := func(path, tok, body string, out any) int {
		req, _ := http.NewRequest("POST", "https://"+httpAddr+path, strings.NewReader(body))
		req.Header.Set("Authorization", tok)
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(out)
		return resp.StatusCode
	}
	var room struct{ RoomID string }
	post("/v2/rooms", crawler, `{}`, &room)
	var join struct {
		Edges []struct{ EdgeID, SignalingURL string }
	}
	if status := post("/v2/rooms/"+room.RoomID+"/join", rtc, `{"name":"x"}`, &join); status != 200 || len(join.Edges) != 1 ||
		join.Edges[0].EdgeID != "paris-1" || join.Edges[0].SignalingURL != "wss://"+edgeAddr+"/rtc" {
		t.Fatalf("join: %d %+v\nedge log:\n%s", status, join, edge.out.String())
	}
}

func waitTLS(t *testing.T, c *http.Client, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200:\n%s", url, p.out.String())
}
