// Package server assembles a control node: HTTP listener, Raft node, API,
// leadership steps and leader loops, started in dependency order and closed
// in reverse. `meridian control` and `meridian dev` both run it, and so do the
// in-process cluster tests.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/ids"
	"github.com/meridian-video/meridian/shared/tlsutil"
)

// Config configures a control node.
type Config struct {
	HTTPListen string // host:port; port 0 picks one
	// Region is where this control node runs; the sovereignty audit names
	// it as the origin of the webhooks it sends.
	Region string
	// PublicURL overrides the URL used in links (defaults to
	// http(s)://<listen address>).
	PublicURL string
	// TLSCert, when set, serves the HTTP listener over TLS (TLS 1.2+) with
	// this certificate, reloaded when its files change.
	TLSCert *tlsutil.KeyPair
	// MTLS is this node's cluster identity. With it the listener is TLS
	// (serving the node certificate to clients that dial an address it
	// names, TLSCert to the others), /internal/ routes require a client
	// certificate from the cluster CA, Raft runs over mutual TLS and
	// node-to-node calls present the node certificate. It is copied into
	// Cluster.MTLS when that is nil.
	MTLS *tlsutil.Cluster

	ClusterKey []byte // 32 bytes, identical on every control node
	Cluster    cluster.Config
	API        api.Config
	// BootstrapKeys are ensured to exist once this node leads (dev mode's key).
	BootstrapKeys []auth.NewKeySpec
	// GlobalWebhooks are operator endpoints that receive every room's events.
	GlobalWebhooks []state.GlobalEndpoint
	// Loops and steps contributed by other packages (webhook dispatcher, edges).
	ExtraLoops []cluster.LeaderLoop
	APIOptions []api.Option
	// Plugins run once the Raft node exists and may add API options and
	// leader loops (placement, webhook dispatch).
	Plugins  []Plugin
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Now      func() time.Time
	Rand     io.Reader
	// AutoCloseEvery is how often the leader looks for sessions past their
	// room's autoCloseConfig duration (default 5 s).
	AutoCloseEvery time.Duration
	// Retention keeps ended sessions, their participant timelines, stats
	// and audits, and finished webhook deliveries this long; 0 keeps them
	// forever. See retention.go.
	Retention RetentionConfig
}

// Plugin extends a control node; it sees the node before the API is built.
type Plugin func(s *Server) ([]api.Option, []cluster.LeaderLoop, error)

// Server is a running control node.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	node     *cluster.Node
	fsm      *state.FSM
	api      *api.Server
	sealer   *auth.Sealer
	registry *prometheus.Registry

	secretsMu sync.Mutex
	secrets   *auth.OpenedSecrets

	serveErr  chan error
	closeOnce sync.Once
	closeErr  error
	closersMu sync.Mutex
	closers   []func()
}

// AddCloser registers fn to run when the node closes, after the API stopped
// serving and before Raft shuts down (plugins' background work).
func (s *Server) AddCloser(fn func()) {
	s.closersMu.Lock()
	s.closers = append(s.closers, fn)
	s.closersMu.Unlock()
}

