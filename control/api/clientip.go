package api

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Client addresses behind a load balancer.
//
// The audit log's "from where", the per-address rate limits and the
// nearest-edge GeoIP lookup all use c.IP(). Behind a proxy the TCP peer is
// the proxy; the client is in X-Forwarded-For, which anybody can also
// send. So the header is believed only from the configured trusted
// proxies (Config.TrustedProxies, fiber's EnableTrustedProxyCheck), and it
// is read from the right: each proxy appends the address it received the
// request from, so the rightmost address that is not itself a trusted
// proxy is the client — what a client wrote at the left is ignored.
// fiber's own X-Forwarded-For handling returns the leftmost address, which
// the client controls; so clientIP computes the address and hands it to
// fiber in clientIPHeader, which fiber reads (as ProxyHeader) for trusted
// peers only and which clientIP clears on every request.
const clientIPHeader = "X-Meridian-Client-Ip"

// ParseTrustedProxies reads addresses and CIDR ranges (Config.TrustedProxies).
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("api: trusted proxy %q is neither an IP address nor a CIDR range", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func trusted(ranges []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient walks X-Forwarded-For from the right (the entry the
// nearest proxy wrote) past trusted proxies; the first other address is
// the client. An entry that is not an address stops the walk: what lies
// left of it cannot be trusted, so the last hop is the answer.
func forwardedClient(peer netip.Addr, xff []string, ranges []netip.Prefix) netip.Addr {
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(xff[i]))
		if err != nil {
			return client
		}
		client = a.Unmap()
		if !trusted(ranges, client) {
			return client
		}
	}
	return client
}

// clientIP runs first on every request (see clientIPHeader).
func (s *Server) clientIP(c *fiber.Ctx) error {
	h := &c.Request().Header
	h.Del(clientIPHeader)
	if len(s.proxies) == 0 || !c.IsProxyTrusted() {
		return c.Next()
	}
	var xff []string
	for _, v := range h.PeekAll(fiber.HeaderXForwardedFor) {
		xff = append(xff, strings.Split(string(v), ",")...)
	}
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	h.Set(clientIPHeader, forwardedClient(peer.Unmap(), xff, s.proxies).String())
	return c.Next()
}
