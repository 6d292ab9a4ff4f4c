package turn_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/metrictest"
	"github.com/meridian-video/meridian/shared/wait"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/edge/turn"
	"github.com/meridian-video/meridian/shared/ids"
	"github.com/meridian-video/meridian/shared/turncred"
)

const testSecret = "test-turn-secret-0123456789"

var loopback = netip.MustParseAddr("127.0.0.1")

func quietPion() logging.LoggerFactory {
	f := logging.NewDefaultLoggerFactory()
	f.DefaultLogLevel = logging.LogLevelDisabled
	if os.Getenv("PIONDEBUG") != "" {
		f.DefaultLogLevel = logging.LogLevelTrace
	}
	return f
}

// testConfig listens on 127.0.0.1 (port 0) and explicitly allows loopback
// peers; everything else is the production default.
func testConfig() turn.Config {
	cfg := turn.DefaultConfig()
	cfg.UDPListen = netip.AddrPortFrom(loopback, 0)
	cfg.TCPListen = netip.AddrPortFrom(loopback, 0)
	cfg.RelayAddress = loopback
	cfg.RelayBindAddress = loopback
	cfg.RelayPortMin, cfg.RelayPortMax = 0, 0
	cfg.Secret = testSecret
	cfg.AllowPeers = []string{"127.0.0.0/8"}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.PionLoggerFactory = quietPion()
	return cfg
}

func startServer(t *testing.T, cfg turn.Config) *turn.Server {
	t.Helper()
	s, err := turn.New(cfg)
	if err != nil {
		t.Fatalf("turn.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newClient connects a pion TURN client over "udp", "tcp" or "tls".
func newClient(t *testing.T, s *turn.Server, transport, user, pass string) *pionturn.Client {
	t.Helper()
	var conn net.PacketConn
	var server netip.AddrPort
	switch transport {
	case "udp":
		server = s.UDPAddr()
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		server = s.TCPAddr()
		c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(server))
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	case "tls":
		server = s.TLSAddr()
		c, err := tls.Dial("tcp4", server.String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
		if err != nil {
			t.Fatal(err)
		}
		conn = pionturn.NewSTUNConn(c)
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	client, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Conn:           conn,
		Username:       user,
		Password:       pass,
		LoggerFactory:  quietPion(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		_ = conn.Close()
	})
	return client
}

func creds(participant string, now time.Time, ttl time.Duration) (string, string) {
	return turncred.Generate(testSecret, participant, now, ttl)
}

func udpPeer(t *testing.T) net.PacketConn {
	t.Helper()
	p, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func readWithin(t *testing.T, c net.PacketConn, d time.Duration) ([]byte, net.Addr) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 1500)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read from %s: %v", c.LocalAddr(), err)
	}
	return buf[:n], from
}

// metric sums the samples of a family whose labels include want (0 if none).
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	v, _ := metrictest.Sum(t, reg, name, want)
	return v
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Until(t, 5*time.Second, func() string {
		if !cond() {
			return "waiting for " + what
		}
		return ""
	})
}

func TestRelayThroughServer(t *testing.T) {
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			cfg := testConfig()
			if transport == "tls" {
				cfg.TLSListen = netip.AddrPortFrom(loopback, 0)
				cfg.TLSCertFile, cfg.TLSKeyFile = writeCert(t)
			}
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			s := startServer(t, cfg)

			// Credentials minted by shared/turncred, as control hands them out.
			user, pass := creds("alice", time.Now(), time.Hour)
			client := newClient(t, s, transport, user, pass)
			relay, err := client.Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			defer func() { _ = relay.Close() }()

			// Payloads are longer than 4 bytes: pion's STUNConn (v5.1.3) waits
			// for at least 9 buffered bytes, so an 8-byte ChannelData frame
			// stalls over TCP/TLS until more data arrives.
			peer := udpPeer(t)
			if _, err := relay.WriteTo([]byte("ping via relay"), peer.LocalAddr()); err != nil {
				t.Fatalf("relay write: %v", err)
			}
			got, from := readWithin(t, peer, 5*time.Second)
			if string(got) != "ping via relay" {
				t.Fatalf("peer got %q", got)
			}
			if from.String() != relay.LocalAddr().String() {
				t.Fatalf("peer saw %s, want relayed address %s", from, relay.LocalAddr())
			}
			if _, err := peer.WriteTo([]byte("pong from peer"), from); err != nil {
				t.Fatal(err)
			}
			got, _ = readWithin(t, relay, 5*time.Second)
			if string(got) != "pong from peer" {
				t.Fatalf("client got %q", got)
			}

			if n := s.Allocations("alice"); n != 1 {
				t.Errorf("Allocations(alice) = %d, want 1", n)
			}
			if v := metric(t, reg, "meridian_turn_allocations", nil); v != 1 {
				t.Errorf("allocations gauge = %v, want 1", v)
			}
			if v := metric(t, reg, "meridian_turn_allocations_total", nil); v != 1 {
				t.Errorf("allocations counter = %v, want 1", v)
			}

			// Deallocation (Refresh lifetime 0) releases the quota slot.
			_ = relay.Close()
			eventually(t, "allocation deleted", func() bool { return s.Allocations("alice") == 0 })
			if v := metric(t, reg, "meridian_turn_allocations", nil); v != 0 {
				t.Errorf("allocations gauge after close = %v, want 0", v)
			}
		})
	}
}

