package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
)

// proxied sends a request as a load balancer would relay it: the test's
// loopback connection is the proxy, X-Forwarded-For names the client.
func proxied(t *testing.T, c *clustertest.Cluster, method, path, authz, xff string, hdr map[string]string) int {
	t.Helper()
	req, _ := http.NewRequest(method, c.Node(0).URL()+path, nil)
	req.Header.Set("Authorization", authz)
	req.Header.Set("X-Forwarded-For", xff)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func auditIPs(t *testing.T, c *clustertest.Cluster) []string {
	t.Helper()
	var out struct{ Data []struct{ Action, IP string } }
	c.Do(0, "GET", "/admin/v1/audit?perPage=100", "Bearer "+c.AdminToken, nil).JSON(t, &out)
	var ips []string
	for _, e := range out.Data {
		if e.Action == "DELETE /admin/v1/keys/:key" {
			ips = append(ips, e.IP)
		}
	}
	return ips
}

// TestTrustedProxies: behind a trusted load balancer the client's address
// (audit log, per-address rate limit) comes from X-Forwarded-For, read
// from the right so what the client itself wrote there does not count;
// from any other peer the header is ignored.
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		trusted bool
	}{
		{"loopback is the trusted proxy", []string{"10.1.0.0/16", "127.0.0.1"}, true},
		{"the peer is not a trusted proxy", []string{"10.0.0.0/8"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newNode(t, func(cfg *server.Config) {
				cfg.API.TrustedProxies = tc.proxies
				cfg.API.RateLimitPerIP, cfg.API.RateBurstPerIP = 0.001, 2
			})
			admin := "Bearer " + c.AdminToken
			// An audited admin change; the client also tries to pass itself
			// off as 6.6.6.6 (left of what the proxy appended) and through
			// the header the server uses internally.
			st := proxied(t, c, "DELETE", "/admin/v1/keys/no-such-key", admin, "6.6.6.6, 10.1.2.3, 203.0.113.7, 10.1.0.9",
				map[string]string{"X-Meridian-Client-Ip": "9.9.9.9"})
			if st != 404 {
				t.Fatalf("revoke a missing key: %d", st)
			}
			want := "127.0.0.1"
			if tc.trusted {
				want = "203.0.113.7"
			}
			if ips := auditIPs(t, c); len(ips) != 1 || ips[0] != want {
				t.Fatalf("audit log's address %v, want [%s]", ips, want)
			}
			// Per-address limit (burst 2): distinct forwarded clients have
			// their own budgets only behind a trusted proxy.
			limited := 0
			for i := range 4 {
				if proxied(t, c, "GET", "/v2/rooms", c.Token(), fmt.Sprintf("198.51.100.%d", i), nil) == 429 {
					limited++
				}
			}
			if tc.trusted != (limited == 0) {
				t.Fatalf("4 requests from 4 forwarded clients: %d limited (trusted proxy: %v)", limited, tc.trusted)
			}
			if tc.trusted {
				codes := []int{}
				for range 3 {
					codes = append(codes, proxied(t, c, "GET", "/v2/rooms", c.Token(), "198.51.100.200", nil))
				}
				if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
					t.Fatalf("one forwarded client, burst 2: %v", codes)
				}
			}
		})
	}
}
