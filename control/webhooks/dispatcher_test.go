package webhooks

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/meridian-video/meridian/shared/metrictest"
)

func TestDeliverSignedRequest(t *testing.T) {
	clock := newFakeClock()
	pub := &testKey().PublicKey
	wh, err := standardwebhooks.NewWebhook(testSecret())
	if err != nil {
		t.Fatal(err)
	}
	verified := make(chan error, 1)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		// The receiver side: verify both signatures over the exact bytes.
		body := reqBody(r)
		err := errors.Join(wh.Verify(body, r.Header), VerifyVideoSDK(pub, body, r.Header.Get(HeaderVideoSDKSignature)))
		verified <- err
		w.WriteHeader(http.StatusNoContent)
	})
	o := newFakeOutbox()
	d := delivery(t, "msg_1", "abcd-efgh-ijkl", rc.URL+"/hook", clock.Now())
	o.add(d)
	startDispatcher(t, testConfig(clock), o)

	row := waitStatus(t, o, "msg_1", StatusDelivered, 1)
	if err := <-verified; err != nil {
		t.Fatalf("receiver could not verify: %v", err)
	}
	req := rc.requests()[0]
	if string(req.body) != string(d.Body) {
		t.Errorf("body changed in transit:\n%s\n%s", req.body, d.Body)
	}
	for h, want := range map[string]string{
		"Content-Type":         "application/json",
		"User-Agent":           "Meridian-Webhooks/1.0",
		HeaderWebhookID:        "msg_1",
		HeaderWebhookTimestamp: fmt.Sprint(clock.Now().Unix()),
	} {
		if got := req.header.Get(h); got != want {
			t.Errorf("header %s = %q, want %q", h, got, want)
		}
	}
	if r := row.last; r.LastStatusCode != 204 || r.LastError != "" || r.Attempts != 1 || !r.DoneAt.Equal(clock.Now()) || r.EndpointGone {
		t.Errorf("recorded %+v", r)
	}
}

func TestRetryAfterServerErrorKeepsWebhookID(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			http.Error(w, "database\n  is down", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	d := startDispatcher(t, testConfig(clock), o)

	row := waitStatus(t, o, "msg_1", StatusPending, 1)
	t0 := clock.Now()
	if want := t0.Add(7500 * time.Millisecond); !row.d.NextAttempt.Equal(want) { // Rand 0.5 in [5s, 10s]
		t.Fatalf("next attempt %v, want %v", row.d.NextAttempt, want)
	}
	if got := row.last.LastError; got != "HTTP 500: database is down" || row.last.LastStatusCode != 500 {
		t.Fatalf("last error %q status %d", got, row.last.LastStatusCode)
	}
	clock.Advance(7499 * time.Millisecond)
	d.Notify()
	time.Sleep(30 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("retried before the backoff elapsed: %d requests", n)
	}
	clock.Advance(time.Millisecond)
	d.Notify()
	row = waitStatus(t, o, "msg_1", StatusDelivered, 2)
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if a, b := reqs[0].header.Get(HeaderWebhookID), reqs[1].header.Get(HeaderWebhookID); a != "msg_1" || a != b {
		t.Fatalf("webhook-id changed across retries: %q, %q", a, b)
	}
	if string(reqs[0].body) != string(reqs[1].body) {
		t.Fatal("body changed across retries")
	}
	if reqs[1].header.Get(HeaderWebhookTimestamp) != fmt.Sprint(clock.Now().Unix()) {
		t.Error("webhook-timestamp must be the time of the attempt")
	}
	if row.last.LastError != "" || row.last.Attempts != 2 {
		t.Errorf("final result %+v", row.last)
	}
}

func TestRetryAfterHeaderHonoured(t *testing.T) {
	tests := []struct {
		name   string
		header func(now time.Time) string
		wait   time.Duration
	}{
		{"seconds", func(time.Time) string { return "120" }, 120 * time.Second},
		{"http date", func(now time.Time) string { return now.Add(3 * time.Minute).UTC().Format(http.TimeFormat) }, 3 * time.Minute},
		{"capped at MaxBackoff", func(time.Time) string { return "86400" }, 10 * time.Minute},
		{"floored at MinBackoff", func(time.Time) string { return "1" }, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					w.Header().Set("Retry-After", tc.header(clock.Now()))
					w.WriteHeader(http.StatusTooManyRequests)
				}
			})
			o := newFakeOutbox()
			o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
			d := startDispatcher(t, testConfig(clock), o)
			row := waitStatus(t, o, "msg_1", StatusPending, 1)
			if want := clock.Now().Add(tc.wait); !row.d.NextAttempt.Equal(want) {
				t.Fatalf("next attempt in %v, want %v", row.d.NextAttempt.Sub(clock.Now()), tc.wait)
			}
			clock.Advance(tc.wait - time.Second)
			d.Notify()
			time.Sleep(30 * time.Millisecond)
			if n := len(rc.requests()); n != 1 {
				t.Fatalf("retried before Retry-After: %d requests", n)
			}
			clock.Advance(time.Second)
			d.Notify()
			waitStatus(t, o, "msg_1", StatusDelivered, 2)
		})
	}
}

