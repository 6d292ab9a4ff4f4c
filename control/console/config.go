// Package console is the operator console's server side: sign-in with
// OpenID Connect (authorization code flow with PKCE, state and nonce) or as
// the local bootstrap admin, browser sessions replicated in Raft, CSRF
// protection, the mapping of identity-provider claims to roles, and
// participants signing in before a meeting. The pages themselves are in
// web/console; they call the same /v2 and /admin/v1 routes as API clients,
// authenticated by the session cookie (api.SessionAuth) and checked
// against the operator's role (auth.Allow). Design: docs/console.md.
package console

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meridian-video/meridian/control/auth"
)

// OIDC configures sign-in through an OpenID Connect provider.
type OIDC struct {
	// Issuer is the provider's issuer URL (its discovery document lives at
	// Issuer + "/.well-known/openid-configuration").
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is where the provider sends the browser back: it must be
	// this console's /console/auth/callback, registered at the provider.
	RedirectURL string
	// Scopes besides "openid" (default: profile, email).
	Scopes []string
	// RoleClaim names the ID-token claim holding group or role names (a
	// dotted path for nested claims, e.g. realm_access.roles). Default groups.
	RoleClaim string
	// AdminValues, OperatorValues and ViewerValues list the claim values
	// that grant each role; the strongest role matched wins.
	AdminValues, OperatorValues, ViewerValues []string
	// DefaultRole is given to users no value matches; empty refuses them.
	DefaultRole auth.Role
}

// LocalAdmin is a bootstrap administrator signing in with a password.
type LocalAdmin struct {
	Username string
	Password string // hashed (bcrypt) before it enters the Raft log
}

// Config configures the console.
type Config struct {
	// PublicURL is the console's origin as browsers see it (cookie
	// security, the CSRF origin check, links).
	PublicURL string
	// Dev serves cookies without the Secure attribute (plain http on
	// localhost); production cookies are always Secure.
	Dev bool
	// OIDC enables single sign-on; nil leaves only local admins.
	OIDC *OIDC
	// LocalAdmins are ensured to exist (their current password) whenever
	// this node becomes the leader.
	LocalAdmins []LocalAdmin
	// IdleTimeout ends a session nobody used for that long; AbsoluteTimeout
	// ends it that long after sign-in whatever happens.
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	// LoginTimeout bounds the time between the redirect to the provider
	// and its callback.
	LoginTimeout time.Duration
	// ParticipantTokenTTL is how long a participant's meeting token lasts.
	ParticipantTokenTTL time.Duration

	HTTPClient *http.Client // calls to the identity provider
	Logger     *slog.Logger
	Now        func() time.Time
	Rand       io.Reader
}

// DefaultConfig has production-minded timeouts.
func DefaultConfig() Config {
	return Config{IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour, LoginTimeout: 10 * time.Minute, ParticipantTokenTTL: 4 * time.Hour}
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("console: invalid config")

// Validate checks the configuration.
func (c Config) Validate() error {
	if _, err := url.Parse(c.PublicURL); err != nil || !(strings.HasPrefix(c.PublicURL, "http://") || strings.HasPrefix(c.PublicURL, "https://")) {
		return fmt.Errorf("%w: public URL %q must be an http(s) URL", ErrConfig, c.PublicURL)
	}
	if c.IdleTimeout <= 0 || c.AbsoluteTimeout <= 0 || c.LoginTimeout <= 0 || c.ParticipantTokenTTL <= 0 {
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	}
	if c.IdleTimeout > c.AbsoluteTimeout {
		return fmt.Errorf("%w: idle timeout %s is longer than the absolute timeout %s", ErrConfig, c.IdleTimeout, c.AbsoluteTimeout)
	}
	for _, a := range c.LocalAdmins {
		if a.Username == "" || strings.ContainsAny(a.Username, " \t\r\n:") || len(a.Username) > 64 {
			return fmt.Errorf("%w: local admin name %q must be 1-64 characters without spaces or colons", ErrConfig, a.Username)
		}
		if len(a.Password) < 12 {
			return fmt.Errorf("%w: local admin %q needs a password of at least 12 characters", ErrConfig, a.Username)
		}
		if len(a.Password) > 72 {
			return fmt.Errorf("%w: local admin %q: bcrypt reads at most 72 bytes of a password", ErrConfig, a.Username)
		}
	}
	if o := c.OIDC; o != nil {
		if u, err := url.Parse(o.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && !(c.Dev || isLoopback(u.Hostname()))) {
			return fmt.Errorf("%w: OIDC issuer %q must be an https URL (http only on loopback or in dev)", ErrConfig, o.Issuer)
		}
		if o.ClientID == "" {
			return fmt.Errorf("%w: OIDC client id is required", ErrConfig)
		}
		ru, err := url.Parse(o.RedirectURL)
		if err != nil || ru.Host == "" || ru.Path != CallbackPath {
			return fmt.Errorf("%w: OIDC redirect URL %q must be this console's %s (e.g. %s%s)", ErrConfig, o.RedirectURL, CallbackPath,
				strings.TrimRight(c.PublicURL, "/"), CallbackPath)
		}
		if o.DefaultRole != "" {
			if _, ok := auth.ParseRole(string(o.DefaultRole)); !ok {
				return fmt.Errorf("%w: default role %q is not admin, operator or viewer", ErrConfig, o.DefaultRole)
			}
		}
		if len(o.AdminValues)+len(o.OperatorValues)+len(o.ViewerValues) == 0 && o.DefaultRole == "" {
			return fmt.Errorf("%w: OIDC needs claim values for at least one role (or a default role): nobody could sign in", ErrConfig)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// CallbackPath is the redirect URL's path to register at the provider.
const CallbackPath = "/console/auth/callback"
