package turn

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/ids"
)

func TestPeerPolicy(t *testing.T) {
	public := []string{"8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"}
	restricted := []string{
		"127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"100.64.0.1", "100.127.255.254", "169.254.169.254", "224.0.0.1", "239.1.1.1",
		"0.0.0.0", "255.255.255.255", "::", "::1", "fe80::1", "fc00::1", "fd12:3456::1",
		"ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
	}
	tests := []struct {
		name    string
		cfg     func(*Config)
		allowed []string
		refused []string
	}{
		{name: "default", cfg: func(*Config) {}, allowed: public, refused: restricted},
		{
			name:    "allow loopback",
			cfg:     func(c *Config) { c.AllowPeers = []string{"127.0.0.0/8", "::1"} },
			allowed: append([]string{"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"}, public...),
			refused: []string{"10.1.2.3", "192.168.1.1", "169.254.169.254", "fe80::1"},
		},
		{
			name: "deny wins over allow",
			cfg: func(c *Config) {
				c.AllowPeers = []string{"127.0.0.0/8", "8.8.0.0/16"}
				c.DenyPeers = []string{"127.0.0.5", "8.8.8.0/24"}
			},
			allowed: []string{"127.0.0.1", "8.8.4.4", "1.1.1.1"},
			refused: []string{"127.0.0.5", "::ffff:127.0.0.5", "8.8.8.8"},
		},
		{
			name:    "IPv4-mapped prefix in config",
			cfg:     func(c *Config) { c.AllowPeers = []string{"::ffff:10.0.0.0/104"} },
			allowed: []string{"10.0.0.1", "::ffff:10.200.0.1"},
			refused: []string{"192.168.0.1"},
		},
		{
			name: "hook narrows",
			cfg: func(c *Config) {
				c.AllowPeers = []string{"127.0.0.0/8"}
				c.AllowedPeerCheck = func(p netip.Addr) bool { return p != netip.MustParseAddr("1.1.1.1") && p.Is4() }
			},
			allowed: []string{"8.8.8.8", "127.0.0.1", "::ffff:8.8.8.8"},
			refused: []string{"1.1.1.1", "2001:4860:4860::8888", "10.0.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.cfg(&cfg)
			p, err := cfg.compile()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.allowed {
				if !p.allowed(netip.MustParseAddr(s)) {
					t.Errorf("%s refused, want allowed", s)
				}
			}
			for _, s := range tt.refused {
				if p.allowed(netip.MustParseAddr(s)) {
					t.Errorf("%s allowed, want refused", s)
				}
			}
			if p.allowed(netip.Addr{}) {
				t.Error("invalid address allowed")
			}
		})
	}
}

func TestPermitHandlesNetIPForms(t *testing.T) {
	cfg := validConfig()
	p, err := cfg.compile()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{policy: p, metrics: newMetrics(), log: discardLogger()}
	// net.ParseIP returns 16-byte IPv4-in-IPv6 forms: they must still be refused.
	for _, ip := range []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1").To4(), nil, {1, 2, 3}} {
		if s.permit(nil, ip) {
			t.Errorf("permit(%v) = true", ip)
		}
	}
	if !s.permit(nil, net.ParseIP("8.8.8.8")) {
		t.Error("public peer refused")
	}
}

func TestQuotaReservations(t *testing.T) {
	q := newQuota(2)
	a := ids.ParticipantID("alice")
	src1 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	src2 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	src3 := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3}
	now := time.Unix(1000, 0)

	if !q.reserve(a, src1, now) || !q.reserve(a, src2, now) {
		t.Fatal("first two reservations refused")
	}
	if q.reserve(a, src3, now) {
		t.Fatal("third concurrent reservation accepted")
	}
	q.created(a, src1)
	if got := q.count(a); got != 1 {
		t.Fatalf("count = %d, want 1", got)
	}
	// src2's allocation never materialises: its slot frees after the TTL.
	if q.reserve(a, src3, now.Add(time.Second)) {
		t.Fatal("reservation accepted while src2 still pending")
	}
	if !q.reserve(a, src3, now.Add(reservationTTL+time.Second)) {
		t.Fatal("stale reservation not released")
	}
	if !q.reserve("bob", src1, now) {
		t.Fatal("other participant refused")
	}
	q.deleted(a)
	q.deleted(a) // not counted twice
	if got := q.count(a); got != 0 {
		t.Fatalf("count after delete = %d", got)
	}
	q.close()
	if q.reserve(a, src1, now) || q.created(a, src1) || q.deleted(a) {
		t.Fatal("closed quota still counting")
	}
}
