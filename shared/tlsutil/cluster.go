package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"
)

// Roles a node certificate may carry (in its subject's OrganizationalUnit).
// A certificate without a role is accepted everywhere; an edge certificate
// is refused by the Raft transport, so a compromised edge cannot speak Raft.
const (
	RoleControl = "control"
	RoleEdge    = "edge"
)

const rolePrefix = "meridian-"

// RoleOf returns the role named in cert ("" when none).
func RoleOf(cert *x509.Certificate) string {
	for _, ou := range cert.Subject.OrganizationalUnit {
		if len(ou) > len(rolePrefix) && ou[:len(rolePrefix)] == rolePrefix {
			return ou[len(rolePrefix):]
		}
	}
	return ""
}

// ClusterConfig names a node's mutual-TLS material: its certificate and key
// (signed by the cluster CA, valid for server and client auth) and the CA.
type ClusterConfig struct {
	CertFile, KeyFile, CAFile string
	CheckEvery                time.Duration // key pair reload checks (default DefaultCheckEvery)
	Logger                    *slog.Logger
	Now                       func() time.Time
}

// Cluster is a node's identity in the cluster: its key pair (reloaded from
// disk) and the CA pool every peer's certificate must chain to. The CA file
// may hold several certificates (an old and a new CA while rotating); it is
// read once, at start.
type Cluster struct {
	pair  *KeyPair
	roots *x509.CertPool
}

// LoadRoots reads a PEM file of CA certificates to trust.
func LoadRoots(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tlsutil: %s holds no PEM certificate", caFile)
	}
	return roots, nil
}

// NewCluster loads the CA and the key pair and checks that the pair is
// signed by the CA and usable for both server and client authentication.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.CAFile == "" {
		return nil, errors.New("tlsutil: a CA file is required")
	}
	roots, err := LoadRoots(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	pair, err := NewKeyPair(KeyPairConfig{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, CheckEvery: cfg.CheckEvery, Logger: cfg.Logger, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	c := &Cluster{pair: pair, roots: roots}
	cert, _ := pair.Certificate()
	if err := c.verify(cert, x509.ExtKeyUsageServerAuth); err != nil {
		return nil, fmt.Errorf("tlsutil: %s is not usable as a server certificate of this cluster: %w", cfg.CertFile, err)
	}
	if err := c.verify(cert, x509.ExtKeyUsageClientAuth); err != nil {
		return nil, fmt.Errorf("tlsutil: %s is not usable as a client certificate of this cluster: %w", cfg.CertFile, err)
	}
	return c, nil
}

func (c *Cluster) verify(cert *tls.Certificate, usage x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// KeyPair is the node's own certificate.
func (c *Cluster) KeyPair() *KeyPair { return c.pair }

// Roots is the cluster CA pool.
func (c *Cluster) Roots() *x509.CertPool { return c.roots }

// Leaf is the node certificate currently in use.
func (c *Cluster) Leaf() *x509.Certificate {
	cert, _ := c.pair.Certificate()
	return cert.Leaf
}

// Names reports whether the node certificate is valid for host (a DNS
// name or an IP address): what peers dialing this node will check.
func (c *Cluster) Names(host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return c.Leaf().VerifyHostname(host)
}

// ClientConfig is for calls to other nodes: it presents the node
// certificate and trusts only the cluster CA (and checks the dialed name).
func (c *Cluster) ClientConfig() *tls.Config {
	return &tls.Config{MinVersion: MinVersion, RootCAs: c.roots, GetClientCertificate: c.pair.GetClientCertificate}
}

// PeerServerConfig is for listeners only nodes talk to (Raft): a client
// certificate from the cluster CA is required.
func (c *Cluster) PeerServerConfig() *tls.Config {
	return &tls.Config{MinVersion: MinVersion, GetCertificate: c.pair.GetCertificate,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: c.roots}
}

// HTTPTransport is an http.Transport for node-to-node calls (ClientConfig).
func (c *Cluster) HTTPTransport() *http.Transport { return NodeTransport(c.ClientConfig()) }

// NodeTransport is an http.Transport for calls between nodes (control to
// edge, edge to control) over TLS with cfg. It speaks HTTP/1.1 only: the
// nodes' servers (fiber on fasthttp) have no HTTP/2, and a clone of
// http.DefaultTransport would otherwise offer h2 in ALPN.
func NodeTransport(cfg *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	t.ForceAttemptHTTP2 = false
	return t
}

// RefuseRoles fails a handshake whose peer certificate carries one of the
// roles (for tls.Config.VerifyConnection, after chain verification).
func RefuseRoles(roles ...string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tlsutil: the peer presented no certificate")
		}
		if r := RoleOf(cs.PeerCertificates[0]); slices.Contains(roles, r) {
			return fmt.Errorf("tlsutil: %s presented a certificate with role %q, which is not accepted here", cs.PeerCertificates[0].Subject.CommonName, r)
		}
		return nil
	}
}

// ListenerConfig is for a node's HTTP listener, which serves browsers and
// API clients as well as other nodes. Either argument may be nil, not both.
//
// With a cluster identity, a client certificate is verified against the
// cluster CA when one is presented (a certificate from another CA fails
// the handshake); routes that require one check it per request
// (RequireClientCert). The certificate served is chosen per connection:
// the node certificate when the client names no server (it dialed an IP
// address) or a name the node certificate holds, else the public one. So
// nodes reaching each other at internal addresses see the certificate
// they verify against the cluster CA, and browsers see the public one.
func ListenerConfig(public *KeyPair, cluster *Cluster) *tls.Config {
	cfg := &tls.Config{MinVersion: MinVersion, NextProtos: []string{"http/1.1"}}
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if cluster != nil {
			nc, err := cluster.pair.Certificate()
			if public == nil || hello.ServerName == "" || (err == nil && nc.Leaf.VerifyHostname(hello.ServerName) == nil) {
				return nc, err
			}
		}
		return public.Certificate()
	}
	if cluster != nil {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = cluster.roots
	}
	return cfg
}
