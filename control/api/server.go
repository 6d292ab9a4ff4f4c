// Package api is the control plane's HTTP surface: the VideoSDK-compatible
// /v2 API, api.video-style /auth, operator /admin routes, node-to-node
// /internal routes, /healthz and /metrics. One fiber app, one error handler.
package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	fiberws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
)

// Config configures the API.
type Config struct {
	// PublicURL is the base used in `links` and meeting URLs, e.g. https://video.example.com.
	PublicURL string
	// AdminToken guards /admin (API key management). Empty disables /admin.
	AdminToken string
	// ClusterToken guards /internal node-to-node routes.
	ClusterToken string
	// EdgeToken guards the routes edges call (register, heartbeat, events).
	EdgeToken string

	RateLimitPerKey float64 // requests/s per API key; 0 = unlimited
	RateBurstPerKey int
	RateLimitPerIP  float64 // requests/s per client IP; 0 = unlimited
	RateBurstPerIP  int

	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration

	// CORSOrigins may call the API from browsers (the JS SDK's join call on
	// another origin). Tokens travel in the Authorization header, never in
	// cookies, so "*" is safe and the default.
	CORSOrigins []string

	// TrustedProxies (addresses or CIDR ranges) are the load balancers
	// whose X-Forwarded-For is believed for the client's address
	// (clientip.go). Empty: the TCP peer is the client, and no proxy header
	// (X-Forwarded-For, -Proto, -Host) is believed from anybody.
	TrustedProxies []string

	// Catalog and Fences describe regions and the geoFence table (room
	// validation, sovereignty audit): the geoFence codes VideoSDK clients
	// send, mapped to pins. nil means the built-in ones.
	Catalog *geo.Catalog
	Fences  geo.FenceTable

	Logger   *slog.Logger
	Now      func() time.Time
	Rand     io.Reader
	Registry *prometheus.Registry // nil = a private registry
}

