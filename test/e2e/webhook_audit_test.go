package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// TestWebhookAuditCountsEveryNode: the leader dies while its attempt
// at session-started is held by the receiver; the next leader sends it
// again. The session's audit names both nodes, and counts session-ended.
func TestWebhookAuditCountsEveryNode(t *testing.T) {
	c := webhookCluster(t, 3)
	release := make(chan struct{})
	var mu sync.Mutex
	arrivals := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		arrivals[r.Header.Get("webhook-id")]++
		first := arrivals[r.Header.Get("webhook-id")] == 1 && strings.Contains(string(body), "session-started")
		mu.Unlock()
		if first {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	edge := startAgent(t, c, "edge-w", "local")
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"webhook": map[string]any{"endPoint": srv.URL + "/hook", "events": []string{"*"}}}).JSON(t, &room)
	edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "ann", Name: "Ann"})
	clustertest.Eventually(t, 10*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(arrivals) == 0 {
			return "no attempt yet"
		}
		return ""
	})
	killed := c.KillLeader()
	close(release)
	alive := c.Leader()
	edge.ParticipantLeft(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "ann"})

	var sessions struct{ Data []struct{ ID string } }
	clustertest.Eventually(t, 10*time.Second, func() string {
		c.Do(alive, "GET", "/v2/sessions?roomId="+room.RoomID, c.Token(), nil).JSON(t, &sessions)
		if len(sessions.Data) != 1 {
			return "no session"
		}
		return ""
	})
	var audit struct {
		Hops []struct {
			Kind, NodeID, Region string
			Count                int
		}
	}
	clustertest.Eventually(t, 20*time.Second, func() string {
		c.Do(alive, "GET", "/v2/sessions/"+sessions.Data[0].ID+"/audit", c.Token(), nil).JSON(t, &audit)
		nodes := map[string]int{}
		for _, h := range audit.Hops {
			if h.Kind == "webhook" {
				nodes[h.NodeID] += h.Count
			}
		}
		k, a := fmt.Sprintf("node%d", killed), fmt.Sprintf("node%d", alive)
		// ann's 4 events: session-started (twice: killed, then alive),
		// participant-joined, participant-left, session-ended.
		if nodes[k] < 1 || nodes[a] < 4 {
			return fmt.Sprintf("audit webhook hops %+v, want %s (the dead leader) and %s with 4 attempts", audit.Hops, k, a)
		}
		return ""
	})
	t.Logf("audit hops: %+v", audit.Hops)
	var log struct {
		Data []struct{ EventType, SessionID string }
	}
	c.Do(alive, "GET", "/v2/webhooks/deliveries?roomId="+room.RoomID+"&event=session-ended", c.Token(), nil).JSON(t, &log)
	if len(log.Data) != 1 || log.Data[0].SessionID != sessions.Data[0].ID {
		t.Fatalf("session-ended in the log: %+v", log.Data)
	}
}
