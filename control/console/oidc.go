package console

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gofiber/fiber/v2"
	"golang.org/x/oauth2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/state"
)

// identity is who the provider (or the local admin table) says signed in.
type identity struct {
	Issuer, Subject, Email, Name string
}

const (
	purposeConsole = "console"
	purposeMeet    = "meet:"
)

// client returns the provider's discovery, verifier and OAuth2 settings,
// discovered once (the provider may be down when the node starts).
func (cs *Console) client() (*oidc.Provider, *oidc.IDTokenVerifier, *oauth2.Config, error) {
	o := cs.cfg.OIDC
	if o == nil {
		return nil, nil, nil, &api.Error{Status: fiber.StatusNotFound, Message: "single sign-on is not configured on this control plane"}
	}
	cs.provMu.Lock()
	defer cs.provMu.Unlock()
	if cs.provider != nil {
		return cs.provider, cs.verifier, cs.oauth, nil
	}
	// The provider keeps this context to fetch its signing keys later: it
	// must outlive the request (the HTTP client bounds each call).
	ctx := oidc.ClientContext(context.Background(), cs.cfg.HTTPClient)
	p, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		cs.log.Warn("OIDC discovery failed", "issuer", o.Issuer, "err", err)
		return nil, nil, nil, &api.Error{Status: fiber.StatusBadGateway, Message: "the identity provider could not be reached; try again shortly"}
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, sc := range o.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	cs.provider = p
	// The verifier checks the signature, the issuer, the audience (this
	// client id) and the expiry of every ID token.
	cs.verifier = p.Verifier(&oidc.Config{ClientID: o.ClientID, Now: cs.cfg.Now})
	cs.oauth = &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: o.RedirectURL, Endpoint: p.Endpoint(), Scopes: scopes}
	return cs.provider, cs.verifier, cs.oauth, nil
}

func loginCookieName(state string) string { return loginCookiePre + hashOf(state)[:16] }

// pendingLogin is a sign-in between the redirect to the provider and its
// callback. It lives in a cookie of the browser that started it, sealed
// with the cluster key (AES-GCM: the browser can neither read the PKCE
// verifier nor change a field, and any control node can open it), not in
// Raft: starting a sign-in needs no credentials, so it must not write
// anything every node stores (see docs/console.md).
type pendingLogin struct {
	Kind     string `json:"k"` // loginKind: no other sealed value passes as one
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Purpose  string `json:"p"`
	ReturnTo string `json:"r,omitempty"`
	Expires  int64  `json:"e"` // unix seconds
}

const (
	loginKind = "meridian-login-v1"
	// maxPendingLogins bounds the sign-in cookies one browser holds (each
	// is a few hundred bytes, and all of them come with every callback).
	maxPendingLogins = 4
	maxReturnTo      = 512
)

func (cs *Console) sealLogin(p pendingLogin) (string, error) {
	p.Kind = loginKind
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	sealed, err := cs.sealer.Seal(cs.cfg.Rand, b)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (cs *Console) openLogin(v string) (*pendingLogin, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, false
	}
	b, err := cs.sealer.Open(raw)
	if err != nil {
		return nil, false
	}
	var p pendingLogin
	if json.Unmarshal(b, &p) != nil || p.Kind != loginKind || p.State == "" || p.Nonce == "" || p.Verifier == "" {
		return nil, false
	}
	return &p, true
}

// pruneLoginCookies clears this browser's expired or unreadable sign-in
// cookies and the oldest ones beyond maxPendingLogins-1, making room for
// one more.
func (cs *Console) pruneLoginCookies(c *fiber.Ctx) {
	type pending struct {
		name    string
		expires int64
	}
	var live []pending
	now := cs.cfg.Now().Unix()
	c.Request().Header.VisitAllCookie(func(k, v []byte) {
		name := string(k)
		if !strings.HasPrefix(name, loginCookiePre) {
			return
		}
		if p, ok := cs.openLogin(string(v)); ok && p.Expires > now {
			live = append(live, pending{name, p.Expires})
			return
		}
		cs.clearCookie(c, name, "/console/auth/")
	})
	slices.SortFunc(live, func(a, b pending) int { return cmp.Compare(a.expires, b.expires) })
	for len(live) >= maxPendingLogins {
		cs.clearCookie(c, live[0].name, "/console/auth/")
		live = live[1:]
	}
}

// startLogin keeps a sign-in (state, nonce, PKCE verifier, purpose) in a
// sealed cookie bound to this browser and sends the browser to the
// provider. Nothing is written to Raft until the provider vouches for the
// user (finish).
func (cs *Console) startLogin(c *fiber.Ctx, purpose, returnTo string) error {
	_, _, oc, err := cs.client()
	if err != nil {
		return err
	}
	st, err := newToken(cs.cfg.Rand)
	if err != nil {
		return err
	}
	nonce, err := newToken(cs.cfg.Rand)
	if err != nil {
		return err
	}
	verifier := oauth2.GenerateVerifier()
	now := cs.cfg.Now().UTC()
	sealed, err := cs.sealLogin(pendingLogin{State: st, Nonce: nonce, Verifier: verifier, Purpose: purpose, ReturnTo: returnTo,
		Expires: now.Add(cs.cfg.LoginTimeout).Unix()})
	if err != nil {
		return err
	}
	cs.pruneLoginCookies(c)
	c.Cookie(&fiber.Cookie{Name: loginCookieName(st), Value: sealed, Path: "/console/auth/", MaxAge: int(cs.cfg.LoginTimeout / time.Second),
		HTTPOnly: true, Secure: cs.secure(), SameSite: fiber.CookieSameSiteLaxMode})
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(oc.AuthCodeURL(st, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), fiber.StatusFound)
}

