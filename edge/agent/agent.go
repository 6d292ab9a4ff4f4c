// Package agent connects an edge to the control plane: it registers, sends
// heartbeats with load, delivers participant lifecycle events and egress
// job statuses in order (kept and retried until acknowledged), and batches
// stats summaries.
package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/tlsutil"
)

// Config configures the agent.
type Config struct {
	ControlURLs []string // tried in order; any control node works (followers forward)
	EdgeToken   string
	Register    edgeapi.Register
	// Load reports current load for heartbeats (must not block).
	Load func() edgeapi.Load
	// Heartbeat, when set, builds each heartbeat (load, gossip view, rooms,
	// drain state); EdgeID is filled in. Must not block.
	Heartbeat func() edgeapi.Heartbeat
	// OnHeartbeatReply receives the control plane's answer (room peers).
	OnHeartbeatReply func(edgeapi.HeartbeatReply)
	// Resync lists what to report again after a re-registration (the
	// control plane had marked the edge down and closed its participants).
	Resync func() []edgeapi.Event
	// Stats returns the participants' summaries since the last call.
	Stats func() []edgeapi.ParticipantStats
	// Legs returns the cascade legs' summaries (may be nil).
	Legs func() []edgeapi.LegStats
	// OnRegistered receives the control plane's public ticket key and TURN secret.
	OnRegistered   func(edgeapi.RegisterReply)
	HeartbeatEvery time.Duration
	StatsEvery     time.Duration
	MaxQueue       int // events kept while control is unreachable
	Logger         *slog.Logger
	HTTPClient     *http.Client
	Now            func() time.Time

	// TLSConfig is used for calls to the control plane when HTTPClient is
	// nil (with mTLS: the edge's certificate, the cluster CA as roots).
	TLSConfig *tls.Config
}

// DefaultConfig returns defaults.
func DefaultConfig() Config {
	return Config{HeartbeatEvery: time.Second, StatsEvery: 10 * time.Second, MaxQueue: 100000}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.ControlURLs) == 0 {
		return errors.New("agent: at least one control URL is required")
	}
	if c.EdgeToken == "" {
		return errors.New("agent: EdgeToken is required")
	}
	if c.Register.EdgeID == "" || c.Register.Region == "" || c.Register.SignalURL == "" {
		return errors.New("agent: Register needs EdgeID, Region and SignalURL")
	}
	return nil
}

// Agent is the edge's control-plane client. It implements the signaling
// server's Reporter (ParticipantJoined / ParticipantLeft never block).
type Agent struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	flushMu sync.Mutex // one sender at a time, or a batch would be removed twice
	queue   []edgeapi.Event
	dropped int
	wake    chan struct{}
	beat    chan struct{} // 1-slot: send a heartbeat now
	regOnce chan struct{}
	regDone bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Once

	// clockOffset is this edge's clock minus the control plane's, in ns,
	// from the latest heartbeat reply that measured it (clockKnown).
	clockOffset atomic.Int64
	clockKnown  atomic.Bool
	clockWarned bool // heartbeat loop only
}

// New builds an agent; Start runs it.
func New(cfg Config) (*Agent, error) {
	d := DefaultConfig()
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = d.HeartbeatEvery
	}
	if cfg.StatsEvery <= 0 {
		cfg.StatsEvery = d.StatsEvery
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = d.MaxQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		if cfg.TLSConfig != nil {
			cfg.HTTPClient.Transport = tlsutil.NodeTransport(cfg.TLSConfig)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Load == nil {
		cfg.Load = func() edgeapi.Load { return edgeapi.Load{} }
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Copy: the caller's slice may be shared with other agents or the test
	// that built the config, so trimming in place would be a data race.
	urls := make([]string, len(cfg.ControlURLs))
	for i, u := range cfg.ControlURLs {
		urls[i] = strings.TrimRight(u, "/")
	}
	cfg.ControlURLs = urls
	return &Agent{cfg: cfg, log: cfg.Logger.With("edge", cfg.Register.EdgeID), wake: make(chan struct{}, 1), beat: make(chan struct{}, 1), regOnce: make(chan struct{})}, nil
}

// Start registers (retrying in the background) and runs the loops.
func (a *Agent) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(3)
	go func() { defer a.wg.Done(); a.registerLoop(ctx) }()
	go func() { defer a.wg.Done(); a.eventLoop(ctx) }()
	go func() { defer a.wg.Done(); a.statsLoop(ctx) }()
}

// Registered is closed once the first registration succeeded.
func (a *Agent) Registered() <-chan struct{} { return a.regOnce }

// Close stops the agent after a last attempt to flush queued events. Idempotent.
func (a *Agent) Close() error {
	a.closeMu.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		a.flush(ctx)
		cancel()
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
	})
	return nil
}

