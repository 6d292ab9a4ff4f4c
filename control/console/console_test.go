package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/console"
	"github.com/meridian-video/meridian/control/console/consoletest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/porttest"
)

const (
	clientID     = "meridian-console"
	clientSecret = "console-secret-for-tests"
	password     = "correct horse battery staple"
	localPass    = "bootstrap-password-1"
)

var users = []consoletest.User{
	{ID: "u-ana", Username: "ana", Password: password, Email: "ana@example.com", First: "Ana", Last: "Admin", Groups: []string{"staff", "meridian-admins"}},
	{ID: "u-olga", Username: "olga", Password: password, Email: "olga@example.com", First: "Olga", Last: "Ops", Groups: []string{"meridian-operators"}},
	{ID: "u-vic", Username: "vic", Password: password, Email: "vic@example.com", First: "Vic", Last: "Viewer", Groups: []string{"meridian-viewers"}},
	{ID: "u-nora", Username: "nora", Password: password, Email: "nora@example.com", First: "Nora", Last: "Nobody", Groups: []string{"staff"}},
	// Claims an e-mail the provider has not verified (someone else's).
	{ID: "u-uma", Username: "uma", Password: password, Email: "ana@example.com", EmailUnverified: true, First: "Uma", Last: "Unverified", Groups: []string{"meridian-viewers"}},
}

// clock is the control plane's clock: real time plus an offset the test
// moves forward to expire sessions.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }
func (c *clock) reset()                  { c.offset.Store(0) }

type env struct {
	t     *testing.T
	idp   *consoletest.IdP
	c     *clustertest.Cluster
	urls  []string
	clock *clock
}

// start runs the provider and n control nodes with the console, single
// sign-on and a local admin.
func start(t *testing.T, n int, mode int32, dev bool) *env {
	t.Helper()
	addrs := make([]string, n)
	var redirects []string
	for i := range addrs {
		addrs[i] = porttest.Addr(t)
		redirects = append(redirects, "http://"+addrs[i]+console.CallbackPath)
	}
	idp := consoletest.Start(t, consoletest.Client{ID: clientID, Secret: clientSecret, RedirectURIs: redirects}, users...)
	idp.SetMode(mode)
	e := &env{t: t, idp: idp, clock: &clock{}}
	e.c = clustertest.New(t, n, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.HTTPListen = addrs[i]
		cfg.Now = e.clock.Now
		cc := console.DefaultConfig()
		cc.Dev = dev
		cc.OIDC = &console.OIDC{Issuer: idp.URL, ClientID: clientID, ClientSecret: clientSecret, Scopes: []string{"profile", "email", "groups"},
			AdminValues: []string{"meridian-admins"}, OperatorValues: []string{"meridian-operators"}, ViewerValues: []string{"meridian-viewers"}}
		cc.LocalAdmins = []console.LocalAdmin{{Username: "admin", Password: localPass}}
		cfg.Plugins = append(cfg.Plugins, console.Plugin(cc))
	}})
	for _, a := range addrs {
		e.urls = append(e.urls, "http://"+a)
	}
	return e
}

// session is one browser signed in to the console.
type session struct {
	t    *testing.T
	hc   *http.Client
	csrf string
	role string
}

// signIn goes through the provider's login form and the console's
// callback; it returns the browser and the callback's answer.
func (e *env) signIn(node int, user string) (*http.Client, *url.URL, *http.Response, string) {
	e.t.Helper()
	hc := consoletest.Browser(console.CallbackPath)
	cb, err := consoletest.SignIn(hc, e.urls[node]+"/console/auth/login?return=/console/rooms", user, password)
	if err != nil {
		e.t.Fatal(err)
	}
	resp, body := get(e.t, noFollow(hc), cb.String())
	return hc, cb, resp, body
}

func (e *env) login(node int, user string) *session {
	e.t.Helper()
	hc, _, resp, body := e.signIn(node, user)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/rooms" {
		e.t.Fatalf("callback for %s: %d %s %s", user, resp.StatusCode, resp.Header.Get("Location"), body)
	}
	s := &session{t: e.t, hc: hc}
	s.refresh(e.urls[node])
	return s
}

func (s *session) refresh(base string) {
	s.t.Helper()
	var me struct {
		Role      string `json:"role"`
		CSRFToken string `json:"csrfToken"`
	}
	if st, body := s.do(base, "GET", "/console/api/me", nil, nil); st != 200 {
		s.t.Fatalf("me: %d %s", st, body)
	} else if err := json.Unmarshal([]byte(body), &me); err != nil {
		s.t.Fatal(err)
	}
	s.csrf, s.role = me.CSRFToken, me.Role
}

