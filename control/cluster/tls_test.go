package cluster_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/shared/tlsutil"
	"github.com/meridian-video/meridian/shared/tlsutil/tlsutiltest"
)

// mtlsCluster starts n control nodes whose Raft transport, forwarded
// writes and joins run over mutual TLS with certificates from ca (issued
// on the fly, reloaded every 50 ms). Every node also serves a public
// certificate for "localhost".
func mtlsCluster(t *testing.T, ca *tlsutiltest.CA, n int) (*clustertest.Cluster, func(i int) tlsutiltest.Node, tlsutiltest.Node) {
	var mu sync.Mutex
	certs := map[int]tlsutiltest.Node{}
	nodeCert := func(i int) tlsutiltest.Node {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := certs[i]; !ok {
			certs[i] = ca.Issue(fmt.Sprintf("node%d", i), tlsutil.RoleControl, "127.0.0.1")
		}
		return certs[i]
	}
	public := ca.Issue("public", "", "localhost")
	c := clustertest.New(t, n, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.MTLS = nodeCert(i).Cluster(50 * time.Millisecond)
		cfg.TLSCert = public.KeyPair(50 * time.Millisecond)
	}})
	return c, nodeCert, public
}

type answer struct {
	status int
	body   []byte
}

func call(t *testing.T, hc *http.Client, method, url, authz string, hdr map[string]string, body any) (answer, error) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, rb}, nil
}

// TestClusterOverMutualTLS: three control nodes form a cluster over mTLS
// Raft; a write sent to a follower is forwarded to the leader over mTLS
// HTTP; a fourth node joins over mTLS; the API serves https with TLS 1.2+
// to clients without certificates while /internal/ routes require one
// from the cluster CA; a node certificate from another CA is refused by
// the HTTP listener and by Raft.
func TestClusterOverMutualTLS(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	c, nodeCert, _ := mtlsCluster(t, ca, 3)
	leader := c.Leader()
	follower := c.Followers()[0]
	for _, n := range c.Nodes() {
		if !strings.HasPrefix(n.URL(), "https://") || !strings.HasPrefix(n.Config().PublicURL, "https://") {
			t.Fatalf("node URL %s / public %s: want https", n.URL(), n.Config().PublicURL)
		}
	}

	// A browser or API client (no client certificate): the public API works
	// through a follower, whose write is forwarded to the leader.
	api := ca.Client()
	r, err := call(t, api, "POST", c.Node(follower).URL()+"/v2/rooms", c.Token(), nil, map[string]any{"customRoomId": "over-mtls"})
	if err != nil || r.status != 200 {
		t.Fatalf("create room through follower: %v %d %s", err, r.status, r.body)
	}
	var room struct{ RoomID string }
	_ = json.Unmarshal(r.body, &room)
	clustertest.Eventually(t, 5*time.Second, func() string {
		if roomCount(c, leader) == 0 {
			return "the leader has not applied the forwarded write"
		}
		return ""
	})
	// A read on another node that has to catch up with the leader.
	other := c.Followers()[len(c.Followers())-1]
	if r, err := call(t, api, "GET", c.Node(other).URL()+"/v2/rooms/"+room.RoomID+"?consistent=true", c.Token(), nil, nil); err != nil || r.status != 200 {
		t.Fatalf("consistent read: %v %d %s", err, r.status, r.body)
	}

	// /internal/ needs a client certificate from the CA, token or not.
	token := map[string]string{cluster.TokenHeader: "cluster-token-for-tests"}
	if r, err := call(t, api, "POST", c.Node(leader).URL()+"/internal/v1/raft/index", "", token, struct{}{}); err != nil || r.status != 403 {
		t.Fatalf("internal route without a client certificate: %v %d %s", err, r.status, r.body)
	}
	peer := ca.ClientWith(nodeCert(follower))
	if r, err := call(t, peer, "POST", c.Node(leader).URL()+"/internal/v1/raft/index", "", token, struct{}{}); err != nil || r.status != 200 {
		t.Fatalf("internal route with a node certificate: %v %d %s", err, r.status, r.body)
	}
	if r, err := call(t, peer, "POST", c.Node(leader).URL()+"/internal/v1/raft/index", "", nil, struct{}{}); err != nil || r.status != 401 {
		t.Fatalf("internal route with a certificate but no token: %v %d %s", err, r.status, r.body)
	}

	// A node certificate from another CA: the handshake fails, on HTTP and on Raft.
	rogue := tlsutiltest.NewCA(t).Issue("rogue", tlsutil.RoleControl, "127.0.0.1")
	if _, err := call(t, ca.ClientWith(rogue), "POST", c.Node(leader).URL()+"/internal/v1/raft/index", "", token, struct{}{}); err == nil {
		t.Fatal("the HTTP listener accepted a client certificate from another CA")
	}
	pair, err := tls.LoadX509KeyPair(rogue.CertFile, rogue.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := raftHello(c.Node(leader).Node().RaftAddr(), &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}}); err == nil {
		t.Fatal("the Raft listener accepted a client certificate from another CA")
	}
	if err := raftHello(c.Node(leader).Node().RaftAddr(), &tls.Config{RootCAs: ca.Pool()}); err == nil {
		t.Fatal("the Raft listener accepted a client without a certificate")
	}
	good, err := tls.LoadX509KeyPair(nodeCert(follower).CertFile, nodeCert(follower).KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := raftHello(c.Node(leader).Node().RaftAddr(), &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{good}}); err != nil {
		t.Fatalf("the Raft listener refused a node certificate of the cluster: %v", err)
	}

	// A new node joins over mTLS and receives the log over mTLS Raft. (It
	// asks the leader directly: a join forwarded by a follower is bounded
	// by the forward patience, which a loaded -race run can exceed.)
	j := c.AddNode(c.Leader())
	clustertest.Eventually(t, 10*time.Second, func() string {
		if roomCount(c, j) == 0 {
			return "the joined node has not replicated the room"
		}
		return ""
	})
	// Having the room is not being ready: the node answers 503 ("node is
	// starting") until its own registration is applied and it has heard
	// the leader's commit index.
	c.WaitReady()
	if r, err := call(t, api, "POST", c.Node(j).URL()+"/v2/rooms", c.Token(), nil, map[string]any{"customRoomId": "via-joined"}); err != nil || r.status != 200 {
		t.Fatalf("write through the joined node: %v %d %s", err, r.status, r.body)
	}
}

