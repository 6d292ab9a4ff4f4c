package main

import (
	"strings"
	"testing"
)

// TestTrustedProxiesFlag: control and dev take --trusted-proxies (addresses
// and CIDR ranges) into the API's configuration and refuse anything else
// before the node starts.
func TestTrustedProxiesFlag(t *testing.T) {
	for _, dev := range []bool{false, true} {
		parse := func(args ...string) ([]string, error) {
			cfg, err := serverConfigFor(t, dev, args...)
			return cfg.API.TrustedProxies, err
		}
		got, err := parse("--trusted-proxies", "10.0.0.0/8, 192.0.2.1", "--trusted-proxies", "2001:db8::/32")
		if err != nil || strings.Join(got, "|") != "10.0.0.0/8|192.0.2.1|2001:db8::/32" {
			t.Fatalf("dev=%v: %v %v", dev, got, err)
		}
		if got, err := parse(); err != nil || len(got) != 0 {
			t.Fatalf("dev=%v default: %v %v", dev, got, err)
		}
		if _, err := parse("--trusted-proxies", "lb.internal"); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") || !strings.Contains(err.Error(), "lb.internal") {
			t.Fatalf("dev=%v: a host name: %v", dev, err)
		}
	}
}