// DefaultConfig has production-minded defaults.
func DefaultConfig() Config {
	return Config{
		PublicURL:       "http://127.0.0.1:8080",
		RateLimitPerKey: 50, RateBurstPerKey: 100,
		RateLimitPerIP: 100, RateBurstPerIP: 200,
		AccessTokenTTL:  time.Hour,
		RefreshTokenTTL: 30 * 24 * time.Hour,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.PublicURL == "" || !(strings.HasPrefix(c.PublicURL, "http://") || strings.HasPrefix(c.PublicURL, "https://")) {
		return fmt.Errorf("api: PublicURL %q must be an http(s) URL", c.PublicURL)
	}
	if c.ClusterToken == "" {
		return errors.New("api: ClusterToken is required")
	}
	if c.AccessTokenTTL <= 0 || c.RefreshTokenTTL <= 0 {
		return errors.New("api: token TTLs must be positive")
	}
	if _, err := ParseTrustedProxies(c.TrustedProxies); err != nil {
		return err
	}
	return nil
}

// Server is the control API.
type Server struct {
	cfg       Config
	log       *slog.Logger
	node      *cluster.Node
	auth      *auth.Authenticator
	sealer    *auth.Sealer
	keyLimit  *auth.RateLimiter
	ipLimit   *auth.RateLimiter
	app       *fiber.App
	registry  *prometheus.Registry
	metrics   *httpMetrics
	extra     []func(fiber.Router)
	joins     JoinService
	edges     EdgeService
	nearest   NearestService
	started   atomic.Bool // ready once since start: the readiness gate is open
	keyStates             // whether this node's cluster key opens the cluster's secrets (clusterkey.go)
	ready     func() bool
	checkURL  func(string) error
	// sessions authenticates console cookies (nil: API credentials only).
	sessions   SessionAuth
	edgeStatus EdgeStatusService
	egress     EgressService  // recordings, RTMP, HLS (nil: those routes answer 503)
	proxies    []netip.Prefix // Config.TrustedProxies
	keyed      inflightKeys   // Idempotency-Key requests running here (idempotency.go)
	// roomsURL is PublicURL + "/v2/rooms/", the start of every room's
	// get_room link; sessionsURL is PublicURL + "/v2/sessions/", every
	// room's get_session link.
	roomsURL, sessionsURL string
}

// WithWebhookURLCheck validates webhook URLs (scheme, SSRF policy) with the
// same rules the dispatcher applies, so a bad endpoint is refused at once.
func WithWebhookURLCheck(fn func(string) error) Option { return func(s *Server) { s.checkURL = fn } }

// WithReadiness replaces the default readiness check behind /healthz.
func WithReadiness(fn func() bool) Option { return func(s *Server) { s.ready = fn } }

// Option adds optional collaborators.
type Option func(*Server)

// New builds the API over a cluster node.
func New(cfg Config, node *cluster.Node, sealer *auth.Sealer, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
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
	}
	if cfg.Fences == nil {
		cfg.Fences = geo.DefaultFences() // once, not a fresh table per room create
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	s := &Server{cfg: cfg, log: cfg.Logger, node: node, sealer: sealer, registry: cfg.Registry, roomsURL: cfg.PublicURL + "/v2/rooms/", sessionsURL: cfg.PublicURL + "/v2/sessions/",
		auth:     auth.New(sealer, &catchUpKeys{fsmKeys: fsmKeys{node.FSM()}, node: node}, cfg.Now),
		keyLimit: auth.NewRateLimiter(cfg.RateLimitPerKey, cfg.RateBurstPerKey, cfg.Now),
		ipLimit:  auth.NewRateLimiter(cfg.RateLimitPerIP, cfg.RateBurstPerIP, cfg.Now),
	}
	for _, o := range opts {
		o(s)
	}
	s.metrics = newHTTPMetrics(cfg.Registry)
	s.proxies, _ = ParseTrustedProxies(cfg.TrustedProxies) // validated above
	s.app = fiber.New(fiber.Config{
		// fasthttp answers an over-limit body by closing the connection before
		// reading it, which clients see as a reset instead of the 413. So
		// bodies are streamed: limitBody reads what a handler may use (up to
		// MaxBodyBytes), and for anything larger answers a JSON 413 after
		// discarding the rest (bounded), so the client reads the answer.
		BodyLimit:             ReadLimitBytes,
		StreamRequestBody:     true,
		ErrorHandler:          errorHandler(s.log),
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		// A default list page (20 rooms with webhooks, ~12 KB) fits the
		// write buffer, so it leaves in one write instead of a buffer's
		// worth and then the rest: on loopback each write costs the
		// sender the receiver's TCP work too (a sixth to a quarter of a page's CPU,
		// docs/benchmarks.md). The price: fasthttp keeps the buffer while
		// a keep-alive connection idles (up to IdleTimeout), 12 KB more
		// per open connection than the default 4 KB.
		WriteBufferSize: 16 << 10,
		// The request line and headers must fit the read buffer (431
		// otherwise): with fasthttp's 4 KB a valid token of 4.3 KB was
		// refused before the authenticator, which takes up to
		// auth.MaxTokenBytes (8 KB), saw it.
		ReadBufferSize: 16 << 10,
		// Trailing slashes are equivalent (documented URLs carry them).
		StrictRouting: false,
		// Proxy headers only from the configured proxies; c.IP() is the
		// client as clientIP worked it out (clientip.go).
		EnableTrustedProxyCheck: true,
		TrustedProxies:          cfg.TrustedProxies,
		ProxyHeader:             clientIPHeader,
	})
	s.routes()
	return s, nil
}

// WithRoutes mounts extra routes (meeting page, SDK, edge signaling in dev).
func WithRoutes(fn func(fiber.Router)) Option {
	return func(s *Server) { s.extra = append(s.extra, fn) }
}

// App exposes the fiber app (tests use App().Test).
func (s *Server) App() *fiber.App { return s.app }

// Authenticator exposes token verification (meeting page, join).
func (s *Server) Authenticator() *auth.Authenticator { return s.auth }

// Serve runs the API on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(ln) }()
	select {
	case <-ctx.Done():
		return s.app.ShutdownWithTimeout(10 * time.Second)
	case err := <-errc:
		return err
	}
}

