package webhooks

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS answers A queries from a table, on loopback UDP.
func fakeDNS(t *testing.T, table map[string]string) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if ip, ok := table[strings.TrimSuffix(q.Name, ".")]; ok && q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.ParseIP(ip)})
			}
		}
		if len(m.Answer) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// TestPrivateReceiversAllowList: by default every private destination is
// refused; an operator opens CIDRs or host names. A listed name may resolve
// to a private address; an unlisted name that resolves to one (DNS
// rebinding) is still refused at the dial; numeric host spellings of
// addresses are refused at creation.
func TestPrivateReceiversAllowList(t *testing.T) {
	res := fakeDNS(t, map[string]string{
		"crm.corp.internal":    "10.20.0.5",
		"hooks.example.com":    "10.20.0.6", // rebinding: a public-looking name answering a private address
		"sneaky.corp.internal": "127.0.0.1",
	})
	cfg := DefaultConfig()
	cfg.Resolver = res
	cfg.AllowedNets = []netip.Prefix{netip.MustParsePrefix("10.30.0.0/16")}
	cfg.AllowedHosts = []string{"crm.corp.internal", "*.corp.internal"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	defaults := DefaultConfig()
	for _, tc := range []struct {
		cfg  *Config
		url  string
		want error // nil: accepted
	}{
		{&defaults, "https://10.1.2.3/hook", ErrDestinationRefused},
		{&cfg, "https://10.30.1.1/hook", nil},
		{&cfg, "https://10.1.2.3/hook", ErrDestinationRefused},
		{&cfg, "https://crm.corp.internal/hook", nil},
		{&cfg, "https://2130706433/hook", ErrInvalidURL},
		{&cfg, "https://0x7f000001/hook", ErrInvalidURL},
		{&cfg, "https://127.1/hook", ErrInvalidURL},
		{&cfg, "https://127.0.0.0x1/hook", ErrInvalidURL}, // inet_aton: 127.0.0.1
		{&cfg, "https://127.0.0.0X7F/hook", ErrInvalidURL},
		{&cfg, "https://hooks.0x/hook", ErrInvalidURL},
		{&cfg, "https://10.0.0.017/hook", ErrInvalidURL},
		{&cfg, "https://hooks.0xample/hook", nil}, // not hex: a name
		{&cfg, "https://hooks.example0x1.com/hook", nil},
		{&cfg, "https://intranet/hook", ErrInvalidURL},
		{&cfg, "https://hooks.example.com/hook", nil}, // a public name: checked at the dial
	} {
		if err := tc.cfg.CheckURL(tc.url); !errors.Is(err, tc.want) {
			t.Errorf("CheckURL(%s) = %v, want %v", tc.url, err, tc.want)
		}
	}
	d := newDialer(&cfg)
	dial := func(host string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", host+":443")
		if c != nil {
			c.Close()
		}
		return err
	}
	// Listed: the connection is attempted (10.20.0.5 is not reachable here,
	// so it times out or is refused — but not by the guard).
	if err := dial("crm.corp.internal"); errors.Is(err, ErrDestinationRefused) {
		t.Fatalf("listed host refused by the guard: %v", err)
	}
	// Unlisted name resolving to a private address: refused at the dial.
	if err := dial("hooks.example.com"); !errors.Is(err, ErrDestinationRefused) {
		t.Fatalf("rebinding to a private address: %v", err)
	}
	// Listed name resolving to loopback: still refused.
	if err := dial("sneaky.corp.internal"); !errors.Is(err, ErrDestinationRefused) {
		t.Fatalf("listed host resolving to loopback: %v", err)
	}
	bad := DefaultConfig()
	bad.AllowedHosts = []string{"not a host"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "AllowedHosts[0]") {
		t.Fatalf("bad host pattern: %v", err)
	}
}
