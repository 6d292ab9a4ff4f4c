package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/web"
)

// Cookie names. The session cookie is sent to every path (the console's
// pages call /v2 and /admin/v1); a sign-in's cookie only to /console/auth.
const (
	sessionCookie   = "meridian_console"
	loginCookiePre  = "meridian_login_"
	csrfHeader      = "X-CSRF-Token"
	tokenBytes      = 32
	encodedTokenLen = 43 // base64url of 32 bytes, no padding
)

// Console serves sign-in and authenticates console requests.
type Console struct {
	cfg    Config
	log    *slog.Logger
	node   *cluster.Node
	sealer *auth.Sealer
	api    func() *api.Server
	limit  *auth.RateLimiter // local password attempts per user and address
	// anonAudit bounds, per address, the audited sign-in refusals that name
	// nobody (see callback).
	anonAudit *auth.RateLimiter
	probe     *http.Client // other members' /healthz (cluster TLS when set)
	// refused counts requests turned away for their session or CSRF token
	// (see refuse): counted and logged, not audited.
	refused *prometheus.CounterVec

	provMu   sync.Mutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

var _ api.SessionAuth = (*Console)(nil)

// New builds the console over a control node's Raft node and sealer.
func New(cfg Config, node *cluster.Node, sealer *auth.Sealer) (*Console, error) {
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
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Console{cfg: cfg, log: cfg.Logger, node: node, sealer: sealer, limit: auth.NewRateLimiter(5.0/60, 5, cfg.Now),
		anonAudit: auth.NewRateLimiter(anonAuditPerMinute/60, anonAuditBurst, cfg.Now),
		probe:     &http.Client{Timeout: 2 * time.Second},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_console_refused_requests_total",
			Help: "Console requests refused for their session cookie (malformed, unknown, expired) or CSRF check (missing, wrong, cross-site), and sign-in refusals naming nobody beyond the per-address audit rate (signin_unaudited)."},
			[]string{"reason"})}, nil
}

// Plugin wires the console into a control node: it authenticates console
// cookies on the API, mounts the sign-in routes, keeps the local admins'
// password hashes on the leader and prunes expired sessions.
func Plugin(cfg Config) server.Plugin {
	return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
		if cfg.PublicURL == "" {
			cfg.PublicURL = s.Config().PublicURL
		}
		if cfg.Logger == nil {
			cfg.Logger = s.Logger()
		}
		if cfg.Now == nil {
			cfg.Now = s.Config().Now
		}
		if cfg.OIDC != nil && cfg.OIDC.RedirectURL == "" {
			o := *cfg.OIDC
			o.RedirectURL = strings.TrimRight(cfg.PublicURL, "/") + CallbackPath
			cfg.OIDC = &o
		}
		c, err := New(cfg, s.Node(), s.Sealer())
		if err != nil {
			return nil, nil, err
		}
		c.api = s.API
		if err := s.Registry().Register(c.refused); err != nil {
			return nil, nil, err
		}
		if t := s.ClientTLS(); t != nil {
			c.probe.Transport = &http.Transport{TLSClientConfig: t}
		}
		s.Node().OnLeadership(c.ensureLocalAdmins)
		return []api.Option{api.WithSessionAuth(c), api.WithRoutes(c.Routes)},
			[]cluster.LeaderLoop{{Name: "console-session-prune", Run: c.pruneLoop}}, nil
	}
}

// ParticipantSSO tells the API that rooms may require participants to sign
// in: an identity provider is configured.
func (cs *Console) ParticipantSSO() bool { return cs.cfg.OIDC != nil }

// Routes mounts sign-in, sign-out and the session's own routes.
func (cs *Console) Routes(r fiber.Router) {
	r.Get("/console/auth/options", cs.options)
	r.Get("/console/auth/login", cs.startConsoleLogin)
	r.Get(CallbackPath, cs.callback)
	r.Post("/console/auth/local", cs.localLogin)
	r.Post("/console/auth/logout", cs.logout)
	r.Get("/console/auth/meet/:roomId", cs.startParticipantLogin)
	r.Get("/console/api/me", cs.me)
	r.Get("/console/api/cluster/health", cs.clusterHealth)
	web.RegisterConsole(r) // the pages, after the routes above
}

func (cs *Console) options(c *fiber.Ctx) error {
	out := fiber.Map{"oidc": cs.cfg.OIDC != nil, "local": len(cs.cfg.LocalAdmins) > 0}
	if cs.cfg.OIDC != nil {
		out["issuer"] = cs.cfg.OIDC.Issuer
	}
	return c.JSON(out)
}

// ------------------------------------------------------------- sessions

