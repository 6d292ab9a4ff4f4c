// Package web serves Meridian's meeting page and browser SDK from files
// embedded in the binary:
//
//	GET /meet/:roomId      the meeting page (?token=JWT&name=Alice[&relay=1][&region=eu-west])
//	GET /meet/assets/*     its stylesheet and script
//	GET /sdk/meridian.js   the JS SDK (an ES module that also sets window.Meridian)
//
// The page is self-contained (no CDN, no external fonts) and may be embedded
// in an iframe by the origins listed in Config.FrameAncestors.
// docs/web-sdk.md documents the integration styles.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
)

//go:embed meet/index.html meet/meet.css meet/meet.js sdk/meridian.js
var files embed.FS

// Config configures the routes. The zero value is valid.
type Config struct {
	// APIBase is the origin of the REST API the page calls
	// (e.g. "https://api.example.com"); empty means the page's own origin.
	APIBase string
	// FrameAncestors lists who may embed the page in an iframe, as CSP
	// frame-ancestors sources ("https://crm.example.com", "'self'", "*").
	// Empty means "*" (anyone).
	FrameAncestors []string
	// ConnectSources restricts where the page may open connections (CSP
	// connect-src) besides its own origin and APIBase, e.g. the edges'
	// "wss://edge-1.example.com". Empty allows any http(s)/ws(s) URL,
	// because edges are chosen at join time.
	ConnectSources []string
}

// DefaultConfig returns the zero Config: same-origin API, embeddable anywhere.
func DefaultConfig() Config { return Config{} }

var (
	// ErrBadConfig is returned by Config.Validate.
	ErrBadConfig = errors.New("web: invalid config")

	roomIDRe = regexp.MustCompile(`^[a-z0-9-]{3,64}$`)
)

// Validate reports a malformed APIBase or CSP source.
func (c Config) Validate() error {
	if c.APIBase != "" {
		u, err := url.Parse(c.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%w: APIBase %q must be an http(s) URL", ErrBadConfig, c.APIBase)
		}
	}
	for _, s := range c.FrameAncestors {
		if !validSource(strings.TrimSpace(s)) {
			return fmt.Errorf("%w: FrameAncestors entry %q is not a CSP source", ErrBadConfig, s)
		}
	}
	for _, s := range c.ConnectSources {
		if !validSource(strings.TrimSpace(s)) {
			return fmt.Errorf("%w: ConnectSources entry %q is not a CSP source", ErrBadConfig, s)
		}
	}
	return nil
}

// validSource accepts one CSP source expression ('self', 'none', a scheme
// or a host source) and nothing that could end the directive or add one.
func validSource(s string) bool {
	if s == "'self'" || s == "'none'" {
		return true
	}
	return s != "" && !strings.ContainsAny(s, " \t\r\n;,'\"")
}

// origin returns scheme://host of an absolute URL.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// contentSecurityPolicy is the page's CSP: its own scripts and styles only.
func (c Config) contentSecurityPolicy() string {
	ancestors := "*"
	if len(c.FrameAncestors) > 0 {
		list := make([]string, 0, len(c.FrameAncestors))
		for _, s := range c.FrameAncestors {
			list = append(list, strings.TrimSpace(s))
		}
		ancestors = strings.Join(list, " ")
	}
	connect := []string{"'self'"}
	if o := origin(c.APIBase); o != "" {
		connect = append(connect, o)
	}
	if len(c.ConnectSources) > 0 {
		for _, s := range c.ConnectSources {
			connect = append(connect, strings.TrimSpace(s))
		}
	} else {
		connect = append(connect, "https:", "wss:", "http:", "ws:")
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data: blob:",
		"media-src 'self' blob: mediastream:",
		"connect-src " + strings.Join(connect, " "),
		"base-uri 'none'",
		"form-action 'none'",
		"object-src 'none'",
		"frame-ancestors " + ancestors,
	}, "; ")
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

func load(name, contentType string) asset {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("web: missing embedded file " + name) // a build error, not a runtime one
	}
	return newAsset(b, contentType)
}

func newAsset(b []byte, contentType string) asset {
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

var (
	pageTemplate = template.Must(template.ParseFS(files, "meet/index.html"))
	meetAssets   = map[string]asset{
		"meet.css": load("meet/meet.css", "text/css; charset=utf-8"),
		"meet.js":  load("meet/meet.js", "text/javascript; charset=utf-8"),
	}
	sdkAsset = load("sdk/meridian.js", "text/javascript; charset=utf-8")
)

type pageData struct {
	RoomID    string
	APIBase   string
	AssetBase string
}

// Register mounts the page, its assets and the SDK on r. It panics on an
// invalid cfg (call cfg.Validate first when cfg comes from user input).
func Register(r fiber.Router, cfg Config) {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg.APIBase = strings.TrimRight(cfg.APIBase, "/")
	csp := cfg.contentSecurityPolicy()

	r.Get("/meet/assets/*", func(c *fiber.Ctx) error {
		a, ok := meetAssets[c.Params("*")]
		if !ok {
			return c.Status(fiber.StatusNotFound).SendString("not found")
		}
		return serveAsset(c, a)
	})
	r.Get("/sdk/meridian.js", func(c *fiber.Ctx) error {
		// Other origins may import the SDK as a module script (needs CORS).
		c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
		c.Set("Cross-Origin-Resource-Policy", "cross-origin")
		return serveAsset(c, sdkAsset)
	})
	r.Get("/meet/:roomId", func(c *fiber.Ctx) error {
		roomID := c.Params("roomId")
		if !roomIDRe.MatchString(roomID) {
			c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
			return c.Status(fiber.StatusBadRequest).SendString("invalid room id: expected 3-64 characters of a-z, 0-9 and -\n")
		}
		// Assets sit next to this route, wherever the router is mounted.
		base := strings.TrimSuffix(c.Route().Path, ":roomId") + "assets/"
		var buf bytes.Buffer
		if err := pageTemplate.Execute(&buf, pageData{RoomID: roomID, APIBase: cfg.APIBase, AssetBase: base}); err != nil {
			return err
		}
		c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
		c.Set(fiber.HeaderContentSecurityPolicy, csp)
		c.Set(fiber.HeaderReferrerPolicy, "no-referrer") // the URL carries a token
		c.Set(fiber.HeaderCacheControl, "no-store")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		return c.Send(buf.Bytes())
	})
}

func serveAsset(c *fiber.Ctx, a asset) error {
	c.Set(fiber.HeaderContentType, a.contentType)
	c.Set(fiber.HeaderETag, a.etag)
	c.Set(fiber.HeaderCacheControl, "no-cache") // revalidate: a new binary ships new files
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, a.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(a.body)
}