// Shutdown stops the HTTP server.
// Shutdown stops accepting requests and gives in-flight ones DrainTimeout to
// finish. Draining has a deadline: connections still open then (a client
// keeping a socket busy) are left to the process exit, with a warning, and
// shutdown carries on so Raft still closes cleanly.
func (s *Server) Shutdown() error {
	err := s.app.ShutdownWithTimeout(DrainTimeout)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("HTTP drain deadline passed; remaining connections are dropped", "timeout", DrainTimeout)
		return nil
	}
	return err
}

// DrainTimeout bounds how long Shutdown waits for in-flight requests.
const DrainTimeout = 5 * time.Second

func (s *Server) routes() {
	app := s.app
	corsOrigins := strings.Join(s.cfg.CORSOrigins, ",")
	if corsOrigins == "" {
		corsOrigins = "*"
	}
	app.Use(s.clientIP, s.requestIDMiddleware, s.metrics.middleware, cors.New(cors.Config{
		AllowOrigins: corsOrigins, AllowMethods: "GET,POST,DELETE,OPTIONS", AllowHeaders: "Authorization,Content-Type,X-Request-Id,Idempotency-Key",
		ExposeHeaders: "Retry-After,X-Request-Id,Idempotent-Replayed", MaxAge: 600,
		Next: func(c *fiber.Ctx) bool {
			p := auth.RoutePath(c.Path())
			return strings.HasPrefix(p, "/internal/") || strings.HasPrefix(p, "/admin/")
		},
	}), s.readyGate, s.ipRateLimit, limitBody)

	app.Get("/livez", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "alive"}) })
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.healthz)
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})))

	// api.video-style token exchange.
	app.Post("/auth/api-key", s.authAPIKey)
	app.Post("/auth/refresh", s.authRefresh)

	// Public key for videosdk-signature verification: no auth (upstream clients send it anyway).
	app.Get("/v2/public/rsa-public-key", s.rsaPublicKey)

	v2 := app.Group("/v2", s.requireREST)
	s.roomRoutes(v2)
	s.sessionRoutes(v2)
	s.webhookRoutes(v2)
	s.edgeDiscoveryRoutes(v2)
	s.egressRoutes(v2)

	s.adminRoutes(app.Group("/admin/v1", s.requireAdmin))
	s.internalRoutes(app.Group("/internal/v1"))
	for _, fn := range s.extra {
		fn(app)
	}
}

// readyGate answers 503 (with Retry-After) on every API route until the
// node has been ready once since it started: it has replayed its log,
// knows a leader, and the cluster is bootstrapped. Answering earlier would
// serve a half-restored state (unknown keys, missing rooms). Later leader
// changes do not close the gate: writes are held during an election by the
// write path. Falling behind the leader closes it to reads of the local
// state until the node has caught up (cluster.Node.Behind, readsLocalState),
// and a follower's failing log to consistent reads as well.
// Liveness, metrics and node-to-node Raft routes are always served.
func (s *Server) readyGate(c *fiber.Ctx) error {
	var stale error
	switch {
	case readsLocalState(c):
		stale = s.staleReplica()
	case c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead:
		// A consistent read waits for this node to apply what the leader
		// has committed, which a node that cannot write its log will not.
		stale = s.followerLogFailing()
	}
	if s.started.Load() && s.keyChecked.Load() && stale == nil {
		return c.Next()
	}
	p := auth.RoutePath(c.Path()) // as routed: /V2/ROOMS reaches /v2/rooms
	gated := strings.HasPrefix(p, "/v2/") || p == "/v2" || strings.HasPrefix(p, "/auth/") || strings.HasPrefix(p, "/admin/") ||
		strings.HasPrefix(p, "/internal/v1/edges/") || strings.HasPrefix(p, "/internal/v1/rooms/attach") ||
		strings.HasPrefix(p, "/console/api/") || strings.HasPrefix(p, "/console/auth/")
	if !gated {
		return c.Next()
	}
	// A node with the wrong cluster key would refuse every token as if it
	// were the client's fault, and seal new API keys' secrets with a key
	// the other nodes cannot open.
	if s.wrongClusterKey() {
		return errWrongClusterKey
	}
	if stale != nil {
		return stale
	}
	if s.started.Load() {
		return c.Next()
	}
	if s.ready == nil || s.ready() {
		s.started.Store(true)
		return c.Next()
	}
	if err := s.nodeUnhealthy(); err != nil {
		return err
	}
	return s.errStarting()
}