func TestGoneFailsPermanently(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusGone) })
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	startDispatcher(t, testConfig(clock), o)
	row := waitStatus(t, o, "msg_1", StatusFailed, 1)
	if !row.last.EndpointGone || row.last.LastStatusCode != 410 || !strings.Contains(row.last.LastError, "410") {
		t.Fatalf("result %+v", row.last)
	}
	time.Sleep(30 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests after 410", n)
	}
}

// TestGoneStopsTheChain: one room's deliveries to an endpoint go out one at
// a time; once the endpoint answered 410 Gone, the rest of the chain the
// worker holds (which the store failed when it recorded the 410) is not sent.
func TestGoneStopsTheChain(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusGone) })
	o := newFakeOutbox()
	o.sweepGone = true
	for i := range 4 {
		o.add(delivery(t, fmt.Sprintf("msg_%d", i), "room-1", rc.URL, clock.Now()))
	}
	startDispatcher(t, testConfig(clock), o)
	waitStatus(t, o, "msg_0", StatusFailed, 1)
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("the endpoint got %d requests, want 1: deliveries went out after its 410", n)
	}
	for i := 1; i < 4; i++ {
		id := fmt.Sprintf("msg_%d", i)
		if rs := o.resultsFor(id); len(rs) != 0 {
			t.Fatalf("%s was attempted after the 410: %+v", id, rs)
		}
	}
}

// TestGoneStopsOtherChains: chains of other rooms to the same endpoint,
// handed to workers before its 410, make no new attempt once the 410
// arrived (one already in flight finishes); deliveries queued for the
// endpoint after the 410 was recorded (a room configured with it again) are
// sent.
func TestGoneStopsOtherChains(t *testing.T) {
	clock := newFakeClock()
	o := newFakeOutbox()
	o.sweepGone = true
	var open atomic.Bool
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.Header.Get(HeaderWebhookID) {
		case "a1":
			w.WriteHeader(http.StatusGone)
		case "b1":
			// In flight while a1 gets its 410: answer once that is recorded.
			deadline := time.Now().Add(3 * time.Second)
			for o.row("a1").status != StatusFailed && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		default:
			if !open.Load() {
				w.WriteHeader(http.StatusGone)
			}
		}
	})
	o.add(delivery(t, "b1", "room-b", rc.URL, clock.Now()), delivery(t, "a1", "room-a", rc.URL, clock.Now()),
		delivery(t, "b2", "room-b", rc.URL, clock.Now()), delivery(t, "b3", "room-b", rc.URL, clock.Now()))
	d := startDispatcher(t, testConfig(clock), o)
	waitStatus(t, o, "a1", StatusFailed, 1)
	eventually(t, 5*time.Second, func() string {
		if rs := o.resultsFor("b1"); len(rs) != 1 {
			return "b1's outcome not reported yet"
		}
		return ""
	})
	time.Sleep(50 * time.Millisecond)
	var sent []string
	for _, r := range rc.requests() {
		sent = append(sent, r.header.Get(HeaderWebhookID))
	}
	if len(sent) != 2 {
		t.Fatalf("the endpoint got %v, want b1 (in flight) and a1 only", sent)
	}
	for _, id := range []string{"b2", "b3"} {
		if rs := o.resultsFor(id); len(rs) != 0 || o.row(id).status != StatusFailed {
			t.Fatalf("%s: attempted %+v, status %s; want never attempted, failed by the 410", id, rs, o.row(id).status)
		}
	}

	open.Store(true)
	o.add(delivery(t, "c1", "room-c", rc.URL, clock.Now()))
	d.Notify()
	waitStatus(t, o, "c1", StatusDelivered, 1)
}