// startConsoleLogin is GET /console/auth/login[?return=/console/...].
func (cs *Console) startConsoleLogin(c *fiber.Ctx) error {
	ret := c.Query("return")
	if !strings.HasPrefix(ret, "/console/") || len(ret) > maxReturnTo || strings.HasPrefix(ret, "//") || strings.ContainsAny(ret, "\\\r\n") {
		ret = "/console/"
	}
	return cs.startLogin(c, purposeConsole, ret)
}

// refusal is a sign-in that failed: an HTML page for the browser, an
// audit entry for the operators.
type refusal struct {
	status int
	msg    string
	who    identity
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, format string, a ...any) *refusal {
	return &refusal{status: status, msg: fmt.Sprintf(format, a...)}
}

// callback is the provider's redirect back: GET /console/auth/callback.
func (cs *Console) callback(c *fiber.Ctx) error {
	purpose, err := cs.finish(c)
	var r *refusal
	if errors.As(err, &r) {
		if (purpose == "" || purpose == purposeConsole) && cs.auditAnonymous(c, r) {
			actor := r.who.Email
			if actor == "" {
				actor = r.who.Subject
			}
			if actor == "" {
				actor = "unknown"
			}
			cs.audit(c, state.AuditEntry{Actor: actor, Subject: r.who.Subject, Issuer: r.who.Issuer, Via: "oidc", Action: "login", Detail: r.msg},
				&api.Error{Status: r.status, Message: r.msg})
		}
		cs.log.Info("sign-in refused", "reason", r.msg, "subject", r.who.Subject, "ip", c.IP())
		return errorPage(c, r.status, r.msg)
	}
	return err
}

// Audited sign-in refusals that name nobody, per address: a burst, then
// this many a minute.
const (
	anonAuditBurst     = 20
	anonAuditPerMinute = 10.0
)

// auditAnonymous reports whether a refused callback goes to the audit log.
// One the provider vouched for (it names a user) always does. One that
// names nobody (no sign-in cookie, a made-up code, the provider's error)
// needs no credentials at all: each would be a Raft write on every node
// pushing real entries out of the bounded audit log, so past a small
// per-address rate they are only counted and logged, like refused
// session cookies.
func (cs *Console) auditAnonymous(c *fiber.Ctx, r *refusal) bool {
	if r.who.Subject != "" {
		return true
	}
	if ok, _ := cs.anonAudit.Allow("signin:" + c.IP()); ok {
		return true
	}
	cs.refused.WithLabelValues("signin_unaudited").Inc()
	return false
}

