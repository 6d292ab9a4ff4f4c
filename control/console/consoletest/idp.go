// Package consoletest runs a real OpenID Connect provider in the test
// process for the console's tests: the example OpenID Provider of
// github.com/zitadel/oidc/v3 (discovery, authorization endpoint with its
// login form, token endpoint with PKCE, signed ID tokens, JWKS), with test
// users that carry a "groups" claim.
//
// The provider sits behind a front that can tamper with the flow the way
// an attacker or a misconfigured deployment would: swap the nonce or the
// client id on the way to the provider, or hand out a different issuer's
// tokens. The console must refuse each.
package consoletest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is an account at the test provider.
type User struct {
	ID       string
	Username string
	Password string
	Email    string
	First    string
	Last     string
	Groups   []string
	// EmailUnverified: the provider says email_verified false.
	EmailUnverified bool
}

// Client is an OAuth client registered at the provider.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// Tamper modes of the front.
const (
	Honest      int32 = iota
	SwapNonce         // the authorization request reaches the provider with another nonce
	SwapClient        // authorization and token requests reach it as another client (audience)
	OtherIssuer       // discovery names this issuer, but every endpoint is another provider's
)

// IdP is a running provider.
type IdP struct {
	URL string // the issuer
	// OtherClientID is registered like the first client (same secret and
	// redirect URIs): SwapClient turns requests into its requests.
	OtherClientID string

	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	mode    atomic.Int32
	client  Client

	users     []User
	lastAuth  atomic.Pointer[url.Values] // the last authorization request's query
	otherOnce sync.Once
	other     *IdP // OtherIssuer's provider: same client and users, its own issuer and keys
	t         testing.TB
}

// Start runs a provider with one client (plus its twin for SwapClient) and
// the given users. It stops when the test ends.
func Start(t testing.TB, client Client, users ...User) *IdP {
	t.Helper()
	p := &IdP{client: client, OtherClientID: client.ID + "-other", t: t, users: users}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL
	p.setHandler(newProvider(p.URL, client, p.OtherClientID, users))
	return p
}

func (p *IdP) setHandler(h http.Handler) { p.handler.Store(&h) }

// Register replaces the client's redirect URIs (for a control plane whose
// address is known only after the provider runs). The provider restarts
// empty: call it before any sign-in.
func (p *IdP) Register(redirectURIs ...string) {
	p.client.RedirectURIs = redirectURIs
	p.setHandler(newProvider(p.URL, p.client, p.OtherClientID, p.users))
}

func newProvider(issuer string, client Client, other string, users []User) http.Handler {
	us := userStore{byID: map[string]*storage.User{}}
	groups := map[string][]string{}
	for _, u := range users {
		us.byID[u.ID] = &storage.User{ID: u.ID, Username: u.Username, Password: u.Password, FirstName: u.First, LastName: u.Last,
			Email: u.Email, EmailVerified: !u.EmailUnverified, PreferredLanguage: language.English}
		groups[u.ID] = u.Groups
	}
	clients := map[string]*storage.Client{
		client.ID: storage.WebClient(client.ID, client.Secret, client.RedirectURIs...),
		other:     storage.WebClient(other, client.Secret, client.RedirectURIs...),
	}
	st := &store{Storage: storage.NewStorageWithClients(us, clients), groups: groups}
	return exampleop.SetupServer(issuer, st, nil, false)
}

// SetMode changes how the front treats the next requests.
func (p *IdP) SetMode(m int32) { p.mode.Store(m) }

// LastAuthorization is the query of the last authorization request the
// provider received (state, nonce, code_challenge...).
func (p *IdP) LastAuthorization() url.Values {
	if q := p.lastAuth.Load(); q != nil {
		return *q
	}
	return nil
}