func TestLoopbackPeerRefusedByDefault(t *testing.T) {
	cfg := testConfig()
	cfg.AllowPeers = nil // production default: loopback is restricted
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s := startServer(t, cfg)

	user, pass := creds("alice", time.Now(), time.Hour)
	client := newClient(t, s, "udp", user, pass)
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer func() { _ = relay.Close() }()

	for _, peer := range []string{"127.0.0.1:9", "10.0.0.1:9", "169.254.169.254:80", "[::1]:9", "[::ffff:127.0.0.1]:9"} {
		addr := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(peer))
		if err := client.CreatePermission(addr); err == nil {
			t.Errorf("CreatePermission(%s) succeeded, want refusal", peer)
		}
	}
	// The IPv6 peers are refused too, but for the address family (an IPv4
	// relay), before the peer policy is asked.
	if v := metric(t, reg, "meridian_turn_permissions_denied_total", nil); v < 3 {
		t.Errorf("permissions denied = %v, want >= 3", v)
	}
}

func TestPeerDenyListWins(t *testing.T) {
	cfg := testConfig()
	peer := udpPeer(t)
	cfg.DenyPeers = []string{peer.LocalAddr().(*net.UDPAddr).AddrPort().Addr().String()}
	s := startServer(t, cfg)
	user, pass := creds("alice", time.Now(), time.Hour)
	client := newClient(t, s, "udp", user, pass)
	relay, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()
	if err := client.CreatePermission(peer.LocalAddr()); err == nil {
		t.Fatal("CreatePermission to a denied peer succeeded")
	}
	if err := client.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err != nil {
		t.Fatalf("CreatePermission to an allowed peer: %v", err)
	}
}

func TestAuthRejected(t *testing.T) {
	now := time.Now()
	future := now.Add(time.Hour).Unix()
	withPassword := func(user string) [2]string { return [2]string{user, turncred.Password(testSecret, user)} }
	expiredUser, expiredPass := creds("alice", now.Add(-2*time.Hour), time.Hour)
	goodUser, _ := creds("alice", now, time.Hour)
	otherSecretUser, otherSecretPass := turncred.Generate("another-secret-0123456789", "alice", now, time.Hour)

	tests := []struct {
		name   string
		cred   [2]string
		reason string
	}{
		{"expired", [2]string{expiredUser, expiredPass}, "expired"},
		{"wrong password", [2]string{goodUser, "d3Jvbmc="}, "bad_credential"},
		{"other secret", [2]string{otherSecretUser, otherSecretPass}, "bad_credential"},
		{"no colon", withPassword("alice"), "malformed"},
		{"expiry not a number", withPassword("soon:alice"), "malformed"},
		{"empty participant", withPassword(fmt.Sprintf("%d:", future)), "malformed"},
		{"bad participant", withPassword(fmt.Sprintf("%d:al ice", future)), "malformed"},
		{"empty", withPassword(""), "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			s := startServer(t, cfg)
			client := newClient(t, s, "udp", tt.cred[0], tt.cred[1])
			if relay, err := client.Allocate(); err == nil {
				_ = relay.Close()
				t.Fatal("Allocate succeeded, want rejection")
			}
			if v := metric(t, reg, "meridian_turn_auth_failures_total", map[string]string{"reason": tt.reason}); v < 1 {
				t.Errorf("auth failures{reason=%q} = %v, want >= 1", tt.reason, v)
			}
			if v := metric(t, reg, "meridian_turn_allocations_total", nil); v != 0 {
				t.Errorf("allocations = %v, want 0", v)
			}
		})
	}
}

