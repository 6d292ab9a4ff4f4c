package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/meridian-video/meridian/shared/ids"
	"github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/turncred"
)

// Server is a running TURN server. It owns its listeners, relay sockets and
// pion's goroutines; Close stops them all.
type Server struct {
	cfg     Config
	secret  atomic.Pointer[string] // replaced when the edge (re)registers
	policy  *peerPolicy
	quota   *quota
	metrics *metrics
	log     *slog.Logger
	now     func() time.Time

	udp     *net.UDPConn
	tcp     *trackingListener // nil when disabled
	tls     *trackingListener // raw TCP under the TLS listener; nil when disabled
	tlsAddr netip.AddrPort
	pion    *turn.Server

	// relaying maps an allocation's client address to its participant,
	// until the first permission (OnRelay) is reported.
	relayMu  sync.Mutex
	relaying map[string]ids.ParticipantID

	// relays are the open relay sockets by participant (revoke.go).
	relays *relaySet
	// stop ends recheckLoop, which bg waits for.
	stop chan struct{}
	bg   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens the listeners and starts serving. On error
// everything opened so far is closed again.
func New(cfg Config) (_ *Server, err error) {
	policy, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		policy:  policy,
		quota:   newQuota(cfg.MaxAllocationsPerUser),
		metrics: newMetrics(),
		log:     cfg.Logger,
		now:     cfg.Now,
		relays:  newRelaySet(),
		stop:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}

	var certs []tls.Certificate
	if cfg.TLSListen.IsValid() {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, invalid("TLSCertFile", "loading key pair: %v", err)
		}
		certs = []tls.Certificate{cert}
	}

	defer func() {
		if err != nil {
			s.closeListeners()
		}
	}()
	if cfg.UDPListen.IsValid() {
		if s.udp, err = net.ListenUDP(network("udp", cfg.UDPListen), net.UDPAddrFromAddrPort(cfg.UDPListen)); err != nil {
			return nil, fmt.Errorf("turn: UDPListen %s: %w", cfg.UDPListen, err)
		}
	}
	if cfg.TCPListen.IsValid() {
		if s.tcp, err = listenTCP(cfg.TCPListen); err != nil {
			return nil, fmt.Errorf("turn: TCPListen %s: %w", cfg.TCPListen, err)
		}
	}
	if cfg.TLSListen.IsValid() {
		if s.tls, err = listenTCP(cfg.TLSListen); err != nil {
			return nil, fmt.Errorf("turn: TLSListen %s: %w", cfg.TLSListen, err)
		}
		s.tlsAddr = s.tls.addrPort()
	}

	relay := s.relayGenerator()
	var packetConns []turn.PacketConnConfig
	var listeners []turn.ListenerConfig
	if s.udp != nil {
		packetConns = append(packetConns, turn.PacketConnConfig{
			PacketConn: s.udp, RelayAddressGenerator: relay, PermissionHandler: s.permit,
		})
	}
	if s.tcp != nil {
		listeners = append(listeners, turn.ListenerConfig{
			Listener: s.tcp, RelayAddressGenerator: relay, PermissionHandler: s.permit,
		})
	}
	if s.tls != nil {
		listeners = append(listeners, turn.ListenerConfig{
			Listener: tls.NewListener(s.tls, &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: certs,
			}),
			RelayAddressGenerator: relay,
			PermissionHandler:     s.permit,
		})
	}

	loggerFactory := cfg.PionLoggerFactory
	if loggerFactory == nil {
		loggerFactory = logging.NewDefaultLoggerFactory()
	}
	if err = s.metrics.register(cfg.Registerer); err != nil {
		return nil, err
	}
	s.pion, err = turn.NewServer(turn.ServerConfig{
		PacketConnConfigs: packetConns,
		ListenerConfigs:   listeners,
		LoggerFactory:     loggerFactory,
		Realm:             cfg.Realm,
		AuthHandler:       s.authenticate,
		QuotaHandler:      s.allowAllocation,
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnAllocationDeleted: s.onAllocationDeleted,
		},
	})
	if err != nil {
		s.metrics.unregister()
		return nil, fmt.Errorf("turn: starting server: %w", err)
	}
	// A listener that is off has a zero AddrPort, which prints "invalid
	// AddrPort": say "off" (TCP: --turn-tcp ""; TLS: no certificate).
	addrOrOff := func(a netip.AddrPort) string {
		if a.IsValid() {
			return a.String()
		}
		return "off"
	}
	if cfg.AllowParticipant != nil {
		every := cfg.RecheckEvery
		if every == 0 {
			every = defaultRecheckEvery
		}
		s.bg.Add(1)
		go s.recheckLoop(every, s.stop)
	}
	s.log.Info("turn: listening", "udp", s.UDPAddr().String(), "tcp", addrOrOff(s.TCPAddr()),
		"tls", addrOrOff(s.TLSAddr()), "relay", cfg.RelayAddress.String())
	return s, nil
}

