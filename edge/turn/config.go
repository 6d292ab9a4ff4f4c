// Package turn embeds a TURN server (pion/turn/v5) in a Meridian edge.
//
// The server opens its own UDP, TCP and (optionally) TLS listeners, checks
// shared/turncred credentials ("expiry:participant", HMAC-SHA1 with a
// TURN-only secret), caps concurrent allocations per participant and refuses
// to relay to restricted peers (loopback, private, link-local, multicast,
// unspecified, CGNAT, ...) unless the configuration allows them explicitly.
// See docs/turn.md.
package turn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"time"

	"github.com/pion/logging"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/shared/ids"
)

// ErrInvalidConfig is wrapped by every error Validate (and New) returns for a
// bad configuration. The message names the offending field.
var ErrInvalidConfig = errors.New("turn: invalid config")

// MinSecretLen is the shortest accepted shared secret.
const MinSecretLen = 16

// Config configures an embedded TURN server. Start from DefaultConfig, set at
// least Secret and RelayAddress, and pass it to New (which calls Validate).
type Config struct {
	// Realm is the TURN realm (part of the long-term credential key).
	Realm string

	// PublicHost is the host name or IP put in the URLs ICEServers returns.
	// Empty: RelayAddress. Use a DNS name matching the certificate for turns:.
	PublicHost string

	// UDPListen, TCPListen and TLSListen are the listen addresses; a zero
	// AddrPort disables that listener, port 0 picks a free port. At least one
	// listener must be enabled. TLSListen requires TLSCertFile and TLSKeyFile.
	UDPListen netip.AddrPort
	TCPListen netip.AddrPort
	TLSListen netip.AddrPort
	// TLSCertFile and TLSKeyFile are PEM files for the TLS listener
	// (minimum TLS 1.2).
	TLSCertFile string
	TLSKeyFile  string

	// RelayAddress is the public IP advertised in XOR-RELAYED-ADDRESS
	// (required; the edge's public IP, not an unspecified address).
	RelayAddress netip.Addr
	// RelayBindAddress is the local address relay sockets bind to. Zero: the
	// unspecified address of RelayAddress's family (an edge behind 1:1 NAT).
	RelayBindAddress netip.Addr
	// RelayPortMin and RelayPortMax bound the relay ports (inclusive). Both
	// zero: ephemeral ports chosen by the kernel.
	RelayPortMin uint16
	RelayPortMax uint16

	// AllowPeers lists CIDRs (or single IPs) of otherwise restricted peers
	// that may be relayed to, e.g. the edge's own private SFU address, or
	// 127.0.0.0/8 in tests. It does not narrow relaying to public peers.
	AllowPeers []string
	// DenyPeers lists CIDRs (or single IPs) that are never relayed to; it wins
	// over AllowPeers and AllowedPeerCheck.
	DenyPeers []string
	// AllowedPeerCheck, when set, is asked last about every peer that the
	// lists admit; returning false refuses the permission. It must not block.
	AllowedPeerCheck func(peer netip.Addr) bool

	// AllowParticipant, when set, is asked when a participant creates an
	// allocation (after its credential is verified), e.g. to apply the
	// room's pin policy or to relay only for participants admitted here;
	// returning false refuses the allocation. It is asked again for every
	// later request on the participant's allocations (Refresh,
	// CreatePermission, ChannelBind: refused while it says false) and every
	// RecheckEvery for each participant holding allocations: once it says
	// false, the participant's allocations are closed, so a participant
	// removed, denied or gone stops relaying. It must not block.
	AllowParticipant func(participant ids.ParticipantID) bool
	// RecheckEvery is how often AllowParticipant is asked again about the
	// participants holding allocations (0: every second). Unused without
	// AllowParticipant.
	RecheckEvery time.Duration
	// OnRelay, when set, hears that a participant's allocation relays for
	// real (its first permission to a peer is granted): allocating alone
	// (browsers gather relay candidates they never use) is not relaying.
	// It must not block.
	OnRelay func(participant ids.ParticipantID)

	// MaxAllocationsPerUser caps concurrent allocations per participant.
	MaxAllocationsPerUser int

	// Secret is the TURN-only shared secret (never an API secret) used with
	// shared/turncred; at least MinSecretLen bytes.
	Secret string

	// Registerer receives the server's metrics. Nil: metrics are not exported.
	Registerer prometheus.Registerer
	// Logger receives the server's logs. Nil: slog.Default().
	Logger *slog.Logger
	// PionLoggerFactory is handed to pion/turn. Nil: pion's default
	// (errors and warnings on stderr).
	PionLoggerFactory logging.LoggerFactory
	// Now is the clock used for credential expiry. Nil: time.Now.
	Now func() time.Time
}