// TestImpossiblePortFailsAtOnce: a stored target whose port no connection
// can use (accepted before ports were checked) fails at the first attempt
// instead of being retried for a day.
func TestImpossiblePortFailsAtOnce(t *testing.T) {
	clock := newFakeClock()
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", "http://127.0.0.1:99999/x", clock.Now()))
	startDispatcher(t, testConfig(clock), o)
	row := waitStatus(t, o, "msg_1", StatusFailed, 1)
	if !strings.Contains(row.last.LastError, "port 99999 is not a TCP port") {
		t.Fatalf("result %+v", row.last)
	}
}

func TestOtherStatusesAreRetried(t *testing.T) {
	for _, code := range []int{400, 401, 404, 408, 429, 500, 502, 503, 504} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			clock := newFakeClock()
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(code) })
			o := newFakeOutbox()
			o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
			startDispatcher(t, testConfig(clock), o)
			row := waitStatus(t, o, "msg_1", StatusPending, 1)
			if row.last.LastStatusCode != code || row.last.Status != StatusPending || row.last.EndpointGone {
				t.Fatalf("result %+v", row.last)
			}
		})
	}
}

func TestAttemptTimeout(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	cfg := testConfig(clock)
	cfg.AttemptTimeout = 100 * time.Millisecond
	start := time.Now()
	startDispatcher(t, cfg, o)
	row := waitStatus(t, o, "msg_1", StatusPending, 1)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("attempt took %v", el)
	}
	if !strings.Contains(row.last.LastError, "timeout after 100ms") || row.last.LastStatusCode != 0 {
		t.Fatalf("result %+v", row.last)
	}
	if row.last.LatencyMs < 100 {
		t.Errorf("latency %d ms < timeout", row.last.LatencyMs)
	}
}

func TestOversizeResponseIsCut(t *testing.T) {
	chunk := []byte(strings.Repeat("x", 32<<10))
	var written atomic.Int64
	endless := func(code int) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			w.WriteHeader(code)
			for i := 0; i < 3200; i++ { // up to 100 MiB unless the client hangs up
				m, err := w.Write(chunk)
				written.Add(int64(m))
				if err != nil {
					return
				}
			}
		}
	}
	for _, code := range []int{200, 503} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			written.Store(0)
			clock := newFakeClock()
			rc := newReceiver(t, endless(code))
			o := newFakeOutbox()
			o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
			want := StatusDelivered
			if code != 200 {
				want = StatusPending
			}
			start := time.Now()
			startDispatcher(t, testConfig(clock), o)
			row := waitStatus(t, o, "msg_1", want, 1)
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("took %v", el)
			}
			if row.last.LastStatusCode != code || len(row.last.LastError) > 512 {
				t.Fatalf("result %+v", row.last)
			}
			if w := written.Load(); w > 20<<20 {
				t.Errorf("receiver managed to write %d bytes: the body was not cut", w)
			}
		})
	}
}

func TestHTTPSRequiredByDefault(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, nil)
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	cfg := testConfig(clock)
	cfg.AllowHTTP = false // the default; loopback stays allowed so only the scheme is at stake
	startDispatcher(t, cfg, o)
	row := waitStatus(t, o, "msg_1", StatusFailed, 1)
	if !strings.Contains(row.last.LastError, "plain http target refused (https required)") {
		t.Fatalf("error %q does not say https is required", row.last.LastError)
	}
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("%d requests reached the http receiver", n)
	}
}

func TestHTTPSDelivery(t *testing.T) {
	clock := newFakeClock()
	var got atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := testConfig(clock)
	cfg.AllowHTTP = false
	cfg.RootCAs = pool
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", srv.URL, clock.Now()))
	startDispatcher(t, cfg, o)
	waitStatus(t, o, "msg_1", StatusDelivered, 1)
	if got.Load() != 1 {
		t.Fatalf("%d requests", got.Load())
	}
}

func TestLoopbackRefusedByDefault(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, nil)
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	cfg := testConfig(clock)
	cfg.AllowedNets = nil // the default
	startDispatcher(t, cfg, o)
	row := waitStatus(t, o, "msg_1", StatusFailed, 1)
	if !strings.Contains(row.last.LastError, "destination address refused") {
		t.Fatalf("error %q", row.last.LastError)
	}
	if len(rc.requests()) != 0 {
		t.Fatal("request reached a loopback receiver")
	}
}