// relayGenerator returns the relay socket allocator shared by all listeners.
// RFC 6062 TCP relays are refused: browsers never ask for them, and they
// would let clients open TCP connections from the edge.
func (s *Server) relayGenerator() turn.RelayAddressGenerator {
	relayIP := net.IP(s.cfg.RelayAddress.Unmap().AsSlice())
	bind := s.cfg.RelayBindAddress
	if !bind.IsValid() {
		bind = netip.IPv4Unspecified()
		if !s.cfg.RelayAddress.Unmap().Is4() {
			bind = netip.IPv6Unspecified()
		}
	}
	var g turn.RelayAddressGenerator
	if s.cfg.RelayPortMin == 0 {
		g = &turn.RelayAddressGeneratorStatic{RelayAddress: relayIP, Address: bind.String()}
	} else {
		g = &turn.RelayAddressGeneratorPortRange{
			RelayAddress: relayIP,
			Address:      bind.String(),
			MinPort:      s.cfg.RelayPortMin,
			MaxPort:      s.cfg.RelayPortMax,
			MaxRetries:   50,
		}
	}
	return relayGenerator{RelayAddressGenerator: g, min: s.cfg.RelayPortMin, max: s.cfg.RelayPortMax, relays: s.relays}
}

var (
	errTCPRelay       = errors.New("turn: TCP relay allocations (RFC 6062) are disabled")
	errPortOutOfRange = errors.New("turn: requested relay port outside the relay port range")
)

// relayGenerator refuses TCP relays, keeps explicitly requested ports
// (RESERVATION-TOKEN gives port+1 of an EVEN-PORT reservation) in range and
// keeps the relay sockets it opens by participant, so that they can be
// closed when the participant is no longer allowed (revoke.go).
type relayGenerator struct {
	turn.RelayAddressGenerator
	min, max uint16 // 0, 0: any
	relays   *relaySet
}

func (g relayGenerator) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if p := c.RequestedPort; p != 0 && g.max != 0 && (p < int(g.min) || p > int(g.max)) {
		return nil, nil, errPortOutOfRange
	}
	conn, addr, err := g.RelayAddressGenerator.AllocatePacketConn(c)
	if err != nil {
		return nil, nil, err
	}
	wrapped, ok := g.relays.add(ids.ParticipantID(c.UserID), conn)
	if !ok {
		_ = conn.Close()
		return nil, nil, net.ErrClosed
	}
	return wrapped, addr, nil
}

func (relayGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errTCPRelay
}

func (relayGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errTCPRelay
}

// Close stops the listeners, closes every client connection and allocation,
// and unregisters the metrics. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.bg.Wait()
		s.relays.close()
		s.quota.close()
		if s.pion != nil {
			s.closeErr = s.pion.Close() // closes the listeners pion was given
		}
		s.closeListeners() // and the accepted TCP/TLS connections pion leaves open
		s.metrics.allocations.Set(0)
		s.metrics.unregister()
	})
	return s.closeErr
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.closeAll()
	}
	if s.tls != nil {
		s.tls.closeAll()
	}
}

