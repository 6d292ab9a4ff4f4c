package webhooks

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Dispatcher. Start from DefaultConfig.
type Config struct {
	// Workers bounds concurrent deliveries (across ordering keys). Default 8.
	Workers int
	// PollInterval is the longest wait between two outbox scans. Call
	// Dispatcher.Notify after enqueueing to scan sooner. Default 1 s.
	PollInterval time.Duration
	// MinScanInterval is the shortest gap between two scans (scans are
	// triggered by Notify and finished workers too). Default 50 ms.
	MinScanInterval time.Duration
	// ScanPage is the page size passed to Outbox.Pending. Default 512.
	ScanPage int
	// ChainLength is how many consecutive ready deliveries of one ordering
	// key a worker sends before giving its slot back. Default 32.
	ChainLength int

	// AttemptTimeout bounds one attempt: connect, TLS, request, response
	// headers and reading the (capped) body. Default 10 s.
	AttemptTimeout time.Duration
	// MaxResponseBytes is how much of a response body is read (and then
	// discarded; a short prefix of an error body goes into LastError).
	// Default 64 KiB.
	MaxResponseBytes int64
	// MaxRedirects is how many 307/308 redirects are followed. Default 3.
	MaxRedirects int

	// MinBackoff and MaxBackoff bound the retry delay: attempt n waits a
	// uniformly random duration in [MinBackoff, min(MaxBackoff,
	// MinBackoff·2ⁿ)] ("full jitter"), or what Retry-After asks, clamped to
	// [MinBackoff, MaxBackoff]. Defaults 5 s and 10 min.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxAge is how long a delivery is retried before it fails. Default 24 h.
	MaxAge time.Duration

	// AllowHTTP admits plain http:// targets anywhere. Off by default:
	// HTTPS is required.
	AllowHTTP bool
	// AllowHTTPLocalhost admits http:// targets on localhost and loopback
	// addresses only, and admits loopback destinations (dev mode).
	AllowHTTPLocalhost bool
	// AllowedNets lists otherwise restricted destination ranges that may be
	// reached anyway (for example 10.0.0.0/8 for an internal receiver, or
	// 127.0.0.0/8 in tests). By default loopback, private, link-local,
	// CGNAT, multicast, unspecified and reserved addresses are refused.
	AllowedNets []netip.Prefix
	// AllowedHosts lists receiver host names (exact, or "*.example.internal"
	// for a domain's subdomains) that may resolve to private addresses: an
	// on-premises CRM at crm.corp.internal → 10.20.0.5. Other names that
	// resolve to restricted addresses stay refused at every dial, so DNS
	// rebinding outside the list is still blocked. Loopback, link-local,
	// multicast and unspecified addresses are refused even for these
	// (only AllowedNets can open them).
	AllowedHosts []string
	// SourceAddrs are local addresses deliveries are sent from, so receivers
	// can allowlist them. Empty = the system's choice. With addresses of
	// both families, IPv4 destinations use the IPv4 ones and IPv6 the IPv6
	// ones; several of one family are used in turn.
	SourceAddrs []netip.Addr
	// Resolver looks receiver names up; nil = the system resolver.
	Resolver *net.Resolver
	// RootCAs verifies receivers' certificates; nil = the system pool.
	RootCAs *x509.CertPool
	// UserAgent is sent on every delivery.
	UserAgent string

	// Now is the clock for attempt timestamps, webhook-timestamp and retry
	// scheduling. Default time.Now.
	Now func() time.Time
	// Rand returns a uniform float64 in [0, 1) for backoff jitter. It must
	// be safe for concurrent use. Default math/rand/v2.Float64.
	Rand func() float64
	// Logger receives delivery logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the dispatcher's metrics. nil = not registered.
	Registerer prometheus.Registerer
}

