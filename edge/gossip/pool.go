// Package gossip runs one hashicorp/memberlist pool per region of edges: the
// edges of a region probe each other, and each carries its meta (id, region,
// internal URL, capacity, load, draining) in memberlist node meta. Edges
// report the pool's view to the control plane (docs/multi-edge.md, "Edge
// liveness and load").
//
// # Callbacks never block
//
// memberlist calls delegates on its packet and probe goroutines, most with
// its node lock held. NodeMeta returns bytes from an atomic pointer; the meta
// ticker goroutine is the only caller of Config.Meta, encodes, refuses meta
// over 512 bytes (keeping the last good one), stores it and then calls
// memberlist's UpdateNode from its own goroutine. Join, update and leave
// events land in an id -> Member map under one short mutex; Changes() is a
// 1-slot channel written without blocking after that mutex is released. A
// consumer that never reads Changes() loses nothing: Members() is always
// current.
//
// # States
//
// memberlist v0.7.0 reports join, update and leave, but never a member's
// state: the Node it passes (and the ones Members() returns) has a State
// field that is never set. So:
//
//   - alive: NotifyJoin / NotifyUpdate.
//   - suspect: this node's own probe of the member failed. memberlist prints
//     "Suspect X has failed, no acks received" just before it marks X
//     suspect; the log adapter turns that line into a suspect mark. A direct
//     ack to a later probe, a newer meta, or memberlist's longest suspicion
//     timeout passing without a death (a refutation we cannot see) makes the
//     member alive again. Suspicion learnt only from other members' gossip is
//     not visible: the region's combined view (the control plane reads every
//     edge's) carries the prober's mark.
//   - dead or left: NotifyLeave. Pool.Leave first publishes meta with a
//     leaving flag (and waits for its broadcast), then calls memberlist's
//     Leave: peers whose last meta of the member says leaving report "left",
//     others "dead". A peer that missed the flag reports "dead", the safe
//     side.
//
// # Regions and keys
//
// An AliveDelegate refuses alive messages whose meta names another region
// (or cannot be decoded), and a MergeDelegate refuses joins (both ways) with
// a node of another region. With Config.SecretKey, all gossip is encrypted
// and verified (memberlist keyring, GossipVerifyIncoming/Outgoing): nodes
// with another key, or none, cannot join.
//
// # Goroutines
//
// The pool owns the meta ticker and the seed joiner; its transport wrapper
// owns the two goroutines that proxy memberlist's packet and stream channels
// (to count bytes). Close stops and waits for all of them and shuts
// memberlist down. memberlist's own goroutines are told to stop by its
// Shutdown, which does not wait for them; they exit within a few
// milliseconds.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Errors returned by Pool methods.
var (
	ErrClosed = errors.New("gossip: pool closed")
	ErrLeft   = errors.New("gossip: pool left")
)

// DefaultLeaveTimeout is used by Leave for a timeout <= 0.
const DefaultLeaveTimeout = 2 * time.Second

