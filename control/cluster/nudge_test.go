package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

// TestForwardedWriteDoesNotWaitForCommitTimeout: followers learn that an
// entry committed from the leader's next AppendEntries. With CommitTimeout
// set to an hour nothing but the leader's nudge after a forwarded write can
// bring that message, so each write below completes only if the nudge works
// (before it, a lone client through a follower paid 50–100 ms per write).
func TestForwardedWriteDoesNotWaitForCommitTimeout(t *testing.T) {
	// Followers are not ready at first: the last bootstrap entries reached
	// them, but not the news that those committed.
	c := clustertest.New(t, 3, clustertest.Options{LeaderReadyOnly: true, Configure: func(i int, cfg *server.Config) {
		cfg.Cluster.CommitTimeout = time.Hour
	}})
	follower := c.Followers()[0]
	node := c.Node(follower).Node()
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		id := []byte("nudgenudgenudgenudge0000")
		id[len(id)-1] = byte('a' + i)
		room := state.Room{ID: string(id), RoomID: "nudg-ezzz-zz" + string(rune('a'+i)) + "z", UserID: "u1", APIKey: "k1"}
		if _, _, err := node.Apply(ctx, state.CmdCreateRoom, state.CreateRoom{Room: room}); err != nil {
			cancel()
			t.Fatalf("write %d through %s: %v (the follower never learned the commit)", i, node.ID(), err)
		}
		cancel()
		var got *state.Room
		node.FSM().Read(func(s *state.Store) { got, _ = s.RoomByRoomID(room.RoomID) })
		if got == nil {
			t.Fatalf("write %d answered before %s could serve it back", i, node.ID())
		}
	}
}