// Kill stops the agent at once, without delivering what is queued (tests
// that simulate a crashed edge). Idempotent with Close.
func (a *Agent) Kill() {
	a.closeMu.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
	})
}

func newEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (a *Agent) enqueue(ev edgeapi.Event) {
	if ev.ID == "" {
		ev.ID = newEventID()
	}
	if ev.At.IsZero() {
		ev.At = a.ControlNow() // the control plane's time, as every reported time
	}
	a.mu.Lock()
	if len(a.queue) >= a.cfg.MaxQueue {
		// Bounded: drop one and say so; the control plane's edge-down
		// handling closes what we could not report.
		i := a.victim(ev)
		a.queue = append(a.queue[:i], a.queue[i+1:]...)
		a.dropped++
	}
	a.queue = append(a.queue, ev)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// victim picks the event to drop from a full queue (a.mu held): an egress
// status a later one of the same job supersedes (the control plane keeps
// only the newest by Seq, so nothing is lost), else the oldest other
// event; a job's last status is dropped only when the queue holds
// nothing else.
func (a *Agent) victim(next edgeapi.Event) int {
	latest := map[string]int{} // job id -> index of its newest status
	if next.Kind == edgeapi.EventEgressStatus && next.Egress != nil {
		latest[next.Egress.ID] = len(a.queue)
	}
	for i := len(a.queue) - 1; i >= 0; i-- {
		if ev := a.queue[i]; ev.Kind == edgeapi.EventEgressStatus && ev.Egress != nil {
			if _, ok := latest[ev.Egress.ID]; !ok {
				latest[ev.Egress.ID] = i
			}
		}
	}
	other := -1
	for i, ev := range a.queue {
		if ev.Kind != edgeapi.EventEgressStatus || ev.Egress == nil {
			if other < 0 {
				other = i
			}
			continue
		}
		if latest[ev.Egress.ID] != i {
			return i
		}
	}
	if other >= 0 {
		return other
	}
	return 0
}

// ReportEgress queues a job's status change (non-blocking; see victim for
// what a full queue gives up first).
func (a *Agent) ReportEgress(st egressapi.Status) {
	// The job's start and stop are the machine's clock's (Config.Now); what
	// the edge reports is the control plane's time (ControlNow).
	if shift := a.correction(); shift != 0 {
		for _, t := range []*time.Time{&st.StartedAt, &st.StoppedAt} {
			if !t.IsZero() {
				*t = t.Add(shift)
			}
		}
	}
	a.enqueue(edgeapi.Event{Kind: edgeapi.EventEgressStatus, RoomID: st.RoomID, Egress: &st})
}

// Report queues any event for the control plane (non-blocking).
func (a *Agent) Report(ev edgeapi.Event) { a.enqueue(ev) }

// Poke sends a heartbeat now (gossip saw a member change), without blocking.
func (a *Agent) Poke() {
	select {
	case a.beat <- struct{}{}:
	default:
	}
}

// Attach asks the control plane for a room's peers; with claim it first
// adds this edge to the room's placement.
func (a *Agent) Attach(ctx context.Context, roomID string, claim bool) (edgeapi.RoomPeers, error) {
	var rp edgeapi.RoomPeers
	err := a.post(ctx, "/internal/v1/rooms/attach", edgeapi.Attach{EdgeID: a.cfg.Register.EdgeID, RoomID: roomID, Claim: claim}, &rp)
	return rp, err
}

// Seat asks the control plane to hold a place in a room with
// maxParticipants for an admitted lobby guest (edgeapi.Seat).
func (a *Agent) Seat(ctx context.Context, roomID, participantID string) (bool, error) {
	var r edgeapi.SeatReply
	err := a.post(ctx, "/internal/v1/rooms/seat", edgeapi.Seat{EdgeID: a.cfg.Register.EdgeID, RoomID: roomID, ParticipantID: participantID}, &r)
	return r.Granted, err
}

// ParticipantJoined reports a join (non-blocking).
func (a *Agent) ParticipantJoined(ev edgeapi.Event) {
	ev.Kind = edgeapi.EventParticipantJoined
	a.enqueue(ev)
}

// ParticipantLeft reports a leave (non-blocking).
func (a *Agent) ParticipantLeft(ev edgeapi.Event) {
	ev.Kind = edgeapi.EventParticipantLeft
	a.enqueue(ev)
}

// Pending is the number of unacknowledged events.
func (a *Agent) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue)
}

