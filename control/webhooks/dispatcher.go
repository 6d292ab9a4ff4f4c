package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	backoffpkg "github.com/meridian-video/meridian/shared/backoff"
)

// Dispatcher delivers the outbox. Construct it once per process with New and
// call Run on every leadership gain (after the Raft barrier) with a context
// that is cancelled on leadership loss; Run returns once all of its workers
// have stopped. Close releases idle connections at shutdown.
type Dispatcher struct {
	cfg     Config
	outbox  Outbox
	signer  *Signer
	client  *http.Client
	tr      *http.Transport
	m       *metrics
	kick    chan struct{}
	running atomic.Bool
	closed  sync.Once
}

// New validates cfg and returns a Dispatcher. Nil Now, Rand and Logger are
// replaced by the defaults. Metrics are registered on cfg.Registerer here, so
// build one Dispatcher per registry.
func New(cfg Config, outbox Outbox, signer *Signer) (*Dispatcher, error) {
	def := DefaultConfig()
	if cfg.Now == nil {
		cfg.Now = def.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = def.Rand
	}
	if cfg.Logger == nil {
		cfg.Logger = def.Logger
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if outbox == nil {
		return nil, fmt.Errorf("%w: nil Outbox", ErrConfig)
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: nil Signer", ErrConfig)
	}
	cfg.AllowedNets = slices.Clone(cfg.AllowedNets)
	cfg.SourceAddrs = slices.Clone(cfg.SourceAddrs)
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{cfg: cfg, outbox: outbox, signer: signer, m: m, kick: make(chan struct{}, 1)}
	d.client, d.tr = newClient(&d.cfg)
	return d, nil
}

// CheckURL validates a webhook target under the dispatcher's configuration
// (see Config.CheckURL).
func (d *Dispatcher) CheckURL(raw string) error { return d.cfg.CheckURL(raw) }

// Notify asks for an outbox scan soon (rate-limited by MinScanInterval). Call
// it after committing new deliveries or a Redeliver. Never blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Close releases idle connections. Idempotent; call after Run has returned.
func (d *Dispatcher) Close() error {
	d.closed.Do(d.tr.CloseIdleConnections)
	return nil
}

// Run delivers pending deliveries until ctx is cancelled, then waits for its
// workers and returns nil. Attempts interrupted by the cancellation are not
// recorded; the next leader repeats them with the same webhook-id. Outbox
// read errors are logged and retried; Run does not give up on them.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer d.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		d.m.inFlight.Set(0)
	}()

	done := make(chan string, d.cfg.Workers) // at most Workers chains run: sends never block
	busy := make(map[string]uint64)          // ordering keys with a running chain -> its scan's number
	gone := newGoneSet()
	limiter := rate.NewLimiter(rate.Every(d.cfg.MinScanInterval), 1)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if err := limiter.Wait(ctx); err != nil {
			return nil
		}
		wait := d.cfg.PollInterval
		if free := d.cfg.Workers - len(busy); free > 0 {
			gone.prune(busy)
			scanNo := gone.scanStarted()
			chains, next, err := d.scan(busy, free)
			if err != nil {
				d.m.scanErrors.Inc()
				d.cfg.Logger.Warn("webhooks: reading the outbox failed", "err", err)
			}
			for _, chain := range chains {
				key := chain[0].orderingKey()
				busy[key] = scanNo
				wg.Go(func() {
					d.runChain(ctx, chain, scanNo, gone)
					done <- key
				})
			}
			if !next.IsZero() {
				wait = min(wait, max(next.Sub(d.cfg.Now()), d.cfg.MinScanInterval))
			}
		}
		d.m.inFlight.Set(float64(len(busy)))
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-d.kick:
		case key := <-done:
			delete(busy, key)
			for drained := false; !drained; {
				select {
				case key := <-done:
					delete(busy, key)
				default:
					drained = true
				}
			}
		}
		d.m.inFlight.Set(float64(len(busy)))
	}
}

