package web

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func newApp(t *testing.T, prefix string, cfg Config) *fiber.App {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	if prefix == "" {
		Register(app, cfg)
	} else {
		Register(app.Group(prefix), cfg)
	}
	return app
}

type result struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, app *fiber.App, target string, hdr ...string) result {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func TestMeetingPage(t *testing.T) {
	app := newApp(t, "", Config{})
	r := get(t, app, "/meet/abc-defg-hij?token=x.y.z&name=Alice")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("content-type %q", ct)
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"frame-ancestors *", "script-src 'self'", "style-src 'self'", "default-src 'none'",
		"media-src 'self' blob: mediastream:", "connect-src 'self' https: wss: http: ws:", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	if xfo := r.header.Get("X-Frame-Options"); xfo != "" {
		t.Errorf("X-Frame-Options %q set: it would break iframe embedding", xfo)
	}
	if rp := r.header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q, want no-referrer (the URL carries a token)", rp)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	for _, want := range []string{
		`<meta name="meridian-room-id" content="abc-defg-hij">`,
		`<meta name="meridian-api-base" content="">`,
		`href="/meet/assets/meet.css"`,
		`<script type="module" src="/meet/assets/meet.js"></script>`,
		`id="btn-leave"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(r.body, "x.y.z") {
		t.Error("the token was rendered into the page")
	}
}

func TestMeetingPageConfig(t *testing.T) {
	app := newApp(t, "", Config{
		APIBase:        "https://api.example.com/",
		FrameAncestors: []string{"'self'", "https://crm.example.com", "https://*.example.org"},
		ConnectSources: []string{"wss://edge-1.example.com"},
	})
	r := get(t, app, "/meet/room-1")
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self' https://crm.example.com https://*.example.org") {
		t.Errorf("frame-ancestors not from config: %q", csp)
	}
	if !strings.Contains(csp, "connect-src 'self' https://api.example.com wss://edge-1.example.com;") {
		t.Errorf("connect-src not from config: %q", csp)
	}
	if !strings.Contains(r.body, `<meta name="meridian-api-base" content="https://api.example.com">`) {
		t.Errorf("api base not rendered (trailing slash trimmed)")
	}
}

func TestMeetingPageBadRoomID(t *testing.T) {
	app := newApp(t, "", Config{})
	for _, id := range []string{"ab", "ABC-DEF", "abc_def", "abc.def", strings.Repeat("a", 65), "%3Cscript%3E", "abc%2Fdef", "abc%20def"} {
		r := get(t, app, "/meet/"+id)
		if r.status != 400 {
			t.Errorf("/meet/%s: status %d, want 400", id, r.status)
			continue
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("/meet/%s: content-type %q", id, ct)
		}
		if !strings.Contains(r.body, "invalid room id") {
			t.Errorf("/meet/%s: body %q", id, r.body)
		}
	}
	for _, id := range []string{"abc", "abc-defg-hij", strings.Repeat("a", 64), "0-0"} {
		if r := get(t, app, "/meet/"+id); r.status != 200 {
			t.Errorf("/meet/%s: status %d, want 200", id, r.status)
		}
	}
}

func TestAssetsAndSDK(t *testing.T) {
	app := newApp(t, "", Config{})
	cases := []struct {
		path, ctype, contains string
	}{
		{"/meet/assets/meet.css", "text/css", ".tile"},
		{"/meet/assets/meet.js", "text/javascript", "import Meridian from '../../sdk/meridian.js'"},
		{"/sdk/meridian.js", "text/javascript", "export class Room"},
	}
	for _, c := range cases {
		r := get(t, app, c.path)
		if r.status != 200 {
			t.Errorf("%s: status %d", c.path, r.status)
			continue
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, c.ctype) {
			t.Errorf("%s: content-type %q, want %s", c.path, ct, c.ctype)
		}
		if !strings.Contains(r.body, c.contains) {
			t.Errorf("%s lacks %q", c.path, c.contains)
		}
		etag := r.header.Get("ETag")
		if etag == "" {
			t.Errorf("%s: no ETag", c.path)
			continue
		}
		if r2 := get(t, app, c.path, "If-None-Match", etag); r2.status != 304 {
			t.Errorf("%s with If-None-Match: status %d, want 304", c.path, r2.status)
		}
	}
	if r := get(t, app, "/sdk/meridian.js"); r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("the SDK must be importable from other origins (Access-Control-Allow-Origin: *)")
	}
	for _, p := range []string{"/meet/assets/nope.js", "/meet/assets/../web.go", "/meet/assets/"} {
		if r := get(t, app, p); r.status != 404 {
			t.Errorf("%s: status %d, want 404", p, r.status)
		}
	}
}

var refRe = regexp.MustCompile(`(?:src|href)="([^"]+)"|from '([^']+)'`)

