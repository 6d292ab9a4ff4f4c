package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// TestMaxParticipantsUnderConcurrentJoins: twelve people join a room of
// three at the same instant, through the three control nodes, from two
// continents (so the join API offers two edges, each of which counts only
// what it has heard of). Exactly three are let in; the others get 403
// naming the cap, whichever node or edge they came through. One of the
// three asking again (a retry, a move) keeps its place.
func TestMaxParticipantsUnderConcurrentJoins(t *testing.T) {
	c := webhookCluster(t, 3)
	startAgent(t, c, "paris-1", "eu-west")
	startAgent(t, c, "montreal-1", "ca-east")
	var room struct{ RoomID string }
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"maxParticipants": 3}); r.Status != 200 {
		t.Fatalf("create room: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &room)
	}
	// Every node knows the room (a join reads it locally) and both edges.
	clustertest.Eventually(t, 10*time.Second, func() string {
		for i := range 3 {
			if r := c.Do(i, "GET", "/v2/rooms/"+room.RoomID, c.Token(), nil); r.Status != 200 {
				return fmt.Sprintf("node%d: room %d", i, r.Status)
			}
		}
		return ""
	})
	join := func(i int, pid, region string) clustertest.Response {
		tok := c.Token(func(o *auth.MintOptions) {
			o.Roles = []string{auth.RoleRTC}
			o.Permissions = []string{auth.PermAllowJoin}
			o.ParticipantID = pid
		})
		return c.Do(i, "POST", "/v2/rooms/"+room.RoomID+"/join", tok, map[string]any{"participantId": pid, "region": region})
	}

	type answer struct {
		pid    string
		status int
		body   string
	}
	answers := make([]answer, 12)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for k := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pid := fmt.Sprintf("p%02d", k)
			region := []string{"eu-west", "ca-east"}[k%2]
			<-start
			r := join(k%3, pid, region)
			answers[k] = answer{pid, r.Status, string(r.Body)}
		}()
	}
	close(start)
	wg.Wait()
	var in []string
	edges := map[string]bool{}
	for _, a := range answers {
		switch {
		case a.status == 200:
			in = append(in, a.pid)
			var ja joinAnswer
			clustertest.Response{Status: a.status, Body: []byte(a.body)}.JSON(t, &ja)
			if len(ja.Edges) > 0 {
				edges[ja.Edges[0].EdgeID] = true
			}
		case a.status == 403 && strings.Contains(a.body, "maxParticipants 3"):
		default:
			t.Errorf("%s: %d %s, want 200 or 403 naming the cap", a.pid, a.status, a.body)
		}
	}
	if len(in) != 3 {
		t.Fatalf("%d let in (%v), want exactly 3", len(in), in)
	}
	t.Logf("let in: %v, sent to edges %v", in, edges)
	if r := join(1, in[0], "eu-west"); r.Status != 200 {
		t.Fatalf("%s asking again: %d %s, want its place kept", in[0], r.Status, r.Body)
	}
	if r := join(2, "late", "ca-east"); r.Status != 403 {
		t.Fatalf("a thirteenth: %d %s, want 403", r.Status, r.Body)
	}
}
