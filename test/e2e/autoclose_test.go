package e2e

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// TestAutoCloseConfig: autoCloseConfig.duration is seconds (the official
// server SDK sends afterInactiveSeconds there) counted from the moment the
// room has nobody left. A session with people in it is never auto-closed;
// someone who comes back within the duration continues the same session;
// once it has been empty for the duration the leader ends it, and
// "session-end-and-deactivate" also disables the room.
func TestAutoCloseConfig(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
		cfg.AutoCloseEvery = 100 * time.Millisecond
	}})
	edge := startAgent(t, c, "edge-ac", "local")
	var room struct{ RoomID string }
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"autoCloseConfig": map[string]any{"type": "session-end-and-deactivate", "duration": 1}}).JSON(t, &room)
	edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "p1", Name: "P1"})
	clustertest.Eventually(t, 10*time.Second, func() string {
		if ss := session(t, c, 0, room.RoomID); ss == nil || ss.ActiveCount() != 1 {
			return "no session with p1 yet"
		}
		return ""
	})
	first := session(t, c, 0, room.RoomID).ID

	// Occupied for three times the duration: still ongoing.
	time.Sleep(3 * time.Second)
	if ss := session(t, c, 0, room.RoomID); ss.End != nil {
		t.Fatalf("an occupied session was auto-closed (%s) after %v", ss.EndReason, ss.End.Sub(ss.Start))
	}

	// Empty, then back within the duration: the same session goes on.
	edge.ParticipantLeft(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "p1"})
	clustertest.Eventually(t, 10*time.Second, func() string {
		if ss := session(t, c, 0, room.RoomID); ss == nil || ss.ActiveCount() != 0 {
			return "p1 has not left yet"
		}
		return ""
	})
	if ss := session(t, c, 0, room.RoomID); ss.End != nil {
		t.Fatalf("the session ended (%s) the moment the room emptied; it must wait for the duration", ss.EndReason)
	}
	edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "p2", Name: "P2"})
	clustertest.Eventually(t, 10*time.Second, func() string {
		ss := session(t, c, 0, room.RoomID)
		if ss == nil || ss.ActiveCount() != 1 {
			return "p2 not in the session yet"
		}
		if ss.ID != first {
			return "a new session started instead of continuing " + first
		}
		return ""
	})

	// Empty for the duration: ended by auto-close, room disabled.
	edge.ParticipantLeft(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "p2"})
	clustertest.Eventually(t, 10*time.Second, func() string {
		ss := session(t, c, 0, room.RoomID)
		if ss.End == nil {
			return "session still ongoing past its auto-close duration"
		}
		if ss.EndReason != "auto-close" {
			return "ended for " + ss.EndReason
		}
		if ss.ID != first {
			return "wrong session"
		}
		return ""
	})
	var got struct{ Disabled bool }
	c.Do(0, "GET", "/v2/rooms/"+room.RoomID, c.Token(), nil).JSON(t, &got)
	if !got.Disabled {
		t.Fatal("session-end-and-deactivate left the room enabled")
	}
}
