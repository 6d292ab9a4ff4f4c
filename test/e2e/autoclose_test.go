package e2e

import (
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/shared/edgeapi"
)

// TestAutoCloseConfig: a session outliving its room's autoCloseConfig
// duration is ended by the leader; "session-end-and-deactivate" also
// disables the room so no new session can start.
func TestAutoCloseConfig(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		pc := placement.DefaultConfig()
		pc.EdgeToken = edgeToken
		cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc))
		cfg.AutoCloseEvery = 100 * time.Millisecond
	}})
	edge := startAgent(t, c, "edge-ac", "local")
	var room struct{ RoomID string }
	// 0.01 minutes = 0.6 s.
	c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"autoCloseConfig": map[string]any{"type": "session-end-and-deactivate", "duration": 0.01}}).JSON(t, &room)
	edge.ParticipantJoined(edgeapi.Event{RoomID: room.RoomID, ParticipantID: "p1", Name: "P1"})
	clustertest.Eventually(t, 10*time.Second, func() string {
		ss := session(t, c, 0, room.RoomID)
		if ss == nil {
			return "no session yet"
		}
		if ss.End == nil {
			return "session still ongoing past its auto-close duration"
		}
		if ss.EndReason != "auto-close" {
			return "ended for " + ss.EndReason
		}
		return ""
	})
	var got struct{ Disabled bool }
	c.Do(0, "GET", "/v2/rooms/"+room.RoomID, c.Token(), nil).JSON(t, &got)
	if !got.Disabled {
		t.Fatal("session-end-and-deactivate left the room enabled")
	}
}