// DefaultConfig returns the production defaults: HTTPS only, restricted
// destinations refused.
func DefaultConfig() Config {
	return Config{
		Workers:          8,
		PollInterval:     time.Second,
		MinScanInterval:  50 * time.Millisecond,
		ScanPage:         512,
		ChainLength:      32,
		AttemptTimeout:   10 * time.Second,
		MaxResponseBytes: 64 << 10,
		MaxRedirects:     3,
		MinBackoff:       5 * time.Second,
		MaxBackoff:       10 * time.Minute,
		MaxAge:           24 * time.Hour,
		UserAgent:        "Meridian-Webhooks/1.0",
		Now:              time.Now,
		Rand:             rand.Float64,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// Validate reports the first invalid field by name.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: Config.%s %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Workers < 1 || c.Workers > 1024:
		return bad("Workers", "must be in [1, 1024], got %d", c.Workers)
	case c.PollInterval <= 0:
		return bad("PollInterval", "must be positive")
	case c.MinScanInterval <= 0 || c.MinScanInterval > c.PollInterval:
		return bad("MinScanInterval", "must be positive and at most PollInterval")
	case c.ScanPage < 1:
		return bad("ScanPage", "must be at least 1")
	case c.ChainLength < 1:
		return bad("ChainLength", "must be at least 1")
	case c.AttemptTimeout <= 0:
		return bad("AttemptTimeout", "must be positive")
	case c.MaxResponseBytes < 0:
		return bad("MaxResponseBytes", "must not be negative")
	case c.MaxRedirects < 0 || c.MaxRedirects > 10:
		return bad("MaxRedirects", "must be in [0, 10], got %d", c.MaxRedirects)
	case c.MinBackoff <= 0:
		return bad("MinBackoff", "must be positive")
	case c.MaxBackoff < c.MinBackoff:
		return bad("MaxBackoff", "must be at least MinBackoff")
	case c.MaxAge < c.MinBackoff:
		return bad("MaxAge", "must be at least MinBackoff")
	case c.Now == nil:
		return bad("Now", "must be set")
	case c.Rand == nil:
		return bad("Rand", "must be set")
	case c.Logger == nil:
		return bad("Logger", "must be set")
	}
	for i, p := range c.AllowedNets {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return bad(fmt.Sprintf("AllowedNets[%d]", i), "is not a valid IPv4 or IPv6 prefix: %v", p)
		}
	}
	for i, h := range c.AllowedHosts {
		if !validHostPattern(h) {
			return bad(fmt.Sprintf("AllowedHosts[%d]", i), "is not a host name or *.domain pattern: %q", h)
		}
	}
	for i, a := range c.SourceAddrs {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return bad(fmt.Sprintf("SourceAddrs[%d]", i), "is not a usable unicast address: %v", a)
		}
	}
	return nil
}

// CheckURL reports whether raw is an acceptable delivery target under this
// configuration, without network access: a parseable http(s) URL with a host,
// https unless plain http is allowed, and not an IP literal or localhost name
// in a refused range. The API uses it to reject bad webhook URLs up front;
// the dispatcher applies it again to every attempt and redirect, and the
// dialer checks the resolved address (so DNS names that resolve to refused
// ranges are caught too).
func (c *Config) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: %q has no host", ErrInvalidURL, raw)
	}
	if err := checkPort(u); err != nil {
		return err
	}
	localName := isLocalhostName(host)
	ip, ipErr := netip.ParseAddr(host)
	trusted := ipErr != nil && c.hostAllowed(host)
	if ipErr != nil && !localName && !trusted && !publicHostName(host) {
		// 2130706433, 0x7f000001 and 127.1 are IPv4 addresses to some
		// resolvers and nothing at all to others: refuse them up front
		// instead of retrying "no such host" for a day.
		return fmt.Errorf("%w: host %q is neither an IP address nor a domain name", ErrInvalidURL, host)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		loopback := localName || (ipErr == nil && ip.Unmap().IsLoopback())
		if !c.AllowHTTP && !(c.AllowHTTPLocalhost && loopback) {
			return fmt.Errorf("%w: %s (an operator allows plain http with --webhook-allow-http)", ErrInsecureURL, u.Redacted())
		}
	default:
		return fmt.Errorf("%w: scheme %q, want https", ErrInvalidURL, u.Scheme)
	}
	if localName {
		ip, ipErr = netip.IPv6Loopback(), nil
	}
	if ipErr == nil && !c.destinationAllowed(ip) {
		return fmt.Errorf("%w: %s is %s", ErrDestinationRefused, host, describeAddr(ip))
	}
	return nil
}

