package api

import (
	"net/netip"
	"strings"
	"testing"
)

func TestForwardedClient(t *testing.T) {
	ranges, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("10.0.0.1")
	for _, c := range []struct{ xff, want string }{
		{"", "10.0.0.1"},                                    // no header: the proxy itself
		{"203.0.113.7", "203.0.113.7"},                      // one proxy
		{"6.6.6.6, 203.0.113.7", "203.0.113.7"},             // the client's own entry is ignored
		{"203.0.113.7, 192.0.2.1, 10.9.9.9", "203.0.113.7"}, // a chain of trusted proxies
		{"10.2.2.2, 10.3.3.3", "10.2.2.2"},                  // all trusted: the farthest
		{"203.0.113.7, junk, 10.3.3.3", "10.3.3.3"},         // garbage stops the walk
		{"2001:db8::5, 2a00::1", "2a00::1"},
		{"::ffff:198.51.100.4", "198.51.100.4"},
	} {
		if got := forwardedClient(peer, strings.Split(c.xff, ","), ranges); got.String() != c.want {
			t.Errorf("X-Forwarded-For %q: %s, want %s", c.xff, got, c.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1-10.0.0.9"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
