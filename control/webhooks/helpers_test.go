package webhooks

import (
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/wait"
)

// testKey is generated once: RSA key generation dominates test time otherwise.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := GenerateRSAKey()
	if err != nil {
		panic(err)
	}
	return k
})

const testSecretRef = "key-1"

var testSecret = sync.OnceValue(func() string {
	s, err := GenerateSecret(nil)
	if err != nil {
		panic(err)
	}
	return s
})

func testSigner(t testing.TB) *Signer {
	t.Helper()
	s, err := NewSigner(testKey(), StaticSecrets{testSecretRef: testSecret()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeClock is an injectable clock. It starts at the real time (whole second,
// so HTTP dates round-trip) so that Standard Webhooks' 5-minute replay window
// accepts the signatures it produces.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeOutbox is an in-memory Outbox with the compare-and-set Record rule the
// replicated store implements.
type fakeOutbox struct {
	mu        sync.Mutex
	order     []string
	rows      map[string]*fakeRow
	results   []AttemptResult
	recordErr func(AttemptResult) error // optional fault injection
	// sweepGone fails the other pending deliveries to an endpoint when a
	// 410 from it is recorded, as the replicated store does.
	sweepGone bool
}

type fakeRow struct {
	d      Delivery
	status Status
	last   AttemptResult
}

func newFakeOutbox() *fakeOutbox { return &fakeOutbox{rows: map[string]*fakeRow{}} }

func (o *fakeOutbox) add(ds ...Delivery) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range ds {
		o.order = append(o.order, d.ID)
		o.rows[d.ID] = &fakeRow{d: d, status: StatusPending}
	}
}

func (o *fakeOutbox) Pending(cursor string, limit int) ([]Delivery, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	start := 0
	if cursor != "" {
		var err error
		if start, err = strconv.Atoi(cursor); err != nil {
			return nil, "", err
		}
	}
	var page []Delivery
	for i := start; i < len(o.order); i++ {
		r := o.rows[o.order[i]]
		if r.status != StatusPending {
			continue
		}
		d := r.d
		d.Body = append([]byte(nil), d.Body...)
		page = append(page, d)
		if len(page) == limit {
			if i+1 < len(o.order) {
				return page, strconv.Itoa(i + 1), nil
			}
			break
		}
	}
	return page, "", nil
}

func (o *fakeOutbox) Record(ctx context.Context, r AttemptResult) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.recordErr != nil {
		if err := o.recordErr(r); err != nil {
			return err
		}
	}
	o.results = append(o.results, r)
	row, ok := o.rows[r.ID]
	if !ok {
		return fmt.Errorf("delivery %q not found", r.ID)
	}
	if row.status != StatusPending || row.d.Attempts != r.Attempts-1 {
		return nil // stale report: ignored, like the FSM does
	}
	row.status, row.last = r.Status, r
	row.d.Attempts, row.d.NextAttempt = r.Attempts, r.NextAttempt
	if r.EndpointGone && o.sweepGone {
		for _, other := range o.rows {
			if other.status == StatusPending && other.d.URL == row.d.URL {
				other.status = StatusFailed
			}
		}
	}
	return nil
}

func (o *fakeOutbox) row(id string) fakeRow {
	o.mu.Lock()
	defer o.mu.Unlock()
	return *o.rows[id]
}

func (o *fakeOutbox) resultsFor(id string) []AttemptResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []AttemptResult
	for _, r := range o.results {
		if r.ID == id {
			out = append(out, r)
		}
	}
	return out
}

// eventually polls cond until it returns "" or the deadline passes, then
// fails with the last reason.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	wait.Until(t, timeout, cond)
}

// waitStatus waits until the delivery's row has the wanted status and at
// least the wanted number of recorded attempts.
func waitStatus(t testing.TB, o *fakeOutbox, id string, want Status, attempts int) fakeRow {
	t.Helper()
	var row fakeRow
	eventually(t, 5*time.Second, func() string {
		row = o.row(id)
		if row.status != want || row.d.Attempts < attempts {
			return fmt.Sprintf("delivery %s: status %s after %d attempts (last error %q), want %s after %d",
				id, row.status, row.d.Attempts, row.last.LastError, want, attempts)
		}
		return ""
	})
	return row
}

// receivedRequest is one request a test receiver saw.
type receivedRequest struct {
	header http.Header
	body   []byte
	remote string
	at     time.Time
}

type bodyKey struct{}

// reqBody is the body the receiver already read, for handlers that verify it.
func reqBody(r *http.Request) []byte {
	b, _ := r.Context().Value(bodyKey{}).([]byte)
	return b
}

// receiver is an httptest server on loopback that records requests and
// answers with handle (n counts requests from 0).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []receivedRequest
}

func newReceiver(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, receivedRequest{header: r.Header.Clone(), body: body, remote: r.RemoteAddr, at: time.Now()})
		rc.mu.Unlock()
		if handle != nil {
			handle(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, body)), n)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []receivedRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedRequest(nil), rc.reqs...)
}

// testConfig allows plain HTTP and loopback 127.0.0.1 explicitly; everything
// else keeps the production defaults except timings.
func testConfig(clock *fakeClock) Config {
	cfg := DefaultConfig()
	cfg.AllowHTTP = true
	cfg.AllowedNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.PollInterval = 20 * time.Millisecond
	cfg.MinScanInterval = time.Millisecond
	cfg.AttemptTimeout = 3 * time.Second
	cfg.Now = clock.Now
	cfg.Rand = func() float64 { return 0.5 }
	return cfg
}

// startDispatcher builds a dispatcher and runs it until the test ends.
func startDispatcher(t testing.TB, cfg Config, o Outbox) *Dispatcher {
	t.Helper()
	d, err := New(cfg, o, testSigner(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
		_ = d.Close()
	})
	return d
}

// delivery returns a pending delivery of a participant-joined event.
func delivery(t testing.TB, id, room, url string, now time.Time) Delivery {
	t.Helper()
	body, err := Envelope(EventParticipantJoined, Participant{MeetingID: room, SessionID: "613731342f27f56e4fc4b6d0", ParticipantID: id, ParticipantName: "P " + id})
	if err != nil {
		t.Fatal(err)
	}
	return Delivery{ID: id, EventType: EventParticipantJoined, RoomID: room, URL: url, Body: body,
		SecretRef: testSecretRef, NextAttempt: now, CreatedAt: now}
}
