package browser

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A child that lost its port to another process (it exits with "address
// already in use") is started again; the second start's child and URL are
// what healthyOrRestart hands back.
func TestHealthyOrRestartRetriesATakenPort(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer healthy.Close()
	starts := 0
	start := func() (*child, string) {
		starts++
		if starts == 1 {
			return startChild(t, "taken", "/bin/sh", time.Second, "-c",
				"echo 'listen tcp 127.0.0.1:1: bind: address already in use' >&2; exit 1"), "http://127.0.0.1:1"
		}
		return startChild(t, "second", "/bin/sh", time.Second, "-c", "exec sleep 30"), healthy.URL
	}
	first, firstURL := start()
	c, url := healthyOrRestart(t, "child", 10*time.Second, first, firstURL, start)
	if starts != 2 || c.name != "second" || url != healthy.URL {
		t.Fatalf("healthyOrRestart: %d starts, child %q, url %s; want the second start's", starts, c.name, url)
	}
}