// do sends a console request (with the CSRF token unless hdr overrides it).
func (s *session) do(base, method, path string, body any, hdr map[string]string) (int, string) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if s.csrf != "" && method != "GET" {
		req.Header.Set("X-CSRF-Token", s.csrf)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func noFollow(hc *http.Client) *http.Client {
	return &http.Client{Jar: hc.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, hc *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

type auditPage struct {
	Data []struct {
		Actor, Action, Via, Role, Detail, IP string
		Status                               int
	} `json:"data"`
}

func (e *env) audit(node int) auditPage {
	e.t.Helper()
	r := e.c.Do(node, "GET", "/admin/v1/audit?perPage=100", "Bearer "+e.c.AdminToken, nil)
	if r.Status != 200 {
		e.t.Fatalf("audit: %d %s", r.Status, r.Body)
	}
	var p auditPage
	r.JSON(e.t, &p)
	return p
}

func (p auditPage) has(actor, action string, status int) bool {
	for _, e := range p.Data {
		if e.Actor == actor && e.Action == action && e.Status == status {
			return true
		}
	}
	return false
}

func roomCount(t *testing.T, e *env) int {
	t.Helper()
	r := e.c.Do(0, "GET", "/v2/rooms?consistent=true", e.c.Token(), nil)
	var out struct {
		PageInfo struct{ Total int } `json:"pageInfo"`
	}
	r.JSON(t, &out)
	return out.PageInfo.Total
}

func keyCount(t *testing.T, e *env) int {
	t.Helper()
	r := e.c.Do(0, "GET", "/admin/v1/keys?perPage=100", "Bearer "+e.c.AdminToken, nil)
	var out struct {
		PageInfo struct{ Total int } `json:"pageInfo"`
	}
	r.JSON(t, &out)
	if r.Status != 200 || out.PageInfo.Total == 0 {
		t.Fatalf("keys: %d %s", r.Status, r.Body)
	}
	return out.PageInfo.Total
}

// TestConsoleSignInRolesAndReplication: users sign in through the real
// provider; their groups give their role; the session works on every
// node and survives the leader's death; every change is audited.
func TestConsoleSignInRolesAndReplication(t *testing.T) {
	e := start(t, 3, consoletest.Honest, true)
	ana := e.login(0, "ana")
	if ana.role != "admin" {
		t.Fatalf("ana's role %q, want admin", ana.role)
	}
	// The authorization request: code flow with PKCE (S256), state, nonce.
	q := e.idp.LastAuthorization()
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 ||
		q.Get("state") == "" || q.Get("nonce") == "" || q.Get("redirect_uri") != e.urls[0]+console.CallbackPath {
		t.Fatalf("authorization request %v: want a code flow with S256 PKCE, state, nonce and the callback", q)
	}
	// The cookie's attributes.
	_, _, resp, _ := e.signIn(1, "vic")
	var sc string
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, "meridian_console=") {
			sc = v
		}
	}
	if !strings.Contains(sc, "meridian_console=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(strings.ToLower(sc), "samesite=lax") {
		t.Fatalf("session cookie %q lacks HttpOnly or SameSite=Lax", sc)
	}

	// Any node accepts the session (it is in Raft), and the console uses
	// the REST routes with it.
	for i := range e.urls {
		if st, body := ana.do(e.urls[i], "GET", "/console/api/me", nil, nil); st != 200 || !strings.Contains(body, "ana@example.com") {
			t.Fatalf("me on node%d: %d %s", i, st, body)
		}
	}
	before := roomCount(t, e)
	st, body := ana.do(e.urls[2], "POST", "/v2/rooms", map[string]any{"customRoomId": "from-the-console"}, nil)
	if st != 200 {
		t.Fatalf("admin creates a room through node2: %d %s", st, body)
	}
	if n := roomCount(t, e); n != before+1 {
		t.Fatalf("rooms %d, want %d", n, before+1)
	}
	st, body = ana.do(e.urls[1], "POST", "/admin/v1/keys", map[string]any{"name": "made-in-console"}, nil)
	if st != 201 || !strings.Contains(body, `"secret"`) {
		t.Fatalf("admin creates a key: %d %s", st, body)
	}

	// Roles: operator manages rooms, not keys; viewer only reads.
	olga := e.login(1, "olga")
	vic := e.login(2, "vic")
	if olga.role != "operator" || vic.role != "viewer" {
		t.Fatalf("roles %q %q", olga.role, vic.role)
	}
	if st, body := olga.do(e.urls[0], "POST", "/v2/rooms", map[string]any{}, nil); st != 200 {
		t.Fatalf("operator creates a room: %d %s", st, body)
	}
	if st, body := olga.do(e.urls[0], "POST", "/admin/v1/keys", map[string]any{"name": "nope"}, nil); st != 403 {
		t.Fatalf("operator creates a key: %d %s, want 403", st, body)
	}
	n := roomCount(t, e)
	for _, c := range []struct{ method, path string }{{"POST", "/v2/rooms"}, {"DELETE", "/admin/v1/keys/" + e.c.APIKey}, {"GET", "/admin/v1/keys"}, {"GET", "/admin/v1/audit"}} {
		if st, body := vic.do(e.urls[0], c.method, c.path, map[string]any{}, nil); st != 403 || !strings.Contains(body, "viewer") {
			t.Fatalf("viewer %s %s: %d %s, want 403", c.method, c.path, st, body)
		}
	}
	if st, _ := vic.do(e.urls[0], "GET", "/v2/rooms", nil, nil); st != 200 {
		t.Fatalf("viewer lists rooms: %d", st)
	}
	// The router ignores case and trailing slashes: the role check must
	// too. Each path here reaches a route the role may not use (403).
	keysBefore := keyCount(t, e)
	for _, c := range []struct {
		who          *session
		method, path string
	}{
		{olga, "POST", "/ADMIN/V1/KEYS"}, {olga, "POST", "/Admin/v1/keys/"}, {olga, "POST", "/admin/v1/Keys//"},
		{olga, "DELETE", "/Admin/v1/cluster/nodes/node2"}, {olga, "DELETE", "/admin/v1/KEYS/" + e.c.APIKey},
		{olga, "GET", "/Admin/V1/Audit"}, {olga, "GET", "/admin/v1/keys/"},
		{vic, "GET", "/Admin/v1/audit"}, {vic, "GET", "/V2/webhooks/signing-secret"}, {vic, "GET", "/v2/Webhooks/Signing-Secret/"},
		{vic, "POST", "/V2/ROOMS"}, {vic, "GET", "/ADMIN/v1/keys"},
	} {
		if st, body := c.who.do(e.urls[1], c.method, c.path, map[string]any{"name": "sneaky"}, nil); st != 403 {
			t.Errorf("%s %s %s: %d %s, want 403", c.who.role, c.method, c.path, st, body)
		}
	}
	// Other spellings either reach the same check or no route at all.
	for _, c := range []struct {
		who          *session
		method, path string
	}{
		{olga, "POST", "//admin/v1/keys"}, {olga, "POST", "/admin//v1/keys"}, {olga, "POST", "/admin/v1//keys"},
		{olga, "POST", "/admin%2Fv1/keys"}, {olga, "POST", "/admin/v1%2Fkeys"}, {olga, "POST", "/admin/v1/%6Beys"},
		{olga, "POST", "/admin/v1/./keys"}, {olga, "POST", "/admin/v1/x/../keys"}, {olga, "POST", "/admin/v1/keys?x=/v2/rooms"},
		{vic, "GET", "//v2/webhooks/signing-secret"}, {vic, "GET", "/v2/webhooks/signing-secret%2F"}, {vic, "GET", "/v2/webhooks//signing-secret"},
		{vic, "GET", "/admin/v1/audit%3F"}, {vic, "GET", "/v2/webhooks/signing%2Dsecret"},
	} {
		st, body := c.who.do(e.urls[1], c.method, c.path, map[string]any{"name": "sneaky"}, nil)
		if st != 403 && st != 404 {
			t.Errorf("%s %s %s: %d %s, want 403 or 404", c.who.role, c.method, c.path, st, body)
		}
	}
	if n := keyCount(t, e); n != keysBefore {
		t.Fatalf("keys %d after refused requests, want %d", n, keysBefore)
	}
	if r := e.c.Do(0, "GET", "/admin/v1/cluster", "Bearer "+e.c.AdminToken, nil); !strings.Contains(string(r.Body), "node2") {
		t.Fatalf("a refused request removed node2: %s", r.Body)
	}
	if roomCount(t, e) != n {
		t.Fatal("a refused request created a room")
	}
	if r := e.c.Do(0, "GET", "/v2/rooms/validate/"+e.c.APIKey, e.c.Token(), nil); r.Status == 0 {
		t.Fatal("unreachable")
	}
	// No role in the claims: no session.
	_, _, resp, body = e.signIn(0, "nora")
	if resp.StatusCode != 403 || !strings.Contains(body, "no Meridian console role") || strings.Contains(resp.Header.Get("Set-Cookie"), "meridian_console=") {
		t.Fatalf("user without a role: %d %s %q", resp.StatusCode, body, resp.Header.Get("Set-Cookie"))
	}

	au := e.audit(0)
	for _, want := range []struct {
		actor, action string
		status        int
	}{
		{"ana@example.com", "login", 200}, {"ana@example.com", "POST /v2/rooms", 200}, {"ana@example.com", "POST /admin/v1/keys", 201},
		{"olga@example.com", "POST /admin/v1/keys", 403}, {"vic@example.com", "POST /v2/rooms", 403}, {"nora@example.com", "login", 403},
	} {
		if !au.has(want.actor, want.action, want.status) {
			t.Errorf("audit log lacks %+v: %+v", want, au.Data)
		}
	}

	// Every member's health, as the console shows it (any role).
	health := func(node int) map[string]bool {
		var h struct {
			Members []struct {
				ID    string
				Ready bool
			}
		}
		st, body := vic.do(e.urls[node], "GET", "/console/api/cluster/health", nil, nil)
		if st != 200 || json.Unmarshal([]byte(body), &h) != nil || len(h.Members) < 3 {
			t.Fatalf("cluster health: %d %s", st, body)
		}
		out := map[string]bool{}
		for _, m := range h.Members {
			out[m.ID] = m.Ready
		}
		return out
	}
	// Followers register their API address shortly after start.
	clustertest.Eventually(t, 10*time.Second, func() string {
		for id, ready := range health(1) {
			if !ready {
				return fmt.Sprintf("member %s not ready in a healthy cluster", id)
			}
		}
		return ""
	})
	// A member that answers but is not ready: a follower's recorded API
	// address is made to answer 503 (and restored afterwards).
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer unready.Close()
	f := e.c.Followers()[0]
	fid := fmt.Sprintf("node%d", f)
	register := func(addr string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, _, err := e.c.Node(e.c.Leader()).Node().Apply(ctx, state.CmdRegisterNode, state.RegisterNode{Node: state.Node{ID: fid, HTTPAddr: addr}}); err != nil {
			t.Fatal(err)
		}
	}
	register(unready.URL)
	clustertest.Eventually(t, 10*time.Second, func() string {
		var hl struct {
			Members []struct {
				ID     string
				Ready  bool
				Status int
			}
		}
		st, body := vic.do(e.urls[1], "GET", "/console/api/cluster/health", nil, nil)
		if st != 200 || json.Unmarshal([]byte(body), &hl) != nil || len(hl.Members) != 3 {
			return fmt.Sprintf("health: %d %s", st, body)
		}
		for _, m := range hl.Members {
			if (m.ID == fid) != (!m.Ready && m.Status == 503) {
				return fmt.Sprintf("health with %s answering 503: %s", fid, body)
			}
		}
		return ""
	})
	register(e.urls[f])
	if resp, body := get(t, http.DefaultClient, e.urls[0]+"/console/api/cluster/health"); resp.StatusCode != 401 {
		t.Fatalf("cluster health without a session: %d %s", resp.StatusCode, body)
	}

	// The leader dies: nobody is logged out, and the console sees it down.
	dead := e.c.KillLeader()
	alive := (dead + 1) % 3
	clustertest.Eventually(t, 20*time.Second, func() string {
		st, body := ana.do(e.urls[alive], "POST", "/v2/rooms", map[string]any{}, nil)
		if st != 200 {
			return fmt.Sprintf("after the leader's death: %d %s", st, body)
		}
		return ""
	})
	h := health(alive)
	if ready, ok := h[fmt.Sprintf("node%d", dead)]; !ok || ready || len(h) != 3 {
		t.Fatalf("health after %s died: %v", fmt.Sprintf("node%d", dead), h)
	}
}

// TestConsoleSessionRefusals: tampered, expired and ended sessions, and
// state-changing requests without the CSRF token or from another site.
func TestConsoleSessionRefusals(t *testing.T) {
	e := start(t, 1, consoletest.Honest, true)
	base := e.urls[0]
	ana := e.login(0, "ana")
	u, _ := url.Parse(base)
	n := roomCount(t, e)

	// CSRF: no token, a wrong one, the right one from another origin.
	for name, hdr := range map[string]map[string]string{
		"no token":           {"X-CSRF-Token": ""},
		"wrong token":        {"X-CSRF-Token": strings.Repeat("0", 64)},
		"cross-site origin":  {"Origin": "https://evil.example"},
		"cross-site fetch":   {"Sec-Fetch-Site": "cross-site"},
		"cross-site logout":  {"X-CSRF-Token": ""},
		"cross-site no-csrf": {"X-CSRF-Token": "", "Origin": "https://evil.example"},
	} {
		path := "/v2/rooms"
		if strings.Contains(name, "logout") {
			path = "/console/auth/logout"
		}
		if st, body := ana.do(base, "POST", path, map[string]any{}, hdr); st != 403 {
			t.Errorf("%s: %d %s, want 403", name, st, body)
		}
	}
	if roomCount(t, e) != n {
		t.Fatal("a refused cross-site request created a room")
	}

	// Tampered cookie: one character changed.
	var cookie *http.Cookie
	for _, c := range ana.hc.Jar.Cookies(u) {
		if c.Name == "meridian_console" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie in the jar")
	}
	tampered := []byte(cookie.Value)
	tampered[5] ^= 1
	req, _ := http.NewRequest("GET", base+"/v2/rooms", nil)
	req.AddCookie(&http.Cookie{Name: "meridian_console", Value: string(tampered)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("tampered cookie: %d, want 401", resp.StatusCode)
	}
	// The refusals are counted by reason (not audited: see refusal).
	_, metrics := get(t, http.DefaultClient, base+"/metrics")
	for _, want := range []string{`meridian_console_refused_requests_total{reason="csrf"} 6`, `meridian_console_refused_requests_total{reason="session_unknown"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Idle timeout (30 min by default): used at 20 min, alive at 45.
	e.clock.Advance(20 * time.Minute)
	if st, _ := ana.do(base, "GET", "/v2/rooms", nil, nil); st != 200 {
		t.Fatalf("at 20 min: %d", st)
	}
	e.clock.Advance(25 * time.Minute)
	if st, _ := ana.do(base, "GET", "/v2/rooms", nil, nil); st != 200 {
		t.Fatalf("at 45 min, used 25 min ago: %d", st)
	}
	e.clock.Advance(31 * time.Minute)
	if st, body := ana.do(base, "GET", "/v2/rooms", nil, nil); st != 401 || !strings.Contains(body, "expired") {
		t.Fatalf("idle for 31 min: %d %s, want 401", st, body)
	}
	// Absolute timeout (12 h) even when busy.
	e.clock.reset()
	olga := e.login(0, "olga")
	for i := 0; i < 26; i++ { // every 28 min for 12 h 8 min
		e.clock.Advance(28 * time.Minute)
		st, _ := olga.do(base, "GET", "/v2/rooms", nil, nil)
		if want := 200; i == 25 {
			if st != 401 {
				t.Fatalf("after 12 h: %d, want 401", st)
			}
		} else if st != want {
			t.Fatalf("busy session at %d min: %d", (i+1)*28, st)
		}
	}

	// Logout ends the session everywhere.
	e.clock.reset()
	vic := e.login(0, "vic")
	if st, body := vic.do(base, "POST", "/console/auth/logout", nil, nil); st != 200 {
		t.Fatalf("logout: %d %s", st, body)
	}
	if st, _ := vic.do(base, "GET", "/console/api/me", nil, nil); st != 401 {
		t.Fatalf("after logout: %d, want 401", st)
	}
	if !e.audit(0).has("vic@example.com", "logout", 200) {
		t.Error("logout not audited")
	}
}

// TestOIDCFlowRefusals: a replayed state, a callback not started in this
// browser, an ID token with another nonce or for another client.
func TestOIDCFlowRefusals(t *testing.T) {
	e := start(t, 1, consoletest.Honest, true)
	base := e.urls[0]

	// Replay: the same callback (with its binding cookie) a second time.
	hc := consoletest.Browser(console.CallbackPath)
	cb, err := consoletest.SignIn(hc, base+"/console/auth/login", "ana", password)
	if err != nil {
		t.Fatal(err)
	}
	var binding *http.Cookie
	bu, _ := url.Parse(base + "/console/auth/")
	for _, c := range hc.Jar.Cookies(bu) {
		if strings.HasPrefix(c.Name, "meridian_login_") {
			binding = c
		}
	}
	if binding == nil {
		t.Fatal("no sign-in binding cookie")
	}
	if resp, body := get(t, noFollow(hc), cb.String()); resp.StatusCode != 302 {
		t.Fatalf("first callback: %d %s", resp.StatusCode, body)
	}
	replay := func(u string, c *http.Cookie) (int, string) {
		req, _ := http.NewRequest("GET", u, nil)
		if c != nil {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := replay(cb.String(), binding); st != 403 || !strings.Contains(body, "already used") {
		t.Fatalf("replayed state: %d %s", st, body)
	}
	// A callback from another browser (no binding cookie).
	hc2 := consoletest.Browser(console.CallbackPath)
	cb2, err := consoletest.SignIn(hc2, base+"/console/auth/login", "ana", password)
	if err != nil {
		t.Fatal(err)
	}
	if st, body := replay(cb2.String(), nil); st != 403 || !strings.Contains(body, "not started in this browser") {
		t.Fatalf("callback without its browser: %d %s", st, body)
	}

	for _, c := range []struct {
		name string
		mode int32
		want string
	}{
		{"nonce", consoletest.SwapNonce, "nonce does not belong to this sign-in"},
		{"audience", consoletest.SwapClient, "audience"},
	} {
		e.idp.SetMode(c.mode)
		_, _, resp, body := e.signIn(0, "ana")
		if resp.StatusCode != 403 || !strings.Contains(body, c.want) || strings.Contains(resp.Header.Get("Set-Cookie"), "meridian_console=") {
			t.Errorf("%s: %d %s, want 403 with %q", c.name, resp.StatusCode, body, c.want)
		}
	}
	e.idp.SetMode(consoletest.Honest)
	if _, _, resp, _ := e.signIn(0, "ana"); resp.StatusCode != 302 {
		t.Fatalf("honest sign-in after the refusals: %d", resp.StatusCode)
	}
	au := e.audit(0)
	refused := 0
	for _, x := range au.Data {
		if x.Action == "login" && x.Status == 403 {
			refused++
		}
	}
	if refused < 4 {
		t.Errorf("%d refused sign-ins audited, want at least 4: %+v", refused, au.Data)
	}

	// Local bootstrap admin.
	local := &session{t: t, hc: consoletest.Browser("")}
	if st, body := local.do(base, "POST", "/console/auth/local", map[string]string{"username": "admin", "password": "wrong-password"}, nil); st != 401 {
		t.Fatalf("wrong password: %d %s", st, body)
	}
	if st, body := local.do(base, "POST", "/console/auth/local", map[string]string{"username": "admin", "password": localPass}, map[string]string{"Origin": "https://evil.example"}); st != 403 {
		t.Fatalf("cross-site local sign-in: %d %s", st, body)
	}
	if st, body := local.do(base, "POST", "/console/auth/local", map[string]string{"username": "admin", "password": localPass}, nil); st != 200 {
		t.Fatalf("local admin: %d %s", st, body)
	}
	local.refresh(base)
	if local.role != "admin" {
		t.Fatalf("local admin role %q", local.role)
	}
	if !e.audit(0).has("local:admin", "login", 401) {
		t.Error("wrong local password not audited")
	}
}

// TestOIDCOtherIssuer: the provider's discovery names this issuer, but
// the tokens come from another one: refused. Outside dev the cookies are
// Secure.
func TestOIDCOtherIssuer(t *testing.T) {
	e := start(t, 1, consoletest.OtherIssuer, false)
	_, _, resp, body := e.signIn(0, "ana")
	if resp.StatusCode != 403 || !strings.Contains(body, "issued by a different provider") {
		t.Fatalf("token from another issuer: %d %s", resp.StatusCode, body)
	}
	local := &session{t: t, hc: consoletest.Browser("")}
	req, _ := http.NewRequest("POST", e.urls[0]+"/console/auth/local", strings.NewReader(`{"username":"admin","password":"`+localPass+`"}`))
	req.Header.Set("Content-Type", "application/json")
	r, err := local.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if sc := r.Header.Get("Set-Cookie"); r.StatusCode != 200 || !strings.Contains(strings.ToLower(sc), "; secure") || !strings.Contains(sc, "HttpOnly") {
		t.Fatalf("production session cookie: %d %q, want Secure and HttpOnly", r.StatusCode, sc)
	}
}

// TestParticipantSSO: a room that requires single sign-on refuses plain
// participant tokens; its meeting link sends participants through the
// provider, and the token minted for them carries their IdP identity and
// passes the room's check.
func TestParticipantSSO(t *testing.T) {
	e := start(t, 1, consoletest.Honest, true)
	base := e.urls[0]
	var room struct {
		RoomID     string `json:"roomId"`
		RequireSSO bool   `json:"requireSSO"`
	}
	r := e.c.Do(0, "POST", "/v2/rooms", e.c.Token(), map[string]any{"customRoomId": "sso-room", "requireSSO": true})
	r.JSON(t, &room)
	if r.Status != 200 || !room.RequireSSO {
		t.Fatalf("create SSO room: %d %s", r.Status, r.Body)
	}
	var link struct{ URL string }
	r = e.c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/meeting-link", e.c.Token(), map[string]any{})
	r.JSON(t, &link)
	if r.Status != 200 || link.URL != base+"/console/auth/meet/"+room.RoomID {
		t.Fatalf("meeting link of an SSO room: %d %s", r.Status, r.Body)
	}
	rtc := func(o *auth.MintOptions) {
		o.Roles, o.Permissions, o.RoomID, o.ParticipantID = []string{auth.RoleRTC}, []string{auth.PermAllowJoin}, room.RoomID, "guest"
	}
	if r := e.c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", e.c.Token(rtc), map[string]any{}); r.Status != 403 || !strings.Contains(string(r.Body), "sso-required") {
		t.Fatalf("plain token joins an SSO room: %d %s", r.Status, r.Body)
	}

	hc := consoletest.Browser(console.CallbackPath)
	cb, err := consoletest.SignIn(hc, link.URL, "vic", password)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, noFollow(hc), cb.String())
	loc, _ := resp.Location()
	if resp.StatusCode != 302 || loc == nil || loc.Path != "/meet/"+room.RoomID {
		t.Fatalf("participant callback: %d %v %s", resp.StatusCode, loc, body)
	}
	tok := loc.Query().Get("token")
	claims := decodeClaims(t, tok)
	if claims.IdP == nil || claims.IdP.Subject != "u-vic" || claims.IdP.Issuer != e.idp.URL || claims.ParticipantID != "vic@example.com" ||
		claims.RoomID != room.RoomID || loc.Query().Get("name") != "Vic Viewer" {
		t.Fatalf("participant token claims %+v idp %+v, name %q", claims, claims.IdP, loc.Query().Get("name"))
	}
	// Past the room's SSO check (this cluster has no media edges: 501).
	if r := e.c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", tok, map[string]any{}); r.Status != 501 {
		t.Fatalf("SSO participant joins: %d %s, want 501 (no edges)", r.Status, r.Body)
	}
	// An e-mail the provider has not verified does not become the
	// participant's id: the subject does.
	hc = consoletest.Browser(console.CallbackPath)
	if cb, err = consoletest.SignIn(hc, link.URL, "uma", password); err != nil {
		t.Fatal(err)
	}
	resp, body = get(t, noFollow(hc), cb.String())
	if loc, _ = resp.Location(); resp.StatusCode != 302 || loc == nil {
		t.Fatalf("participant callback for uma: %d %s", resp.StatusCode, body)
	}
	if claims := decodeClaims(t, loc.Query().Get("token")); claims.ParticipantID != "u-uma" || claims.IdP == nil || claims.IdP.Subject != "u-uma" ||
		loc.Query().Get("name") != "Uma Unverified" {
		t.Fatalf("participant with an unverified e-mail: id %q idp %+v name %q", claims.ParticipantID, claims.IdP, loc.Query().Get("name"))
	}

	// A room without SSO has no participant sign-in.
	var open struct {
		RoomID string `json:"roomId"`
	}
	r = e.c.Do(0, "POST", "/v2/rooms", e.c.Token(), map[string]any{})
	if r.JSON(t, &open); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if resp, body := get(t, noFollow(consoletest.Browser("")), base+"/console/auth/meet/"+open.RoomID); resp.StatusCode != 400 || !strings.Contains(body, "does not use single sign-on") {
		t.Fatalf("participant sign-in for an open room: %d %s", resp.StatusCode, body)
	}
}

func decodeClaims(t *testing.T, tok string) auth.Claims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c auth.Claims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSignInFloodWritesNothing: starting a sign-in needs no credentials,
// so it must not write to Raft. 20,000 starts spread over the nodes leave
// the replicated state as it was, and neither a sign-in started before
// them nor one started after them is refused.
func TestSignInFloodWritesNothing(t *testing.T) {
	e := start(t, 3, consoletest.Honest, true)
	e.c.WaitReady()

	// A real user starts signing in on node0 and is sent to the provider.
	early := consoletest.Browser(console.CallbackPath)
	resp, err := noFollow(early).Get(e.urls[0] + "/console/auth/login?return=/console/rooms")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	toIdP, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("start: %d %v", resp.StatusCode, err)
	}

	applied := func() (idx []uint64, pending int) {
		for _, n := range e.c.Nodes() {
			f := n.Node().FSM()
			idx = append(idx, f.AppliedIndex())
			f.Read(func(s *state.Store) { pending += s.LoginAttemptCount() + s.UsedLoginStateCount() })
		}
		return idx, pending
	}
	before, _ := applied()
	termBefore := e.c.Node(0).Node().Stats()["term"]

	const starts = 20000
	var refused atomic.Int64
	var next atomic.Int64
	flood := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	done := make(chan struct{})
	for w := 0; w < 8; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := next.Add(1); i <= starts; i = next.Add(1) {
				r, err := flood.Get(e.urls[int(i)%len(e.urls)] + "/console/auth/login")
				if err != nil {
					refused.Add(1)
					continue
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
				if r.StatusCode != http.StatusFound || !strings.Contains(r.Header.Get("Set-Cookie"), "meridian_login_") {
					refused.Add(1)
				}
			}
		}()
	}
	for w := 0; w < 8; w++ {
		<-done
	}
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d of %d sign-in starts refused", n, starts)
	}
	after, pending := applied()
	t.Logf("Raft entries applied during %d starts: before %v after %v; term %s -> %s", starts, before, after, termBefore, e.c.Node(0).Node().Stats()["term"])
	for i := range before {
		// Nothing proportional to the starts (a Raft record per start
		// would be 20,000 entries). The nodes' own writes are not zero: on
		// a loaded machine the flood can cost the leader a heartbeat, and
		// each election writes a few leadership entries (seen: 15 over eight
		// elections, the term is logged).
		if d := after[i] - before[i]; d > 200 {
			t.Errorf("node%d applied %d Raft entries during %d sign-in starts", i, d, starts)
		}
	}
	if pending != 0 {
		t.Errorf("%d sign-in records in the replicated state after the starts, want 0", pending)
	}

	// The early user finishes.
	cb, err := consoletest.SignIn(early, toIdP.String(), "ana", password)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, noFollow(early), cb.String())
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/console/rooms" {
		t.Fatalf("sign-in started before the flood: %d %s", resp.StatusCode, body)
	}
	s := &session{t: t, hc: early}
	s.refresh(e.urls[1])
	if s.role != "admin" {
		t.Fatalf("role %q", s.role)
	}
	// And one started after it.
	if late := e.login(2, "olga"); late.role != "operator" {
		t.Fatalf("late sign-in role %q", late.role)
	}
	// A sign-in cookie the browser altered opens nowhere: refused.
	hc := consoletest.Browser(console.CallbackPath)
	cb, err = consoletest.SignIn(hc, e.urls[0]+"/console/auth/login", "vic", password)
	if err != nil {
		t.Fatal(err)
	}
	authURL, _ := url.Parse(e.urls[0] + "/console/auth/")
	var forged []*http.Cookie
	for _, c := range hc.Jar.Cookies(authURL) {
		if strings.HasPrefix(c.Name, "meridian_login_") {
			v := []byte(c.Value)
			v[len(v)/2] ^= 1 // one character changed
			forged = append(forged, &http.Cookie{Name: c.Name, Value: string(v)})
		}
	}
	if len(forged) != 1 {
		t.Fatalf("%d sign-in cookies, want 1", len(forged))
	}
	req, _ := http.NewRequest("GET", cb.String(), nil)
	req.AddCookie(forged[0])
	if r, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if b, _ := io.ReadAll(r.Body); r.StatusCode != 403 || !strings.Contains(string(b), "not started in this browser") {
		t.Fatalf("altered sign-in cookie: %d %s", r.StatusCode, b)
	} else {
		r.Body.Close()
	}
	// One browser keeps a bounded number of sign-in cookies (all of them
	// come with every callback).
	many := consoletest.Browser(console.CallbackPath)
	for range 7 {
		if r, err := noFollow(many).Get(e.urls[0] + "/console/auth/login"); err != nil || r.StatusCode != http.StatusFound {
			t.Fatalf("start: %v %v", r, err)
		} else {
			r.Body.Close()
		}
	}
	if n := len(many.Jar.Cookies(authURL)); n != 4 {
		t.Errorf("a browser that started 7 sign-ins holds %d sign-in cookies, want 4", n)
	}
	// Completing sign-ins wrote their used states, replicated.
	clustertest.Eventually(t, 10*time.Second, func() string {
		if _, p := applied(); p != 2*len(e.urls) {
			return fmt.Sprintf("%d used states over the nodes, want %d", p, 2*len(e.urls))
		}
		return ""
	})
}

// TestAnonymousSignInRefusalsAreBounded: a callback that names nobody (no
// sign-in cookie, a made-up code) needs no credentials; past a small
// per-address burst such refusals are counted, not written to the audit
// log (each would be a Raft write pushing real entries out of it). A
// refusal the provider vouched for (a user without a role) is still
// audited.
func TestAnonymousSignInRefusalsAreBounded(t *testing.T) {
	e := start(t, 1, consoletest.Honest, true)
	e.c.WaitReady()
	refusedLogins := func() int {
		n := 0
		for _, x := range e.audit(0).Data {
			if x.Action == "login" && x.Status >= 400 {
				n++
			}
		}
		return n
	}
	before := refusedLogins()
	for i := range 200 {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s%s?state=s%d&code=c%d", e.urls[0], console.CallbackPath, i, i), nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 403 || !strings.Contains(string(b), "not started in this browser") {
			t.Fatalf("anonymous callback %d: %d %s", i, r.StatusCode, b)
		}
	}
	if n := refusedLogins() - before; n < 1 || n > 20 {
		t.Errorf("%d of 200 anonymous sign-in refusals audited, want between 1 and the burst of 20", n)
	}
	// nora has no console role: refused after the provider named her,
	// audited whatever the address did before.
	if _, _, resp, body := e.signIn(0, "nora"); resp.StatusCode != 403 || !strings.Contains(body, "no Meridian console role") {
		t.Fatalf("nora: %d %s", resp.StatusCode, body)
	}
	if !e.audit(0).has("nora@example.com", "login", 403) {
		t.Error("a refusal naming a user was not audited after the anonymous ones")
	}
}