// listenOn starts a receiver on a specific loopback address.
func listenOn(t *testing.T, addr string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		noLoopbackAlias(t, addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// noLoopbackAlias ends a test that needs a loopback address other than
// 127.0.0.1. Linux (CI, and every supported server) routes all of
// 127.0.0.0/8 to lo, so there the failure to bind is a broken machine or
// a broken test and fails; elsewhere (macOS has only 127.0.0.1 unless an
// alias is added) the test is skipped.
func noLoopbackAlias(t *testing.T, addr string, err error) {
	t.Helper()
	if runtime.GOOS == "linux" {
		t.Fatalf("cannot bind %s, which Linux routes to lo: %v", addr, err)
	}
	t.Skipf("cannot bind %s on %s (add a loopback alias to run this test): %v", addr, runtime.GOOS, err)
}

func TestRedirects(t *testing.T) {
	// 127.0.0.2 is loopback too, but only 127.0.0.1/32 is allowed.
	var forbiddenHits atomic.Int32
	forbidden := listenOn(t, "127.0.0.2", func(w http.ResponseWriter, r *http.Request) { forbiddenHits.Add(1) })

	tests := []struct {
		name   string
		handle func(base string) http.HandlerFunc
		want   Status
		errSub string
	}{
		{"307 followed", func(base string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/start" {
					http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
				}
			}
		}, StatusDelivered, ""},
		{"308 chain of 3 followed", func(base string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/start":
					http.Redirect(w, r, "/a", http.StatusPermanentRedirect)
				case "/a":
					http.Redirect(w, r, "/b", http.StatusPermanentRedirect)
				case "/b":
					http.Redirect(w, r, "/final", http.StatusPermanentRedirect)
				}
			}
		}, StatusDelivered, ""},
		// Redirects not followed are the receiver's answer: retried.
		{"4 redirects not followed", func(base string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, r.URL.Path+"x", http.StatusTemporaryRedirect)
			}
		}, StatusPending, "HTTP 307, redirect not followed: more than 3 redirects"},
		{"302 would drop the body", func(base string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/start" {
					http.Redirect(w, r, "/final", http.StatusFound)
				}
			}
		}, StatusPending, "HTTP 302, redirect not followed: status 302 would turn the POST into a GET; use 307 or 308"},
		{"to refused loopback address", func(base string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, forbidden.URL+"/steal", http.StatusTemporaryRedirect)
			}
		}, StatusFailed, "127.0.0.2 is a loopback address"},
		{"to metadata address", func(base string) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
			}
		}, StatusFailed, "link-local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			var final atomic.Int32
			var base string
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.URL.Path == "/final" {
					final.Add(1)
					if got := reqBody(r); len(got) == 0 {
						t.Error("redirected request lost its body")
					}
				}
				tc.handle(base)(w, r)
			})
			base = rc.URL
			o := newFakeOutbox()
			o.add(delivery(t, "msg_1", "room-1", rc.URL+"/start", clock.Now()))
			startDispatcher(t, testConfig(clock), o)
			row := waitStatus(t, o, "msg_1", tc.want, 1)
			if tc.want == StatusDelivered && final.Load() != 1 {
				t.Fatalf("final hit %d times", final.Load())
			}
			if tc.want != StatusDelivered && final.Load() != 0 {
				t.Fatalf("final hit %d times by a redirect that was not to be followed", final.Load())
			}
			if !strings.Contains(row.last.LastError, tc.errSub) {
				t.Fatalf("error %q, want it to contain %q", row.last.LastError, tc.errSub)
			}
		})
	}
	if forbiddenHits.Load() != 0 {
		t.Fatal("a redirect reached the refused address")
	}
}