// Pool is this edge's membership in its region's memberlist pool.
type Pool struct {
	cfg    Config
	tm     timers
	log    *slog.Logger
	now    func() time.Time
	ml     *memberlist.Memberlist
	tr     *countingTransport
	reg    *registration
	local  string // advertised host:port
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // ticker and joiner

	members *table
	changes chan struct{}
	// seedsChanged (1-slot) wakes the seed joiner after SetSeeds.
	seedsChanged chan struct{}

	meta       atomic.Pointer[[]byte] // last good encoded meta, read by NodeMeta
	metaErrors atomic.Uint64
	published  atomic.Uint64 // meta publications (ticker and Leave)
	refused    atomic.Uint64
	firstMeta  chan struct{} // closed after the ticker's first publication

	pubMu         sync.Mutex // orders meta publications (ticker and Leave)
	pub           wireMeta   // last published content
	pubTime       time.Time
	ticksSincePub int // meta ticks since the last publication
	minTicks      int // MetaMinInterval in whole meta ticks (rounded up)

	leaving atomic.Bool // Leave started: the ticker stops publishing
	left    atomic.Bool // memberlist's Leave returned

	seedsMu sync.Mutex
	seeds   []string

	lifeMu    sync.RWMutex // Join/Leave (read) vs Close (write): never call memberlist after Shutdown
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, creates the memberlist (listening at once), publishes
// the first meta and starts the meta ticker and, with seeds, the background
// joiner.
func New(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timers == "" {
		cfg.Timers = TimersLAN
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Seeds = append([]string(nil), cfg.Seeds...)
	cfg.SecretKey = append([]byte(nil), cfg.SecretKey...)
	if len(cfg.SecretKey) == 0 {
		cfg.SecretKey = nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{
		cfg:          cfg,
		tm:           timersFor(cfg.Timers),
		log:          cfg.Logger.With("component", "gossip", "region", cfg.Region),
		now:          cfg.Now,
		ctx:          ctx,
		cancel:       cancel,
		members:      newTable(cfg.NodeID, cfg.Now),
		changes:      make(chan struct{}, 1),
		seedsChanged: make(chan struct{}, 1),
		firstMeta:    make(chan struct{}),
		seeds:        cfg.Seeds,
		// Counted in ticks: a wall-clock comparison would miss the tick
		// that lands a hair early and wait a whole extra period.
		minTicks: int((cfg.MetaMinInterval + cfg.MetaEvery - 1) / cfg.MetaEvery),
	}
	// Until the ticker's first run: a meta with id and region only, enough
	// for the region check of our own alive message.
	p.pub = wireMeta{ID: cfg.NodeID, Region: cfg.Region, Gen: uint32(cfg.Now().Unix())}
	b, err := encodeWire(p.pub)
	if err != nil {
		cancel()
		return nil, err
	}
	p.meta.Store(&b)

	mlLog := log.New(logWriter{log: p.log, onSuspect: p.onSuspect}, "", 0)
	nt, err := newNetTransport(cfg, mlLog)
	if err != nil {
		cancel()
		return nil, err
	}
	p.tr = newCountingTransport(nt)
	if p.reg, err = register(cfg.Registerer, newCollector(p)); err != nil {
		_ = p.tr.Shutdown()
		cancel()
		return nil, err
	}

	mc := memberlist.DefaultLANConfig()
	p.tm.apply(mc)
	mc.Name = cfg.NodeID
	mc.Transport = p.tr
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = nt.GetAutoBindPort()
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = mc.BindPort
	}
	d := delegate{p}
	mc.Delegate, mc.Events, mc.Alive, mc.Merge, mc.Ping = d, d, d, d, d
	mc.Logger = mlLog
	mc.LogOutput = nil
	if cfg.SecretKey != nil {
		kr, err := memberlist.NewKeyring(nil, cfg.SecretKey)
		if err != nil { // Validate checked the size
			_ = p.tr.Shutdown()
			p.reg.unregister()
			cancel()
			return nil, err
		}
		mc.Keyring = kr
	}
	mc.GossipVerifyIncoming = cfg.SecretKey != nil
	mc.GossipVerifyOutgoing = cfg.SecretKey != nil

	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = p.tr.Shutdown() // memberlist leaves a transport it was given open when it fails early
		p.reg.unregister()
		cancel()
		return nil, fmt.Errorf("gossip: creating memberlist: %w", err)
	}
	p.ml = ml
	p.local = ml.LocalNode().Address()

	p.wg.Add(2)
	go p.runTicker()
	go p.runJoiner()
	<-p.firstMeta
	p.log.Info("gossip pool started", "id", cfg.NodeID, "addr", p.local,
		"timers", cfg.Timers, "encrypted", cfg.SecretKey != nil, "seeds", len(cfg.Seeds))
	return p, nil
}

// newNetTransport binds UDP and TCP, retrying a few times with BindPort 0 (the
// TCP port the kernel picked may be taken for UDP).
func newNetTransport(cfg Config, l *log.Logger) (*memberlist.NetTransport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{cfg.BindAddr},
		BindPort:  cfg.BindPort,
		Logger:    l,
	}
	tries := 1
	if cfg.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("gossip: listening on %s: %w",
		net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
}

// changed nudges Changes() without blocking. Callers hold no lock.
func (p *Pool) changed(yes bool) {
	if !yes {
		return
	}
	select {
	case p.changes <- struct{}{}:
	default:
	}
}

// onSuspect is the log adapter's hook: this node's probe of name failed.
func (p *Pool) onSuspect(name string) {
	_, live := p.members.counts()
	p.changed(p.members.suspect(name, p.now().Add(p.tm.maxSuspicion(live))))
}

// runTicker publishes meta every MetaEvery and does the table's
// housekeeping. It is the only caller of Config.Meta and of UpdateNode
// (besides Leave).
func (p *Pool) runTicker() {
	defer p.wg.Done()
	p.publishMeta()
	close(p.firstMeta)

	metaT := time.NewTicker(p.cfg.MetaEvery)
	defer metaT.Stop()
	hk := time.NewTicker(p.tm.housekeeping)
	defer hk.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-metaT.C:
			p.publishMeta()
		case <-hk.C:
			p.changed(p.members.housekeep(p.cfg.ForgetAfter))
		}
	}
}

