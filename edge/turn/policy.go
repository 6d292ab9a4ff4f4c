package turn

import (
	"fmt"
	"net/netip"
	"strings"
)

// restrictedPeers are never relayed to unless AllowPeers covers the peer:
// relaying there would let a TURN client reach the edge's own host or network.
var restrictedPeers = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", incl. unspecified
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT, RFC 6598
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local (cloud metadata)
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, incl. broadcast
	netip.MustParsePrefix("::/128"),         // unspecified
	netip.MustParsePrefix("::1/128"),        // loopback
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("fc00::/7"),       // unique local
	netip.MustParsePrefix("fe80::/10"),      // link-local
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),       // multicast
}

// RestrictedPeers returns the prefixes refused by default (a copy).
func RestrictedPeers() []netip.Prefix {
	return append([]netip.Prefix(nil), restrictedPeers...)
}

// peerPolicy decides which peers an allocation may get a permission for.
// It is immutable after compile, so it is safe for concurrent use.
type peerPolicy struct {
	allow, deny []netip.Prefix
	check       func(netip.Addr) bool
}

// allowed reports whether relaying to peer is permitted: DenyPeers refuses,
// restricted ranges refuse unless AllowPeers covers the peer, then the hook.
func (p *peerPolicy) allowed(peer netip.Addr) bool {
	if !peer.IsValid() {
		return false
	}
	peer = peer.Unmap().WithZone("") // ::ffff:127.0.0.1 is 127.0.0.1
	if containsAddr(p.deny, peer) {
		return false
	}
	if containsAddr(restrictedPeers, peer) && !containsAddr(p.allow, peer) {
		return false
	}
	if p.check != nil && !p.check(peer) {
		return false
	}
	return true
}

func containsAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parsePrefixes parses CIDRs (or bare IPs, as single-host prefixes); errors
// name the field and index.
func parsePrefixes(field string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, invalid(fmt.Sprintf("%s[%d]", field, i), "invalid CIDR %q: %v", s, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		// Peers are compared unmapped, so an IPv4-mapped prefix becomes IPv4.
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return nil, invalid(fmt.Sprintf("%s[%d]", field, i),
					"invalid CIDR %q: IPv4-mapped prefix shorter than /96", s)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
