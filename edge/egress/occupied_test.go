package egress

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// A composite whose room is empty on this edge keeps recording while the
// room has participants on other edges (a cascade leg down or coming
// back), and ends on EmptyRoomTimeout once it has none there either.
func TestEmptyRoomTimeoutWaitsForOtherEdges(t *testing.T) {
	s := startSFU(t)
	var elsewhere atomic.Bool
	elsewhere.Store(true)
	tr := newRunner(t, s, func(c *Config) {
		c.Poll = 100 * time.Millisecond
		c.EmptyRoomTimeout = time.Second
		c.OccupiedElsewhere = func(roomID string) bool { return roomID == "room-o" && elsewhere.Load() }
	})
	alice := publish(t, s, "room-o", "alice", egresstest.Options{Video: mediaFile(t, "red.ivf"), Audio: mediaFile(t, "440.ogg")})
	if _, err := tr.Start(egressapi.Spec{ID: "rec-o", Kind: egressapi.KindComposite, RoomID: "room-o"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second recorded", func() bool {
		st, _ := tr.Status("rec-o")
		return st.Duration >= 1
	})
	alice.Leave()
	waitFor(t, "the room to be gone from this edge", func() bool {
		_, ok := FromSFU(s).Members("room-o")
		return !ok
	})
	left, _ := tr.Status("rec-o")
	// Three empty-room timeouts of media later, still recording.
	waitFor(t, "three more seconds recorded, or the job ending", func() bool {
		st, _ := tr.Status("rec-o")
		return st.Duration >= left.Duration+3 || st.State.Final() || st.State == egressapi.StateStopping
	})
	if st, _ := tr.Status("rec-o"); st.State != egressapi.StateRunning {
		t.Fatalf("the job ended while the room had participants on other edges: %+v", st)
	}
	// Nobody anywhere: it ends on its own.
	elsewhere.Store(false)
	if st := tr.waitEnd(t, "rec-o"); st.State != egressapi.StateStopped || len(st.Files) != 1 {
		t.Fatalf("after the room emptied everywhere: %+v", st)
	}
}
