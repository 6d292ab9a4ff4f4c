package console

import (
	"context"
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

// startLogin records a sign-in (state, nonce and PKCE verifier, hashed or
// sealed) in Raft, binds it to this browser with a cookie, and sends the
// browser to the provider.
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
	sealed, err := cs.sealer.Seal(cs.cfg.Rand, []byte(verifier))
	if err != nil {
		return err
	}
	now := cs.cfg.Now().UTC()
	a := state.LoginAttempt{StateHash: hashOf(st), NonceHash: hashOf(nonce), VerifierEnc: sealed, Purpose: purpose, ReturnTo: returnTo,
		CreatedAt: now, ExpiresAt: now.Add(cs.cfg.LoginTimeout)}
	if _, err := cs.apply(state.CmdStartLogin, state.StartLogin{Attempt: a}); err != nil {
		return err
	}
	c.Cookie(&fiber.Cookie{Name: loginCookieName(st), Value: st, Path: "/console/auth/", MaxAge: int(cs.cfg.LoginTimeout / time.Second),
		HTTPOnly: true, Secure: cs.secure(), SameSite: fiber.CookieSameSiteLaxMode})
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(oc.AuthCodeURL(st, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), fiber.StatusFound)
}

// startConsoleLogin is GET /console/auth/login[?return=/console/...].
func (cs *Console) startConsoleLogin(c *fiber.Ctx) error {
	ret := c.Query("return")
	if !strings.HasPrefix(ret, "/console/") || strings.HasPrefix(ret, "//") || strings.ContainsAny(ret, "\\\r\n") {
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
		if purpose == "" || purpose == purposeConsole {
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
	if bound := c.Cookies(name); bound == "" || !eq(bound, st) {
		// Not started in this browser: a forged or stolen callback link.
		return "", refuse(fiber.StatusForbidden, "this sign-in was not started in this browser; start again")
	}
	cs.clearCookie(c, name, "/console/auth/")
	now := cs.cfg.Now().UTC()
	raw, err := cs.apply(state.CmdFinishLogin, state.FinishLogin{StateHash: hashOf(st), At: now})
	if err != nil {
		if errors.Is(err, state.ErrForbidden) {
			return "", refuse(fiber.StatusForbidden, "unknown or already used sign-in state; start again")
		}
		return "", err
	}
	a, err := decodeAttempt(raw)
	if err != nil {
		return "", err
	}
	if !now.Before(a.ExpiresAt) {
		return a.Purpose, refuse(fiber.StatusForbidden, "the sign-in took too long; start again")
	}
	pkce, err := cs.sealer.Open(a.VerifierEnc)
	if err != nil {
		return a.Purpose, err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(c.UserContext(), oauth2.HTTPClient, cs.cfg.HTTPClient), 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(ctx, code, oauth2.VerifierOption(string(pkce)))
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
	if !eq(hashOf(idt.Nonce), a.NonceHash) {
		return a.Purpose, &refusal{status: fiber.StatusForbidden, msg: "ID token refused: its nonce does not belong to this sign-in", who: who}
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
