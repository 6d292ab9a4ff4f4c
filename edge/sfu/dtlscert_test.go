package sfu

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

func fingerprint(t testing.TB, c webrtc.Certificate) string {
	t.Helper()
	fps, err := c.GetFingerprints()
	if err != nil || len(fps) == 0 {
		t.Fatalf("fingerprints: %v, %v", fps, err)
	}
	return fps[0].Value
}

// TestConnectionsShareTheEdgeCertificate: publishers, subscribers and
// cascade legs present the edge's one DTLS certificate instead of one
// made for each connection (real connections complete their handshakes
// against it in every other test of this package).
func TestConnectionsShareTheEdgeCertificate(t *testing.T) {
	s := newTestSFU(t, testConfig())
	ma := s.media
	if ma.relay == nil {
		t.Fatal("the test edge has no relay API (no media mux)")
	}
	var pcs []*webrtc.PeerConnection
	add := func(pc *webrtc.PeerConnection, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
	}
	add(ma.newPeerConnection(false))
	add(ma.newPeerConnection(true))
	pc, _, err := ma.newSubscriberPeerConnection()
	add(pc, err)
	add(ma.newRelayPeerConnection(true))
	add(ma.newRelayPeerConnection(false))
	want, err := ma.cert.current()
	if err != nil {
		t.Fatal(err)
	}
	for i, pc := range pcs {
		certs := pc.GetConfiguration().Certificates
		if len(certs) != 1 || fingerprint(t, certs[0]) != fingerprint(t, want) {
			t.Errorf("connection %d presents %d certificates, not the edge's", i, len(certs))
		}
		_ = pc.Close()
	}
}

// TestCertificateRenewedBeforeItExpires: pion refuses a connection whose
// certificate has expired, so the edge makes a new one a week before its
// certificate's month is over; until then it keeps the one it has.
func TestCertificateRenewedBeforeItExpires(t *testing.T) {
	now := time.Now()
	d := newDTLSCertificate()
	d.now = func() time.Time { return now }
	first, err := d.current()
	if err != nil {
		t.Fatal(err)
	}
	if left := first.Expires().Sub(now); left < 2*certificateRenewBefore {
		t.Fatalf("a new certificate is valid for %v, want well over %v", left, certificateRenewBefore)
	}
	now = first.Expires().Add(-certificateRenewBefore - time.Minute)
	if again, _ := d.current(); fingerprint(t, again) != fingerprint(t, first) {
		t.Fatal("the certificate was replaced more than a week before it expires")
	}
	now = first.Expires().Add(-certificateRenewBefore + time.Minute)
	next, err := d.current()
	if err != nil {
		t.Fatal(err)
	}
	if fingerprint(t, next) == fingerprint(t, first) {
		t.Fatal("the certificate was kept less than a week before it expires")
	}
	// (pion dates certificates by the real clock: back to it, where the
	// new one is far from its expiry.)
	now = time.Now()
	if conf, err := d.configuration(); err != nil || len(conf.Certificates) != 1 || fingerprint(t, conf.Certificates[0]) != fingerprint(t, next) {
		t.Fatalf("configuration after the renewal: %v, %v", conf.Certificates, err)
	}
}

// BenchmarkNewSubscriberPeerConnection: what making a subscriber's
// connection costs the edge, with its certificate and with one made per
// connection (pion's default without Configuration.Certificates).
func BenchmarkNewSubscriberPeerConnection(b *testing.B) {
	s := newTestSFU(b, testConfig())
	b.Run("certificate=edge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pc, _, err := s.media.newSubscriberPeerConnection()
			if err != nil {
				b.Fatal(err)
			}
			_ = pc.Close()
		}
	})
	b.Run("certificate=per-connection", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pc, err := s.media.send.NewPeerConnection(webrtc.Configuration{SDPSemantics: webrtc.SDPSemanticsUnifiedPlan})
			if err != nil {
				b.Fatal(err)
			}
			_ = pc.Close()
		}
	})
}