// TestUnfollowedRedirectIsRetried: a receiver answering 301, 302 or 303
// (which would turn the POST into a body-less GET) is not followed, and not
// given up on either: the attempt is recorded with its status code and a
// message saying why, retried with backoff like any other non-2xx, and
// delivered once the receiver answers 2xx. No GET ever reaches it.
func TestUnfollowedRedirectIsRetried(t *testing.T) {
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			clock := newFakeClock()
			var gets atomic.Int32
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.Method != http.MethodPost {
					gets.Add(1)
				}
				if n == 0 {
					http.Redirect(w, r, "/elsewhere", code)
				}
			})
			o := newFakeOutbox()
			o.add(delivery(t, "msg_1", "room-1", rc.URL+"/hook", clock.Now()))
			d := startDispatcher(t, testConfig(clock), o)

			row := waitStatus(t, o, "msg_1", StatusPending, 1)
			want := fmt.Sprintf("HTTP %d, redirect not followed: status %d would turn the POST into a GET; use 307 or 308", code, code)
			if r := row.last; r.LastStatusCode != code || r.LastError != want || r.EndpointGone || !r.DoneAt.IsZero() {
				t.Fatalf("first attempt recorded %+v, want status %d and error %q", r, code, want)
			}
			if wantNext := clock.Now().Add(7500 * time.Millisecond); !row.d.NextAttempt.Equal(wantNext) { // backoff, Rand 0.5
				t.Fatalf("next attempt %v, want %v", row.d.NextAttempt, wantNext)
			}
			clock.Advance(7500 * time.Millisecond)
			d.Notify()
			row = waitStatus(t, o, "msg_1", StatusDelivered, 2)
			if row.last.LastStatusCode != 200 || row.last.LastError != "" {
				t.Fatalf("second attempt recorded %+v", row.last)
			}
			if n := len(rc.requests()); n != 2 || gets.Load() != 0 {
				t.Fatalf("receiver saw %d requests, %d of them not POSTs; want 2 POSTs", n, gets.Load())
			}
		})
	}
}

func TestSourceAddress(t *testing.T) {
	clock := newFakeClock()
	src := netip.MustParseAddr("127.0.0.3")
	if l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: src.AsSlice()}); err != nil {
		noLoopbackAlias(t, src.String(), err)
	} else {
		_ = l.Close()
	}
	rc := newReceiver(t, nil)
	cfg := testConfig(clock)
	cfg.SourceAddrs = []netip.Addr{src}
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	startDispatcher(t, cfg, o)
	waitStatus(t, o, "msg_1", StatusDelivered, 1)
	ap := netip.MustParseAddrPort(rc.requests()[0].remote)
	if ap.Addr() != src {
		t.Fatalf("request came from %v, want %v", ap.Addr(), src)
	}
}

func TestGivesUpAfterMaxAge(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusBadGateway) })
	o := newFakeOutbox()
	d := delivery(t, "msg_1", "room-1", rc.URL, clock.Now())
	d.CreatedAt = clock.Now().Add(-24*time.Hour + 3*time.Second) // 3 s of its window left
	o.add(d)
	disp := startDispatcher(t, testConfig(clock), o)
	row := waitStatus(t, o, "msg_1", StatusPending, 1)
	if want := d.CreatedAt.Add(24 * time.Hour); !row.d.NextAttempt.Equal(want) {
		t.Fatalf("last attempt at %v, want the deadline %v", row.d.NextAttempt, want)
	}
	clock.Advance(3 * time.Second)
	disp.Notify()
	row = waitStatus(t, o, "msg_1", StatusFailed, 2)
	if !strings.HasPrefix(row.last.LastError, "gave up after 2 attempts over 24h0m0s: HTTP 502") {
		t.Fatalf("error %q", row.last.LastError)
	}
}

func TestUnknownSecretFails(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, nil)
	o := newFakeOutbox()
	d := delivery(t, "msg_1", "room-1", rc.URL, clock.Now())
	d.SecretRef = "revoked-key"
	o.add(d)
	startDispatcher(t, testConfig(clock), o)
	row := waitStatus(t, o, "msg_1", StatusFailed, 1)
	if !strings.Contains(row.last.LastError, "unknown signing secret") {
		t.Fatalf("error %q", row.last.LastError)
	}
	if len(rc.requests()) != 0 {
		t.Fatal("an unsigned request went out")
	}
}