// publishMeta asks Config.Meta for the current meta, coarsens its load and
// publishes it when it changed (a load-only change at most once per
// MetaMinInterval, see load.go) or MetaRefresh passed. A meta that does not
// encode within the
// budget (with room left for the leaving flag and the largest generation)
// is refused: logged, counted, and the last good one stays.
func (p *Pool) publishMeta() {
	if p.leaving.Load() {
		return
	}
	m := Meta{}
	if p.cfg.Meta != nil {
		m = p.cfg.Meta()
	}
	m.ID, m.Region = p.cfg.NodeID, p.cfg.Region
	w, err := toWire(m)
	if err == nil {
		worst := w
		worst.Leaving, worst.Gen = true, ^uint32(0)
		_, err = encodeWire(worst)
	}
	if err != nil {
		p.metaErrors.Add(1)
		p.log.Warn("gossip: meta refused, keeping the last good one", "err", err)
		return
	}

	p.pubMu.Lock()
	if p.leaving.Load() {
		p.pubMu.Unlock()
		return
	}
	w.Gen = p.pub.Gen
	w = coarsen(w, p.pub)
	p.ticksSincePub++
	switch {
	case w == p.pub && p.now().Sub(p.pubTime) < p.cfg.MetaRefresh:
		p.pubMu.Unlock()
		return
	case w != p.pub && !urgent(w, p.pub) && p.ticksSincePub < p.minTicks && !p.pubTime.IsZero():
		// A load-only change waits (load.go); the next tick that may
		// publish sends the newest load, so nothing queues up.
		p.pubMu.Unlock()
		return
	}
	w.Gen++
	b, err := encodeWire(w) // fits: checked above with the largest Gen
	if err == nil {
		p.meta.Store(&b)
		p.pub, p.pubTime, p.ticksSincePub = w, p.now(), 0
	}
	p.pubMu.Unlock()
	if err != nil {
		p.metaErrors.Add(1)
		p.log.Warn("gossip: meta refused, keeping the last good one", "err", err)
		return
	}
	p.published.Add(1)
	// UpdateNode queues the alive broadcast, then waits until it has been
	// retransmitted to everyone (or the timeout). The ticker needs no
	// confirmation, and waiting would delay Close (and make a closing
	// member look alive) by up to the whole dissemination time, so the
	// wait is ~0 and its timeout error is expected.
	_ = p.ml.UpdateNode(p.tm.updateTimeout)
}

// runJoiner joins the seeds in the background: at once, then with backoff
// until one answers, and again whenever this member is alone.
func (p *Pool) runJoiner() {
	defer p.wg.Done()
	select {
	case <-p.firstMeta: // peers must never see the placeholder meta
	case <-p.ctx.Done():
		return
	}
	backoff := p.tm.joinMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-timer.C:
		case <-p.seedsChanged:
			// New seeds (from the control plane at registration): try now
			// rather than at the next alone-check.
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		if p.leaving.Load() {
			return
		}
		wait := p.tm.aloneCheck
		seeds := p.Seeds()
		if len(seeds) > 0 && p.ml.NumMembers() <= 1 {
			if err := p.Join(seeds...); err != nil {
				if errors.Is(err, ErrClosed) || errors.Is(err, ErrLeft) {
					return
				}
				wait = backoff/2 + rand.N(backoff/2+1)
				p.log.Info("gossip: joining seeds failed, retrying", "seeds", seeds, "retryIn", wait, "err", err)
				backoff = min(2*backoff, p.tm.joinMax)
			} else {
				p.log.Info("gossip: joined", "seeds", seeds, "members", p.ml.NumMembers())
				backoff = p.tm.joinMin
			}
		}
		timer.Reset(wait)
	}
}