// DefaultConfig returns production defaults: realm "meridian", UDP and TCP
// on 0.0.0.0:3478, relay ports 40000-49999, 10 allocations per participant,
// participants rechecked every second, restricted peers refused. Secret and
// RelayAddress must still be set.
func DefaultConfig() Config {
	return Config{
		Realm:                 "meridian",
		UDPListen:             netip.AddrPortFrom(netip.IPv4Unspecified(), 3478),
		TCPListen:             netip.AddrPortFrom(netip.IPv4Unspecified(), 3478),
		RelayPortMin:          40000,
		RelayPortMax:          49999,
		MaxAllocationsPerUser: 10,
		RecheckEvery:          time.Second,
	}
}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// Validate checks the configuration, including every CIDR in AllowPeers and
// DenyPeers. Errors wrap ErrInvalidConfig and name the field.
func (c Config) Validate() error {
	_, err := c.compile()
	return err
}

// ConfigError reports a bad configuration field. It wraps ErrInvalidConfig.
type ConfigError struct {
	Field  string // e.g. "AllowPeers[1]"
	Reason string
}

func (e *ConfigError) Error() string { return "turn: " + e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func invalid(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// compile validates c and parses its peer lists.
func (c Config) compile() (*peerPolicy, error) {
	if c.Realm == "" {
		return nil, invalid("Realm", "empty")
	}
	if len(c.Secret) < MinSecretLen {
		return nil, invalid("Secret", "must be at least %d bytes", MinSecretLen)
	}
	if !c.UDPListen.IsValid() && !c.TCPListen.IsValid() && !c.TLSListen.IsValid() {
		return nil, invalid("UDPListen", "no listener enabled: set UDPListen, TCPListen or TLSListen")
	}
	hasCert := c.TLSCertFile != "" || c.TLSKeyFile != ""
	switch {
	case c.TLSListen.IsValid() && (c.TLSCertFile == "" || c.TLSKeyFile == ""):
		return nil, invalid("TLSListen", "needs TLSCertFile and TLSKeyFile")
	case !c.TLSListen.IsValid() && hasCert:
		return nil, invalid("TLSCertFile", "set without TLSListen")
	}
	if !c.RelayAddress.IsValid() || c.RelayAddress.IsUnspecified() {
		return nil, invalid("RelayAddress", "must be the public IP to advertise, got %q", c.RelayAddress)
	}
	if b := c.RelayBindAddress; b.IsValid() && b.Unmap().Is4() != c.RelayAddress.Unmap().Is4() {
		return nil, invalid("RelayBindAddress", "%s is not in the address family of RelayAddress %s", b, c.RelayAddress)
	}
	if (c.RelayPortMin == 0) != (c.RelayPortMax == 0) || c.RelayPortMin > c.RelayPortMax {
		return nil, invalid("RelayPortMin", "bad relay port range %d-%d (both zero for ephemeral ports)",
			c.RelayPortMin, c.RelayPortMax)
	}
	if c.RecheckEvery < 0 {
		return nil, invalid("RecheckEvery", "must not be negative, got %s", c.RecheckEvery)
	}
	if c.MaxAllocationsPerUser < 1 {
		return nil, invalid("MaxAllocationsPerUser", "must be at least 1, got %d", c.MaxAllocationsPerUser)
	}
	if h := c.PublicHost; h != "" {
		if _, err := netip.ParseAddr(h); err != nil && !hostnameRe.MatchString(h) {
			return nil, invalid("PublicHost", "%q is neither an IP nor a host name (no port)", h)
		}
	}
	allow, err := parsePrefixes("AllowPeers", c.AllowPeers)
	if err != nil {
		return nil, err
	}
	deny, err := parsePrefixes("DenyPeers", c.DenyPeers)
	if err != nil {
		return nil, err
	}
	return &peerPolicy{allow: allow, deny: deny, check: c.AllowedPeerCheck}, nil
}
