package webhooks

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValidAndStrict(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.AllowHTTP || cfg.AllowHTTPLocalhost || len(cfg.AllowedNets) != 0 {
		t.Fatal("defaults must require HTTPS and refuse restricted destinations")
	}
	if cfg.Workers != 8 || cfg.AttemptTimeout != 10*time.Second || cfg.MaxResponseBytes != 64<<10 ||
		cfg.MaxRedirects != 3 || cfg.MinBackoff != 5*time.Second || cfg.MaxBackoff != 10*time.Minute || cfg.MaxAge != 24*time.Hour {
		t.Fatalf("unexpected defaults %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		field string
		mod   func(*Config)
	}{
		{"Workers", func(c *Config) { c.Workers = 0 }},
		{"PollInterval", func(c *Config) { c.PollInterval = 0 }},
		{"MinScanInterval", func(c *Config) { c.MinScanInterval = 2 * c.PollInterval }},
		{"ScanPage", func(c *Config) { c.ScanPage = 0 }},
		{"ChainLength", func(c *Config) { c.ChainLength = 0 }},
		{"AttemptTimeout", func(c *Config) { c.AttemptTimeout = -1 }},
		{"MaxResponseBytes", func(c *Config) { c.MaxResponseBytes = -1 }},
		{"MaxRedirects", func(c *Config) { c.MaxRedirects = 11 }},
		{"MinBackoff", func(c *Config) { c.MinBackoff = 0 }},
		{"MaxBackoff", func(c *Config) { c.MaxBackoff = time.Second }},
		{"MaxAge", func(c *Config) { c.MaxAge = time.Second }},
		{"Now", func(c *Config) { c.Now = nil }},
		{"Rand", func(c *Config) { c.Rand = nil }},
		{"Logger", func(c *Config) { c.Logger = nil }},
		{"AllowedNets[1]", func(c *Config) {
			c.AllowedNets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}
		}},
		{"AllowedNets[0]", func(c *Config) {
			c.AllowedNets = []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.1/128")}
		}},
		{"SourceAddrs[0]", func(c *Config) { c.SourceAddrs = []netip.Addr{netip.IPv4Unspecified()} }},
	}
	for _, tc := range tests {
		cfg := DefaultConfig()
		tc.mod(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "Config."+tc.field+" ") {
			t.Errorf("%s: err = %v, want ErrConfig naming the field", tc.field, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	strict := DefaultConfig()
	dev := DefaultConfig()
	dev.AllowHTTPLocalhost = true
	plain := DefaultConfig()
	plain.AllowHTTP = true
	internal := DefaultConfig()
	internal.AllowedNets = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}

	tests := []struct {
		name string
		cfg  Config
		url  string
		want error
	}{
		{"https public name", strict, "https://hooks.example.com/videosdk?x=1", nil},
		{"https public ip", strict, "https://8.8.8.8/", nil},
		{"https public ipv6", strict, "https://[2606:4700::1111]:8443/", nil},
		{"http refused", strict, "http://hooks.example.com/", ErrInsecureURL},
		{"http refused localhost", strict, "http://localhost:8080/", ErrInsecureURL},
		{"uppercase scheme", strict, "HTTPS://hooks.example.com/", nil},
		{"ftp", strict, "ftp://example.com/", ErrInvalidURL},
		{"no scheme", strict, "hooks.example.com/x", ErrInvalidURL},
		{"no host", strict, "https:///path", ErrInvalidURL},
		{"garbage", strict, "https://[::1", ErrInvalidURL},
		{"loopback v4", strict, "https://127.0.0.1/", ErrDestinationRefused},
		{"loopback v4 other", strict, "https://127.8.9.10/", ErrDestinationRefused},
		{"loopback v6", strict, "https://[::1]/", ErrDestinationRefused},
		{"v4-mapped loopback", strict, "https://[::ffff:127.0.0.1]/", ErrDestinationRefused},
		{"localhost name", strict, "https://localhost/", ErrDestinationRefused},
		{"sub.localhost name", strict, "https://api.localhost./", ErrDestinationRefused},
		{"private 10/8", strict, "https://10.0.0.5/", ErrDestinationRefused},
		{"private 172.16/12", strict, "https://172.31.255.1/", ErrDestinationRefused},
		{"private 192.168/16", strict, "https://192.168.1.1/", ErrDestinationRefused},
		{"ula", strict, "https://[fd12::1]/", ErrDestinationRefused},
		{"metadata link-local", strict, "https://169.254.169.254/latest/meta-data", ErrDestinationRefused},
		{"link-local v6", strict, "https://[fe80::1%25eth0]/", ErrDestinationRefused},
		{"unspecified", strict, "https://0.0.0.0/", ErrDestinationRefused},
		{"cgnat", strict, "https://100.64.1.1/", ErrDestinationRefused},
		{"broadcast", strict, "https://255.255.255.255/", ErrDestinationRefused},
		{"nat64", strict, "https://[64:ff9b::a00:1]/", ErrDestinationRefused},
		{"multicast", strict, "https://224.0.0.1/", ErrDestinationRefused},
		{"dev http localhost", dev, "http://localhost:3000/hook", nil},
		{"dev http loopback", dev, "http://127.0.0.1:3000/hook", nil},
		{"dev http [::1]", dev, "http://[::1]:3000/hook", nil},
		{"dev https loopback", dev, "https://127.0.0.1/", nil},
		{"dev http public refused", dev, "http://hooks.example.com/", ErrInsecureURL},
		{"dev private still refused", dev, "https://10.0.0.1/", ErrDestinationRefused},
		{"allow http public", plain, "http://hooks.example.com/", nil},
		{"allow http loopback still refused", plain, "http://127.0.0.1/", ErrDestinationRefused},
		{"allowed net", internal, "https://10.1.2.3/", nil},
		{"outside allowed net", internal, "https://10.2.0.1/", ErrDestinationRefused},
		{"allowed v6 net", internal, "https://[fd00::5]/", nil},
		{"port 99999", dev, "http://localhost:99999/x", ErrInvalidURL},
		{"port 0", dev, "http://localhost:0/x", ErrInvalidURL},
		{"port 65536", strict, "https://hooks.example.com:65536/", ErrInvalidURL},
		{"port of 30 digits", strict, "https://hooks.example.com:123456789012345678901234567890/", ErrInvalidURL},
		{"port 1", strict, "https://hooks.example.com:1/", nil},
		{"port 65535", strict, "https://hooks.example.com:65535/", nil},
		{"empty port", strict, "https://hooks.example.com:/", nil},
		// Targets stored before user info was refused still deliver (CheckNewURL refuses it).
		{"user info", strict, "https://user:pw@hooks.example.com/", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckURL(tc.url)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("CheckURL(%q) = %v, want %v", tc.url, err, tc.want)
			}
			// What an API client reads names the operator's flag, not
			// a field of this package.
			if errors.Is(err, ErrInsecureURL) && !strings.Contains(err.Error(), "--webhook-allow-http") {
				t.Fatalf("CheckURL(%q) = %v: does not name --webhook-allow-http", tc.url, err)
			}
		})
	}
}

