package web

import (
	"embed"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The operator console's pages (control/console serves sign-in and the
// session; the pages call the REST API with the session cookie). uPlot is
// vendored under console/vendor (see its README.md).
//
//go:embed console/index.html console/console.css console/console.js console/vendor/uPlot.iife.min.js console/vendor/uPlot.min.css
var consoleFiles embed.FS

func loadConsole(name, contentType string) asset {
	b, err := consoleFiles.ReadFile(name)
	if err != nil {
		panic("web: missing embedded file " + name)
	}
	return newAsset(b, contentType)
}

var (
	consolePage   = loadConsole("console/index.html", "text/html; charset=utf-8")
	consoleAssets = map[string]asset{
		"console.css":       loadConsole("console/console.css", "text/css; charset=utf-8"),
		"console.js":        loadConsole("console/console.js", "text/javascript; charset=utf-8"),
		"uPlot.iife.min.js": loadConsole("console/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
		"uPlot.min.css":     loadConsole("console/vendor/uPlot.min.css", "text/css; charset=utf-8"),
	}
)

// consoleCSP: the console's own scripts and styles, its own origin only,
// never framed (it acts with an operator's authority).
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'"

// RegisterConsole mounts the console's pages: /console/assets/* and the
// single page for /console and every /console/<section> path (the page
// routes on its own). Sign-in (/console/auth/*) and the session's API
// (/console/api/*) must be mounted before it.
func RegisterConsole(r fiber.Router) {
	r.Get("/console/assets/*", func(c *fiber.Ctx) error {
		a, ok := consoleAssets[c.Params("*")]
		if !ok {
			return c.Status(fiber.StatusNotFound).SendString("not found")
		}
		return serveAsset(c, a)
	})
	page := func(c *fiber.Ctx) error {
		p := c.Path()
		if strings.HasPrefix(p, "/console/api/") || strings.HasPrefix(p, "/console/auth/") {
			return c.Next()
		}
		c.Set(fiber.HeaderContentSecurityPolicy, consoleCSP)
		c.Set(fiber.HeaderReferrerPolicy, "same-origin")
		c.Set("X-Frame-Options", "DENY")
		return serveAsset(c, consolePage)
	}
	r.Get("/console", page)
	r.Get("/console/*", page)
}
