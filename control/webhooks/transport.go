package webhooks

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// dialer opens delivery connections: every socket passes the SSRF guard on
// the address actually dialled (after DNS, so rebinding cannot bypass it),
// and is bound to a configured source address when there are any.
type dialer struct {
	cfg    *Config
	plain  *net.Dialer
	v4, v6 []*net.Dialer
	next   atomic.Uint64
	// trusted dials hosts on the operator's AllowedHosts list, whose
	// addresses may be private.
	trusted *dialer
}

func newDialer(cfg *Config) *dialer {
	d := buildDialer(cfg, false)
	if len(cfg.AllowedHosts) > 0 {
		d.trusted = buildDialer(cfg, true)
	}
	return d
}

func buildDialer(cfg *Config, trusted bool) *dialer {
	d := &dialer{cfg: cfg}
	ctl := d.control
	if trusted {
		ctl = d.controlTrusted
	}
	base := net.Dialer{KeepAlive: 30 * time.Second, Control: ctl, Resolver: cfg.Resolver}
	d.plain = &base
	for _, a := range cfg.SourceAddrs {
		nd := base
		nd.LocalAddr = &net.TCPAddr{IP: a.Unmap().AsSlice(), Zone: a.Zone()}
		if a.Unmap().Is4() {
			d.v4 = append(d.v4, &nd)
		} else {
			d.v6 = append(d.v6, &nd)
		}
	}
	return d
}

// control runs after DNS resolution, before connect.
func (d *dialer) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable address %q", ErrDestinationRefused, address)
	}
	if !d.cfg.destinationAllowed(ap.Addr()) {
		return fmt.Errorf("%w: %s is %s", ErrDestinationRefused, ap.Addr(), describeAddr(ap.Addr()))
	}
	return nil
}

// controlTrusted is control for listed hosts.
func (d *dialer) controlTrusted(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable address %q", ErrDestinationRefused, address)
	}
	if !d.cfg.trustedDestination(ap.Addr()) {
		return fmt.Errorf("%w: %s is %s", ErrDestinationRefused, ap.Addr(), describeAddr(ap.Addr()))
	}
	return nil
}

func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if d.trusted != nil {
		if host, _, err := net.SplitHostPort(address); err == nil {
			if _, ipErr := netip.ParseAddr(host); ipErr != nil && d.cfg.hostAllowed(host) {
				return d.trusted.dial(ctx, network, address)
			}
		}
	}
	return d.dial(ctx, network, address)
}

func (d *dialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if len(d.v4) == 0 && len(d.v6) == 0 {
		return d.plain.DialContext(ctx, network, address)
	}
	n := d.next.Add(1)
	var errs []error
	for _, fam := range []struct {
		network string
		dialers []*net.Dialer
	}{{"tcp4", d.v4}, {"tcp6", d.v6}} {
		if len(fam.dialers) == 0 {
			continue
		}
		c, err := fam.dialers[n%uint64(len(fam.dialers))].DialContext(ctx, fam.network, address)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// newClient builds the delivery client: no proxy (a proxy would bypass the
// guard), no client-wide timeout (each attempt has its own context), TLS 1.2+,
// and a redirect policy that re-applies CheckURL to every hop.
func newClient(cfg *Config) (*http.Client, *http.Transport) {
	d := newDialer(cfg)
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs},
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    cfg.AttemptTimeout,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
	}
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			// A redirect we do not follow is the receiver's answer, like any
			// other non-2xx: the 3xx comes back to the attempt (which says
			// why it was not followed) and is retried.
			if len(via) > cfg.MaxRedirects {
				return notFollowed(req, fmt.Sprintf("more than %d redirects", cfg.MaxRedirects))
			}
			if req.Method != http.MethodPost {
				return notFollowed(req, fmt.Sprintf("status %d would turn the POST into a %s; use 307 or 308",
					req.Response.StatusCode, req.Method))
			}
			if err := cfg.CheckURL(req.URL.String()); err != nil {
				return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), err)
			}
			return nil
		},
	}
	return client, tr
}

// redirectNote carries, in an attempt's request context, why the redirect
// that ended it was not followed.
type redirectNote struct{ reason string }

type redirectNoteKey struct{}

// notFollowed stops at the redirect response req follows, noting why.
func notFollowed(req *http.Request, reason string) error {
	if n, ok := req.Context().Value(redirectNoteKey{}).(*redirectNote); ok {
		n.reason = reason
	}
	return http.ErrUseLastResponse
}
