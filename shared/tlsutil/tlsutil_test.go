package tlsutil_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/meridian-video/meridian/shared/tlsutil"
	"github.com/meridian-video/meridian/shared/tlsutil/tlsutiltest"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func serial(t *testing.T, k *tlsutil.KeyPair) string {
	t.Helper()
	c, err := k.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.SerialNumber.String()
}

// TestKeyPairReloadsChangedFiles: a replaced pair is served after the next
// check (not before: files are looked at most once per CheckEvery); a pair
// that does not load (a certificate written before its key) keeps the
// previous one in service until it does.
func TestKeyPairReloadsChangedFiles(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	n := ca.Issue("n1", "", "127.0.0.1")
	clk := &clock{now: time.Now()}
	k, err := tlsutil.NewKeyPair(tlsutil.KeyPairConfig{CertFile: n.CertFile, KeyFile: n.KeyFile, CheckEvery: 5 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	first := serial(t, k)

	n.Reissue("", "127.0.0.1")
	clk.Add(time.Second)
	if got := serial(t, k); got != first {
		t.Fatalf("reloaded before CheckEvery passed")
	}
	clk.Add(5 * time.Second)
	second := serial(t, k)
	if second == first {
		t.Fatalf("a replaced pair was not reloaded")
	}

	// A new certificate whose key is not written yet: keep serving the old pair.
	oldKey, _ := os.ReadFile(n.KeyFile)
	n.Reissue("", "127.0.0.1")
	newKey, _ := os.ReadFile(n.KeyFile)
	if err := os.WriteFile(n.KeyFile, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Add(6 * time.Second)
	if got := serial(t, k); got != second {
		t.Fatalf("a mismatched pair replaced the certificate in service")
	}
	if err := os.WriteFile(n.KeyFile, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Add(6 * time.Second)
	if got := serial(t, k); got == second {
		t.Fatalf("the completed pair was not picked up")
	}

	if _, err := tlsutil.NewKeyPair(tlsutil.KeyPairConfig{CertFile: n.CertFile, KeyFile: n.CertFile}); err == nil {
		t.Fatal("a certificate given as its own key loaded")
	}
}

// TestIssuedCertificates: node certificates carry server and client auth,
// their hosts and their role; NewCluster refuses a pair from another CA.
func TestIssuedCertificates(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	e := ca.Issue("paris-1", tlsutil.RoleEdge, "10.1.0.7", "paris-1.internal")
	cl := e.Cluster(0)
	leaf := cl.Leaf()
	if tlsutil.RoleOf(leaf) != tlsutil.RoleEdge || leaf.Subject.CommonName != "paris-1" {
		t.Fatalf("subject %v", leaf.Subject)
	}
	for _, h := range []string{"10.1.0.7", "paris-1.internal", "10.1.0.7:7880"} {
		if err := cl.Names(h); err != nil {
			t.Errorf("Names(%s): %v", h, err)
		}
	}
	if cl.Names("10.1.0.8") == nil {
		t.Error("certificate names an address it was not issued for")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	other := tlsutiltest.NewCA(t).Issue("x", "", "127.0.0.1")
	if _, err := tlsutil.NewCluster(tlsutil.ClusterConfig{CertFile: other.CertFile, KeyFile: other.KeyFile, CAFile: ca.CAFile}); err == nil {
		t.Fatal("a certificate from another CA was accepted as this cluster's")
	}
	if _, _, err := ca.CA.Issue(tlsutil.NodeRequest{Name: "x", Role: "admin", Hosts: []string{"a"}, Validity: time.Hour}); err == nil {
		t.Fatal("unknown role accepted")
	}
}

// serveTLS runs a fasthttp server answering 200 "ok" behind the guard on a
// TLS listener with cfg; it returns the address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: tlsutil.RequireClientCert(func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") })}
	go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// TestListenerConfig: the node certificate goes to clients that name no
// server or a name it holds, the public one to the others; a client
// certificate from another CA fails the handshake; none is fine outside
// /internal/.
func TestListenerConfig(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	node := ca.Issue("c1", "", "127.0.0.1", "c1.internal")
	public := ca.Issue("public", "", "video.example.com")
	cl, pub := node.Cluster(0), public.KeyPair(0)
	addr := serveTLS(t, tlsutil.ListenerConfig(pub, cl))

	for sni, want := range map[string]string{"": "c1", "c1.internal": "c1", "video.example.com": "public"} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: sni, InsecureSkipVerify: sni == ""})
		if err != nil {
			t.Fatalf("SNI %q: %v", sni, err)
		}
		if got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; got != want {
			t.Errorf("SNI %q: served %s, want %s", sni, got, want)
		}
		if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("version %x", v)
		}
		conn.Close()
	}
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}

	// TLS without a cluster identity: the public certificate for everyone,
	// no client certificate asked for.
	only := serveTLS(t, tlsutil.ListenerConfig(pub, nil))
	asked := false
	conn, err := tls.Dial("tcp", only, &tls.Config{RootCAs: ca.Pool(), ServerName: "video.example.com",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked = true
			return &tls.Certificate{}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if asked {
		t.Error("a listener without a cluster identity asked for a client certificate")
	}

	// A client certificate from another CA: refused in the handshake.
	rogue := tlsutiltest.NewCA(t).Issue("rogue", "", "127.0.0.1")
	rc := ca.ClientWith(rogue)
	if resp, err := rc.Get("https://" + addr + "/v2/rooms"); err == nil {
		resp.Body.Close()
		t.Fatal("a client certificate from another CA was accepted")
	}
	// No certificate: public routes answer, internal ones do not.
	if code := get(t, ca.Client(), "https://"+addr+"/v2/rooms"); code != 200 {
		t.Errorf("public route without a client certificate: %d", code)
	}
	if code := get(t, ca.Client(), "https://"+addr+"/internal/v1/raft/apply"); code != 403 {
		t.Errorf("internal route without a client certificate: %d", code)
	}
	if code := get(t, ca.ClientWith(ca.Issue("c2", "", "127.0.0.1")), "https://"+addr+"/internal/v1/raft/apply"); code != 200 {
		t.Errorf("internal route with a cluster certificate: %d", code)
	}
}

func get(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGuardSpellings: every spelling fiber would route to an internal
// route (case, repeated slashes, percent-encoding, dot segments, a
// trailing slash) needs the certificate.
func TestGuardSpellings(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	addr := serveTLS(t, tlsutil.ListenerConfig(nil, ca.Issue("c1", "", "127.0.0.1").Cluster(0)))
	for _, p := range []string{"/internal/v1/raft/apply", "/INTERNAL/v1/raft/apply", "//internal/v1/raft/apply", "/%69nternal/v1/raft/apply",
		"/internal%2Fv1/raft/apply", "/v2/../internal/v1/raft/apply", "/./internal/v1/drain", "/internal", "/internal/", "/Internal?x=1", "/%zz"} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte("GET " + p + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.Contains(line, " 403 ") {
			t.Errorf("GET %s without a client certificate: %q", p, strings.TrimSpace(line))
		}
	}
	for _, p := range []string{"/v2/rooms", "/internals", "/healthz", "/v2/internal/x"} {
		if code := get(t, ca.Client(), "https://"+addr+p); code != 200 {
			t.Errorf("GET %s: %d", p, code)
		}
	}
}