// New opens the listener, starts Raft and builds the API (not yet serving).
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	sealer, err := auth.NewSealer(cfg.ClusterKey)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, sealer: sealer, registry: cfg.Registry, serveErr: make(chan error, 1)}

	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPListen, err)
	}
	if cfg.TLSCert != nil || cfg.MTLS != nil {
		ln = tls.NewListener(ln, tlsutil.ListenerConfig(cfg.TLSCert, cfg.MTLS))
	}
	s.ln = ln
	httpBase := s.URL()
	if cfg.PublicURL == "" {
		cfg.PublicURL = httpBase
	}
	s.cfg = cfg

	s.fsm = state.NewFSM(cfg.Logger)
	cc := cfg.Cluster
	if cc.MTLS == nil {
		cc.MTLS = cfg.MTLS
	}
	if cc.HTTPAddr == "" {
		cc.HTTPAddr = httpBase
	}
	if cc.Logger == nil {
		cc.Logger = cfg.Logger
	}
	applyLatency := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meridian_raft_apply_seconds",
		Help: "Latency of Raft applies proposed by this node (leader only).", Buckets: prometheus.ExponentialBuckets(0.0002, 2.5, 12)})
	cfg.Registry.MustRegister(applyLatency)
	cc.ObserveApply = func(d time.Duration) { applyLatency.Observe(d.Seconds()) }
	batchSize := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meridian_raft_write_batch_requests",
		Help:    "Requests per Raft proposal of batchable writes (room creates) made by this node as leader; 1 when a write went out on its own.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 8)})
	cfg.Registry.MustRegister(batchSize)
	cc.ObserveWriteBatch = func(n int) { batchSize.Observe(float64(n)) }
	lingers := prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_raft_write_batch_lingers_total",
		Help: "Batches of waiting writes this node as leader left to grow for --raft-batch-linger before proposing them."})
	cfg.Registry.MustRegister(lingers)
	cc.ObserveBatchLinger = lingers.Inc
	node, err := cluster.New(cc, s.fsm)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.node = node

	opts := append([]api.Option{api.WithReadiness(s.Ready), api.WithSecrets(s.Secrets)}, cfg.APIOptions...)
	loops := append([]cluster.LeaderLoop(nil), cfg.ExtraLoops...)
	for _, p := range cfg.Plugins {
		o, l, err := p(s)
		if err != nil {
			node.Close()
			ln.Close()
			return nil, err
		}
		opts = append(opts, o...)
		loops = append(loops, l...)
	}

	ac := cfg.API
	ac.PublicURL = cfg.PublicURL
	if ac.ClusterToken == "" {
		ac.ClusterToken = cc.ClusterToken
	}
	ac.Logger, ac.Now, ac.Rand, ac.Registry = cfg.Logger, cfg.Now, cfg.Rand, cfg.Registry
	a, err := api.New(ac, node, sealer, opts...)
	if err != nil {
		node.Close()
		ln.Close()
		return nil, err
	}
	s.api = a
	if cfg.MTLS != nil {
		// Node-to-node routes need a client certificate from the cluster CA
		// (checked before fiber routes the request); their tokens still apply.
		srv := a.App().Server()
		srv.Handler = tlsutil.RequireClientCert(srv.Handler)
	}
	s.registerMetrics()

	node.OnLeadership(s.ensureClusterSecrets)
	node.OnLeadership(s.checkClusterKey)
	node.OnLeadership(s.ensureGlobalWebhooks)
	node.OnLeadership(s.ensureBootstrapKeys)
	node.AddLeaderLoop(cluster.LeaderLoop{Name: "session-auto-close", Run: s.autoCloseLoop})
	node.AddLeaderLoop(cluster.LeaderLoop{Name: "refresh-token-prune", Run: s.pruneLoop})
	if cfg.Retention.Keep > 0 {
		node.AddLeaderLoop(cluster.LeaderLoop{Name: "retention", Run: s.retentionLoop})
	}
	for _, l := range loops {
		node.AddLeaderLoop(l)
	}
	return s, nil
}

// Start serves HTTP and begins leadership monitoring.
func (s *Server) Start() {
	go func() { s.serveErr <- s.api.App().Listener(s.ln) }()
	s.node.Start()
}