// raftHello opens a TLS connection to a Raft listener and sends a byte:
// a refused client sees the server's alert on its first read.
func raftHello(addr string, cfg *tls.Config) error {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte{0}); err != nil {
		return err
	}
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || err == io.EOF || (errors.As(err, &ne) && ne.Timeout()) {
		// The server took the handshake and waits for the rest of an RPC
		// (or hung up on a malformed one).
		return nil
	}
	return err
}

// TestCertificatesReloadWithoutRestart: replacing a node's certificate
// files changes what its HTTP and Raft listeners present within the check
// interval, without a restart, and the cluster keeps working across it.
func TestCertificatesReloadWithoutRestart(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	c, nodeCert, public := mtlsCluster(t, ca, 3)
	leader := c.Leader()
	follower := c.Followers()[0]
	httpAddr := c.Node(leader).Addr()
	raftAddr := c.Node(leader).Node().RaftAddr()
	me, err := tls.LoadX509KeyPair(nodeCert(follower).CertFile, nodeCert(follower).KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	presented := func(addr, sni string) string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: sni, Certificates: []tls.Certificate{me}})
		if err != nil {
			return "error: " + err.Error()
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	host, port := "127.0.0.1", httpAddr[strings.LastIndex(httpAddr, ":")+1:]
	oldNode, oldRaft, oldPublic := presented(httpAddr, host), presented(raftAddr, host), presented("localhost:"+port, "localhost")
	if oldNode != oldRaft || strings.HasPrefix(oldNode, "error") || strings.HasPrefix(oldPublic, "error") || oldPublic == oldNode {
		t.Fatalf("before: http %s raft %s public %s", oldNode, oldRaft, oldPublic)
	}

	nodeCert(leader).Reissue(tlsutil.RoleControl, "127.0.0.1")
	public.Reissue("", "localhost")
	clustertest.Eventually(t, 5*time.Second, func() string {
		n, r, p := presented(httpAddr, host), presented(raftAddr, host), presented("localhost:"+port, "localhost")
		if n == oldNode || r == oldRaft || p == oldPublic || n != r || strings.HasPrefix(n, "error") || strings.HasPrefix(p, "error") {
			return fmt.Sprintf("http %s raft %s public %s (were %s %s %s)", n, r, p, oldNode, oldRaft, oldPublic)
		}
		return ""
	})

	// Forwarded writes and replication still work with the new certificate
	// (followers dial the leader afresh).
	u, _ := url.Parse(c.Node(follower).URL())
	for i := 0; i < 3; i++ {
		r, err := call(t, ca.Client(), "POST", u.String()+"/v2/rooms", c.Token(), nil, map[string]any{"customRoomId": fmt.Sprintf("after-reload-%d", i)})
		if err != nil || r.status != 200 {
			t.Fatalf("write through a follower after the reload: %v %d %s", err, r.status, r.body)
		}
	}
	clustertest.Eventually(t, 5*time.Second, func() string {
		for i := range c.Nodes() {
			if roomCount(c, i) != 3 {
				return fmt.Sprintf("node%d has %d rooms", i, roomCount(c, i))
			}
		}
		return ""
	})
}
