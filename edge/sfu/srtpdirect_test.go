package sfu

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtp"
)

// TestSubscriberRTPSkipsPionSendPath: on the edge's shared media sockets a
// subscriber connection's RTP is encrypted by the edge itself, with keys
// derived from the DTLS handshake as pion derives them, for every SRTP
// profile and PRF hash a client may negotiate, with and without RTP header
// encryption; pion clients decrypt every
// packet (a packet with a wrong key or index fails authentication and never
// reaches the track). Where the edge cannot derive the keys (it is the
// DTLS client) or has no shared socket, pion's path carries the media.
func TestSubscriberRTPSkipsPionSendPath(t *testing.T) {
	noMux := testConfig()
	noMux.UDPPortMin, noMux.UDPPortMax = 42000, 42999
	cases := []struct {
		name   string
		cfg    Config
		opts   clientOpts
		direct bool
	}{
		{"AES-128-GCM", testConfig(), browserLike, true},
		{"AES-128-GCM without header encryption", testConfig(), func() clientOpts { o := browserLike; o.noCryptex = true; return o }(), true},
		{"AES-128-CM-HMAC-SHA1-80", testConfig(), withDTLS(browserLike, []dtls.SRTPProtectionProfile{dtls.SRTP_AES128_CM_HMAC_SHA1_80}, nil), true},
		{"AES-256-GCM with a SHA-384 suite", testConfig(), withDTLS(browserLike,
			[]dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_256_GCM},
			[]dtls.CipherSuiteID{dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}), true},
		{"edge as DTLS client", testConfig(), func() clientOpts { o := browserLike; o.dtlsServer = true; return o }(), false},
		{"no shared sockets", noMux, browserLike, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestSFU(t, c.cfg)
			startPublisher(t, s, "room", "alice", pubOpts{fps: 30, pktsPerFrame: 3, size: 300, keyEvery: 30, audio: true})
			// The extension profile of the video packets reaching bob's
			// socket: 0xBEDE in clear, 0xC0DE with encrypted extensions.
			var plain, encrypted atomic.Int64
			opts := c.opts
			opts.net = newDropNet(t, func(h *rtp.Header) bool {
				if h.PayloadType == 96 && h.Extension {
					switch h.ExtensionProfile {
					case 0xBEDE:
						plain.Add(1)
					case 0xC0DE:
						encrypted.Add(1)
					}
				}
				return false
			})
			sub := startSubscriber(t, s, "room", "bob", opts)
			eventually(t, 20*time.Second, func() string {
				v, a := len(sub.received("video")), len(sub.received("audio"))
				if v < 150 || a < 20 {
					return fmt.Sprintf("bob has %d video and %d audio packets", v, a)
				}
				return ""
			})
			// pion encrypts the headers when the client declares it can
			// receive them so; so must the edge's own path.
			if p, e := plain.Load(), encrypted.Load(); c.opts.noCryptex && (e != 0 || p == 0) || !c.opts.noCryptex && (p != 0 || e == 0) {
				t.Fatalf("video with extensions in clear: %d, encrypted (RFC 9335): %d; the client declared header encryption: %v", p, e, !c.opts.noCryptex)
			}
			d := sub.part.sub.direct.Load()
			if !c.direct {
				if d != nil {
					t.Fatal("the edge writes SRTP itself on a connection it cannot key")
				}
				return
			}
			if d == nil {
				t.Fatal("the subscriber's RTP goes through pion's send path")
			}
			got := uint64(len(sub.received("video")) + len(sub.received("audio")))
			// The SFU serves bob alone: its direct SRTP count is bob's.
			if sent := s.media.batch.direct.Load(); sent < got {
				t.Fatalf("bob decrypted %d packets, the edge wrote %d itself", got, sent)
			}
		})
	}
}

func withDTLS(o clientOpts, profiles []dtls.SRTPProtectionProfile, suites []dtls.CipherSuiteID) clientOpts {
	o.srtpProfiles, o.dtlsSuites = profiles, suites
	return o
}

// TestPickSocketForCandidate: the media socket a selected pair's local
// candidate stands for, with the address as gathered and as rewritten for
// a 1:1 NAT (one socket per local address, all on one port, as --udp-port
// runs).
func TestPickSocketForCandidate(t *testing.T) {
	ap := netip.MustParseAddrPort
	socks := []netip.AddrPort{ap("127.0.0.1:7882"), ap("10.0.0.5:7882"), ap("[::1]:7882"), ap("[fd00::5]:7882"), ap("10.0.0.5:9000")}
	cases := []struct {
		name   string
		local  string
		remote string
		want   int
	}{
		{"as gathered", "10.0.0.5:7882", "198.51.100.9", 1},
		{"loopback as gathered", "127.0.0.1:7882", "127.0.0.1", 0},
		{"other port as gathered", "10.0.0.5:9000", "198.51.100.9", 4},
		{"public address of a 1:1 NAT, IPv4 peer", "203.0.113.7:7882", "198.51.100.9", 1},
		{"public address of a 1:1 NAT, IPv6 peer", "[2001:db8::7]:7882", "2001:db8:1::9", 3},
		{"IPv4-mapped peer", "203.0.113.7:7882", "::ffff:198.51.100.9", 1},
		{"no socket on the port", "203.0.113.7:5000", "198.51.100.9", -1},
	}
	for _, c := range cases {
		if got := pickSocket(socks, ap(c.local), netip.MustParseAddr(c.remote)); got != c.want {
			t.Errorf("%s: socket %d, want %d", c.name, got, c.want)
		}
	}
	// Two sockets that could both reach the peer: neither is guessed.
	two := []netip.AddrPort{ap("10.0.0.5:7882"), ap("10.0.1.5:7882")}
	if got := pickSocket(two, ap("203.0.113.7:7882"), netip.MustParseAddr("198.51.100.9")); got != -1 {
		t.Errorf("two private sockets: picked %d, want none", got)
	}
}
