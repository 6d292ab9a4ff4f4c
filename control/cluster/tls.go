package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/meridian-video/meridian/shared/tlsutil"
)

// raftHandshakeTimeout bounds the TLS handshake of an accepted Raft
// connection: a peer that connects and says nothing holds no goroutine.
const raftHandshakeTimeout = 10 * time.Second

// tlsStreamLayer is a raft.StreamLayer over mutual TLS: both ends present
// a certificate from the cluster CA and verify the other's. Edge
// certificates (role "edge") are refused on both ends.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	log       *slog.Logger
}

// newRaftTransport builds the Raft transport: plain TCP, or mutual TLS
// when the node has a cluster identity.
func newRaftTransport(cfg Config, advertise net.Addr, logger hclog.Logger, log *slog.Logger) (*raft.NetworkTransport, error) {
	if cfg.MTLS == nil {
		return raft.NewTCPTransportWithLogger(cfg.RaftBind, advertise, 3, 10*time.Second, logger)
	}
	ln, err := net.Listen("tcp", cfg.RaftBind)
	if err != nil {
		return nil, err
	}
	refuseEdges := tlsutil.RefuseRoles(tlsutil.RoleEdge)
	srv := cfg.MTLS.PeerServerConfig()
	srv.VerifyConnection = refuseEdges
	cli := cfg.MTLS.ClientConfig()
	cli.VerifyConnection = refuseEdges
	s := &tlsStreamLayer{ln: ln, advertise: advertise, server: srv, client: cli, log: log}
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		ln.Close()
		return nil, errors.New("raft address is not advertisable: set RaftAdvertise")
	}
	return raft.NewNetworkTransportWithLogger(s, 3, 10*time.Second, logger), nil
}

// Dial opens a mutually authenticated connection to a peer; the peer's
// certificate must name the address dialed.
func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.client}
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft mTLS dial %s: %w", address, err)
	}
	return c, nil
}

// Accept returns the next connection; its handshake runs (bounded) on the
// first read, in the transport's per-connection goroutine.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: tls.Server(c, s.server), log: s.log}, nil
}

// Close stops listening.
func (s *tlsStreamLayer) Close() error { return s.ln.Close() }

// Addr is the advertised address (else the bound one).
func (s *tlsStreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// handshakeConn completes the server handshake within raftHandshakeTimeout
// before the first read, and logs a refused peer once.
type handshakeConn struct {
	*tls.Conn
	log  *slog.Logger
	once sync.Once
	err  error
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), raftHandshakeTimeout)
		defer cancel()
		if c.err = c.Conn.HandshakeContext(ctx); c.err != nil {
			c.log.Warn("raft: refused a connection (TLS handshake failed)", "remote", c.RemoteAddr().String(), "err", c.err)
		}
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

// httpClientTransport is the transport of node-to-node HTTP calls: the
// configured one (tests), else one presenting the node certificate when
// the node has a cluster identity, else the default.
func httpClientTransport(cfg Config) http.RoundTripper {
	if cfg.HTTPTransport != nil || cfg.MTLS == nil {
		return cfg.HTTPTransport
	}
	return cfg.MTLS.HTTPTransport()
}