// Expiry is checked when an allocation is created only: an existing
// allocation keeps working (permissions, refreshes) after its credential's
// expiry, but the credential cannot create a new one.
func TestExpiryOnlyAtAllocation(t *testing.T) {
	var clock atomic.Int64
	start := time.Now()
	clock.Store(start.UnixNano())
	cfg := testConfig()
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	s := startServer(t, cfg)

	user, pass := creds("alice", start, time.Minute)
	client := newClient(t, s, "udp", user, pass)
	relay, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()

	clock.Store(start.Add(time.Hour).UnixNano()) // the credential is now stale
	peer := udpPeer(t)
	if err := client.CreatePermission(peer.LocalAddr()); err != nil {
		t.Fatalf("CreatePermission on a live allocation after expiry: %v", err)
	}
	if _, err := relay.WriteTo([]byte("still here"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, _ := readWithin(t, peer, 5*time.Second); string(got) != "still here" {
		t.Fatalf("peer got %q", got)
	}

	again := newClient(t, s, "udp", user, pass)
	if r, err := again.Allocate(); err == nil {
		_ = r.Close()
		t.Fatal("new allocation with an expired credential succeeded")
	}
}

// A turncred credential is one pion's own REST handler accepts, with the
// same key (participant ids may contain colons).
func TestTurncredMatchesPionRESTHandler(t *testing.T) {
	user, pass := creds("p:with:colons", time.Now(), time.Hour)
	key, want := pionKey(t, user), pionturn.GenerateAuthKey(user, "meridian", pass)
	if !bytes.Equal(key, want) {
		t.Fatal("pion's LongTermTURNRESTAuthHandler derives a different key for a turncred credential")
	}
}

// pionKey asks pion's own REST handler for the key of a username.
func pionKey(t *testing.T, user string) []byte {
	t.Helper()
	h := pionturn.LongTermTURNRESTAuthHandler(testSecret, quietPion().NewLogger("test"))
	_, key, ok := h(&pionturn.RequestAttributes{Username: user, Realm: "meridian", Method: stun.MethodAllocate})
	if !ok {
		t.Fatalf("pion rejected %q", user)
	}
	return key
}

func TestPionRESTCredentialsAccepted(t *testing.T) {
	s := startServer(t, testConfig())
	user, pass, err := pionturn.GenerateLongTermTURNRESTCredentials(testSecret, "carol", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, s, "udp", user, pass)
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("Allocate with pion-generated credentials: %v", err)
	}
	_ = relay.Close()
}

func TestAllocationQuotaPerParticipant(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAllocationsPerUser = 2
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s := startServer(t, cfg)

	allocate := func(participant, transport string) (net.PacketConn, error) {
		// A fresh credential per allocation: the quota is per participant,
		// not per username.
		user, pass := creds(participant, time.Now(), time.Duration(1+len(transport))*time.Hour)
		return newClient(t, s, transport, user, pass).Allocate()
	}
	first, err := allocate("alice", "udp")
	if err != nil {
		t.Fatal(err)
	}
	second, err := allocate("alice", "tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = second.Close() }()
	if r, err := allocate("alice", "udp"); err == nil {
		_ = r.Close()
		t.Fatal("third allocation for alice accepted, quota is 2")
	}
	if v := metric(t, reg, "meridian_turn_allocations_refused_total", map[string]string{"reason": "quota"}); v != 1 {
		t.Errorf("quota refusals = %v, want 1", v)
	}
	bob, err := allocate("bob", "udp")
	if err != nil {
		t.Fatalf("bob refused: %v", err)
	}
	defer func() { _ = bob.Close() }()

	_ = first.Close()
	eventually(t, "alice's first allocation released", func() bool { return s.Allocations("alice") == 1 })
	again, err := allocate("alice", "udp")
	if err != nil {
		t.Fatalf("allocation after release refused: %v", err)
	}
	_ = again.Close()
}

func TestAllowParticipantHook(t *testing.T) {
	cfg := testConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.AllowParticipant = func(p ids.ParticipantID) bool { return p != "pinned-elsewhere" }
	s := startServer(t, cfg)

	user, pass := creds("pinned-elsewhere", time.Now(), time.Hour)
	if r, err := newClient(t, s, "udp", user, pass).Allocate(); err == nil {
		_ = r.Close()
		t.Fatal("allocation refused by policy succeeded")
	}
	if v := metric(t, reg, "meridian_turn_allocations_refused_total", map[string]string{"reason": "policy"}); v != 1 {
		t.Errorf("policy refusals = %v, want 1", v)
	}
	user, pass = creds("alice", time.Now(), time.Hour)
	r, err := newClient(t, s, "udp", user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
}

func TestValidate(t *testing.T) {
	base := testConfig()
	tests := []struct {
		name string
		mod  func(*turn.Config)
		want string
	}{
		{"invalid allow CIDR", func(c *turn.Config) { c.AllowPeers = []string{"127.0.0.0/8", "10.0.0.300/8"} },
			`turn: AllowPeers[1]: invalid CIDR "10.0.0.300/8"`},
		{"invalid deny CIDR", func(c *turn.Config) { c.DenyPeers = []string{"not-a-cidr"} },
			`turn: DenyPeers[0]: invalid CIDR "not-a-cidr"`},
		{"deny prefix too long", func(c *turn.Config) { c.DenyPeers = []string{"10.0.0.0/33"} },
			`turn: DenyPeers[0]: invalid CIDR`},
		{"no secret", func(c *turn.Config) { c.Secret = "" }, "turn: Secret:"},
		{"short secret", func(c *turn.Config) { c.Secret = "short" }, "turn: Secret:"},
		{"no realm", func(c *turn.Config) { c.Realm = "" }, "turn: Realm:"},
		{"no relay address", func(c *turn.Config) { c.RelayAddress = netip.Addr{} }, "turn: RelayAddress:"},
		{"unspecified relay address", func(c *turn.Config) { c.RelayAddress = netip.IPv4Unspecified() }, "turn: RelayAddress:"},
		{"relay bind family", func(c *turn.Config) { c.RelayBindAddress = netip.IPv6Loopback() }, "turn: RelayBindAddress:"},
		{"no listener", func(c *turn.Config) { c.UDPListen, c.TCPListen = netip.AddrPort{}, netip.AddrPort{} }, "turn: UDPListen:"},
		{"tls without cert", func(c *turn.Config) { c.TLSListen = netip.AddrPortFrom(loopback, 0) }, "turn: TLSListen:"},
		{"cert without tls", func(c *turn.Config) { c.TLSCertFile = "x.pem" }, "turn: TLSCertFile:"},
		{"half port range", func(c *turn.Config) { c.RelayPortMin = 1000 }, "turn: RelayPortMin:"},
		{"inverted port range", func(c *turn.Config) { c.RelayPortMin, c.RelayPortMax = 2000, 1000 }, "turn: RelayPortMin:"},
		{"zero quota", func(c *turn.Config) { c.MaxAllocationsPerUser = 0 }, "turn: MaxAllocationsPerUser:"},
		{"negative recheck period", func(c *turn.Config) { c.RecheckEvery = -time.Second }, "turn: RecheckEvery:"},
		{"public host with port", func(c *turn.Config) { c.PublicHost = "turn.example.com:3478" }, "turn: PublicHost:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			for _, err := range []error{cfg.Validate(), newErr(cfg)} {
				if err == nil {
					t.Fatal("no error")
				}
				if !errors.Is(err, turn.ErrInvalidConfig) {
					t.Errorf("%v does not wrap ErrInvalidConfig", err)
				}
				if !strings.HasPrefix(err.Error(), tt.want) {
					t.Errorf("error %q, want prefix %q", err, tt.want)
				}
			}
		})
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("test config invalid: %v", err)
	}
	good := base
	good.PublicHost = "turn.example.com"
	good.AllowPeers = []string{"10.1.2.3", "fd00::/8", " 192.168.0.0/16 "}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func newErr(cfg turn.Config) error {
	s, err := turn.New(cfg)
	if err == nil {
		_ = s.Close()
	}
	return err
}

func TestDefaultConfig(t *testing.T) {
	cfg := turn.DefaultConfig()
	if cfg.MaxAllocationsPerUser != 10 {
		t.Errorf("MaxAllocationsPerUser = %d, want 10", cfg.MaxAllocationsPerUser)
	}
	if len(cfg.AllowPeers) != 0 {
		t.Errorf("default AllowPeers = %v, want none", cfg.AllowPeers)
	}
	if err := cfg.Validate(); !errors.Is(err, turn.ErrInvalidConfig) {
		t.Errorf("DefaultConfig without secret/relay address validated: %v", err)
	}
	restricted := turn.RestrictedPeers()
	for _, s := range []string{"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.0.1",
		"224.0.0.1", "0.0.0.0", "100.64.0.1", "::1", "fc00::1", "fe80::1", "ff02::1", "::"} {
		a := netip.MustParseAddr(s)
		found := false
		for _, p := range restricted {
			found = found || p.Contains(a)
		}
		if !found {
			t.Errorf("%s is not restricted by default", s)
		}
	}
}

func TestICEServers(t *testing.T) {
	cfg := testConfig()
	cfg.TLSListen = netip.AddrPortFrom(loopback, 0)
	cfg.TLSCertFile, cfg.TLSKeyFile = writeCert(t)
	cfg.PublicHost = "turn.example.com"
	s := startServer(t, cfg)
	now := time.Unix(1_700_000_000, 0)

	got := s.ICEServers("alice", now, 10*time.Minute)
	if len(got) != 2 {
		t.Fatalf("got %d ICE servers: %+v", len(got), got)
	}
	wantSTUN := fmt.Sprintf("stun:turn.example.com:%d", s.UDPAddr().Port())
	if len(got[0].URLs) != 1 || got[0].URLs[0] != wantSTUN || got[0].Username != "" {
		t.Errorf("stun entry = %+v, want %s without credentials", got[0], wantSTUN)
	}
	wantTURN := []string{
		fmt.Sprintf("turn:turn.example.com:%d?transport=udp", s.UDPAddr().Port()),
		fmt.Sprintf("turn:turn.example.com:%d?transport=tcp", s.TCPAddr().Port()),
		fmt.Sprintf("turns:turn.example.com:%d?transport=tcp", s.TLSAddr().Port()),
	}
	if strings.Join(got[1].URLs, " ") != strings.Join(wantTURN, " ") {
		t.Errorf("turn URLs = %v, want %v", got[1].URLs, wantTURN)
	}
	wantUser, wantPass := turncred.Generate(testSecret, "alice", now, 10*time.Minute)
	if got[1].Username != wantUser || got[1].Credential != wantPass {
		t.Errorf("credentials = %q/%q, want %q/%q", got[1].Username, got[1].Credential, wantUser, wantPass)
	}
	if exp, p, ok := turncred.Parse(got[1].Username); !ok || p != "alice" || !exp.Equal(now.Add(10*time.Minute)) {
		t.Errorf("username %q does not carry participant and expiry", got[1].Username)
	}
}

func TestICEServersIPv6Host(t *testing.T) {
	cfg := testConfig()
	cfg.TCPListen = netip.AddrPort{}
	cfg.PublicHost = "2001:db8::1"
	s := startServer(t, cfg)
	got := s.ICEServers("alice", time.Now(), time.Minute)
	want := fmt.Sprintf("turn:[2001:db8::1]:%d?transport=udp", s.UDPAddr().Port())
	if len(got) != 2 || len(got[1].URLs) != 1 || got[1].URLs[0] != want {
		t.Fatalf("got %+v, want one TURN URL %s", got, want)
	}
}

func TestTLSMinimumVersion(t *testing.T) {
	cfg := testConfig()
	cfg.TLSListen = netip.AddrPortFrom(loopback, 0)
	cfg.TLSCertFile, cfg.TLSKeyFile = writeCert(t)
	s := startServer(t, cfg)
	c, err := tls.Dial("tcp4", s.TLSAddr().String(), &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // self-signed test cert
		MaxVersion:         tls.VersionTLS11,
	})
	if err == nil {
		_ = c.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig()
	cfg.TLSListen = netip.AddrPortFrom(loopback, 0)
	cfg.TLSCertFile, cfg.TLSKeyFile = writeCert(t)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	// With AllowParticipant the server also runs its recheck loop, which
	// Close stops too.
	cfg.AllowParticipant = func(ids.ParticipantID) bool { return true }
	cfg.RecheckEvery = 10 * time.Millisecond
	s, err := turn.New(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// The same registry cannot take a second server's metrics; that New
	// fails cleanly.
	cfg2 := cfg
	if s2, err := turn.New(cfg2); err == nil {
		_ = s2.Close()
		t.Fatal("second server registered duplicate metrics")
	}

	// A connected TCP client with a live allocation must be cut off by Close.
	tcp, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(s.TCPAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tcp.Close() }()
	stunConn := pionturn.NewSTUNConn(tcp)
	user, pass := creds("alice", time.Now(), time.Hour)
	client, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: s.TCPAddr().String(), TURNServerAddr: s.TCPAddr().String(),
		Conn: stunConn, Username: user, Password: pass, LoggerFactory: quietPion(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := relay.LocalAddr().(*net.UDPAddr).AddrPort()
	udp := s.UDPAddr()
	// An idle TCP client that pion accepted but never heard from.
	idle, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(s.TCPAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Close() }()
	eventually(t, "idle conn accepted", func() bool { return s.Connections() == 2 })

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("idle client connection not closed by Close: %v", err)
	}
	// Client side: its refresh timers end with its relay conn.
	_ = relay.Close()
	client.Close()
	_ = tcp.Close()

	if c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(s.TCPAddr())); err == nil {
		_ = c.Close()
		t.Error("TCP listener still accepting after Close")
	}
	// The listen and relay ports are free again.
	eventually(t, "relay port released", func() bool {
		for _, ap := range []netip.AddrPort{udp, relayAddr} {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
			if err != nil {
				return false
			}
			_ = c.Close()
		}
		return true
	})
	families, _ := reg.Gather()
	if len(families) != 0 {
		t.Errorf("%d metric families still registered after Close", len(families))
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// cert and key paths.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "turn test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestRelayPortRange(t *testing.T) {
	probe, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	_ = probe.Close()

	cfg := testConfig()
	cfg.RelayPortMin, cfg.RelayPortMax = port, port
	s := startServer(t, cfg)
	user, pass := creds("alice", time.Now(), time.Hour)
	relay, err := newClient(t, s, "udp", user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()
	if got := relay.LocalAddr().(*net.UDPAddr).AddrPort(); got != netip.AddrPortFrom(loopback, port) {
		t.Fatalf("relayed address %s, want 127.0.0.1:%d", got, port)
	}
	user, pass = creds("bob", time.Now(), time.Hour)
	if r, err := newClient(t, s, "udp", user, pass).Allocate(); err == nil {
		_ = r.Close()
		t.Fatal("second allocation got a port outside the one-port range")
	}
}

func TestTCPRelayAllocationRefused(t *testing.T) {
	s := startServer(t, testConfig())
	user, pass := creds("alice", time.Now(), time.Hour)
	client := newClient(t, s, "tcp", user, pass)
	if alloc, err := client.AllocateTCP(); err == nil {
		_ = alloc.Close()
		t.Fatal("RFC 6062 TCP allocation succeeded")
	}
	if n := s.Allocations("alice"); n != 0 {
		t.Fatalf("Allocations = %d after refused TCP allocation", n)
	}
}

// TestOnRelayOnlyWhenRelaying: allocating is not relaying (browsers gather
// relay candidates they never use); the hook fires once, at the first
// permission to a peer.
func TestOnRelayOnlyWhenRelaying(t *testing.T) {
	cfg := testConfig()
	var got []ids.ParticipantID
	var mu sync.Mutex
	cfg.OnRelay = func(p ids.ParticipantID) {
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	}
	s := startServer(t, cfg)
	user, pass := creds("alice", time.Now(), time.Hour)
	relay, err := newClient(t, s, "udp", user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	if len(got) != 0 {
		t.Fatalf("OnRelay after a bare allocation: %v", got)
	}
	mu.Unlock()
	// Two peers: two permissions, one report.
	for _, peer := range []net.PacketConn{udpPeer(t), udpPeer(t)} {
		if _, err := relay.WriteTo([]byte("ping via relay"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		readWithin(t, peer, 5*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "alice" {
		t.Fatalf("OnRelay calls %v, want one for alice", got)
	}
}

// The start line names each listener's address, and "off" for a turns:
// listener the operator did not configure (not a zero address).
func TestStartLogNamesListeners(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		var buf bytes.Buffer
		cfg := testConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		if withTLS {
			cfg.TLSListen = netip.AddrPortFrom(loopback, 0)
			cfg.TLSCertFile, cfg.TLSKeyFile = writeCert(t)
		}
		s := startServer(t, cfg)
		want := "tls=off"
		if withTLS {
			want = "tls=" + s.TLSAddr().String()
		}
		line := buf.String()
		if !strings.Contains(line, "turn: listening") || !strings.Contains(line, want+" ") ||
			!strings.Contains(line, "udp="+s.UDPAddr().String()+" ") {
			t.Errorf("TLS %v: start line %q lacks %q or the UDP address", withTLS, line, want)
		}
	}
}