func (p *IdP) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/auth" {
		q := r.URL.Query()
		p.lastAuth.Store(&q)
	}
	switch p.mode.Load() {
	case SwapNonce:
		if r.URL.Path == "/auth" {
			q := r.URL.Query()
			q.Set("nonce", "nonce-chosen-by-someone-else")
			r.URL.RawQuery = q.Encode()
		}
	case SwapClient:
		p.swapClient(r)
	case OtherIssuer:
		if r.URL.Path == "/.well-known/openid-configuration" {
			p.otherDiscovery(w)
			return
		}
	}
	(*p.handler.Load()).ServeHTTP(w, r)
}

// swapClient rewrites the client id of authorization and token requests.
func (p *IdP) swapClient(r *http.Request) {
	switch r.URL.Path {
	case "/auth":
		q := r.URL.Query()
		if q.Get("client_id") == p.client.ID {
			q.Set("client_id", p.OtherClientID)
			r.URL.RawQuery = q.Encode()
		}
	case "/oauth/token":
		if id, secret, ok := r.BasicAuth(); ok && id == p.client.ID {
			r.SetBasicAuth(p.OtherClientID, secret)
		}
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		if form.Get("client_id") == p.client.ID {
			form.Set("client_id", p.OtherClientID)
		}
		enc := form.Encode()
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
	}
}

// otherDiscovery serves another provider's discovery document under this
// issuer's name: its endpoints, its keys, its tokens.
func (p *IdP) otherDiscovery(w http.ResponseWriter) {
	p.otherOnce.Do(func() {
		o := &IdP{client: p.client, OtherClientID: p.OtherClientID, t: p.t}
		o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
		p.t.Cleanup(o.srv.Close)
		o.URL = o.srv.URL
		o.setHandler(newProvider(o.URL, p.client, p.OtherClientID, p.users))
		p.other = o
	})
	resp, err := http.Get(p.other.URL + "/.well-known/openid-configuration")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// Same document, this issuer's name.
	doc := strings.Replace(string(b), fmt.Sprintf("%q", p.other.URL), fmt.Sprintf("%q", p.URL), 1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, doc)
}

// store adds a "groups" claim to the example storage and lets clients ask
// for it; profile and e-mail claims go into the ID token (as providers
// configured with claim mappers do).
type store struct {
	*storage.Storage
	groups map[string][]string
}

func (s *store) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return client{c}, nil
}

type client struct{ op.Client }

func (client) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (s *store) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if slices.Contains(scopes, "groups") {
		ui.AppendClaims("groups", append([]string{}, s.groups[req.GetSubject()]...))
	}
	return nil
}

type userStore struct{ byID map[string]*storage.User }

func (u userStore) GetUserByID(id string) *storage.User { return u.byID[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, x := range u.byID {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u userStore) ExampleClientID() string { return "service" }

// Browser is an HTTP client with a cookie jar that follows redirects
// except into stopAt (a path prefix), so a test can look at (and replay)
// the request that lands there.
func Browser(stopAt string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if stopAt != "" && strings.HasPrefix(req.URL.Path, stopAt) {
			return http.ErrUseLastResponse
		}
		if len(via) > 20 {
			return errors.New("too many redirects")
		}
		return nil
	}}
}

// SignIn drives the provider's login form: it opens start (a URL that
// redirects to the provider), submits username and password, and returns
// the redirect the provider answers with (to the client's redirect URI).
// hc must stop at the redirect URI's path (see Browser).
func SignIn(hc *http.Client, start, username, password string) (*url.URL, error) {
	resp, err := hc.Get(start)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.Path, "/login/username") {
		return nil, fmt.Errorf("expected the provider's login form, got %d at %s: %.300s", resp.StatusCode, resp.Request.URL, body)
	}
	id := resp.Request.URL.Query().Get("authRequestID")
	form := url.Values{"id": {id}, "username": {username}, "password": {password}}
	resp, err = hc.PostForm(resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+"/login/username", form)
	if err != nil {
		return nil, err
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode/100 != 3 || err != nil {
		return nil, fmt.Errorf("login at the provider: %d at %s: %.300s", resp.StatusCode, resp.Request.URL, body)
	}
	return loc, nil
}