// scan reads the whole pending outbox in pages and returns up to free chains
// of ready deliveries, one per idle ordering key, each starting at the key's
// head (its oldest pending delivery). It also returns the earliest future
// NextAttempt of a blocked head, to time the next scan.
func (d *Dispatcher) scan(busy map[string]uint64, free int) (chains [][]Delivery, next time.Time, err error) {
	now := d.cfg.Now()
	heads := map[string]int{} // ordering key -> index in chains, or -1 when the key is not dispatched
	seen := map[string]bool{}
	depth := 0
	cursor := ""
	for {
		page, more, err := d.outbox.Pending(cursor, d.cfg.ScanPage)
		if err != nil {
			return chains, next, err
		}
		for _, del := range page {
			if seen[del.ID] {
				continue
			}
			seen[del.ID] = true
			depth++
			key := del.orderingKey()
			idx, known := heads[key]
			switch {
			case known:
				if idx >= 0 && len(chains[idx]) < d.cfg.ChainLength {
					chains[idx] = append(chains[idx], del)
				}
			case busy[key] != 0:
				heads[key] = -1
			case del.NextAttempt.After(now):
				heads[key] = -1
				if next.IsZero() || del.NextAttempt.Before(next) {
					next = del.NextAttempt
				}
			case len(chains) >= free:
				heads[key] = -1
			default:
				heads[key] = len(chains)
				chains = append(chains, []Delivery{del})
			}
		}
		if more == "" || len(page) == 0 {
			break
		}
		cursor = more
	}
	d.m.depth.Set(float64(depth))
	return chains, next, nil
}

// runChain sends one ordering key's ready deliveries in order; scan numbers
// the scan that found them. It stops at the first delivery that is
// scheduled for a retry (the key then waits for it), at one that is not due
// yet, when the outcome could not be recorded, and before any attempt to an
// endpoint that answered 410 Gone since the scan (the store has failed what
// was queued for it; the next scan sees that).
func (d *Dispatcher) runChain(ctx context.Context, chain []Delivery, scan uint64, gone *goneSet) {
	for i, del := range chain {
		if ctx.Err() != nil {
			return
		}
		if i > 0 && del.NextAttempt.After(d.cfg.Now()) {
			return
		}
		if gone.blocks(del.URL, scan) {
			d.cfg.Logger.Debug("webhooks: not sending to an endpoint that answered 410 Gone", "delivery", del.ID, "room", del.RoomID)
			return
		}
		res, ok := d.attempt(ctx, del)
		if !ok {
			return
		}
		if res.EndpointGone {
			gone.answered(del.URL)
			d.record(ctx, res)
			gone.recorded(del.URL)
			return
		}
		if !d.record(ctx, res) || res.Status == StatusPending {
			return
		}
	}
}

// goneSet keeps, during one Run, the endpoints that answered 410 Gone from
// the moment the answer arrives, so that no attempt to them starts from
// then on. Recording a 410 fails everything queued for that endpoint in the
// store, but chains handed to workers before that hold copies taken earlier:
// a chain may not attempt such an endpoint while its 410 is being recorded,
// nor afterwards if the chain's scan started before the recording ended.
// Scans that start later read the store and see only what is still to be
// sent (a delivery redelivered or queued anew for that endpoint, or another
// project's: the store fails a project's own deliveries only, and the
// dispatcher, which does not know projects, just leaves those to that scan).
type goneSet struct {
	mu    sync.Mutex
	scans uint64 // scans started so far; chains carry their scan's number
	urls  map[string]*goneURL
}

type goneURL struct {
	recording int    // 410 answers from the endpoint whose outcome is being recorded
	lastScan  uint64 // chains of scans numbered up to this may hold deliveries failed since
}

func newGoneSet() *goneSet { return &goneSet{urls: map[string]*goneURL{}} }

// scanStarted numbers a new scan (from 1).
func (g *goneSet) scanStarted() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.scans++
	return g.scans
}

// blocks reports whether a chain found by scan number scan must not attempt url.
func (g *goneSet) blocks(url string, scan uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.urls[url]
	return u != nil && (u.recording > 0 || scan <= u.lastScan)
}