// post calls the control nodes in turn until one answers 200.
func (a *Agent) post(ctx context.Context, path string, in, out any) error {
	var lastErr error
	for _, base := range a.cfg.ControlURLs {
		req, err := edgeapi.NewRequest(ctx, base+path, a.cfg.EdgeToken, in)
		if err != nil {
			return err
		}
		resp, err := a.cfg.HTTPClient.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			lastErr = fmt.Errorf("%s%s: %s", base, path, describeAnswer(resp, body))
			continue
		}
		if out != nil {
			return json.Unmarshal(body, out)
		}
		return nil
	}
	return lastErr
}

// describeAnswer says what a control node's refusal was: its JSON
// message, or — when the answer is not a Meridian error at all (an HTML
// page from whatever --control points at) — that it came from something
// else, rather than a page of markup in the log.
func describeAnswer(resp *http.Response, body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return fmt.Sprintf("%d %s", resp.StatusCode, e.Message)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("%d %s, not a Meridian control node's answer (%s, %d bytes): is --control the control plane's URL?",
		resp.StatusCode, http.StatusText(resp.StatusCode), ct, len(body))
}

func (a *Agent) register(ctx context.Context) error {
	reg := a.cfg.Register
	reg.Load = a.cfg.Load()
	if a.cfg.Heartbeat != nil {
		hb := a.cfg.Heartbeat()
		reg.Load, reg.Draining, reg.Rooms = hb.Load, hb.Draining, hb.Rooms
	}
	var reply edgeapi.RegisterReply
	sent := a.cfg.Now()
	if err := a.post(ctx, "/internal/v1/edges/register", reg, &reply); err != nil {
		return err
	}
	// Before the edge admits anybody: ControlNow is right from the start.
	a.measureClock(sent, a.cfg.Now(), reply.Received, reply.Now)
	if a.cfg.OnRegistered != nil {
		a.cfg.OnRegistered(reply)
	}
	a.mu.Lock()
	first := !a.regDone
	a.regDone = true
	a.mu.Unlock()
	if first {
		close(a.regOnce)
	} else if a.cfg.Resync != nil {
		// The control plane had lost this edge (marked it down and closed
		// its participants): tell it again who is here.
		for _, ev := range a.cfg.Resync() {
			a.enqueue(ev)
		}
	}
	a.log.Info("registered with control plane")
	return nil
}

func (a *Agent) registerLoop(ctx context.Context) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		if err := a.register(ctx); err != nil {
			a.log.Warn("registration failed; retrying", "err", err, "in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		break
	}
	t := time.NewTicker(a.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.beat:
		}
		hb := edgeapi.Heartbeat{Load: a.cfg.Load()}
		if a.cfg.Heartbeat != nil {
			hb = a.cfg.Heartbeat()
		}
		hb.EdgeID = a.cfg.Register.EdgeID
		if off, ok := a.ClockOffset(); ok {
			ms := off.Milliseconds()
			hb.ClockOffsetMs = &ms
		}
		var reply edgeapi.HeartbeatReply
		hctx, cancel := context.WithTimeout(ctx, 2*a.cfg.HeartbeatEvery+time.Second)
		sent := a.cfg.Now()
		err := a.post(hctx, "/internal/v1/edges/heartbeat", hb, &reply)
		cancel()
		if err != nil {
			a.log.Debug("heartbeat failed", "err", err)
			continue
		}
		a.measureClock(sent, a.cfg.Now(), reply.Received, reply.Now)
		if reply.Reregister {
			if err := a.register(ctx); err != nil {
				a.log.Warn("re-registration failed", "err", err)
			}
			continue
		}
		if a.cfg.OnHeartbeatReply != nil {
			a.cfg.OnHeartbeatReply(reply)
		}
	}
}

// flush sends queued events in order until the queue is empty or a send fails.
func (a *Agent) flush(ctx context.Context) bool {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	for {
		a.mu.Lock()
		n := min(len(a.queue), 100)
		batch := append([]edgeapi.Event(nil), a.queue[:n]...)
		a.mu.Unlock()
		if n == 0 {
			return true
		}
		if err := a.post(ctx, "/internal/v1/edges/events", edgeapi.EventBatch{EdgeID: a.cfg.Register.EdgeID, Events: batch}, nil); err != nil {
			a.log.Warn("event delivery failed; will retry", "err", err, "pending", n)
			return false
		}
		a.mu.Lock()
		// Only acknowledged events are removed; the queue may have grown
		// meanwhile, and a full queue may have dropped some of the batch
		// (what is left of it is still at the front).
		sent := make(map[string]struct{}, n)
		for _, ev := range batch {
			sent[ev.ID] = struct{}{}
		}
		k := 0
		for k < len(a.queue) {
			if _, ok := sent[a.queue[k].ID]; !ok {
				break
			}
			k++
		}
		a.queue = a.queue[k:]
		a.mu.Unlock()
	}
}