// TestCheckNewURL: a URL being configured must also be free of user info
// (its password would be shown in the room and the delivery log); the
// error does not show the password.
func TestCheckNewURL(t *testing.T) {
	cfg := DefaultConfig()
	for _, u := range []string{"https://user:hunter2@hooks.example.com/x", "https://user@hooks.example.com/x", "https://:hunter2@hooks.example.com/x"} {
		err := cfg.CheckNewURL(u)
		if !errors.Is(err, ErrInvalidURL) || !strings.Contains(err.Error(), "user info") || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("CheckNewURL(%q) = %v", u, err)
		}
	}
	for u, want := range map[string]error{
		"https://hooks.example.com/x?token=abc": nil,
		"https://hooks.example.com:99999/x":     ErrInvalidURL,
		"http://hooks.example.com/x":            ErrInsecureURL,
	} {
		if err := cfg.CheckNewURL(u); (want == nil) != (err == nil) || !errors.Is(err, want) {
			t.Fatalf("CheckNewURL(%q) = %v, want %v", u, err, want)
		}
	}
}

// The dialer's guard is what catches DNS names that resolve to refused
// addresses (and rebinding); exercise it on raw socket addresses.
func TestDialGuard(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowedNets = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	d := newDialer(&cfg)
	for addr, ok := range map[string]bool{
		"93.184.216.34:443":      true,
		"[2606:2800:220:1::]:80": true,
		"127.0.0.1:443":          false,
		"[::1]:443":              false,
		"[::ffff:10.0.0.1]:443":  false,
		"[::ffff:10.9.1.1]:443":  true,
		"10.9.200.1:443":         true,
		"169.254.169.254:80":     false,
		"[fe80::1%eth0]:80":      false,
		"0.0.0.0:80":             false,
		"not-an-address":         false,
	} {
		err := d.control("tcp", addr, nil)
		if ok != (err == nil) || (err != nil && !errors.Is(err, ErrDestinationRefused)) {
			t.Errorf("control(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		attempts int
		r        float64
		want     time.Duration
	}{
		{1, 0, 5 * time.Second},
		{1, 0.5, 7500 * time.Millisecond}, // [5s, 10s]
		{1, 0.999999, 10*time.Second - 5*time.Microsecond},
		{2, 1, 20 * time.Second}, // clamped r; [5s, 20s]
		{3, 0.5, 22500 * time.Millisecond},
		{6, 1, 320 * time.Second},
		{7, 1, 10 * time.Minute}, // 640 s capped at MaxBackoff
		{40, 1, 10 * time.Minute},
		{1000, 0, 5 * time.Second},
		{1, -3, 5 * time.Second},
	}
	for _, tc := range tests {
		if got := backoff(&cfg, tc.attempts, tc.r); got != tc.want {
			t.Errorf("backoff(%d, %v) = %v, want %v", tc.attempts, tc.r, got, tc.want)
		}
	}
	// Full jitter: spread over the whole window.
	lo, hi := time.Hour, time.Duration(0)
	for i := range 1000 {
		d := backoff(&cfg, 4, float64(i)/1000)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo != 5*time.Second || hi < 79*time.Second || hi > 80*time.Second {
		t.Errorf("attempt 4 spread [%v, %v], want [5s, 80s]", lo, hi)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"120", 120 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"Sun, 06 Nov 1994 08:49:37 GMT", 0, true},
		{"99999999999999999999", 0, false}, // overflows uint64
		{"18446744073709551615", time.Duration(1<<63-1) / time.Second * time.Second, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}

	cfg := DefaultConfig()
	for _, tc := range []struct {
		ra   time.Duration
		has  bool
		want time.Duration
	}{
		{120 * time.Second, true, 120 * time.Second},
		{time.Second, true, 5 * time.Second},    // never sooner than MinBackoff
		{2 * time.Hour, true, 10 * time.Minute}, // capped at MaxBackoff
		{0, false, 7500 * time.Millisecond},     // no header: jittered backoff
		{time.Duration(1<<63 - 1), true, 10 * time.Minute},
	} {
		if got := retryDelay(&cfg, 1, tc.ra, tc.has, 0.5); got != tc.want {
			t.Errorf("retryDelay(%v, %v) = %v, want %v", tc.ra, tc.has, got, tc.want)
		}
	}
}
