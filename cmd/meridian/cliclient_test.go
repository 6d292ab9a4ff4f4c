package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keys and rooms reach an https server whose certificate a CA outside the
// system's pool signed (a control node serving its cluster certificate)
// when given that CA with --ca, and refuse it without.
func TestCLITrustsTheGivenCA(t *testing.T) {
	var calls []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":[]}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"keys", "list", "--server", srv.URL, "--admin-token", "tok"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without --ca: %v, want a certificate error", err)
	}
	if err := run([]string{"keys", "list", "--server", srv.URL, "--admin-token", "tok", "--ca", ca}); err != nil {
		t.Fatalf("keys list --ca: %v", err)
	}
	if err := run([]string{"rooms", "list", "--server", srv.URL, "--api-key", "k", "--api-secret", "s", "--ca", ca}); err != nil {
		t.Fatalf("rooms list --ca: %v", err)
	}
	if len(calls) != 2 || calls[0] != "GET /admin/v1/keys Bearer tok" || !strings.HasPrefix(calls[1], "GET /v2/rooms ey") {
		t.Errorf("server saw %q", calls)
	}
	notPEM := filepath.Join(dir, "not.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o644)
	if err := run([]string{"keys", "list", "--server", srv.URL, "--admin-token", "tok", "--ca", notPEM}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("--ca with no certificate: %v", err)
	}
}