// Seeds returns the seeds the background joiner uses.
func (p *Pool) Seeds() []string {
	p.seedsMu.Lock()
	defer p.seedsMu.Unlock()
	return append([]string(nil), p.seeds...)
}

// SetSeeds replaces the seeds the background joiner uses (e.g. after the
// control plane answered a re-registration with the region's edges).
func (p *Pool) SetSeeds(seeds []string) error {
	for i, s := range seeds {
		if err := checkHostPort(s); err != nil {
			return invalid(fmt.Sprintf("Seeds[%d]", i), "%v", err)
		}
	}
	p.seedsMu.Lock()
	p.seeds = append([]string(nil), seeds...)
	p.seedsMu.Unlock()
	select {
	case p.seedsChanged <- struct{}{}:
	default:
	}
	return nil
}

// Join contacts the given members (host:port) and merges state with them;
// this node's own address is skipped. It fails when none answered, or when
// the answer was refused (another region, another key).
func (p *Pool) Join(seeds ...string) error {
	p.lifeMu.RLock()
	defer p.lifeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	if p.leaving.Load() {
		return ErrLeft
	}
	others := make([]string, 0, len(seeds))
	for _, s := range seeds {
		if s != p.local {
			others = append(others, s)
		}
	}
	if len(others) == 0 {
		return errors.New("gossip: join: no seed other than this node")
	}
	if n, err := p.ml.Join(others); n == 0 {
		return fmt.Errorf("gossip: join %s: %w", strings.Join(others, ","), err)
	}
	return nil
}

// Members returns every member seen (dead and left ones until ForgetAfter),
// this node included, sorted by ID.
func (p *Pool) Members() []Member { return p.members.members() }

// Member returns one member by ID.
func (p *Pool) Member(id string) (Member, bool) { return p.members.member(id) }

// Changes is nudged (1 slot, never blocking) after any join, leave, meta
// update or state change. Read Members() after a nudge; several changes may
// coalesce into one nudge. Load updates make it fire up to about
// N/MetaMinInterval times a second in a pool of N: rate-limit what it
// triggers.
func (p *Pool) Changes() <-chan struct{} { return p.changes }

// LocalAddr returns the advertised gossip host:port (the port actually bound
// with BindPort 0).
func (p *Pool) LocalAddr() string { return p.local }

// Traffic returns all gossip bytes this node sent and received, UDP and TCP,
// since New.
func (p *Pool) Traffic() (sentBytes, recvBytes uint64) { return p.tr.traffic() }

// Leave leaves the pool gracefully: others see this member "left" rather
// than "dead". It publishes a meta with the leaving flag, waits for its
// broadcast, then broadcasts memberlist's leave message, all within timeout
// (<= 0: DefaultLeaveTimeout). The pool cannot rejoin afterwards (a
// memberlist limit); Close it. Leave after Close returns ErrClosed.
func (p *Pool) Leave(timeout time.Duration) error {
	p.lifeMu.RLock()
	defer p.lifeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	if timeout <= 0 {
		timeout = DefaultLeaveTimeout
	}
	deadline := time.Now().Add(timeout)
	if p.leaving.CompareAndSwap(false, true) {
		p.pubMu.Lock()
		w := p.pub
		w.Leaving = true
		w.Gen++
		b, err := encodeWire(w) // fits: the ticker checked room for the flag
		if err == nil {
			p.meta.Store(&b)
			p.pub, p.pubTime = w, p.now()
		}
		p.pubMu.Unlock()
		if err == nil {
			if err := p.ml.UpdateNode(max(timeout/2, min(timeout, p.tm.leaveBroadcastMinDur))); err != nil {
				p.log.Debug("gossip: leaving meta not confirmed", "err", err)
			}
		}
	}
	remaining := max(time.Until(deadline), time.Millisecond)
	err := p.ml.Leave(remaining)
	p.left.Store(true)
	if err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	p.log.Info("gossip: left the pool")
	return nil
}

// Close stops the ticker and joiner, shuts memberlist down (without a leave
// message: peers will see this member dead unless Leave was called) and
// unregisters the metrics. It is idempotent; every call waits until the pool
// is shut down.
func (p *Pool) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.lifeMu.Lock()
		p.closed = true
		p.closeErr = p.ml.Shutdown()
		p.lifeMu.Unlock()
		p.reg.unregister()
	})
	return p.closeErr
}