// errStarting is the 503 of a node that has not been ready since it
// started, with its replay's progress when it has entries left to apply.
func (s *Server) errStarting() error {
	applied, target := s.node.Progress()
	msg := "node is starting: waiting for a leader and cluster bootstrap"
	if applied < target {
		msg = fmt.Sprintf("node is starting: replaying its log (applied %d of %d)", applied, target)
	}
	return &Error{Status: fiber.StatusServiceUnavailable, Message: msg, RetryAfter: 1}
}

// nodeUnhealthy is the 503 of a node that is misconfigured or failing
// even while it hears a leader: its cluster key opens no secret; its last
// write to its Raft log failed (a full disk: it cannot lead, and as a
// follower it falls behind); the leader refused its cluster token (the
// writes it forwards fail).
func (s *Server) nodeUnhealthy() error {
	if s.wrongClusterKey() {
		return errWrongClusterKey
	}
	if se := s.node.StorageFailure(); se != nil {
		return errStorageFailing(se)
	}
	if te := s.node.ClusterTokenRefused(); te != nil {
		return &Error{Status: fiber.StatusServiceUnavailable, RetryAfter: 5,
			Message: fmt.Sprintf("another control node refused this node's cluster token at %s: every control node needs the same --cluster-token", te.At.UTC().Format(time.RFC3339))}
	}
	return nil
}

func (s *Server) healthz(c *fiber.Ctx) error {
	if err := s.nodeUnhealthy(); err != nil {
		return err
	}
	if err := s.behindLeader(); err != nil { // its failing disk is nodeUnhealthy's
		return err
	}
	if s.ready != nil && !s.ready() && !s.started.Load() {
		return s.errStarting()
	}
	if !s.node.Ready() {
		msg := "waiting for a cluster leader"
		if s.node.LeaderID() == "" {
			msg = "no cluster leader known: waiting for the cluster to elect one"
		}
		return &Error{Status: fiber.StatusServiceUnavailable, Message: msg, RetryAfter: 1}
	}
	ok := false
	s.node.FSM().Read(func(st *state.Store) { _, ok = st.Secrets() })
	if !ok {
		return &Error{Status: fiber.StatusServiceUnavailable, Message: "cluster secrets not initialised yet", RetryAfter: 1}
	}
	return c.JSON(fiber.Map{"status": "ok", "node": s.node.ID(), "leader": s.node.LeaderID(), "appliedIndex": s.node.FSM().AppliedIndex()})
}

// readsLocalState reports a request answered from this node's state as it
// is: a read without ?consistent=true. Writes are forwarded to the leader
// and answered once this node has applied them, and a consistent read
// waits for the leader's commit index: both stay correct on a node that
// is catching up (they wait for it), and an edge's heartbeats and a
// client's retried write go through it as before.
func readsLocalState(c *fiber.Ctx) bool {
	m := c.Method()
	return (m == fiber.MethodGet || m == fiber.MethodHead) && c.Query("consistent") != "true"
}