// answered marks url as gone as soon as it answered 410.
func (g *goneSet) answered(url string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.urls[url]
	if u == nil {
		u = &goneURL{}
		g.urls[url] = u
	}
	u.recording++
}

// recorded ends the recording of a 410 from url (done or given up): scans
// started from now on read the store as it is after it.
func (g *goneSet) recorded(url string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if u := g.urls[url]; u != nil {
		u.recording--
		u.lastScan = g.scans
	}
}

// prune forgets the endpoints no running chain can still hold a stale copy
// for; busy maps the running chains to their scans' numbers.
func (g *goneSet) prune(busy map[string]uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	oldest := g.scans + 1
	for _, n := range busy {
		oldest = min(oldest, n)
	}
	for url, u := range g.urls {
		if u.recording == 0 && u.lastScan < oldest {
			delete(g.urls, url)
		}
	}
}

// recordBackoff spaces the retries of record: 50, 100, 200, 400 ms. No
// jitter: only this leader's dispatcher is retrying, against its own Raft.
var recordBackoff = backoffpkg.Policy{Min: 50 * time.Millisecond, Max: time.Second}

// record replicates res, retrying briefly. If ctx is already cancelled (the
// leadership is being lost) it makes one short detached try, so a delivery
// that did go out is not repeated needlessly.
func (d *Dispatcher) record(ctx context.Context, res AttemptResult) bool {
	const tries = 5
	for i := 0; ; i++ {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		}
		err := d.outbox.Record(rctx, res)
		cancel()
		if err == nil {
			return true
		}
		d.m.recordErrors.Inc()
		d.cfg.Logger.Warn("webhooks: recording an attempt failed", "delivery", res.ID, "attempt", res.Attempts, "err", err)
		if i+1 == tries || ctx.Err() != nil {
			return false
		}
		t := time.NewTimer(recordBackoff.Ceiling(i))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// attempt makes one delivery attempt and classifies it. ok is false when ctx
// was cancelled during the attempt (the outcome is unknown and not
// recorded), or when the outbox could not be told about the attempt before
// it (Announcer), which is then not made.
func (d *Dispatcher) attempt(ctx context.Context, del Delivery) (res AttemptResult, ok bool) {
	start := d.cfg.Now()
	res = AttemptResult{ID: del.ID, Attempts: del.Attempts + 1, AttemptedAt: start}
	if an, isAnnouncer := d.outbox.(Announcer); isAnnouncer {
		if err := an.Announce(ctx, del, start); err != nil {
			if ctx.Err() == nil {
				d.m.recordErrors.Inc()
				d.cfg.Logger.Warn("webhooks: announcing an attempt failed; not making it now", "delivery", del.ID, "attempt", res.Attempts, "err", err)
			}
			return res, false
		}
	}
	t0 := time.Now() // latency uses the monotonic clock, not Config.Now
	resp, err := d.send(ctx, del, start)
	code := resp.code
	latency := time.Since(t0)
	if err != nil && ctx.Err() != nil {
		return res, false // interrupted: outcome unknown, the next leader repeats it
	}
	res.LatencyMs = latency.Milliseconds()
	res.LastStatusCode = code
	d.m.latency.WithLabelValues(resultClass(code)).Observe(latency.Seconds())

	now := d.cfg.Now()
	permanent := false
	switch {
	case err == nil && code >= 200 && code < 300:
		res.Status, res.DoneAt = StatusDelivered, now
		d.m.outcomes.WithLabelValues(outcomeDelivered).Inc()
		d.cfg.Logger.Debug("webhooks: delivered", "delivery", del.ID, "room", del.RoomID, "event", del.EventType,
			"attempt", res.Attempts, "status", code, "latencyMs", res.LatencyMs)
		return res, true
	case err != nil:
		res.LastError = truncate(err.Error(), 512)
		permanent = errors.Is(err, ErrInsecureURL) || errors.Is(err, ErrInvalidURL) ||
			errors.Is(err, ErrDestinationRefused) || errors.Is(err, ErrUnknownSecret)
	case code == http.StatusGone:
		res.LastError = "HTTP 410 Gone: the receiver asked to stop sending to this endpoint; disable it"
		res.EndpointGone = true
		permanent = true
	default: // 3xx not followed, 4xx, 5xx: all retried (429 and 5xx are the usual ones)
		res.LastError = fmt.Sprintf("HTTP %d", code)
		if resp.redirect != "" {
			res.LastError += ", redirect not followed: " + resp.redirect
		}
		if resp.snippet != "" {
			res.LastError = truncate(res.LastError+": "+resp.snippet, 512)
		}
	}

	deadline := del.Deadline(d.cfg.MaxAge)
	if !permanent && now.Before(deadline) {
		delay := retryDelay(&d.cfg, res.Attempts, resp.retryAfter, resp.hasRetryAfter, d.cfg.Rand())
		res.Status, res.NextAttempt = StatusPending, minTime(now.Add(delay), deadline)
		d.m.outcomes.WithLabelValues(outcomeRetry).Inc()
		d.cfg.Logger.Info("webhooks: attempt failed, will retry", "delivery", del.ID, "room", del.RoomID,
			"event", del.EventType, "attempt", res.Attempts, "status", code, "err", res.LastError, "next", res.NextAttempt)
		return res, true
	}
	if !permanent {
		res.LastError = truncate(fmt.Sprintf("gave up after %d attempts over %s: %s", res.Attempts, d.cfg.MaxAge, res.LastError), 512)
	}
	res.Status, res.DoneAt = StatusFailed, now
	d.m.outcomes.WithLabelValues(outcomeFailed).Inc()
	d.cfg.Logger.Warn("webhooks: delivery failed", "delivery", del.ID, "room", del.RoomID, "event", del.EventType,
		"attempt", res.Attempts, "status", code, "err", res.LastError, "endpointGone", res.EndpointGone)
	return res, true
}

// response is what one attempt got back.
type response struct {
	code          int // 0 without a response
	retryAfter    time.Duration
	hasRetryAfter bool
	snippet       string // start of a non-2xx body, one line
	redirect      string // why a 3xx with a Location was not followed
}

// send POSTs the delivery once. A non-2xx status is not an error; err
// describes why there is no usable response.
func (d *Dispatcher) send(ctx context.Context, del Delivery, at time.Time) (response, error) {
	if err := d.cfg.CheckURL(del.URL); err != nil {
		return response{}, err
	}
	hdr, err := d.signer.Headers(del.ID, del.SecretRef, at, del.Body)
	if err != nil {
		return response{}, err
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	note := &redirectNote{}
	actx = context.WithValue(actx, redirectNoteKey{}, note)
	req, err := http.NewRequestWithContext(actx, http.MethodPost, del.URL, bytes.NewReader(del.Body))
	if err != nil {
		return response{}, fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if d.cfg.UserAgent != "" {
		req.Header.Set("User-Agent", d.cfg.UserAgent)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return response{}, fmt.Errorf("timeout after %s: %w", d.cfg.AttemptTimeout, unwrapURLError(err))
		}
		return response{}, unwrapURLError(err)
	}
	// Read at most MaxResponseBytes, then close: an unread remainder makes the
	// transport drop the connection instead of draining an endless body.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, d.cfg.MaxResponseBytes))
	_ = resp.Body.Close()
	r := response{code: resp.StatusCode, redirect: note.reason}
	if r.code < 200 || r.code >= 300 {
		r.snippet = printable(body, 200)
		r.retryAfter, r.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Now())
	}
	return r, nil
}

// unwrapURLError drops the "Post <url>:" prefix of *url.Error (the URL is in
// the delivery row already) and keeps the cause.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// printable returns up to n bytes of b as one line of valid UTF-8 text.
func printable(b []byte, n int) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Join(strings.Fields(s), " ")
	return truncate(s, n)
}