// UDPAddr is the bound UDP listen address (zero if disabled).
func (s *Server) UDPAddr() netip.AddrPort {
	if s.udp == nil {
		return netip.AddrPort{}
	}
	return unmap(s.udp.LocalAddr().(*net.UDPAddr).AddrPort())
}

// TCPAddr is the bound TCP listen address (zero if disabled).
func (s *Server) TCPAddr() netip.AddrPort {
	if s.tcp == nil {
		return netip.AddrPort{}
	}
	return s.tcp.addrPort()
}

// Connections returns the number of open TCP and TLS client connections.
func (s *Server) Connections() int {
	n := 0
	for _, l := range []*trackingListener{s.tcp, s.tls} {
		if l != nil {
			l.mu.Lock()
			n += len(l.conns)
			l.mu.Unlock()
		}
	}
	return n
}

// TLSAddr is the bound TLS listen address (zero if disabled).
func (s *Server) TLSAddr() netip.AddrPort { return s.tlsAddr }

// Allocations returns the participant's open allocations on this server.
func (s *Server) Allocations(participantID string) int {
	return s.quota.count(ids.ParticipantID(participantID))
}

// ICEServers returns the ICE servers a participant should use: a stun: URL
// and turn:/turns: URLs with fresh credentials valid for ttl from now. The
// host is PublicHost (or RelayAddress), the ports are the bound listeners'.
func (s *Server) ICEServers(participantID string, now time.Time, ttl time.Duration) []signal.ICEServer {
	host := s.cfg.PublicHost
	if host == "" {
		host = s.cfg.RelayAddress.Unmap().String()
	}
	hostPort := func(p netip.AddrPort) string { return net.JoinHostPort(host, strconv.Itoa(int(p.Port()))) }

	var stunURLs, turnURLs []string
	if p := s.UDPAddr(); p.IsValid() {
		stunURLs = append(stunURLs, "stun:"+hostPort(p))
		turnURLs = append(turnURLs, "turn:"+hostPort(p)+"?transport=udp")
	}
	if p := s.TCPAddr(); p.IsValid() {
		turnURLs = append(turnURLs, "turn:"+hostPort(p)+"?transport=tcp")
	}
	if p := s.TLSAddr(); p.IsValid() {
		turnURLs = append(turnURLs, "turns:"+hostPort(p)+"?transport=tcp")
	}
	var out []signal.ICEServer
	if len(stunURLs) > 0 {
		out = append(out, signal.ICEServer{URLs: stunURLs})
	}
	user, pass := turncred.Generate(s.currentSecret(), participantID, now, ttl)
	out = append(out, signal.ICEServer{URLs: turnURLs, Username: user, Credential: pass})
	return out
}

func network(base string, ap netip.AddrPort) string {
	if ap.Addr().Unmap().Is4() {
		return base + "4"
	}
	return base + "6"
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func netipFromIP(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// trackingListener remembers accepted connections so Close can end them:
// pion's server stops accepting when its listener closes but leaves the
// connections it already accepted running.
type trackingListener struct {
	*net.TCPListener

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func listenTCP(ap netip.AddrPort) (*trackingListener, error) {
	l, err := net.ListenTCP(network("tcp", ap), net.TCPAddrFromAddrPort(ap))
	if err != nil {
		return nil, err
	}
	return &trackingListener{TCPListener: l, conns: map[net.Conn]struct{}{}}, nil
}

func (l *trackingListener) addrPort() netip.AddrPort {
	return unmap(l.TCPListener.Addr().(*net.TCPAddr).AddrPort())
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *trackingListener) closeAll() {
	_ = l.TCPListener.Close()
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// SetSecret replaces the shared TURN secret (the control plane hands it to the
// edge at registration; the edge may start before it knows it).
func (s *Server) SetSecret(secret string) error {
	if len(secret) < MinSecretLen {
		return invalid("Secret", "must be at least %d bytes", MinSecretLen)
	}
	s.secret.Store(&secret)
	return nil
}

func (s *Server) currentSecret() string {
	if p := s.secret.Load(); p != nil {
		return *p
	}
	return s.cfg.Secret
}
