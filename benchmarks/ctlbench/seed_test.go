package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/wait"
)

// TestSeedIsRestoredByARealNode: a real control node (Raft with the WAL
// log store on disk) is started, given an API key and one room through
// Raft, and stopped; seeding grows it to 300 rooms. Started again, the node
// restores the seed's snapshot (every seeded room and the key are there,
// the room created through Raft too), accepts new writes right after the
// log it already had, and still has all of it after one more restart
// (snapshot, then the log after it). A second seed continues the numbering.
func TestSeedIsRestoredByARealNode(t *testing.T) {
	dir := t.TempDir()
	start := func() *cluster.Node {
		t.Helper()
		cfg := cluster.DefaultConfig()
		cfg.NodeID, cfg.RaftBind, cfg.DataDir, cfg.Bootstrap = "n1", "127.0.0.1:0", dir, true
		cfg.HTTPAddr, cfg.ClusterToken = "http://127.0.0.1:1", "token"
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLease = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
		n, err := cluster.New(cfg, state.NewFSM(nil))
		if err != nil {
			t.Fatal(err)
		}
		n.Start()
		wait.Until(t, 10*time.Second, func() string {
			// Ready: leading and everything on disk at the start applied
			// (what /healthz answers 200 on).
			if !n.IsLeader() || !n.Ready() {
				return "not leader and caught up yet"
			}
			return ""
		})
		return n
	}
	apply := func(n *cluster.Node, ct state.CommandType, body any) {
		t.Helper()
		if _, _, err := n.Apply(context.Background(), ct, body); err != nil {
			t.Fatal(err)
		}
	}
	rooms := func(n *cluster.Node) (total int, missing []string) {
		n.FSM().Read(func(s *state.Store) {
			k, ok := s.APIKey("k1")
			if !ok {
				missing = append(missing, "key k1")
				return
			}
			_, total = s.RoomsPage(k.UserID, state.Page{Limit: 0})
			for _, id := range []string{seedRoomID(0), seedRoomID(150), seedRoomID(299), "rrrr-aaaa-fttt"} {
				r, ok := s.Room(k.UserID, id)
				if !ok {
					missing = append(missing, id)
				} else if id != "rrrr-aaaa-fttt" && (r.Webhook == nil || r.Webhook.EndPoint != customerHook || r.CustomRoomID == "") {
					missing = append(missing, id+" as the customer creates it")
				}
			}
		})
		return total, missing
	}
	room := func(id, roomID string) state.CreateRoom {
		at := time.Now().UTC()
		return state.CreateRoom{Room: state.Room{ID: id, RoomID: roomID, UserID: "u1", APIKey: "k1", CreatedAt: at, UpdatedAt: at}}
	}

	n := start()
	apply(n, state.CmdUpsertAPIKey, state.UpsertAPIKey{APIKey: state.APIKey{Key: "k1", UserID: "u1", SecretEnc: []byte{1}, SecretHash: "h1", CreatedAt: time.Now().UTC()}})
	apply(n, state.CmdCreateRoom, room("aaaaaaaaaaaaaaaaaaaaaaaa", "rrrr-aaaa-fttt"))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	res, err := seedDir(dir, "k1", 300, 0, "customer", true)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 299 || res.Rooms != 300 || res.Seeded != 299 || res.SnapshotBytes == 0 {
		t.Fatalf("seed: %+v", res)
	}
	n = start()
	// seedRoomID(299) is not seeded yet (ids 0..298): one missing.
	if total, missing := rooms(n); total != 300 || fmt.Sprint(missing) != "["+seedRoomID(299)+"]" {
		t.Fatalf("after the seeded start: %d rooms, missing %v", total, missing)
	}
	apply(n, state.CmdCreateRoom, room("bbbbbbbbbbbbbbbbbbbbbbbb", "rrrr-bbbb-fttt"))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = start()
	if total, missing := rooms(n); total != 301 || len(missing) != 1 {
		t.Fatalf("after another restart: %d rooms, missing %v", total, missing)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	if res, err = seedDir(dir, "k1", 310, res.Seeded, "customer", true); err != nil || res.Added != 9 || res.Seeded != 308 {
		t.Fatalf("second seed: %+v, %v", res, err)
	}
	n = start()
	defer n.Close()
	if total, missing := rooms(n); total != 310 || len(missing) != 0 {
		t.Fatalf("after the second seed: %d rooms, missing %v", total, missing)
	}
}
