package sfu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// dtlsCertificate is the certificate an edge's PeerConnections present in
// their DTLS handshakes. Without one in its Configuration, pion makes a
// new ECDSA key and self-signed certificate for every PeerConnection:
// ~0.11 ms of CPU and ~255 allocations for each subscriber and publisher
// that joins (BenchmarkNewSubscriberPeerConnection). A DTLS certificate only has to match the
// fingerprint its SDP carries (which the signaling socket delivers, so
// the peer already trusts the edge it is talking to), so one per edge does:
// browsers likewise reuse one certificate for all their connections.
//
// pion's certificates are valid for a month; a new one is made a week
// before that, and connections made earlier keep theirs.
type dtlsCertificate struct {
	mu   sync.Mutex
	cert *webrtc.Certificate
	now  func() time.Time // tests move the clock
}

// certificateRenewBefore is how long before its expiry a certificate is
// replaced for new connections (a connection lasts far less).
const certificateRenewBefore = 7 * 24 * time.Hour

func newDTLSCertificate() *dtlsCertificate { return &dtlsCertificate{now: time.Now} }

// current returns the certificate for a new connection, making one when
// there is none yet or the one there is nears its expiry.
func (d *dtlsCertificate) current() (webrtc.Certificate, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cert == nil || !d.now().Before(d.cert.Expires().Add(-certificateRenewBefore)) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return webrtc.Certificate{}, fmt.Errorf("sfu: DTLS key: %w", err)
		}
		cert, err := webrtc.GenerateCertificate(key)
		if err != nil {
			return webrtc.Certificate{}, fmt.Errorf("sfu: DTLS certificate: %w", err)
		}
		d.cert = cert
	}
	return *d.cert, nil
}

// configuration is a PeerConnection's configuration with the edge's
// certificate.
func (d *dtlsCertificate) configuration() (webrtc.Configuration, error) {
	cert, err := d.current()
	if err != nil {
		return webrtc.Configuration{}, err
	}
	return webrtc.Configuration{SDPSemantics: webrtc.SDPSemanticsUnifiedPlan, Certificates: []webrtc.Certificate{cert}}, nil
}
