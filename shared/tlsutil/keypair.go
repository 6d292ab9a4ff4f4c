// Package tlsutil holds the TLS material of a Meridian node: key pairs
// that are reloaded when their files change on disk, the cluster CA that
// control nodes and edges use for mutual TLS, the tls.Configs built from
// them, and the small CA behind `meridian certs`.
//
// Every config is TLS 1.2 or newer. Certificates are re-read at most once
// per CheckEvery (a stat of two files); a pair that fails to load (a
// certificate written before its key) keeps the previous one in service
// and is tried again at the next check.
package tlsutil

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultCheckEvery is how often a key pair's files are looked at.
const DefaultCheckEvery = 5 * time.Second

// MinVersion is the oldest protocol version any Meridian endpoint speaks.
const MinVersion = tls.VersionTLS12

// KeyPairConfig names a certificate and its key on disk.
type KeyPairConfig struct {
	CertFile, KeyFile string
	// CheckEvery bounds how often the files are checked for changes
	// (default DefaultCheckEvery).
	CheckEvery time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Validate names the first invalid field.
func (c KeyPairConfig) Validate() error {
	if c.CertFile == "" || c.KeyFile == "" {
		return errors.New("tlsutil: a certificate file and a key file are required")
	}
	if c.CheckEvery < 0 {
		return errors.New("tlsutil: CheckEvery must not be negative")
	}
	return nil
}

// KeyPair is a certificate and key that follow their files on disk.
type KeyPair struct {
	cfg KeyPairConfig
	log *slog.Logger

	mu        sync.Mutex
	cur       *tls.Certificate
	stamp     fileStamp // of the files cur was loaded from
	nextCheck time.Time
}

// fileStamp identifies a version of the two files: a file replaced by a
// rename is another file even when its time and size look the same.
type fileStamp struct {
	cert, key os.FileInfo
}

func (a fileStamp) same(b fileStamp) bool {
	eq := func(x, y os.FileInfo) bool {
		return x != nil && y != nil && os.SameFile(x, y) && x.ModTime().Equal(y.ModTime()) && x.Size() == y.Size()
	}
	return eq(a.cert, b.cert) && eq(a.key, b.key)
}

// NewKeyPair loads the pair; it fails at once when the files are missing,
// unreadable or do not match.
func NewKeyPair(cfg KeyPairConfig) (*KeyPair, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	k := &KeyPair{cfg: cfg, log: cfg.Logger.With("cert", cfg.CertFile)}
	st, err := k.statFiles()
	if err != nil {
		return nil, err
	}
	c, err := k.load()
	if err != nil {
		return nil, err
	}
	k.cur, k.stamp, k.nextCheck = c, st, cfg.Now().Add(cfg.CheckEvery)
	k.warnIfExpiring(c)
	return k, nil
}

func (k *KeyPair) statFiles() (fileStamp, error) {
	ci, err := os.Stat(k.cfg.CertFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tlsutil: certificate: %w", err)
	}
	ki, err := os.Stat(k.cfg.KeyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tlsutil: key: %w", err)
	}
	return fileStamp{cert: ci, key: ki}, nil
}

func (k *KeyPair) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(k.cfg.CertFile, k.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: load %s / %s: %w", k.cfg.CertFile, k.cfg.KeyFile, err)
	}
	if c.Leaf == nil {
		return nil, fmt.Errorf("tlsutil: %s holds no certificate", k.cfg.CertFile)
	}
	return &c, nil
}

func (k *KeyPair) warnIfExpiring(c *tls.Certificate) {
	if left := c.Leaf.NotAfter.Sub(k.cfg.Now()); left < 30*24*time.Hour {
		k.log.Warn("TLS certificate expires soon; replace the files (they are reloaded without a restart)", "notAfter", c.Leaf.NotAfter, "left", left.Round(time.Minute))
	}
}

// Certificate returns the current pair, reloading it first when the files
// changed since the last load and the last check is CheckEvery ago.
func (k *KeyPair) Certificate() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.cfg.Now()
	if now.Before(k.nextCheck) {
		return k.cur, nil
	}
	k.nextCheck = now.Add(k.cfg.CheckEvery)
	st, err := k.statFiles()
	if err != nil {
		k.log.Warn("TLS files unreadable; keeping the loaded certificate", "err", err)
		return k.cur, nil
	}
	if st.same(k.stamp) {
		return k.cur, nil
	}
	c, err := k.load()
	if err != nil {
		// Often a certificate written before its key: try again next time.
		k.log.Warn("TLS files changed but do not load; keeping the previous certificate", "err", err)
		return k.cur, nil
	}
	k.cur, k.stamp = c, st
	k.log.Info("TLS certificate reloaded", "subject", c.Leaf.Subject.String(), "notAfter", c.Leaf.NotAfter)
	k.warnIfExpiring(c)
	return c, nil
}

// GetCertificate serves the pair (tls.Config.GetCertificate).
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate()
}

// GetClientCertificate presents the pair (tls.Config.GetClientCertificate).
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate()
}

// ServerConfig serves this pair alone: TLS 1.2+, no client certificates.
func (k *KeyPair) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: MinVersion, GetCertificate: k.GetCertificate, NextProtos: []string{"http/1.1"}}
}
