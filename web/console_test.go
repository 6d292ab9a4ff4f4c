package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func TestConsolePages(t *testing.T) {
	app := fiber.New()
	app.Get("/console/api/me", func(c *fiber.Ctx) error { return c.SendString("me") })
	RegisterConsole(app)
	get := func(path string) (int, string, map[string]string) {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), map[string]string{"csp": resp.Header.Get("Content-Security-Policy"), "type": resp.Header.Get("Content-Type")}
	}
	for _, p := range []string{"/console", "/console/", "/console/rooms", "/console/sessions/abc"} {
		st, body, h := get(p)
		if st != 200 || !strings.Contains(body, `<script src="/console/assets/console.js"`) || !strings.HasPrefix(h["type"], "text/html") {
			t.Fatalf("%s: %d %q %v", p, st, body[:min(len(body), 80)], h)
		}
		// Own scripts only, own origin only, never framed.
		for _, want := range []string{"script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(h["csp"], want) {
				t.Fatalf("%s: CSP %q lacks %q", p, h["csp"], want)
			}
		}
	}
	if st, body, _ := get("/console/api/me"); st != 200 || body != "me" {
		t.Fatalf("the page route swallowed /console/api: %d %q", st, body)
	}
	// An unknown API or sign-in path is not the page (a JSON client would
	// get HTML with a 200).
	for _, p := range []string{"/console/api/nope", "/console/auth/nope"} {
		if st, body, _ := get(p); st != 404 || strings.Contains(body, "<html") {
			t.Fatalf("%s: %d %q", p, st, body[:min(len(body), 80)])
		}
	}
	st, body, h := get("/console/assets/uPlot.iife.min.js")
	if st != 200 || !strings.Contains(body, "uPlot") || !strings.HasPrefix(h["type"], "text/javascript") {
		t.Fatalf("uPlot: %d %v", st, h)
	}
	if st, _, _ := get("/console/assets/nope.js"); st != 404 {
		t.Fatalf("unknown asset: %d", st)
	}
}
