package turn_test

import (
	"net"
	"sync"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/shared/ids"
)

// admittedSet is an AllowParticipant backed by a set, as an edge answers
// it from who is admitted in its rooms.
type admittedSet struct {
	mu  sync.Mutex
	ids map[ids.ParticipantID]bool
}

func (a *admittedSet) set(p string, in bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = map[ids.ParticipantID]bool{}
	}
	a.ids[ids.ParticipantID(p)] = in
}

func (a *admittedSet) allow(p ids.ParticipantID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ids[p]
}

// relayWorks reports whether a datagram goes from the client through its
// relay to peer and one comes back, within d each way.
func relayWorks(t *testing.T, relay, peer net.PacketConn, d time.Duration) (out, back bool) {
	t.Helper()
	if _, err := relay.WriteTo([]byte("ping via relay 0123"), peer.LocalAddr()); err != nil {
		return false, false
	}
	buf := make([]byte, 1500)
	_ = peer.SetReadDeadline(time.Now().Add(d))
	n, _, err := peer.ReadFrom(buf)
	out = err == nil && string(buf[:n]) == "ping via relay 0123"
	// The peer answers the relayed address whether or not the ping came.
	if _, err := peer.WriteTo([]byte("pong from peer 0123"), relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(d))
	n, _, err = relay.ReadFrom(buf)
	back = err == nil && string(buf[:n]) == "pong from peer 0123"
	_ = relay.SetReadDeadline(time.Time{})
	return out, back
}

// TestRelaysClosedWhenParticipantIsRevoked: a participant relaying through
// the edge is removed (or denied, or leaves): AllowParticipant now says no.
// Its existing allocation stops relaying both ways within the recheck
// period, is deleted (its quota slot freed), and the allocation's requests
// (CreatePermission for another peer, Refresh) are refused at once. A
// participant that stays admitted keeps relaying across rechecks.
func TestRelaysClosedWhenParticipantIsRevoked(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			adm := &admittedSet{}
			adm.set("kicked", true)
			adm.set("stays", true)
			cfg := testConfig()
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			cfg.AllowParticipant = adm.allow
			cfg.RecheckEvery = 100 * time.Millisecond
			s := startServer(t, cfg)

			alloc := func(pid string) (*pionturn.Client, net.PacketConn) {
				t.Helper()
				user, pass := creds(pid, time.Now(), time.Hour)
				client := newClient(t, s, transport, user, pass)
				relay, err := client.Allocate()
				if err != nil {
					t.Fatalf("%s: Allocate: %v", pid, err)
				}
				t.Cleanup(func() { _ = relay.Close() })
				return client, relay
			}
			kickedClient, kicked := alloc("kicked")
			_, stays := alloc("stays")
			kickedPeer, staysPeer := udpPeer(t), udpPeer(t)
			for _, c := range []struct {
				pid         string
				relay, peer net.PacketConn
			}{{"kicked", kicked, kickedPeer}, {"stays", stays, staysPeer}} {
				if out, back := relayWorks(t, c.relay, c.peer, 5*time.Second); !out || !back {
					t.Fatalf("%s while admitted: relayed out=%v back=%v", c.pid, out, back)
				}
			}

			adm.set("kicked", false) // removed by a moderator, denied, or gone
			// Refused at once, before any recheck closes the allocation.
			if err := kickedClient.CreatePermission(udpPeer(t).LocalAddr()); err == nil {
				t.Error("CreatePermission of a participant no longer admitted succeeded")
			}
			eventually(t, "kicked's allocation deleted", func() bool { return s.Allocations("kicked") == 0 })
			if out, back := relayWorks(t, kicked, kickedPeer, 500*time.Millisecond); out || back {
				t.Errorf("kicked's relay still carries data after the revocation: out=%v back=%v", out, back)
			}
			if v := metric(t, reg, "meridian_turn_allocations_revoked_total", nil); v != 1 {
				t.Errorf("revoked allocations = %v, want 1", v)
			}
			if v := metric(t, reg, "meridian_turn_allocations", nil); v != 1 {
				t.Errorf("allocations gauge = %v, want 1 (stays' only)", v)
			}

			// Several rechecks later the admitted participant still relays.
			time.Sleep(5 * cfg.RecheckEvery)
			if out, back := relayWorks(t, stays, staysPeer, 5*time.Second); !out || !back {
				t.Fatalf("stays, still admitted, after rechecks: relayed out=%v back=%v", out, back)
			}
			if n := s.Allocations("stays"); n != 1 {
				t.Errorf("Allocations(stays) = %d, want 1", n)
			}
			// Admitted again (it rejoined): it may allocate a new relay.
			adm.set("kicked", true)
			_, again := alloc("kicked")
			if out, back := relayWorks(t, again, udpPeer(t), 5*time.Second); !out || !back {
				t.Fatalf("kicked, admitted again, new relay: out=%v back=%v", out, back)
			}
		})
	}
}

// TestRevokedParticipantRequestsRefused: without waiting for a recheck
// (RecheckEvery long), a participant AllowParticipant refuses gets nothing
// more from its live allocation: CreatePermission for a new peer and
// Refresh are refused as not admitted.
func TestRevokedParticipantRequestsRefused(t *testing.T) {
	adm := &admittedSet{}
	adm.set("kicked", true)
	cfg := testConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.AllowParticipant = adm.allow
	cfg.RecheckEvery = time.Hour
	s := startServer(t, cfg)
	user, pass := creds("kicked", time.Now(), time.Hour)
	client := newClient(t, s, "udp", user, pass)
	relay, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Close() }()
	if err := client.CreatePermission(udpPeer(t).LocalAddr()); err != nil {
		t.Fatalf("CreatePermission while admitted: %v", err)
	}
	adm.set("kicked", false)
	if err := client.CreatePermission(udpPeer(t).LocalAddr()); err == nil {
		t.Fatal("CreatePermission on the live allocation of a participant no longer admitted succeeded")
	}
	if v := metric(t, reg, "meridian_turn_auth_failures_total", map[string]string{"reason": "not_admitted"}); v < 1 {
		t.Errorf("not_admitted refusals = %v, want at least 1", v)
	}
}
