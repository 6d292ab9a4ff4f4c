package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// TestAuditShowsTURNRelay: a participant in a geoFenced room (eu001) whose
// media client relays through its edge's TURN server (allocation, then a
// packet to a peer, which is when the edge counts it as relaying) appears
// in GET /v2/sessions/{id}/audit as a "turn" hop on that edge, with its
// region and first/last times, and the audit stays compliant. A bare
// allocation (no packet relayed) adds no hop.
func TestAuditShowsTURNRelay(t *testing.T) {
	m := startMulti(t, 1, edgeSpec{id: "paris-1", region: "eu-west"})
	room := m.room(map[string]any{"geoFence": "eu001"})
	alice := m.session(0, room, "alice", "eu-west")
	edgeID := alice.EdgeID()

	// alice's TURN credentials for her edge, as the join API hands them out.
	var ja struct {
		Edges []struct {
			EdgeID     string
			IceServers []turnServer
		}
	}
	r := m.c.Do(0, "POST", "/v2/rooms/"+room+"/join", m.rtcToken("alice"), map[string]any{"participantId": "alice", "region": "eu-west"})
	if r.Status != 200 {
		t.Fatalf("join: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &ja)
	var ts turnServer
	for _, e := range ja.Edges {
		if e.EdgeID != edgeID {
			continue
		}
		for _, srv := range e.IceServers {
			if srv.Username != "" {
				ts = srv
			}
		}
	}
	if len(ts.URLs) == 0 {
		t.Fatalf("no TURN server for %s in the join answer: %s", edgeID, r.Body)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.URLs[0], "turn:"), "?transport=udp")

	var sessions struct{ Data []struct{ ID string } }
	clustertest.Eventually(t, 10*time.Second, func() string {
		m.c.Do(0, "GET", "/v2/sessions?roomId="+room, m.c.Token(), nil).JSON(t, &sessions)
		if len(sessions.Data) != 1 {
			return fmt.Sprintf("sessions %+v", sessions.Data)
		}
		return ""
	})
	sid := sessions.Data[0].ID
	type hop struct{ Kind, EdgeID, Region, First, Last string }
	audit := func() (hops []hop, compliant bool, body string) {
		var a struct {
			Compliant bool
			Hops      []hop
			Pins      []struct {
				Source        string
				Jurisdictions []string
			}
		}
		r := m.c.Do(0, "GET", "/v2/sessions/"+sid+"/audit", m.c.Token(), nil)
		if r.Status != 200 {
			t.Fatalf("audit: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &a)
		// The compliance verdict means something only if the room's
		// geoFence is among the pins it was judged against.
		if len(a.Pins) != 1 || a.Pins[0].Source != "geoFence eu001" || len(a.Pins[0].Jurisdictions) != 1 || a.Pins[0].Jurisdictions[0] != "eu" {
			t.Fatalf("audit of an eu001 room does not name its geoFence pin: %s", r.Body)
		}
		return a.Hops, a.Compliant, string(r.Body)
	}
	turnHops := func(hops []hop) []hop {
		var out []hop
		for _, h := range hops {
			if h.Kind == "turn" {
				out = append(out, h)
			}
		}
		return out
	}

	// alice's media client: a TURN allocation on her edge.
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: ts.Username, Password: ts.Credential, Realm: "meridian"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("alice (admitted on %s) cannot allocate: %v", edgeID, err)
	}
	defer relay.Close()
	// Allocating is not relaying: give a report time to arrive, then check
	// that none did (the edge's agent sends events within a heartbeat).
	time.Sleep(time.Second)
	if hops, _, body := audit(); len(turnHops(hops)) != 0 {
		t.Fatalf("a bare TURN allocation shows as a relay in the audit: %s", body)
	}

	// Relay a packet to a peer: the edge now relays for alice.
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("media via the edge's relay"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "media via the edge's relay" {
		t.Fatalf("the peer did not get the relayed packet: %q %v", buf[:n], err)
	}

	clustertest.Eventually(t, 10*time.Second, func() string {
		hops, compliant, body := audit()
		th := turnHops(hops)
		if len(th) != 1 {
			return "audit has no single TURN hop yet: " + body
		}
		h := th[0]
		if h.EdgeID != edgeID || h.Region != "eu-west" || h.First == "" || h.Last == "" {
			t.Fatalf("TURN hop %+v, want edge %s in eu-west with first/last times: %s", h, edgeID, body)
		}
		if !compliant {
			t.Fatalf("an eu001 room relayed in eu-west is reported not compliant: %s", body)
		}
		return ""
	})
}