// staleReplica is the 503 of a follower whose state is known to lack what
// the cluster committed — back from a partition, a pause or a full disk,
// or unable to write its log now — so that it answers no read from it.
// Another node answers now, this one once it has caught up. A leader, or
// a lone voter, holds every committed entry: its own failing disk stops its
// writes, not its reads.
func (s *Server) staleReplica() error {
	if err := s.behindLeader(); err != nil {
		return err
	}
	return s.followerLogFailing()
}

// followerLogFailing is the 503 of a follower that cannot write its Raft
// log: it stores, and so applies, nothing the cluster commits meanwhile.
func (s *Server) followerLogFailing() error {
	if se := s.node.FollowerStorageFailure(); se != nil {
		return errStorageFailing(se)
	}
	return nil
}

// behindLeader is the 503 of a follower that knows it lacks or has not
// applied entries the cluster committed (cluster.Node.Behind; classify
// words it).
func (s *Server) behindLeader() error {
	if b := s.node.Behind(); b != nil {
		return b
	}
	return nil
}

func errStorageFailing(se *cluster.StorageError) error {
	return &Error{Status: fiber.StatusServiceUnavailable, RetryAfter: 5,
		Message: fmt.Sprintf("this node cannot write its Raft log since %s (%s)", se.Since.UTC().Format(time.RFC3339), se.Cause())}
}

const localsPrincipal = "principal"

func principal(c *fiber.Ctx) *auth.Principal {
	p, _ := c.Locals(localsPrincipal).(*auth.Principal)
	return p
}

// requireREST authenticates /v2 calls and applies the per-key rate limit.
func (s *Server) requireREST(c *fiber.Ctx) error {
	if op, ok, err := s.consoleSession(c); ok {
		if err != nil {
			return err
		}
		return s.authorizeConsole(c, op, func() error {
			p, err := s.consolePrincipal(c, op)
			if err != nil {
				return err
			}
			c.Locals(localsPrincipal, p)
			return s.idempotencyKey(c)
		})
	}
	// The join route accepts rtc tokens; it does its own role check.
	p, err := s.auth.Authenticate(string(c.Request().Header.Peek(fiber.HeaderAuthorization)))
	if err != nil {
		return err
	}
	if ok, wait := s.keyLimit.Allow("key:" + p.Key.Key); !ok {
		return &Error{Status: fiber.StatusTooManyRequests, Message: "rate limit exceeded for this API key", RetryAfter: int(wait / time.Second)}
	}
	c.Locals(localsPrincipal, p)
	if isJoinRoute(c) || isNearestRoute(c) {
		return s.idempotencyKey(c)
	}
	if err := p.CanUseREST(); err != nil {
		return err
	}
	return s.idempotencyKey(c)
}

// isNearestRoute: any valid token (rtc ones too) may ask for its nearest
// edges. Paths are compared as the router matches them (auth.RoutePath).
func isNearestRoute(c *fiber.Ctx) bool {
	return (c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead) && auth.RoutePath(c.Path()) == "/v2/edges/nearest"
}

// isJoinRoute: exactly the paths that reach POST /v2/rooms/:roomId/join.
// A prefix/suffix test is not enough: POST /v2/rooms/join is the room
// status route (for a room called "join"), and /v2/rooms/validate/join
// reaches the validate route, registered before join.
func isJoinRoute(c *fiber.Ctx) bool {
	seg := strings.Split(auth.RoutePath(c.Path()), "/")
	return c.Method() == fiber.MethodPost && len(seg) == 5 && seg[1] == "v2" && seg[2] == "rooms" &&
		seg[3] != "" && seg[3] != "validate" && seg[4] == "join"
}

// maxDiscard bounds how much of an oversized body is read and thrown away
// so the client gets its 413 instead of a reset; beyond it the connection
// is closed.
const maxDiscard = 256 << 20