// One room's deliveries to one endpoint go out strictly in order, one at a
// time, across retries; different rooms proceed in parallel, within Workers.
func TestPerRoomOrderingUnderConcurrency(t *testing.T) {
	const rooms, perRoom, workers = 6, 12, 4
	var (
		mu           sync.Mutex
		delivered    = map[string]int{} // room -> deliveries acknowledged
		failedOnce   = map[string]bool{}
		active       int
		maxActive    int
		activeByRoom = map[string]int{}
		violations   []string
	)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		var room string
		var idx int
		if _, err := fmt.Sscanf(r.Header.Get(HeaderWebhookID), "%4s-%d", &room, &idx); err != nil {
			t.Errorf("webhook-id %q: %v", r.Header.Get(HeaderWebhookID), err)
			return
		}
		mu.Lock()
		active++
		activeByRoom[room]++
		maxActive = max(maxActive, active)
		if activeByRoom[room] > 1 {
			violations = append(violations, fmt.Sprintf("%s: two deliveries in flight", room))
		}
		if idx != delivered[room] {
			violations = append(violations, fmt.Sprintf("%s: got #%d while #%d is not delivered", room, idx, delivered[room]))
		}
		id := r.Header.Get(HeaderWebhookID)
		fail := idx%3 == 1 && !failedOnce[id]
		failedOnce[id] = true
		mu.Unlock()

		time.Sleep(2 * time.Millisecond)

		mu.Lock()
		active--
		activeByRoom[room]--
		if !fail {
			delivered[room]++
		}
		mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})

	o := newFakeOutbox()
	now := time.Now()
	for i := range perRoom { // interleaved enqueue order across rooms
		for r := range rooms {
			d := delivery(t, fmt.Sprintf("rm%02d-%d", r, i), fmt.Sprintf("room-%d", r), rc.URL, now)
			o.add(d)
		}
	}
	cfg := testConfig(newFakeClock())
	cfg.Now = time.Now // real time: retries come due on their own
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 4*time.Millisecond
	cfg.PollInterval = 5 * time.Millisecond
	cfg.Workers = workers
	cfg.ChainLength = 3
	startDispatcher(t, cfg, o)

	eventually(t, 10*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, n := range delivered {
			total += n
		}
		if total != rooms*perRoom {
			return fmt.Sprintf("%d of %d delivered", total, rooms*perRoom)
		}
		return ""
	})
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("ordering violated:\n%s", strings.Join(violations, "\n"))
	}
	if maxActive < 2 || maxActive > workers {
		t.Fatalf("max concurrent deliveries %d, want in [2, %d]", maxActive, workers)
	}
	for r := range rooms {
		for i := range perRoom {
			id := fmt.Sprintf("rm%02d-%d", r, i)
			eventually(t, time.Second, func() string {
				if row := o.row(id); row.status != StatusDelivered {
					return id + " is " + string(row.status)
				}
				return ""
			})
		}
	}
}

// A new leader resumes from the replicated outbox: an attempt cut off by the
// leadership loss is not recorded, and the next leader repeats it with the
// same webhook-id.
func TestLeaderChangeResumes(t *testing.T) {
	clock := newFakeClock()
	firstSeen := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			once.Do(func() { close(firstSeen) })
			<-r.Context().Done() // hang until the old leader gives up
			return
		}
	})
	o := newFakeOutbox()
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))

	old, err := New(testConfig(clock), o, testSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- old.Run(ctx) }()
	<-firstSeen
	cancel() // leadership lost mid-attempt
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after leadership loss")
	}
	_ = old.Close()
	if rs := o.resultsFor("msg_1"); len(rs) != 0 {
		t.Fatalf("interrupted attempt was recorded: %+v", rs)
	}

	startDispatcher(t, testConfig(clock), o) // the new leader
	waitStatus(t, o, "msg_1", StatusDelivered, 1)
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[0].header.Get(HeaderWebhookID) != reqs[1].header.Get(HeaderWebhookID) {
		t.Fatalf("%d requests; ids must match", len(reqs))
	}
}

func TestRunLeavesNoGoroutines(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, nil)
	o := newFakeOutbox()
	for i := range 20 {
		o.add(delivery(t, fmt.Sprintf("msg_%d", i), fmt.Sprintf("room-%d", i%5), rc.URL, clock.Now()))
	}
	rc.Client().CloseIdleConnections()
	base := runtime.NumGoroutine()
	d, err := New(testConfig(clock), o, testSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	waitStatus(t, o, "msg_19", StatusDelivered, 1)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	_ = d.Close() // idempotent
	eventually(t, 3*time.Second, func() string {
		if n := runtime.NumGoroutine(); n > base {
			return fmt.Sprintf("%d goroutines, %d before Run", n, base)
		}
		return ""
	})
}

// blockingRecord holds every Record until release is closed, outside the
// fake's lock so that the dispatcher's scans are not blocked with it.
type blockingRecord struct {
	*fakeOutbox
	entered  chan struct{}
	once     sync.Once
	release  chan struct{}
	finished atomic.Bool
}