// TestReferencesResolve follows the page's stylesheet/script and the
// script's SDK import from the rendered URLs, under a mount prefix too.
func TestReferencesResolve(t *testing.T) {
	for _, prefix := range []string{"", "/video"} {
		app := newApp(t, prefix, Config{})
		pageURL, _ := url.Parse("http://x" + prefix + "/meet/abc-defg-hij?token=t")
		page := get(t, app, pageURL.RequestURI())
		if page.status != 200 {
			t.Fatalf("%s: page status %d", prefix, page.status)
		}
		seen := 0
		var follow func(base *url.URL, body string, depth int)
		follow = func(base *url.URL, body string, depth int) {
			for _, m := range refRe.FindAllStringSubmatch(body, -1) {
				ref := m[1] + m[2]
				if strings.HasPrefix(ref, "data:") {
					continue // inline (the empty favicon)
				}
				u, err := base.Parse(ref)
				if err != nil || u.Host != "x" {
					t.Errorf("%s: reference %q is not same-origin", prefix, ref)
					continue
				}
				r := get(t, app, u.RequestURI())
				if r.status != 200 {
					t.Errorf("%s: %q (from %s) → %s: status %d", prefix, ref, base.Path, u.Path, r.status)
					continue
				}
				seen++
				// The SDK is dependency-free (TestSelfContained); its header
				// comment shows import examples, not imports.
				if depth < 2 && strings.HasSuffix(u.Path, ".js") && !strings.HasSuffix(u.Path, "/sdk/meridian.js") {
					follow(u, r.body, depth+1)
				}
			}
		}
		follow(pageURL, page.body, 0)
		if seen < 3 {
			t.Errorf("%s: followed %d references, want page css, page js and the SDK", prefix, seen)
		}
	}
}

// TestSelfContained: nothing is loaded from another origin at runtime.
func TestSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(?:src|href)\s*=\s*["']?(?:https?:)?//|@import|url\(\s*['"]?(?:https?:)?//|from\s+['"](?:https?:)?//|import\(\s*['"](?:https?:)?//`)
	for _, name := range []string{"meet/index.html", "meet/meet.css", "meet/meet.js", "sdk/meridian.js"} {
		b, err := files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if loc := external.FindIndex(b); loc != nil {
			t.Errorf("%s loads something from elsewhere: %q", name, b[loc[0]:min(loc[1]+40, len(b))])
		}
		if name == "sdk/meridian.js" && regexp.MustCompile(`(?m)^\s*import[\s({'"]`).Match(b) {
			t.Errorf("the SDK must not import anything")
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := []Config{{}, {APIBase: "http://127.0.0.1:8080"}, {FrameAncestors: []string{"*"}}, {FrameAncestors: []string{"'none'"}},
		{FrameAncestors: []string{"https://a.example.com:8443", "'self'"}}, {ConnectSources: []string{"wss:", "https://*.example.com"}}}
	for _, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := []Config{{APIBase: "ftp://x"}, {APIBase: "example.com"}, {APIBase: "https://x/?a=1"},
		{FrameAncestors: []string{"https://a.example.com; script-src *"}}, {FrameAncestors: []string{""}},
		{FrameAncestors: []string{"a b"}}, {FrameAncestors: []string{"'unsafe-inline'"}}, {ConnectSources: []string{"x,y"}}}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: err %v, want ErrBadConfig", c, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Register accepted an invalid config")
		}
	}()
	Register(fiber.New(), Config{FrameAncestors: []string{"x; y"}})
}