// limitBody refuses oversized bodies on every public route, whether or not
// the handler reads the body.
func limitBody(c *fiber.Ctx) error {
	if strings.HasPrefix(c.Path(), "/internal/") || fiberws.IsWebSocketUpgrade(c) {
		return c.Next()
	}
	req := c.Request()
	if cl := req.Header.ContentLength(); cl > MaxBodyBytes {
		discardBody(c)
		return &Error{Status: fiber.StatusRequestEntityTooLarge, Message: "request body is larger than 1 MiB"}
	}
	if stream := c.Context().RequestBodyStream(); stream != nil {
		body, err := readBody(stream, req.Header.ContentLength())
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return badRequest(msgBodyCutShort)
		}
		if err != nil {
			return badRequest("could not read the request body")
		}
		if len(body) > MaxBodyBytes {
			discardBody(c)
			return &Error{Status: fiber.StatusRequestEntityTooLarge, Message: "request body is larger than 1 MiB"}
		}
		req.SetBodyRaw(body)
	}
	return c.Next()
}

// presizedBody is the largest declared body length read into a buffer
// allocated at once; a larger one grows as its bytes arrive, so a client
// cannot make the server hold a megabyte by declaring it and sending
// nothing.
const presizedBody = 64 << 10

// readBody reads a streamed request body: a small declared length into one
// buffer of that size (io.ReadAll would start at 512 bytes and grow, for
// every create on the node a client calls), anything else up to one byte
// past the limit.
func readBody(stream io.Reader, contentLength int) ([]byte, error) {
	if contentLength < 0 || contentLength > presizedBody {
		return io.ReadAll(io.LimitReader(stream, MaxBodyBytes+1))
	}
	body := make([]byte, contentLength)
	if _, err := io.ReadFull(stream, body); err != nil {
		return nil, err
	}
	return body, nil
}

func discardBody(c *fiber.Ctx) {
	c.Set(fiber.HeaderConnection, "close")
	if stream := c.Context().RequestBodyStream(); stream != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(stream, maxDiscard))
	}
}

func (s *Server) ipRateLimit(c *fiber.Ctx) error {
	if strings.HasPrefix(c.Path(), "/internal/") || c.Path() == "/metrics" || c.Path() == "/healthz" || c.Path() == "/livez" {
		return c.Next()
	}
	if ok, wait := s.ipLimit.Allow("ip:" + c.IP()); !ok {
		return &Error{Status: fiber.StatusTooManyRequests, Message: "rate limit exceeded for this client address", RetryAfter: int(wait / time.Second)}
	}
	return c.Next()
}

func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if op, ok, err := s.consoleSession(c); ok {
		if err != nil {
			return err
		}
		return s.authorizeConsole(c, op, c.Next)
	}
	if s.cfg.AdminToken == "" {
		return &Error{Status: fiber.StatusForbidden, Message: "the admin API is disabled on this node"}
	}
	if err := (BearerToken{Want: s.cfg.AdminToken,
		Missing: "admin token required (Authorization: Bearer <admin token>)",
		Wrong:   "wrong admin token (Authorization: Bearer <admin token>)"}).Check(c); err != nil {
		return err
	}
	if !unsafeMethod(c.Method()) {
		return c.Next()
	}
	err := c.Next()
	s.Audit(c, state.AuditEntry{Actor: "admin-token", Via: "admin-token"}, err)
	return err
}

func (s *Server) requestIDMiddleware(c *fiber.Ctx) error {
	id := string(c.Request().Header.Peek("X-Request-Id"))
	if id == "" || len(id) > 64 {
		var b [8]byte
		_, _ = io.ReadFull(rand.Reader, b[:])
		id = fmt.Sprintf("%x", b)
	}
	c.Locals("requestId", id)
	c.Set("X-Request-Id", id)
	return c.Next()
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals("requestId").(string)
	return id
}

// read runs fn against local state; ?consistent=true first catches up with the leader.
func (s *Server) read(c *fiber.Ctx, fn func(st *state.Store)) error {
	if c.Query("consistent") == "true" {
		if err := s.node.Barrier(c.UserContext()); err != nil {
			return err
		}
	}
	s.node.FSM().Read(fn)
	return nil
}

