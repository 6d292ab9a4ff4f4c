package placement_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/ticket"
)

// TestAskJoinGuestsGetNoTURNCredentials: the organiser shares a guest link
// that may only ask to join and names no participant (POST
// /v2/rooms/{id}/meeting-link {"permissions":["ask_join"]}). Whoever holds
// it may ask the join API under any id, "host" included. The answer carries
// no TURN credentials for such a guest (the edge hands them out in `joined`
// once a moderator admitted it): before, a guest waiting in the lobby could
// relay with them, and credentials asked for under the host's id were the
// host's. Its ticket may still be marked admitted when the id is active in
// the session; the edge wants the guest's proof besides
// (edge/signal TestAskJoinClaimingAnActiveIDWaitsInTheLobby). A participant
// allowed to join gets its credentials as before.
func TestAskJoinGuestsGetNoTURNCredentials(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(_ int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		pc.HeartbeatEvery, pc.DownAfter = time.Second, time.Minute
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
	}})
	c.WaitReady()
	edge := "Bearer " + edgeToken
	reg := edgeapi.Register{EdgeID: "paris-1", Region: "eu-west", SignalURL: "ws://127.0.0.1:1/rtc", InternalURL: "http://127.0.0.1:1", Capacity: 10,
		STUNURLs: []string{"stun:127.0.0.1:3478"}, TURNURLs: []string{"turn:127.0.0.1:3478?transport=udp"}}
	if r := c.Do(0, "POST", "/internal/v1/edges/register", edge, reg); r.Status != 200 {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	if r := c.Do(0, "POST", "/internal/v1/edges/heartbeat", edge, edgeapi.Heartbeat{EdgeID: "paris-1"}); r.Status != 200 {
		t.Fatalf("heartbeat: %d %s", r.Status, r.Body)
	}
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), nil).JSON(t, &room)
	var link struct{ Token string }
	if r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/meeting-link", c.Token(), map[string]any{"permissions": []string{"ask_join"}}); r.Status != 200 {
		t.Fatalf("meeting-link: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &link)
	}
	var hostLink struct{ Token string }
	c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/meeting-link", c.Token(), map[string]any{"permissions": []string{"allow_join", "allow_mod"}, "participantId": "host"}).JSON(t, &hostLink)

	type answer struct {
		ParticipantID string
		Edges         []struct {
			Ticket     string
			ICEServers []struct {
				URLs       []string
				Username   string
				Credential string
			} `json:"iceServers"`
		}
	}
	join := func(token string, body map[string]any) (answer, ticket.Claims) {
		t.Helper()
		var a answer
		r := c.Do(0, "POST", "/v2/rooms/"+room.RoomID+"/join", token, body)
		if r.Status != 200 {
			t.Fatalf("join %v: %d %s", body, r.Status, r.Body)
		}
		r.JSON(t, &a)
		if len(a.Edges) == 0 {
			t.Fatalf("join %v: no edge: %s", body, r.Body)
		}
		head, _, _ := strings.Cut(a.Edges[0].Ticket, ".")
		raw, err := base64.RawURLEncoding.DecodeString(head)
		if err != nil {
			t.Fatal(err)
		}
		var cl ticket.Claims
		if err := json.Unmarshal(raw, &cl); err != nil {
			t.Fatal(err)
		}
		return a, cl
	}
	turnCreds := func(a answer) (stun, turn bool) {
		for _, s := range a.Edges[0].ICEServers {
			for _, u := range s.URLs {
				stun = stun || strings.HasPrefix(u, "stun:")
				turn = turn || ((strings.HasPrefix(u, "turn:") || strings.HasPrefix(u, "turns:")) && s.Username != "" && s.Credential != "")
			}
		}
		return stun, turn
	}

	// The host joins (its edge reports it: it is active in the session).
	a, _ := join(hostLink.Token, map[string]any{})
	if a.ParticipantID != "host" {
		t.Fatalf("host joined as %q", a.ParticipantID)
	}
	if stun, turn := turnCreds(a); !stun || !turn {
		t.Fatalf("the host got stun=%v turn=%v, want both", stun, turn)
	}
	ev := edgeapi.EventBatch{EdgeID: "paris-1", Events: []edgeapi.Event{{ID: "ev-host", Kind: edgeapi.EventParticipantJoined, RoomID: room.RoomID,
		ParticipantID: "host", Name: "Host", At: time.Now().UTC()}}}
	if r := c.Do(0, "POST", "/internal/v1/edges/events", edge, ev); r.Status != 200 {
		t.Fatalf("events: %d %s", r.Status, r.Body)
	}

	// A guest with the link and an id of its own, and one naming the host.
	for _, body := range []map[string]any{{}, {"participantId": "host", "name": "Mallory"}} {
		a, cl := join(link.Token, body)
		if !cl.Permissions.AskJoin || cl.Permissions.Moderate {
			t.Fatalf("guest ticket permissions %+v", cl.Permissions)
		}
		if stun, turn := turnCreds(a); !stun || turn {
			t.Errorf("guest %v got stun=%v turn=%v: want STUN only (TURN once admitted, from the edge)", body, stun, turn)
		}
	}
	// Naming the host, the mark says the id is in the session: the edge
	// decides with the guest's proof.
	clustertest.Eventually(t, 10*time.Second, func() string {
		if _, cl := join(link.Token, map[string]any{"participantId": "host"}); !cl.Admitted {
			return "host not yet active in the session"
		}
		return ""
	})
}
