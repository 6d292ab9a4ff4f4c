package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/edgeapi"
)

// A refusal is logged by its message; an answer that is no Meridian error
// (whatever else --control points at) is named as such, not dumped.
func TestRefusalsSayWhatAnswered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
		notWant string
	}{
		{"control node", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"statusCode":401,"message":"wrong edge token: the edge's --edge-token must be the control plane's"}`)
		}, "/internal/v1/edges/register: 401 wrong edge token: the edge's --edge-token must be the control plane's", "statusCode"},
		{"another server", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotImplemented)
			_, _ = io.WriteString(w, "<!DOCTYPE HTML><html><body>Unsupported method ('POST')</body></html>")
		}, "501 Not Implemented, not a Meridian control node's answer (text/html, 68 bytes): is --control the control plane's URL?", "<html>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			a, err := New(Config{ControlURLs: []string{srv.URL}, EdgeToken: "t", HeartbeatEvery: time.Hour,
				Register: edgeapi.Register{EdgeID: "e1", Region: "local", SignalURL: "ws://x/rtc"}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			err = a.register(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.notWant) {
				t.Fatalf("register: %v\nwant it to say %q (and no %q)", err, tc.want, tc.notWant)
			}
		})
	}
}