func newToken(r io.Reader) (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// csrfToken is derived from the session token with a key only control
// nodes have, so every node computes it and nothing stores it.
func (cs *Console) csrfToken(sessionToken string) string {
	return cs.sealer.LookupHash("console-csrf\x00" + sessionToken)
}

func (cs *Console) secure() bool {
	return !cs.cfg.Dev || strings.HasPrefix(cs.cfg.PublicURL, "https://")
}

func (cs *Console) setSessionCookie(c *fiber.Ctx, token string, expires time.Time) {
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: token, Path: "/", Expires: expires, HTTPOnly: true, Secure: cs.secure(), SameSite: fiber.CookieSameSiteLaxMode})
}

func (cs *Console) clearCookie(c *fiber.Ctx, name, path string) {
	c.Cookie(&fiber.Cookie{Name: name, Value: "", Path: path, Expires: time.Unix(1, 0), MaxAge: -1, HTTPOnly: true, Secure: cs.secure(), SameSite: fiber.CookieSameSiteLaxMode})
}

func unauthorized(msg string) error {
	return &api.Error{Status: fiber.StatusUnauthorized, Message: msg}
}

// refusal counts and logs a request refused for its session or CSRF token.
// These are not written to the audit log: a bad cookie names nobody, and
// anyone could send such requests at the per-address rate — each would be
// a Raft write on every node, and since the audit log is bounded (oldest
// dropped) they would push the real trail out. A cross-site request with a
// valid session is logged with the operator it was aimed at.
func (cs *Console) refusal(c *fiber.Ctx, reason string, ss *state.ConsoleSession, err error) error {
	cs.refused.WithLabelValues(reason).Inc()
	args := []any{"reason", reason, "method", c.Method(), "path", truncate(c.Path(), 200), "ip", c.IP(), "err", err}
	if ss != nil {
		args = append(args, "actor", operatorOf(ss).Actor())
	}
	cs.log.Warn("console request refused", args...)
	return err
}
func forbidden(msg string) error { return &api.Error{Status: fiber.StatusForbidden, Message: msg} }

// lookup finds the session of a cookie. A session made through another
// node a moment ago may not have reached this one yet: then it catches up
// with the leader once before saying no.
func (cs *Console) lookup(c *fiber.Ctx, token string) (*state.ConsoleSession, error) {
	if len(token) != encodedTokenLen {
		return nil, cs.refusal(c, "session_malformed", nil, unauthorized("console session cookie is malformed; sign in again"))
	}
	id := hashOf(token)
	var ss *state.ConsoleSession
	read := func() { cs.node.FSM().Read(func(st *state.Store) { ss, _ = st.ConsoleSession(id) }) }
	if read(); ss == nil && !cs.node.IsLeader() {
		if err := cs.node.Barrier(c.UserContext()); err == nil {
			read()
		}
	}
	if ss == nil {
		return nil, cs.refusal(c, "session_unknown", nil, unauthorized("console session is invalid or has ended; sign in again"))
	}
	if ss.Expired(cs.cfg.Now(), cs.cfg.IdleTimeout) {
		return nil, cs.refusal(c, "session_expired", ss, unauthorized("console session has expired; sign in again"))
	}
	return ss, nil
}

// Session implements api.SessionAuth.
func (cs *Console) Session(c *fiber.Ctx) (*auth.Operator, error) {
	token := c.Cookies(sessionCookie)
	if token == "" {
		return nil, nil
	}
	ss, err := cs.lookup(c, token)
	if err != nil {
		cs.clearCookie(c, sessionCookie, "/")
		return nil, err
	}
	if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead && c.Method() != fiber.MethodOptions {
		if err := cs.checkCSRF(c, token); err != nil {
			return nil, cs.refusal(c, "csrf", ss, err)
		}
	}
	cs.touch(ss)
	return operatorOf(ss), nil
}

func operatorOf(ss *state.ConsoleSession) *auth.Operator {
	return &auth.Operator{SessionID: ss.ID, Issuer: ss.Issuer, Subject: ss.Subject, Email: ss.Email, Name: ss.Name, Role: auth.Role(ss.Role), Via: ss.Via}
}