// CheckNewURL is CheckURL for a target being configured (a room's endpoint,
// a job's webhookUrl, the operator's --webhook): it also refuses user info
// ("user:password@"), which would be shown wherever the URL is (the room,
// the delivery log of everyone who may read it). Receivers authenticate
// deliveries by their signatures, or a token in the URL's path or query.
// Targets stored before this rule keep being delivered to (the HTTP client
// sends user info as Basic authentication), so CheckURL allows it.
func (c *Config) CheckNewURL(raw string) error {
	if err := c.CheckURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw) // CheckURL parsed it
	if u.User != nil {
		return fmt.Errorf("%w: user info (%q) is not allowed in a webhook URL: it would be shown wherever the URL is; "+
			"verify the webhook signature, or put a token in the path or query", ErrInvalidURL, userinfoShape(u.User))
	}
	return nil
}

// userinfoShape names the user info without its password.
func userinfoShape(ui *url.Userinfo) string {
	if _, ok := ui.Password(); ok {
		return "user:password@"
	}
	return "user@"
}

// checkPort refuses a port no connection can be made to: url.Parse accepts
// any run of digits (99999, 0), the dialer then fails on every attempt.
func checkPort(u *url.URL) error {
	p := u.Port()
	if p == "" {
		return nil // the scheme's
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%w: port %s is not a TCP port (1-65535)", ErrInvalidURL, truncate(p, 16))
	}
	return nil
}

// hostAllowed reports whether a host name is on the operator's list of
// receivers that may live on private addresses.
func (c *Config) hostAllowed(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, p := range c.AllowedHosts {
		p = strings.ToLower(p)
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(h, "."+suffix) {
				return true
			}
		} else if h == p {
			return true
		}
	}
	return false
}

// publicHostName: a DNS name with a dot whose last label is not a number
// (RFC 1123 labels; a numeric "TLD" is an address in disguise: inet_aton
// and the WHATWG URL parser read 127.0.0.0x1 as 127.0.0.1).
func publicHostName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	labels := strings.Split(h, ".")
	if len(labels) < 2 || len(h) > 253 {
		return false
	}
	for _, l := range labels {
		if !dnsLabel(l) {
			return false
		}
	}
	return !numberLabel(labels[len(labels)-1])
}

// numberLabel: a label an IPv4 parser takes for a number — decimal or
// octal digits, or 0x followed by hex digits (or nothing), as the WHATWG
// URL standard's "ends in a number" check reads it.
func numberLabel(l string) bool {
	digits, isDigit := l, func(r rune) bool { return r >= '0' && r <= '9' }
	if rest, ok := strings.CutPrefix(l, "0x"); ok {
		digits = rest
		isDigit = func(r rune) bool { return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' }
		if digits == "" {
			return true
		}
	}
	return strings.IndexFunc(digits, func(r rune) bool { return !isDigit(r) }) < 0
}

func dnsLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validHostPattern(p string) bool {
	p = strings.ToLower(strings.TrimPrefix(p, "*."))
	if p == "" || len(p) > 253 {
		return false
	}
	for _, l := range strings.Split(p, ".") {
		if !dnsLabel(l) {
			return false
		}
	}
	return true
}

// trustedDestination is the policy for a listed host: private and CGNAT
// ranges are fine, loopback and the like are not.
func (c *Config) trustedDestination(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if c.destinationAllowed(ip) {
		return true
	}
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsMulticast()
}

func isLocalhostName(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// destinationAllowed is the SSRF policy for one resolved address.
func (c *Config) destinationAllowed(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	for _, p := range c.AllowedNets {
		if p.Contains(ip) {
			return true
		}
	}
	if c.AllowHTTPLocalhost && ip.IsLoopback() {
		return true
	}
	return !restrictedAddr(ip)
}

// restrictedRanges are refused on top of what netip classifies (loopback,
// private, link-local, multicast, unspecified). Read-only.
var restrictedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT, often internal
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: may embed internal IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo: embeds IPv4
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds IPv4
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

func restrictedAddr(ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() {
		return true
	}
	for _, p := range restrictedRanges {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func describeAddr(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate():
		return "a private address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.IsUnspecified():
		return "an unspecified address"
	default:
		return "a reserved address"
	}
}