func (a *Agent) eventLoop(ctx context.Context) {
	<-waitOrDone(ctx, a.regOnce)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if a.flush(ctx) {
			backoff = 100 * time.Millisecond
			select {
			case <-ctx.Done():
				return
			case <-a.wake:
			}
			continue
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (a *Agent) statsLoop(ctx context.Context) {
	if a.cfg.Stats == nil {
		return
	}
	t := time.NewTicker(a.cfg.StatsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		batch := edgeapi.StatsBatch{EdgeID: a.cfg.Register.EdgeID, Stats: a.cfg.Stats()}
		if a.cfg.Legs != nil {
			batch.Legs = a.cfg.Legs()
		}
		if len(batch.Stats) == 0 && len(batch.Legs) == 0 {
			continue
		}
		if err := a.post(ctx, "/internal/v1/edges/stats", batch, nil); err != nil {
			a.log.Warn("stats delivery failed (summary dropped)", "err", err)
		}
	}
}

func waitOrDone(ctx context.Context, ch <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		defer close(out)
		select {
		case <-ctx.Done():
		case <-ch:
		}
	}()
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// An edge's clock decides ticket expiry (60 s of life), which of two tabs
// on two edges is newer, and the times of sessions' timelines and webhooks;
// ControlNow corrects it, as well as one heartbeat can. Past clockWarnAfter
// the agent warns, once, until it is back within clockBackWithin.
const (
	clockWarnAfter  = time.Second
	clockBackWithin = 500 * time.Millisecond
	// clockMaxRoundTrip: a round trip slower than this (the time the
	// control node spent answering left out) measures too loosely (the
	// error is up to half of it) and is not used.
	clockMaxRoundTrip = time.Second
)

// measureClock takes the offset of this edge's clock from the control
// plane's from one call, as NTP does: sent and back by this clock,
// arrived and answered by the control node's (zero: a node that does not
// say). Called by the registration and heartbeat loop only.
func (a *Agent) measureClock(sent, back, arrived, answered time.Time) {
	if arrived.IsZero() || answered.IsZero() {
		return
	}
	rtt := back.Sub(sent) - answered.Sub(arrived)
	if rtt < 0 || rtt > clockMaxRoundTrip {
		return
	}
	off := (sent.Sub(arrived) + back.Sub(answered)) / 2
	a.clockOffset.Store(int64(off))
	a.clockKnown.Store(true)
	switch abs := max(off, -off); {
	case abs > clockWarnAfter && !a.clockWarned:
		a.clockWarned = true
		a.log.Warn("this edge's clock is off from the control plane's; the edge corrects its tickets' and reports' "+
			"times by the offset heartbeats measure, but run NTP on every node", "offset", off.Round(time.Millisecond))
	case abs <= clockBackWithin && a.clockWarned:
		a.clockWarned = false
		a.log.Info("this edge's clock is back in step with the control plane's", "offset", off.Round(time.Millisecond))
	}
}

// ClockOffset is how far this edge's clock is ahead of the control
// plane's (negative: behind), from the latest registration or heartbeat;
// false until one has measured it.
func (a *Agent) ClockOffset() (time.Duration, bool) {
	return time.Duration(a.clockOffset.Load()), a.clockKnown.Load()
}

// clockCorrectAfter is the offset from which ControlNow corrects this
// edge's clock. Below it the edge's own clock (NTP's, in a healthy
// deployment: milliseconds) is better than a measurement whose error is up
// to half a heartbeat's round trip.
const clockCorrectAfter = 250 * time.Millisecond

// ControlNow is this edge's clock brought to the control plane's when it
// is measurably off (clockCorrectAfter): the clock for tickets and the
// times the edge reports (joins and leaves, which of two tabs is newer),
// so that an edge whose clock is wrong neither refuses valid tickets nor
// writes wrong times into timelines and webhooks. It may step by a few
// milliseconds when a heartbeat measures again.
func (a *Agent) ControlNow() time.Time { return a.cfg.Now().Add(a.correction()) }

// correction is what ControlNow adds to this edge's clock: minus the
// measured offset from clockCorrectAfter on, else nothing.
func (a *Agent) correction() time.Duration {
	if off, ok := a.ClockOffset(); ok && max(off, -off) >= clockCorrectAfter {
		return -off
	}
	return 0
}