// touch records activity, at most about once a minute per session (a Raft
// write), so the idle timeout counts from the last use on any node.
func (cs *Console) touch(ss *state.ConsoleSession) {
	every := min(time.Minute, cs.cfg.IdleTimeout/4)
	now := cs.cfg.Now().UTC()
	if now.Sub(ss.LastSeen) < every {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := cs.node.Apply(ctx, state.CmdTouchConsoleSession, state.TouchConsoleSession{ID: ss.ID, At: now}); err != nil {
		cs.log.Warn("console session touch failed", "err", err)
	}
}

// checkCSRF refuses a state-changing request that comes from another
// origin or lacks the session's CSRF token (sent by the console's pages in
// the X-CSRF-Token header, which other sites cannot set).
func (cs *Console) checkCSRF(c *fiber.Ctx, sessionToken string) error {
	if o := c.Get(fiber.HeaderOrigin); o != "" && !cs.sameOrigin(c, o) {
		return forbidden(fmt.Sprintf("cross-site request from %q refused", truncate(o, 100)))
	}
	if c.Get("Sec-Fetch-Site") == "cross-site" {
		return forbidden("cross-site request refused")
	}
	got := c.Get(csrfHeader)
	if got == "" {
		return forbidden("missing CSRF token (header " + csrfHeader + ")")
	}
	if !eq(got, cs.csrfToken(sessionToken)) {
		return forbidden("wrong CSRF token")
	}
	return nil
}

func (cs *Console) sameOrigin(c *fiber.Ctx, origin string) bool {
	if origin == originOf(cs.cfg.PublicURL) {
		return true
	}
	return origin == c.Protocol()+"://"+string(c.Request().Host())
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// newSession stores a session for id and sets its cookie.
func (cs *Console) newSession(c *fiber.Ctx, id identity, role auth.Role, via string) (*state.ConsoleSession, error) {
	token, err := newToken(cs.cfg.Rand)
	if err != nil {
		return nil, err
	}
	now := cs.cfg.Now().UTC()
	ss := state.ConsoleSession{ID: hashOf(token), Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Name: id.Name, Role: string(role), Via: via,
		IP: c.IP(), UserAgent: truncate(string(c.Request().Header.UserAgent()), 256), CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(cs.cfg.AbsoluteTimeout)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := cs.node.Apply(ctx, state.CmdCreateConsoleSession, state.CreateConsoleSession{Session: ss}); err != nil {
		return nil, err
	}
	cs.setSessionCookie(c, token, ss.ExpiresAt)
	return &ss, nil
}

// apply proposes a command with its own context: a request's context may
// carry the client's Idempotency-Key, which must not be spent on sign-in
// records.
func (cs *Console) apply(t state.CommandType, body any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, _, err := cs.node.Apply(ctx, t, body)
	return raw, err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// me is GET /console/api/me: who is signed in, the CSRF token the pages
// send with every change, and when the session ends.
func (cs *Console) me(c *fiber.Ctx) error {
	token := c.Cookies(sessionCookie)
	if token == "" {
		return unauthorized("not signed in")
	}
	ss, err := cs.lookup(c, token)
	if err != nil {
		cs.clearCookie(c, sessionCookie, "/")
		return err
	}
	cs.touch(ss)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{
		"user":               fiber.Map{"subject": ss.Subject, "email": ss.Email, "name": ss.Name, "issuer": ss.Issuer, "via": ss.Via},
		"role":               ss.Role,
		"csrfToken":          cs.csrfToken(token),
		"expiresAt":          ss.ExpiresAt.UTC().Format(time.RFC3339),
		"idleTimeoutSeconds": int(cs.cfg.IdleTimeout / time.Second),
	})
}

// logout is POST /console/auth/logout (with the CSRF token).
func (cs *Console) logout(c *fiber.Ctx) error {
	token := c.Cookies(sessionCookie)
	if token == "" {
		return unauthorized("not signed in")
	}
	ss, err := cs.lookup(c, token)
	if err != nil {
		cs.clearCookie(c, sessionCookie, "/")
		return err
	}
	if err := cs.checkCSRF(c, token); err != nil {
		return cs.refusal(c, "csrf", ss, err)
	}
	if _, err := cs.apply(state.CmdEndConsoleSession, state.EndConsoleSession{ID: ss.ID}); err != nil {
		return err
	}
	cs.clearCookie(c, sessionCookie, "/")
	op := operatorOf(ss)
	cs.audit(c, state.AuditEntry{Actor: op.Actor(), Subject: op.Subject, Issuer: op.Issuer, Role: ss.Role, Via: ss.Via, Action: "logout"}, nil)
	return c.JSON(fiber.Map{"signedOut": true})
}

// audit records a sign-in event through the API's audit writer.
func (cs *Console) audit(c *fiber.Ctx, e state.AuditEntry, err error) {
	if cs.api == nil || cs.api() == nil {
		return
	}
	cs.api().Audit(c, e, err)
}

// pruneLoop removes expired sessions, used sign-in states past their
// expiry and abandoned sign-ins of older versions (leader only).
func (cs *Console) pruneLoop(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := cs.cfg.Now().UTC()
		due := false
		cs.node.FSM().Read(func(st *state.Store) {
			due = st.LoginAttemptCount() > 0 || st.UsedLoginStateCount() > 0
			for _, ss := range st.ConsoleSessions() {
				due = due || ss.Expired(now, cs.cfg.IdleTimeout)
			}
		})
		if !due {
			continue
		}
		if _, _, err := cs.node.Apply(ctx, state.CmdPruneConsole, state.PruneConsole{At: now, Idle: cs.cfg.IdleTimeout}); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
}
