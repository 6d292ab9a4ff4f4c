package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meridian-video/meridian/shared/tlsutil"
)

// runCerts: `meridian certs ca|node`: a small CA for the cluster's mutual
// TLS (ECDSA P-256 keys, files with 0600 keys).
func runCerts(args []string) error {
	sub, args, err := subcommand("certs", args, "ca", "node")
	if err != nil {
		return err
	}
	if sub == "ca" {
		return runCertsCA(args)
	}
	return runCertsNode(args)
}

func runCertsCA(args []string) error {
	fs := newFlagSet("certs ca", "Make a cluster CA: DIR/ca.crt (give it to every node as --mtls-ca) and DIR/ca.key\n(0600; keep it offline, it signs node certificates).")
	out := fs.String("out", "", "directory to write ca.crt and ca.key to (required)")
	name := fs.String("name", "Meridian cluster CA", "the CA's common name")
	days := fs.Int("days", 3650, "validity in days")
	force := fs.Bool("force", false, "replace an existing CA (every node certificate it signed stops being trusted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("certs ca: --out is required")
	}
	if *days <= 0 {
		return errors.New("certs ca: --days must be positive")
	}
	if _, err := os.Stat(filepath.Join(*out, "ca.key")); err == nil && !*force {
		return fmt.Errorf("certs ca: %s already exists; pass --force to replace the CA", filepath.Join(*out, "ca.key"))
	}
	ca, err := tlsutil.NewCA(*name, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	certFile, keyFile, err := tlsutil.WritePair(*out, "ca", ca.CertPEM(), keyPEM)
	if err != nil {
		return err
	}
	fmt.Printf("CA certificate %s (valid until %s)\nCA key         %s (0600)\n", certFile, ca.Cert.NotAfter.Format(time.DateOnly), keyFile)
	return nil
}

func runCertsNode(args []string) error {
	fs := newFlagSet("certs node", "Make a node certificate signed by the cluster CA, valid for server and client auth:\nDIR/NAME.crt, DIR/NAME.key (0600) and a copy of ca.crt. --hosts lists every address and\nname other nodes dial this node at (its --raft/--http advertise addresses, an edge's --internal-url host).\nRe-running it replaces the files; running nodes pick the new ones up without a restart.")
	caDir := fs.String("ca", "", "directory holding ca.crt and ca.key (required)")
	name := fs.String("name", "", "node name, e.g. c1 or paris-1 (required; the files are named after it)")
	var hosts listFlag
	fs.Var(&hosts, "hosts", "IP addresses and DNS names the certificate is valid for (comma-separated, required)")
	role := fs.String("role", "", "control or edge: Raft refuses edge certificates, so a compromised edge cannot speak Raft (default: none, accepted everywhere)")
	out := fs.String("out", "", "directory to write the files to (required)")
	days := fs.Int("days", 730, "validity in days (at most the CA's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *caDir == "" || *name == "" || *out == "" || len(hosts) == 0 {
		return errors.New("certs node: --ca, --name, --hosts and --out are required")
	}
	if strings.ContainsAny(*name, `/\`) || *name == "ca" || strings.HasPrefix(*name, ".") {
		return fmt.Errorf("certs node: --name %q cannot name files", *name)
	}
	if *days <= 0 {
		return errors.New("certs node: --days must be positive")
	}
	ca, err := tlsutil.LoadCA(filepath.Join(*caDir, "ca.crt"), filepath.Join(*caDir, "ca.key"))
	if err != nil {
		return fmt.Errorf("certs node: --ca: %w", err)
	}
	certPEM, keyPEM, err := ca.Issue(tlsutil.NodeRequest{Name: *name, Hosts: hosts, Role: *role, Validity: time.Duration(*days) * 24 * time.Hour})
	if err != nil {
		return fmt.Errorf("certs node: %w", err)
	}
	certFile, keyFile, err := tlsutil.WritePair(*out, *name, certPEM, keyPEM)
	if err != nil {
		return err
	}
	caFile := filepath.Join(*out, "ca.crt")
	if filepath.Clean(*out) != filepath.Clean(*caDir) {
		if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("node certificate %s (%s; hosts %s)\nnode key         %s (0600)\nCA certificate   %s\n\nflags: --mtls-cert %s --mtls-key %s --mtls-ca %s\n",
		certFile, *name, strings.Join(hosts, ","), keyFile, caFile, certFile, keyFile, caFile)
	return nil
}
