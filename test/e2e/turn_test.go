package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

type turnServer struct {
	URLs                 []string
	Username, Credential string
}

// turnJoin is a join answer's first edge, with its TURN server.
type turnJoin struct {
	Edges []struct {
		SignalingURL, Ticket string
		IceServers           []turnServer
	}
}

// joinForTURN asks the join API for participant pid of roomID and returns
// the answer and the TURN server of its first edge (the one with
// credentials).
func joinForTURN(t *testing.T, s *stack, roomID, pid string) (turnJoin, turnServer) {
	t.Helper()
	tok := s.c.Token(func(o *auth.MintOptions) { o.Roles = []string{auth.RoleRTC}; o.ParticipantID = pid })
	var jr turnJoin
	if r := s.c.Do(0, "POST", "/v2/rooms/"+roomID+"/join", tok, nil); r.Status != 200 {
		t.Fatalf("join as %s: %d %s", pid, r.Status, r.Body)
	} else {
		r.JSON(t, &jr)
	}
	var ts turnServer
	for _, srv := range jr.Edges[0].IceServers {
		if srv.Username != "" {
			ts = srv
		}
	}
	if len(ts.URLs) == 0 {
		t.Fatalf("no TURN server in the join answer: %+v", jr.Edges[0].IceServers)
	}
	return jr, ts
}

func allocate(t *testing.T, addr, user, pass string) error {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn, Username: user, Password: pass, Realm: "meridian"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err == nil {
		relay.Close()
	}
	return err
}

// TestTURNOnlyForAdmittedParticipants: TURN credentials from the join API
// allocate a relay only once the participant is admitted on that edge with
// its ticket, so a room's pin policy cannot be bypassed through another
// edge's relay.
func TestTURNOnlyForAdmittedParticipants(t *testing.T) {
	s := startStack(t)
	var room struct{ RoomID string }
	s.c.Do(0, "POST", "/v2/rooms", s.c.Token(), nil).JSON(t, &room)
	jr, ts := joinForTURN(t, s, room.RoomID, "dora")
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.URLs[0], "turn:"), "?transport=udp")
	if err := allocate(t, addr, ts.Username, ts.Credential); err == nil {
		t.Fatal("TURN allocated a relay for a participant that never joined this edge")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := signaltest.Dial(ctx, signaltest.Config{URL: jr.Edges[0].SignalingURL})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, _, err := cl.Join(ctx, jr.Edges[0].Ticket, "Dora"); err != nil {
		t.Fatal(err)
	}
	if err := allocate(t, addr, ts.Username, ts.Credential); err != nil {
		t.Fatalf("admitted participant cannot allocate: %v", err)
	}
	if err := allocate(t, addr, ts.Username, ts.Credential+"x"); err == nil {
		t.Fatal("wrong TURN password accepted")
	}
}