func (b *blockingRecord) Record(ctx context.Context, r AttemptResult) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	defer b.finished.Store(true)
	return b.fakeOutbox.Record(context.WithoutCancel(ctx), r)
}

// TestRunWaitsForWorkers: Run returns only after its workers did, so a new
// term's Run (or Close) never overlaps an old attempt still being recorded.
func TestRunWaitsForWorkers(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, nil)
	o := &blockingRecord{fakeOutbox: newFakeOutbox(), entered: make(chan struct{}), release: make(chan struct{})}
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	d, err := New(testConfig(clock), o, testSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	select {
	case <-o.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the delivery was never recorded")
	}
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("Run returned (%v) while a worker was still recording", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(o.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !o.finished.Load() {
		t.Fatal("Run returned before its worker finished")
	}
}

func TestRecordIsRetried(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, nil)
	o := newFakeOutbox()
	var fails atomic.Int32
	o.recordErr = func(AttemptResult) error {
		if fails.Add(1) <= 2 {
			return errors.New("raft: enqueue timeout")
		}
		return nil
	}
	o.add(delivery(t, "msg_1", "room-1", rc.URL, clock.Now()))
	startDispatcher(t, testConfig(clock), o)
	waitStatus(t, o, "msg_1", StatusDelivered, 1)
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests: a transient Record error must not resend", n)
	}
}

func TestRunTwiceAndNew(t *testing.T) {
	clock := newFakeClock()
	o := newFakeOutbox()
	d := startDispatcher(t, testConfig(clock), o)
	eventually(t, time.Second, func() string {
		if !d.running.Load() {
			return "not running yet"
		}
		return ""
	})
	if err := d.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Run: %v", err)
	}
	if _, err := New(testConfig(clock), nil, testSigner(t)); !errors.Is(err, ErrConfig) {
		t.Fatalf("nil outbox: %v", err)
	}
	if _, err := New(testConfig(clock), o, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("nil signer: %v", err)
	}
	bad := testConfig(clock)
	bad.Workers = 0
	if _, err := New(bad, o, testSigner(t)); !errors.Is(err, ErrConfig) {
		t.Fatalf("bad config: %v", err)
	}
	if err := d.CheckURL("http://example.com"); err != nil {
		t.Fatalf("test config allows http: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	clock := newFakeClock()
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Header.Get(HeaderWebhookID) == "bad" {
			w.WriteHeader(http.StatusGone)
		}
	})
	reg := prometheus.NewRegistry()
	cfg := testConfig(clock)
	cfg.Registerer = reg
	o := newFakeOutbox()
	o.add(delivery(t, "good", "room-1", rc.URL, clock.Now()), delivery(t, "bad", "room-2", rc.URL, clock.Now()))
	future := delivery(t, "later", "room-3", rc.URL, clock.Now())
	future.NextAttempt = clock.Now().Add(time.Hour)
	o.add(future)
	startDispatcher(t, cfg, o)
	waitStatus(t, o, "good", StatusDelivered, 1)
	waitStatus(t, o, "bad", StatusFailed, 1)

	eventually(t, 2*time.Second, func() string {
		// A labelled series not yet created reads as 0.
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"meridian_webhook_deliveries_total", map[string]string{"outcome": "delivered"}, 1},
			{"meridian_webhook_deliveries_total", map[string]string{"outcome": "failed"}, 1},
			{"meridian_webhook_deliveries_total", map[string]string{"outcome": "retry"}, 0},
			{"meridian_webhook_queue_depth", nil, 1},
			{"meridian_webhook_workers_busy", nil, 0},
			{"meridian_webhook_record_errors_total", nil, 0},
			{"meridian_webhook_scan_errors_total", nil, 0},
		} {
			if got, _ := metrictest.Sum(t, reg, c.name, c.labels); got != c.want {
				return fmt.Sprintf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		for _, result := range []string{"2xx", "4xx"} {
			if n, _ := metrictest.Count(t, reg, "meridian_webhook_attempt_duration_seconds", map[string]string{"result": result}); n != 1 {
				return fmt.Sprintf("meridian_webhook_attempt_duration_seconds{result=%q} observed %d attempts, want 1", result, n)
			}
		}
		return ""
	})
	// A second dispatcher on the same registry is refused, not silently
	// double-counted.
	if _, err := New(cfg, o, testSigner(t)); err == nil {
		t.Fatal("registering twice succeeded")
	}
}