// Addr is the HTTP address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the HTTP base URL (https:// when the listener serves TLS).
func (s *Server) URL() string {
	if s.cfg.TLSCert != nil || s.cfg.MTLS != nil {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// ClientTLS is the TLS config for calls this node makes to other nodes
// and to edges: it presents the node certificate and trusts the cluster
// CA. Nil without MTLS (the defaults apply).
func (s *Server) ClientTLS() *tls.Config {
	if s.cfg.MTLS == nil {
		return nil
	}
	return s.cfg.MTLS.ClientConfig()
}

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// Logger returns the node's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Node exposes the Raft node (tests, wiring).
func (s *Server) Node() *cluster.Node { return s.node }

// API exposes the API server.
func (s *Server) API() *api.Server { return s.api }

// App exposes the fiber app so other components (edge signaling, meeting page) can mount routes in dev.
func (s *Server) App() *fiber.App { return s.api.App() }

// Sealer exposes the secret sealer.
func (s *Server) Sealer() *auth.Sealer { return s.sealer }

// Registry exposes the metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// ServeErr reports a fatal HTTP serve error.
func (s *Server) ServeErr() <-chan error { return s.serveErr }

// WaitReady blocks until /healthz would answer 200.
func (s *Server) WaitReady(ctx context.Context) error {
	return s.WaitReadyProgressing(ctx, 0, nil)
}

// WaitReadyProgressing is WaitReady for as long as the node makes progress:
// a restart restores the newest snapshot and then applies the log written
// after it (hundreds of thousands of entries after a busy hour, minutes at a
// million rooms), which takes as long as it takes. It fails when the
// applied index has not moved for stall while the node is not ready (0: only
// ctx ends the wait); progress, when set, hears where the replay is every
// few seconds.
func (s *Server) WaitReadyProgressing(ctx context.Context, stall time.Duration, progress func(applied, target uint64)) error {
	err := waitProgressing(ctx, s.Ready, func() (uint64, uint64) { return s.node.Progress() }, stall, 20*time.Millisecond, 5*time.Second, progress)
	if err != nil {
		return fmt.Errorf("control node %s not ready: %w", s.node.ID(), err)
	}
	return nil
}

// errStalled: not ready, and nothing applied for the stall period.
var errStalled = errors.New("nothing applied while starting")

func waitProgressing(ctx context.Context, ready func() bool, where func() (applied, target uint64), stall, tick, every time.Duration, progress func(applied, target uint64)) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	last, _ := where()
	moved, told := time.Now(), time.Now()
	for {
		if ready() {
			return nil
		}
		now := time.Now()
		applied, target := where()
		if applied != last {
			last, moved = applied, now
		}
		if stall > 0 && now.Sub(moved) >= stall {
			return fmt.Errorf("%w for %v (applied %d of %d)", errStalled, stall, applied, target)
		}
		if progress != nil && now.Sub(told) >= every {
			told = now
			progress(applied, target)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Ready reports leader known + secrets present.
func (s *Server) Ready() bool {
	if !s.node.Ready() {
		return false
	}
	ok := false
	s.fsm.Read(func(st *state.Store) {
		_, ok = st.Secrets()
		for _, k := range s.cfg.BootstrapKeys {
			if _, have := st.APIKey(k.Key); !have {
				ok = false
			}
		}
	})
	return ok
}

// Secrets returns the opened cluster secrets once they exist.
func (s *Server) Secrets() (*auth.OpenedSecrets, error) {
	s.secretsMu.Lock()
	defer s.secretsMu.Unlock()
	if s.secrets != nil {
		return s.secrets, nil // generated once per cluster, never rotated in place
	}
	var sec *state.ClusterSecrets
	s.fsm.Read(func(st *state.Store) { sec, _ = st.Secrets() })
	if sec == nil {
		return nil, errors.New("cluster secrets not initialised yet")
	}
	opened, err := auth.OpenClusterSecrets(s.sealer, sec)
	if err != nil {
		return nil, err
	}
	s.secrets = opened
	return opened, nil
}

// Close stops HTTP, then Raft. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		herr := s.api.Shutdown()
		s.closersMu.Lock()
		cs := s.closers
		s.closersMu.Unlock()
		for i := len(cs) - 1; i >= 0; i-- {
			cs[i]()
		}
		nerr := s.node.Close()
		s.closeErr = errors.Join(herr, nerr)
	})
	return s.closeErr
}

func (s *Server) ensureClusterSecrets(ctx context.Context) error {
	var have bool
	s.fsm.Read(func(st *state.Store) { _, have = st.Secrets() })
	if have {
		return nil
	}
	sec, err := auth.NewClusterSecrets(s.cfg.Rand, s.sealer)
	if err != nil {
		return err
	}
	_, _, err = s.node.Apply(ctx, state.CmdSetClusterSecrets, state.SetClusterSecrets{Secrets: *sec})
	return err
}

// checkClusterKey keeps a node whose cluster key does not open the
// cluster's secrets from leading: it could sign no webhook and no ticket.
// The step fails, and after a few rounds the node hands leadership to
// another voter (runLeaderSteps).
func (s *Server) checkClusterKey(context.Context) error {
	if _, err := s.Secrets(); errors.Is(err, auth.ErrUnseal) {
		return fmt.Errorf("this node's --cluster-key does not open the cluster's secrets, so it does not lead: %w", err)
	}
	return nil
}

func (s *Server) ensureGlobalWebhooks(ctx context.Context) error {
	var cur []state.GlobalEndpoint
	s.fsm.Read(func(st *state.Store) { cur = st.GlobalEndpoints() })
	want := s.cfg.GlobalWebhooks
	if len(cur) == 0 && len(want) == 0 || reflect.DeepEqual(cur, want) {
		return nil
	}
	_, _, err := s.node.Apply(ctx, state.CmdSetGlobalEndpoints, state.SetGlobalEndpoints{Endpoints: want})
	return err
}

func (s *Server) ensureBootstrapKeys(ctx context.Context) error {
	for _, spec := range s.cfg.BootstrapKeys {
		var existing *state.APIKey
		s.fsm.Read(func(st *state.Store) { existing, _ = st.APIKey(spec.Key) })
		if existing != nil {
			if existing.SecretHash != s.sealer.LookupHash(spec.Secret) {
				return fmt.Errorf("API key %q already exists with a different secret", spec.Key)
			}
			continue
		}
		if _, _, err := s.api.CreateKey(ctx, spec); err != nil {
			return fmt.Errorf("create bootstrap key %q: %w", spec.Key, err)
		}
	}
	return nil
}

// autoCloseLoop ends sessions that stayed empty past their room's
// autoCloseConfig duration (seconds; see control/api/rooms.go).
func (s *Server) autoCloseLoop(ctx context.Context) error {
	every := s.cfg.AutoCloseEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := s.cfg.Now().UTC()
		type due struct{ userID, roomID, sessionID string }
		var list []due
		s.fsm.Read(func(st *state.Store) {
			for _, ss := range st.OngoingSessions() {
				r, ok := st.Room(ss.UserID, ss.RoomDocID)
				if !ok || r.AutoCloseConfig == nil {
					continue
				}
				// duration is seconds (the server SDK's afterInactiveSeconds),
				// counted from the moment the last participant left.
				empty := ss.EmptySince()
				if empty == nil {
					continue
				}
				limit := time.Duration(r.AutoCloseConfig.Duration * float64(time.Second))
				if now.Sub(*empty) >= limit {
					list = append(list, due{ss.UserID, r.RoomID, ss.ID})
				}
			}
		})
		for _, d := range list {
			evIDs, err := ids.NewDocIDs(s.cfg.Rand, 32)
			if err != nil {
				return err
			}
			_, _, err = s.node.Apply(ctx, state.CmdEndSession, state.EndSession{UserID: d.userID, RoomRef: d.roomID, SessionID: d.sessionID, Reason: "auto-close", At: now, IDs: evIDs})
			var se *state.Error
			if err != nil && !errors.As(err, &se) {
				return err
			}
		}
	}
}

