package sfu

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestUDPMuxAddrIsTheOnlyCandidate: with UDPMuxAddr (`--udp-ip`) the edge
// binds one media socket and offers that one address, where by default it
// offers every local address (each a candidate, with its reader and
// buffers, in every connection); the client still connects over it.
func TestUDPMuxAddrIsTheOnlyCandidate(t *testing.T) {
	edgeAddrs := func(cfg Config) map[string]bool {
		t.Helper()
		s := newTestSFU(t, cfg)
		p := startPublisher(t, s, "room", "alice", pubOpts{})
		eventually(t, 10*time.Second, func() string {
			if st := p.pc.ICEConnectionState(); st != webrtc.ICEConnectionStateConnected {
				return "publisher ICE " + st.String()
			}
			return ""
		})
		addrs := map[string]bool{}
		eventually(t, 5*time.Second, func() string {
			for _, st := range p.pc.GetStats() {
				if c, ok := st.(webrtc.ICECandidateStats); ok && c.Type == webrtc.StatsTypeRemoteCandidate {
					addrs[c.IP] = true
				}
			}
			if len(addrs) == 0 {
				return "no edge candidate in the client's stats"
			}
			return ""
		})
		return addrs
	}
	one := testConfig()
	one.UDPMuxAddr = "127.0.0.1"
	got := edgeAddrs(one)
	if len(got) != 1 || !got["127.0.0.1"] {
		t.Fatalf("with UDPMuxAddr 127.0.0.1 the edge offered %v", got)
	}
	// The default, for contrast: more than one address where the host has
	// more than loopback's IPv4 (CI machines do: IPv6 loopback at least).
	all := edgeAddrs(testConfig())
	t.Logf("default: the edge offered %v", all)
	for a := range all {
		if ip, err := netip.ParseAddr(a); err == nil && ip != netip.MustParseAddr("127.0.0.1") {
			return
		}
	}
	t.Log("this host has no address but 127.0.0.1: the contrast proves nothing here")
}
