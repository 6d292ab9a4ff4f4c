// Package tlsutiltest makes cluster CAs and node certificates on disk for
// tests (t.TempDir), and the TLS configs clients in tests use.
package tlsutiltest

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/tlsutil"
)

// CA is a cluster CA whose certificate is written to CAFile.
type CA struct {
	t      testing.TB
	CA     *tlsutil.CA
	Dir    string
	CAFile string
}

// NewCA makes a CA in a fresh temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca, err := tlsutil.NewCA("test CA", 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(f, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return &CA{t: t, CA: ca, Dir: dir, CAFile: f}
}

// Node is a node certificate on disk.
type Node struct {
	Name              string
	CertFile, KeyFile string
	CAFile            string
	ca                *CA
}

// Issue writes a node certificate (role "", control or edge) for hosts.
func (c *CA) Issue(name, role string, hosts ...string) Node {
	c.t.Helper()
	n := Node{Name: name, CAFile: c.CAFile, ca: c}
	n.CertFile, n.KeyFile = c.write(name, role, hosts)
	return n
}

func (c *CA) write(name, role string, hosts []string) (string, string) {
	c.t.Helper()
	certPEM, keyPEM, err := c.CA.Issue(tlsutil.NodeRequest{Name: name, Hosts: hosts, Role: role, Validity: 90 * 24 * time.Hour})
	if err != nil {
		c.t.Fatal(err)
	}
	certFile, keyFile, err := tlsutil.WritePair(c.Dir, name, certPEM, keyPEM)
	if err != nil {
		c.t.Fatal(err)
	}
	return certFile, keyFile
}

// Reissue replaces the node's files with a new key and certificate (a new
// serial number) for hosts, as an operator rotating it would.
func (n Node) Reissue(role string, hosts ...string) {
	n.ca.t.Helper()
	n.ca.write(n.Name, role, hosts)
}

// Cluster loads the node as a cluster identity, checking its files for
// changes every checkEvery (0: the default).
func (n Node) Cluster(checkEvery time.Duration) *tlsutil.Cluster {
	n.ca.t.Helper()
	c, err := tlsutil.NewCluster(tlsutil.ClusterConfig{CertFile: n.CertFile, KeyFile: n.KeyFile, CAFile: n.CAFile, CheckEvery: checkEvery})
	if err != nil {
		n.ca.t.Fatal(err)
	}
	return c
}

// KeyPair loads the node's files as a plain key pair (a listener certificate).
func (n Node) KeyPair(checkEvery time.Duration) *tlsutil.KeyPair {
	n.ca.t.Helper()
	k, err := tlsutil.NewKeyPair(tlsutil.KeyPairConfig{CertFile: n.CertFile, KeyFile: n.KeyFile, CheckEvery: checkEvery})
	if err != nil {
		n.ca.t.Fatal(err)
	}
	return k
}

// Pool is a pool holding just this CA.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.CA.Cert)
	return p
}

// Client is an HTTP client that trusts this CA and presents no certificate
// (a browser or API client).
func (c *CA) Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool()}}}
}

// ClientWith is an HTTP client that trusts this CA and presents n's certificate.
func (c *CA) ClientWith(n Node) *http.Client {
	c.t.Helper()
	pair, err := tls.LoadX509KeyPair(n.CertFile, n.KeyFile)
	if err != nil {
		c.t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool(), Certificates: []tls.Certificate{pair}}}}
}

// Serial returns the serial number of the certificate a TLS server at
// addr presents (verified against this CA).
func (c *CA) Serial(addr string) (string, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: c.Pool()})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}