func (s *Server) pruneLoop(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, _, err := s.node.Apply(ctx, state.CmdPruneRefreshTokens, state.PruneRefreshTokens{Now: s.cfg.Now().UTC()}); err != nil {
				return err
			}
		}
	}
}

// registerMetrics exposes Raft state and table sizes.
func (s *Server) registerMetrics() {
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_raft_is_leader", Help: "1 if this node is the Raft leader."}, func() float64 {
		if s.node.IsLeader() {
			return 1
		}
		return 0
	}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_raft_log_write_failing",
		Help: "1 while this node's last write to its Raft log failed (a full or failed disk): it cannot lead and falls behind."}, func() float64 {
		if s.node.StorageFailure() != nil {
			return 1
		}
		return 0
	}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_raft_behind_leader",
		Help: "1 while this follower knows it lacks or has not applied entries the leader committed: its reads answer 503 until it has caught up."}, func() float64 {
		if s.node.Behind() != nil {
			return 1
		}
		return 0
	}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_raft_applied_index", Help: "Last applied Raft index."}, func() float64 {
		return float64(s.fsm.AppliedIndex())
	}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_rooms", Help: "Rooms in the replicated state."}, func() float64 {
		n := 0
		s.fsm.Read(func(st *state.Store) { n = st.RoomCount() })
		return float64(n)
	}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_sessions_ongoing", Help: "Ongoing sessions."}, func() float64 {
		n := 0
		s.fsm.Read(func(st *state.Store) { n, _ = st.OngoingCounts() })
		return float64(n)
	}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meridian_participants_active", Help: "Participants in ongoing sessions."}, func() float64 {
		n := 0
		s.fsm.Read(func(st *state.Store) { _, n = st.OngoingCounts() })
		return float64(n)
	}))
}

// MarshalIndent is a tiny helper for CLI output.
func MarshalIndent(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
