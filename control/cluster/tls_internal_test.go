package cluster

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/meridian-video/meridian/shared/tlsutil"
	"github.com/meridian-video/meridian/shared/tlsutil/tlsutiltest"
)

// raftPeer is a Raft transport over mutual TLS that answers every
// AppendEntries with success.
func raftPeer(t *testing.T, id *tlsutil.Cluster) *raft.NetworkTransport {
	t.Helper()
	tr, err := newRaftTransport(Config{RaftBind: "127.0.0.1:0", MTLS: id}, nil, hclog.NewNullLogger(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	answer(t, tr)
	return tr
}

func answer(t *testing.T, tr *raft.NetworkTransport) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case rpc := <-tr.Consumer():
				rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() { close(done); tr.Close() })
}

func appendTo(from, to *raft.NetworkTransport) error {
	var resp raft.AppendEntriesResponse
	return from.AppendEntries("peer", to.LocalAddr(), &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("x"), Addr: []byte(from.LocalAddr())}, Term: 1}, &resp)
}

// TestRaftTransportMutualTLS: Raft RPCs flow between nodes holding
// certificates from the cluster CA; a peer with a certificate from another
// CA, an edge certificate from the right CA, or no TLS at all is refused.
func TestRaftTransportMutualTLS(t *testing.T) {
	ca := tlsutiltest.NewCA(t)
	a := raftPeer(t, ca.Issue("a", tlsutil.RoleControl, "127.0.0.1").Cluster(0))
	b := raftPeer(t, ca.Issue("b", "", "127.0.0.1").Cluster(0))
	if err := appendTo(a, b); err != nil {
		t.Fatalf("a -> b over mTLS: %v", err)
	}
	if err := appendTo(b, a); err != nil {
		t.Fatalf("b -> a over mTLS: %v", err)
	}

	// An edge's certificate is from the cluster CA but may not speak Raft,
	// neither as a client nor as a server.
	e := raftPeer(t, ca.Issue("e", tlsutil.RoleEdge, "127.0.0.1").Cluster(0))
	if err := appendTo(e, b); err == nil {
		t.Error("an edge certificate was accepted by a Raft server")
	}
	if err := appendTo(a, e); err == nil {
		t.Error("a Raft client accepted an edge certificate as a server")
	}

	// A certificate from another CA, presented by a client that does trust
	// the cluster CA (so only the server's check stands in the way).
	rogue := tlsutiltest.NewCA(t).Issue("rogue", tlsutil.RoleControl, "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(rogue.CertFile, rogue.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &tlsStreamLayer{ln: ln, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		client: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}},
		server: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}}
	r := raft.NewNetworkTransportWithLogger(rs, 1, 5*time.Second, hclog.NewNullLogger())
	answer(t, r)
	if err := appendTo(r, b); err == nil {
		t.Error("a certificate from another CA was accepted by a Raft server")
	}
	if err := appendTo(a, r); err == nil {
		t.Error("a Raft client accepted a server certificate from another CA")
	}

	// Plain TCP Raft cannot talk to an mTLS node.
	plain, err := raft.NewTCPTransportWithLogger("127.0.0.1:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	answer(t, plain)
	if err := appendTo(plain, b); err == nil {
		t.Error("a plain-TCP Raft client was answered by an mTLS node")
	}

	// Still fine between the legitimate peers.
	if err := appendTo(a, b); err != nil {
		t.Fatalf("a -> b after the refusals: %v", err)
	}
}
