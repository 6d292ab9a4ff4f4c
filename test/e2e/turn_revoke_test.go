package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

// relayCarries reports whether a datagram from the client reaches peer
// through relay, and one from peer comes back, within d each way.
func relayCarries(t *testing.T, relay, peer net.PacketConn, d time.Duration) (out, back bool) {
	t.Helper()
	buf := make([]byte, 1500)
	if _, err := relay.WriteTo([]byte("through the relay"), peer.LocalAddr()); err == nil {
		_ = peer.SetReadDeadline(time.Now().Add(d))
		n, _, err := peer.ReadFrom(buf)
		out = err == nil && string(buf[:n]) == "through the relay"
	}
	if _, err := peer.WriteTo([]byte("back through it"), relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(d))
	n, _, err := relay.ReadFrom(buf)
	_ = relay.SetReadDeadline(time.Time{})
	return out, err == nil && string(buf[:n]) == "back through it"
}

// TestTURNRelayEndsWithTheParticipant: a participant relays through its
// edge's TURN with the credentials of its join answer; the API removes it
// (POST /v2/sessions/participants/remove). Before, a new Allocate was
// refused but the allocation it had kept relaying both ways; now it stops
// within the edge's recheck (1 s).
func TestTURNRelayEndsWithTheParticipant(t *testing.T) {
	s := startStack(t)
	var room struct{ RoomID string }
	s.c.Do(0, "POST", "/v2/rooms", s.c.Token(), nil).JSON(t, &room)
	jr, ts := joinForTURN(t, s, room.RoomID, "dora")
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.URLs[0], "turn:"), "?transport=udp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := signaltest.Dial(ctx, signaltest.Config{URL: jr.Edges[0].SignalingURL})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, _, err := cl.Join(ctx, jr.Edges[0].Ticket, "Dora"); err != nil {
		t.Fatal(err)
	}

	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: ts.Username, Password: ts.Credential, Realm: "meridian"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("dora, admitted, cannot allocate: %v", err)
	}
	defer relay.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if out, back := relayCarries(t, relay, peer, 5*time.Second); !out || !back {
		t.Fatalf("dora's relay while she is in the room: out=%v back=%v", out, back)
	}

	// The edge reports her join to the control plane on its own time:
	// the removal finds her once the session has her.
	signaltest.Eventually(t, 10*time.Second, func() string {
		if r := s.c.Do(0, "POST", "/v2/sessions/participants/remove", s.c.Token(), map[string]any{"roomId": room.RoomID, "participantId": "dora"}); r.Status != 200 {
			return signaltest.Reasonf("remove: %d %s", r.Status, r.Body)
		}
		return ""
	})
	if _, err := cl.WaitFor(ctx, "removed", nil); err != nil {
		t.Fatalf("dora was not removed: %v", err)
	}
	removed := time.Now()
	signaltest.Eventually(t, 5*time.Second, func() string {
		if out, back := relayCarries(t, relay, peer, 300*time.Millisecond); out || back {
			return signaltest.Reasonf("dora's relay still carries after her removal: out=%v back=%v", out, back)
		}
		return ""
	})
	t.Logf("relay stopped %v after the removal", time.Since(removed).Round(100*time.Millisecond))
	if err := client.CreatePermission(peer.LocalAddr()); err == nil {
		t.Error("CreatePermission after the removal succeeded")
	}
}
