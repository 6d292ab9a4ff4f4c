package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrInvalidConfig is wrapped by every error Validate (and New) returns for a
// bad configuration. The message names the offending field.
var ErrInvalidConfig = errors.New("gossip: invalid config")

// ConfigError reports a bad configuration field. It wraps ErrInvalidConfig.
type ConfigError struct {
	Field  string // e.g. "Seeds[1]"
	Reason string
}

func (e *ConfigError) Error() string { return "gossip: " + e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func invalid(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Timer profiles for Config.Timers.
const (
	// TimersLAN is the production profile: a killed member is suspected
	// within ~1-2 s and declared dead within ~3-5 s.
	TimersLAN = "lan"
	// TimersLocal is for tests on loopback: everything ~5x faster.
	TimersLocal = "local"
)

// MaxIDLen is the longest NodeID and Region accepted (the meta budget of 512
// bytes is computed with two of them).
const MaxIDLen = 64

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Config configures a Pool. Start from DefaultConfig, set at least NodeID and
// Region, and pass it to New (which calls Validate).
type Config struct {
	// NodeID is this edge's id; it is also the memberlist node name and the
	// Member ID others see. 1-64 chars of [A-Za-z0-9._-].
	NodeID string
	// Region is this edge's region. Members whose meta names another region
	// are refused (see the package documentation). Same syntax as NodeID.
	Region string

	// BindAddr is the IP (not a host name) to listen on, UDP and TCP.
	BindAddr string
	// BindPort is the port for both UDP and TCP; 0 picks a free port (tests).
	BindPort int
	// AdvertiseAddr is the IP other members use to reach this one. Empty: the
	// bound IP, or a private IP of this host when BindAddr is 0.0.0.0.
	// Required when BindAddr is "::".
	AdvertiseAddr string
	// AdvertisePort is the advertised port. 0: the bound port.
	AdvertisePort int

	// Seeds are host:port gossip addresses of other members of the region.
	// They are joined in the background, with backoff, until at least one
	// answers, and again whenever this member finds itself alone.
	Seeds []string

	// SecretKey enables AES-GCM encryption of all gossip (16, 24 or 32
	// bytes); nil means plaintext. Members with another key (or none) cannot
	// join.
	SecretKey []byte

	// MetaEvery is how often the meta ticker calls Meta and publishes the
	// result when it changed.
	MetaEvery time.Duration
	// MetaRefresh is the longest time between two publications even when the
	// meta is unchanged (it repairs peers that missed an update).
	MetaRefresh time.Duration
	// MetaMinInterval is the shortest time between two publications when
	// only the load changed (counted in whole MetaEvery ticks, rounded up; 0:
	// every tick). Any other change (draining, capacity, address, the edge
	// becoming full) is published at the next tick. It bounds gossip
	// traffic under churn (load.go): each publication costs ~6-7 kB of gossip
	// in a 10-edge region.
	MetaMinInterval time.Duration
	// Meta returns what this edge tells its region. It is called by the meta
	// ticker goroutine only (never by a memberlist callback), so it may take
	// locks. ID and Region are always overwritten with NodeID and Region. Nil:
	// a meta with only ID and Region.
	Meta func() Meta

	// ForgetAfter is how long a dead or left member stays in Members().
	ForgetAfter time.Duration

	// Timers selects memberlist timings: TimersLAN (default, also for "") or
	// TimersLocal (tests).
	Timers string

	// Logger receives the pool's logs, and memberlist's own log lines at
	// Debug. Nil: slog.Default().
	Logger *slog.Logger
	// Registerer receives the pool's metrics. Nil: metrics are not exported.
	Registerer prometheus.Registerer
	// Now is the clock for Member.Since and forgetting. Nil: time.Now.
	Now func() time.Time
}

// DefaultConfig returns production defaults: 0.0.0.0:7946, meta every 2 s
// (and at least every 10 s; a load-only change at most every 8 s), LAN
// timers, dead members forgotten after 10 min. NodeID and Region must still
// be set.
func DefaultConfig() Config {
	return Config{
		BindAddr:        "0.0.0.0",
		BindPort:        7946,
		MetaEvery:       2 * time.Second,
		MetaRefresh:     10 * time.Second,
		MetaMinInterval: 8 * time.Second,
		ForgetAfter:     10 * time.Minute,
		Timers:          TimersLAN,
	}
}

// Validate checks the configuration. Errors wrap ErrInvalidConfig and name the
// field.
func (c Config) Validate() error {
	if err := checkID("NodeID", c.NodeID); err != nil {
		return err
	}
	if err := checkID("Region", c.Region); err != nil {
		return err
	}
	bind, err := netip.ParseAddr(c.BindAddr)
	if err != nil {
		return invalid("BindAddr", "%q is not an IP address", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return invalid("BindPort", "%d out of range", c.BindPort)
	}
	if c.AdvertiseAddr != "" {
		adv, err := netip.ParseAddr(c.AdvertiseAddr)
		if err != nil {
			return invalid("AdvertiseAddr", "%q is not an IP address", c.AdvertiseAddr)
		}
		if adv.IsUnspecified() {
			return invalid("AdvertiseAddr", "%s is unspecified", adv)
		}
	} else if bind.IsUnspecified() && bind.Is6() {
		// memberlist only looks up a private address for 0.0.0.0.
		return invalid("AdvertiseAddr", "required when BindAddr is %s", bind)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return invalid("AdvertisePort", "%d out of range", c.AdvertisePort)
	}
	for i, s := range c.Seeds {
		if err := checkHostPort(s); err != nil {
			return invalid(fmt.Sprintf("Seeds[%d]", i), "%v", err)
		}
	}
	if c.SecretKey != nil {
		if err := memberlist.ValidateKey(c.SecretKey); err != nil {
			return invalid("SecretKey", "%d bytes: must be 16, 24 or 32", len(c.SecretKey))
		}
	}
	if c.MetaEvery <= 0 {
		return invalid("MetaEvery", "must be positive, got %v", c.MetaEvery)
	}
	if c.MetaRefresh < c.MetaEvery {
		return invalid("MetaRefresh", "%v is shorter than MetaEvery %v", c.MetaRefresh, c.MetaEvery)
	}
	if c.MetaMinInterval < 0 || c.MetaMinInterval > c.MetaRefresh {
		return invalid("MetaMinInterval", "%v: want 0 up to MetaRefresh %v", c.MetaMinInterval, c.MetaRefresh)
	}
	if c.ForgetAfter <= 0 {
		return invalid("ForgetAfter", "must be positive, got %v", c.ForgetAfter)
	}
	switch c.Timers {
	case "", TimersLAN, TimersLocal:
	default:
		return invalid("Timers", "%q: want %q or %q", c.Timers, TimersLAN, TimersLocal)
	}
	return nil
}

func checkID(field, s string) error {
	if s == "" {
		return invalid(field, "empty")
	}
	if len(s) > MaxIDLen {
		return invalid(field, "%d chars, at most %d", len(s), MaxIDLen)
	}
	if !idRe.MatchString(s) {
		return invalid(field, "%q: only A-Z a-z 0-9 . _ - (starting with a letter or digit)", s)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q: empty host", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

// timers are the memberlist timings and the pool's own periods for one
// profile.
type timers struct {
	probeInterval, probeTimeout, gossipInterval time.Duration
	pushPull, tcpTimeout, toTheDead, reclaim    time.Duration
	suspicionMult, suspicionMaxMult             int
	retransmitMult, indirectChecks              int

	housekeeping         time.Duration // suspect expiry and forgetting
	joinMin, joinMax     time.Duration // background join backoff
	aloneCheck           time.Duration // how often the joiner looks at the pool size
	updateTimeout        time.Duration // ticker's UpdateNode wait (it needs no confirmation)
	leaveBroadcastMinDur time.Duration // part of Leave's timeout kept for the meta update
}

func timersFor(profile string) timers {
	if profile == TimersLocal {
		return timers{
			probeInterval: 200 * time.Millisecond, probeTimeout: 100 * time.Millisecond,
			gossipInterval: 50 * time.Millisecond,
			pushPull:       2 * time.Second, tcpTimeout: time.Second,
			toTheDead: 2 * time.Second, reclaim: time.Second,
			suspicionMult: 3, suspicionMaxMult: 3,
			retransmitMult: 3, indirectChecks: 1,
			housekeeping: 50 * time.Millisecond,
			joinMin:      50 * time.Millisecond, joinMax: time.Second,
			aloneCheck:           200 * time.Millisecond,
			updateTimeout:        time.Millisecond,
			leaveBroadcastMinDur: 100 * time.Millisecond,
		}
	}
	// memberlist.DefaultLANConfig, faster and cheaper. Measured on loopback
	// with 10 edges (TestPoolTraffic10LAN): a killed member is first
	// suspected after ~1.3-2.7 s (the first peer whose round-robin probe
	// reaches it, 350 ms probe timeout, indirect probes until the end of the
	// 700 ms interval), and declared dead 2.1 s later once a second peer
	// confirms (SuspicionMult 3; unconfirmed suspicion is capped at 3x, not
	// memberlist's 6x): ~3.5-5 s in all. RetransmitMult 3 (memberlist: 4)
	// cuts the cost of every meta update by a quarter while a pool of <= 9
	// still gets each broadcast from its origin to 3 random peers.
	return timers{
		probeInterval: 700 * time.Millisecond, probeTimeout: 350 * time.Millisecond,
		gossipInterval: 200 * time.Millisecond,
		pushPull:       30 * time.Second, tcpTimeout: 5 * time.Second,
		toTheDead: 30 * time.Second, reclaim: 10 * time.Second,
		suspicionMult: 3, suspicionMaxMult: 3,
		retransmitMult: 3, indirectChecks: 3,
		housekeeping: 500 * time.Millisecond,
		joinMin:      time.Second, joinMax: 30 * time.Second,
		aloneCheck:           5 * time.Second,
		updateTimeout:        time.Millisecond,
		leaveBroadcastMinDur: 500 * time.Millisecond,
	}
}

// apply copies the timings into a memberlist config.
func (t timers) apply(mc *memberlist.Config) {
	mc.ProbeInterval = t.probeInterval
	mc.ProbeTimeout = t.probeTimeout
	mc.GossipInterval = t.gossipInterval
	mc.GossipNodes = 3
	mc.PushPullInterval = t.pushPull
	mc.TCPTimeout = t.tcpTimeout
	mc.GossipToTheDeadTime = t.toTheDead
	mc.DeadNodeReclaimTime = t.reclaim
	mc.SuspicionMult = t.suspicionMult
	mc.SuspicionMaxTimeoutMult = t.suspicionMaxMult
	mc.RetransmitMult = t.retransmitMult
	mc.IndirectChecks = t.indirectChecks
}

// maxSuspicion is the longest memberlist keeps a member suspect before it
// declares it dead, for a pool of n, plus one probe interval of slack. A
// suspect mark older than this without a death was refuted.
func (t timers) maxSuspicion(n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	base := time.Duration(float64(t.suspicionMult) * scale * float64(t.probeInterval))
	return time.Duration(t.suspicionMaxMult)*base + 2*t.probeInterval
}
