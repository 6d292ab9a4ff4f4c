package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meridian-video/meridian/shared/tlsutil"
)

// tlsFlags configure TLS on a node's HTTP listener and mutual TLS on its
// links to other nodes (control and edge; dev has none of them).
type tlsFlags struct {
	cert, key                 string
	mtlsCert, mtlsKey, mtlsCA string
	insecureLinks             bool
}

func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.cert, "tls-cert", "", "PEM certificate (chain) for the HTTP listener: serves https:// and wss:// (TLS 1.2+); reloaded when the file changes")
	fs.StringVar(&t.key, "tls-key", "", "PEM key for --tls-cert")
	fs.StringVar(&t.mtlsCert, "mtls-cert", "", "this node's certificate from the cluster CA (meridian certs node): mutual TLS for Raft, node-to-node and edge<->control calls and cascade legs; reloaded when the file changes")
	fs.StringVar(&t.mtlsKey, "mtls-key", "", "PEM key for --mtls-cert")
	fs.StringVar(&t.mtlsCA, "mtls-ca", "", "the cluster CA certificate (meridian certs ca); peers must present a certificate it signed")
	fs.BoolVar(&t.insecureLinks, "insecure-cluster-links", false, "run links to other nodes without mutual TLS (plain, unauthenticated TCP/HTTP; only on a network you trust)")
}

// mtls reports whether a cluster identity is configured.
func (t *tlsFlags) mtls() bool { return t.mtlsCert != "" || t.mtlsKey != "" || t.mtlsCA != "" }

// secure reports whether the HTTP listener serves TLS.
func (t *tlsFlags) secure() bool { return t.cert != "" || t.mtls() }

// scheme is the listener's URL scheme.
func (t *tlsFlags) scheme() string {
	if t.secure() {
		return "https"
	}
	return "http"
}

// load reads the key pairs (either may be nil).
func (t *tlsFlags) load(logger *slog.Logger) (*tlsutil.KeyPair, *tlsutil.Cluster, error) {
	var (
		pub *tlsutil.KeyPair
		cl  *tlsutil.Cluster
		err error
	)
	if (t.cert == "") != (t.key == "") {
		return nil, nil, errors.New("--tls-cert and --tls-key go together")
	}
	if t.cert != "" {
		if pub, err = tlsutil.NewKeyPair(tlsutil.KeyPairConfig{CertFile: t.cert, KeyFile: t.key, Logger: logger}); err != nil {
			return nil, nil, fmt.Errorf("--tls-cert: %w", err)
		}
	}
	if t.mtls() {
		if t.mtlsCert == "" || t.mtlsKey == "" || t.mtlsCA == "" {
			return nil, nil, errors.New("--mtls-cert, --mtls-key and --mtls-ca go together")
		}
		if cl, err = tlsutil.NewCluster(tlsutil.ClusterConfig{CertFile: t.mtlsCert, KeyFile: t.mtlsKey, CAFile: t.mtlsCA, Logger: logger}); err != nil {
			return nil, nil, fmt.Errorf("--mtls-cert: %w", err)
		}
	}
	return pub, cl, nil
}

// errInsecureLinks is the refusal to link nodes without mutual TLS.
func errInsecureLinks(who, links string) error {
	return fmt.Errorf("%s: %s would carry tokens and cluster traffic unauthenticated and in clear text.\n"+
		"Give this node a cluster identity with --mtls-cert, --mtls-key and --mtls-ca (make them with `meridian certs ca` and `meridian certs node`),\n"+
		"or pass --insecure-cluster-links to run without mutual TLS on a network you trust", who, links)
}

// checkLinks refuses cluster links without mTLS unless the operator
// opted out, and says so loudly when they did.
func (t *tlsFlags) checkLinks(logger *slog.Logger, who, links string, linked bool) error {
	if !linked || t.mtls() {
		return nil
	}
	if !t.insecureLinks {
		return errInsecureLinks(who, links)
	}
	logger.Warn("INSECURE: --insecure-cluster-links: " + links + " run without mutual TLS (unauthenticated, unencrypted unless https)")
	return nil
}

// hostOf returns the host of a URL or host:port.
func hostOf(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		return u.Hostname()
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// needNamed fails when the node certificate does not name the address
// peers will dial (they verify it against the cluster CA).
func needNamed(cl *tlsutil.Cluster, flagName, addr string) error {
	if cl == nil || addr == "" {
		return nil
	}
	h := hostOf(addr)
	if err := cl.Names(h); err != nil {
		return fmt.Errorf("%s %s: other nodes dial %q and check that --mtls-cert names it, but it does not (%v); issue the certificate with --hosts including %s",
			flagName, addr, h, err, h)
	}
	return nil
}

// needHTTPS fails when a URL other nodes are called at is not https://
// while mutual TLS is configured.
func needHTTPS(flagName, u string) error {
	if !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("%s %s: with --mtls-* node links use TLS; give an https:// URL", flagName, u)
	}
	return nil
}

// cliClient is the HTTP client of CLI commands that call a node's
// /internal/ routes (edge drain): with --mtls-* it presents that
// certificate and trusts the cluster CA.
func cliClient(mtlsCert, mtlsKey, mtlsCA string) (*http.Client, error) {
	if mtlsCert == "" && mtlsKey == "" && mtlsCA == "" {
		return &http.Client{Timeout: 30 * time.Second}, nil
	}
	if mtlsCert == "" || mtlsKey == "" || mtlsCA == "" {
		return nil, errors.New("--mtls-cert, --mtls-key and --mtls-ca go together")
	}
	cl, err := tlsutil.NewCluster(tlsutil.ClusterConfig{CertFile: mtlsCert, KeyFile: mtlsKey, CAFile: mtlsCA})
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: cl.HTTPTransport()}, nil
}