// readOrCatchUp reads locally; when the thing is missing on a follower it
// catches up with the leader once and reads again, so a client that created
// a room through one node can use it at once through another.
func (s *Server) readOrCatchUp(c *fiber.Ctx, fn func(st *state.Store) bool) error {
	found := false
	if err := s.read(c, func(st *state.Store) { found = fn(st) }); err != nil {
		return err
	}
	if found || s.node.IsLeader() || c.Query("consistent") == "true" {
		return nil
	}
	if err := s.node.Barrier(c.UserContext()); err != nil {
		return nil // best effort: answer from local state
	}
	s.node.FSM().Read(func(st *state.Store) { fn(st) })
	return nil
}

// apply proposes a command through the one write path.
func (s *Server) apply(c *fiber.Ctx, t state.CommandType, body any) ([]byte, error) {
	ctx := c.UserContext()
	res, _, err := s.node.Apply(ctx, t, body)
	return res, err
}

// fsmKeys adapts the FSM to auth.KeyStore.
type fsmKeys struct{ fsm *state.FSM }

func (k fsmKeys) APIKey(key string) (out *state.APIKey, ok bool) {
	k.fsm.Read(func(s *state.Store) { out, ok = s.APIKey(key) })
	return
}

func (k fsmKeys) KeysVersion() uint64 { return k.fsm.KeysVersion() }

func (k fsmKeys) APIKeyBySecretHash(h string) (out *state.APIKey, ok bool) {
	k.fsm.Read(func(s *state.Store) { out, ok = s.APIKeyBySecretHash(h) })
	return
}

// pagination parses page/perPage (1-based; defaults 1 and 20).
type page struct{ Page, PerPage int }

func parsePage(c *fiber.Ctx, defPer int) (page, error) {
	p := page{Page: 1, PerPage: defPer}
	for _, f := range []struct {
		name string
		dst  *int
		max  int
	}{{"page", &p.Page, 1 << 30}, {"perPage", &p.PerPage, 1000}} {
		raw := c.Query(f.name)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > f.max {
			return p, badRequest(fmt.Sprintf("query parameter %q must be an integer from 1 to %d", f.name, f.max))
		}
		*f.dst = n
	}
	return p, nil
}

type pageInfo struct {
	CurrentPage int `json:"currentPage"`
	PerPage     int `json:"perPage"`
	LastPage    int `json:"lastPage"`
	Total       int `json:"total"`
}

// window is the store's view of a page.
func (p page) window() state.Page { return state.PageOf(p.Page, p.PerPage) }

// pageInfoOf describes page p of a list of total items.
func pageInfoOf(total int, p page) pageInfo {
	last := (total + p.PerPage - 1) / p.PerPage
	if last < 1 {
		last = 1
	}
	return pageInfo{CurrentPage: p.Page, PerPage: p.PerPage, LastPage: last, Total: total}
}

// orEmpty makes a nil page an empty JSON array.
func orEmpty[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}

// paginate cuts page p from a list already in memory (a handful of items:
// exact-match room lists, a session's participants).
func paginate[T any](items []T, p page) ([]T, pageInfo) {
	total := len(items)
	start := (p.Page - 1) * p.PerPage
	if start > total {
		start = total
	}
	end := start + p.PerPage
	if end > total {
		end = total
	}
	return orEmpty(items[start:end]), pageInfoOf(total, p)
}

// restLayout: REST timestamps are ISO-8601 UTC with milliseconds and Z.
const restLayout = "2006-01-02T15:04:05.000Z"

// restTime formats a REST timestamp (restLayout).
func restTime(t time.Time) string {
	var buf [len(restLayout)]byte
	return string(appendRESTTime(buf[:0], t))
}

// appendRESTTime appends t as restLayout formats it, without the layout
// interpreter: every listed room has two of these, and Format was a fifth
// of a list page's CPU. Years outside 0–9999 (which Format writes with
// more or fewer digits) go through Format.
func appendRESTTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, restLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

func restTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := restTime(*t)
	return &s
}