// finish checks and completes a sign-in; it returns the attempt's purpose.
func (cs *Console) finish(c *fiber.Ctx) (string, error) {
	_, verifier, oc, err := cs.client()
	if err != nil {
		return "", err
	}
	if e := c.Query("error"); e != "" {
		return "", refuse(fiber.StatusForbidden, "the identity provider refused the sign-in: %s %s", truncate(e, 64), truncate(c.Query("error_description"), 200))
	}
	st, code := c.Query("state"), c.Query("code")
	if st == "" || code == "" {
		return "", refuse(fiber.StatusBadRequest, "the callback lacks state or code")
	}
	name := loginCookieName(st)
	a, ok := cs.openLogin(c.Cookies(name))
	if !ok || !eq(a.State, st) {
		// Not started in this browser (or its cookie was altered): a
		// forged or stolen callback link.
		return "", refuse(fiber.StatusForbidden, "this sign-in was not started in this browser; start again")
	}
	cs.clearCookie(c, name, "/console/auth/")
	now := cs.cfg.Now().UTC()
	if now.Unix() >= a.Expires {
		return a.Purpose, refuse(fiber.StatusForbidden, "the sign-in took too long; start again")
	}
	// A state this node knows was used is refused before the provider is
	// asked; useState below refuses it on any node after the exchange.
	var used bool
	cs.node.FSM().Read(func(s *state.Store) { used = s.LoginStateUsed(hashOf(st)) })
	if used {
		return a.Purpose, refuse(fiber.StatusForbidden, "unknown or already used sign-in state; start again")
	}
	ctx, cancel := context.WithTimeout(context.WithValue(c.UserContext(), oauth2.HTTPClient, cs.cfg.HTTPClient), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		return a.Purpose, refuse(fiber.StatusForbidden, "the identity provider did not accept the authorization code: %s", oauthError(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return a.Purpose, refuse(fiber.StatusForbidden, "the identity provider returned no ID token")
	}
	idt, err := verifier.Verify(ctx, rawID)
	if err != nil {
		return a.Purpose, refuse(fiber.StatusForbidden, "ID token refused: %v", err)
	}
	who := identity{Issuer: idt.Issuer, Subject: idt.Subject}
	if !eq(idt.Nonce, a.Nonce) {
		return a.Purpose, &refusal{status: fiber.StatusForbidden, msg: "ID token refused: its nonce does not belong to this sign-in", who: who}
	}
	// The provider vouched for this sign-in: consume its state once, in
	// Raft, so that a replay is refused on every node. This is the first
	// write of a sign-in, and only a user the provider authenticated for
	// this client can cause it.
	if err := cs.useState(st, time.Unix(a.Expires, 0).UTC(), now); err != nil {
		return a.Purpose, err
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return a.Purpose, err
	}
	// An e-mail the provider has not verified may be anybody's (some
	// providers let users type one in): it names nobody, neither a
	// participant nor an operator in the audit log; the subject does.
	if verifiedEmail(claims) {
		who.Email, _ = claims["email"].(string)
	}
	who.Name, _ = claims["name"].(string)
	if who.Name == "" {
		who.Name, _ = claims["preferred_username"].(string)
	}
	switch {
	case a.Purpose == purposeConsole:
		role, ok := cs.roleOf(claims)
		if !ok {
			return a.Purpose, &refusal{status: fiber.StatusForbidden, who: who,
				msg: fmt.Sprintf("%s has no Meridian console role (claim %q: %v)", displayName(who), cs.cfg.OIDC.roleClaim(), claimValues(claims, cs.cfg.OIDC.roleClaim()))}
		}
		if _, err := cs.newSession(c, who, role, "oidc"); err != nil {
			return a.Purpose, err
		}
		cs.audit(c, state.AuditEntry{Actor: (&auth.Operator{Email: who.Email, Subject: who.Subject}).Actor(), Subject: who.Subject, Issuer: who.Issuer,
			Role: string(role), Via: "oidc", Action: "login"}, nil)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return a.Purpose, c.Redirect(a.ReturnTo, fiber.StatusFound)
	case strings.HasPrefix(a.Purpose, purposeMeet):
		link, err := cs.participantLink(strings.TrimPrefix(a.Purpose, purposeMeet), who)
		if err != nil {
			return a.Purpose, err
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		return a.Purpose, c.Redirect(link, fiber.StatusFound)
	}
	return a.Purpose, refuse(fiber.StatusBadRequest, "unknown sign-in purpose")
}

func (cs *Console) useState(st string, expires, now time.Time) error {
	_, err := cs.apply(state.CmdUseLoginState|state.IgnoreUnknownFlag, state.UseLoginState{StateHash: hashOf(st), ExpiresAt: expires, At: now})
	if errors.Is(err, state.ErrForbidden) {
		return &refusal{status: fiber.StatusForbidden, msg: "unknown or already used sign-in state; start again"}
	}
	return err
}

// verifiedEmail: the email_verified claim is true (a JSON boolean, or the
// string "true" some providers send).
func verifiedEmail(claims map[string]any) bool {
	switch v := claims["email_verified"].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

func displayName(id identity) string {
	if id.Email != "" {
		return id.Email
	}
	return id.Subject
}

func oauthError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		return strings.TrimSpace(re.ErrorCode + " " + re.ErrorDescription)
	}
	return "token endpoint call failed"
}

func (o *OIDC) roleClaim() string {
	if o.RoleClaim == "" {
		return "groups"
	}
	return o.RoleClaim
}

// claimValues reads a (dotted) claim as a list of strings.
func claimValues(claims map[string]any, path string) []string {
	var v any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	switch t := v.(type) {
	case string:
		return strings.Fields(strings.ReplaceAll(t, ",", " "))
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// roleOf maps the user's claim values to the strongest role they grant.
func (cs *Console) roleOf(claims map[string]any) (auth.Role, bool) {
	o := cs.cfg.OIDC
	vals := claimValues(claims, o.roleClaim())
	best := o.DefaultRole
	for _, rv := range []struct {
		role auth.Role
		vals []string
	}{{auth.RoleAdmin, o.AdminValues}, {auth.RoleOperator, o.OperatorValues}, {auth.RoleViewer, o.ViewerValues}} {
		for _, v := range vals {
			if slices.Contains(rv.vals, v) && rv.role.Stronger(best) {
				best = rv.role
			}
		}
	}
	return best, best != ""
}

var errorTemplate = template.Must(template.New("e").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in failed · Meridian</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; padding: 0 1rem">
<h1>Sign-in failed</h1><p id="error" role="alert">{{.}}</p><p><a href="/console/">Back to the console</a></p></body></html>`))

func errorPage(c *fiber.Ctx, status int, msg string) error {
	var b strings.Builder
	if err := errorTemplate.Execute(&b, msg); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentSecurityPolicy, "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	return c.Status(status).SendString(b.String())
}
