package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// cmdWriteThenRefuse is a command only these tests know: it creates a room
// and then refuses, so a refusal has something to undo.
const cmdWriteThenRefuse CommandType = 0x7d

func init() {
	register(cmdWriteThenRefuse, func(s *Store, index uint64, c *CreateRoom) (any, error) {
		if _, err := applyCreateRoom(s, index, c); err != nil {
			return nil, err
		}
		return nil, errf(CodeConflict, "refused after writing")
	})
}

// batchLog is a log with every kind of outcome next to each other: rows in
// every table, refused commands (plain and wrapped in a request), a
// request repeated right after its first application, repeats of a refused
// request, creates that depend on rows created just before them, and
// entries that are not commands.
func batchLog(t *testing.T) []*raft.Log {
	t.Helper()
	f := newTestFSM(t)
	fillAllTables(t, f)
	room := func(i int, custom string) CreateRoom {
		return CreateRoom{Room: Room{ID: fmt.Sprintf("%024x", 0xb000+i), RoomID: fmt.Sprintf("room-%04d-zzzz", i), CustomRoomID: custom, UserID: "u1", APIKey: "k1",
			CreatedAt: t0.Add(time.Duration(i) * time.Second), UpdatedAt: t0}}
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	var steps []func()
	for i := range 12 {
		steps = append(steps,
			func() { _, _ = f.apply(CmdCreateRoom, room(i, fmt.Sprintf("c-%d", i%5))) }, // every 5th is idempotent
			func() {
				_, _ = f.apply(CmdCreateRoom, CreateRoom{Room: Room{ID: fmt.Sprintf("%024x", 0xc000+i), RoomID: "abcd-efgh-ijkl", UserID: "u1"}})
			}, // conflict
			func() {
				_, _ = f.apply(CmdRequest, request(t, fmt.Sprintf("rq-%d", i), false, "", at(i), CmdCreateRoom, room(100+i, "")))
			},
			func() { // the same request again: its first outcome
				_, _ = f.apply(CmdRequest, request(t, fmt.Sprintf("rq-%d", i), false, "", at(i), CmdCreateRoom, room(100+i, "")))
			},
			func() { // a request whose command is refused, twice
				r := request(t, fmt.Sprintf("bad-%d", i), i%2 == 0, "h", at(i), CmdCreateRoom, room(i, ""))
				_, _ = f.apply(CmdRequest, r)
				_, _ = f.apply(CmdRequest, r)
			},
			func() {
				_, _ = f.apply(CmdSetRoomStatus, SetRoomStatus{UserID: "u1", RoomID: fmt.Sprintf("room-%04d-zzzz", i), Disabled: i%2 == 0, At: at(i)})
			},
			func() {
				_, _ = f.apply(CmdSetRoomStatus, SetRoomStatus{UserID: "u1", RoomID: "no-such-room", At: at(i)})
			}, // not found
			func() { _, _ = f.apply(cmdWriteThenRefuse, room(200+i, "")) },
			func() {
				_, _ = f.apply(CmdRequest, request(t, fmt.Sprintf("wr-%d", i), false, "", at(i), cmdWriteThenRefuse, room(300+i, "")))
			},
		)
	}
	for _, s := range steps {
		s()
	}
	log := f.log
	// Entries Raft passes to a batching FSM that are not commands.
	mid := len(log) / 2
	cfg := &raft.Log{Type: raft.LogConfiguration, Data: []byte{1, 2, 3}}
	log = append(log[:mid:mid], append([]*raft.Log{cfg}, log[mid:]...)...)
	for i, l := range log {
		l.Index = uint64(i + 1)
	}
	return log
}

// results applies log in batches of the given sizes (cycled) on a new FSM
// and returns the answers and the persisted state.
func applyInBatches(t *testing.T, log []*raft.Log, sizes []int) ([]any, []byte) {
	t.Helper()
	f := NewFSM(nil)
	var out []any
	for i, k := 0, 0; i < len(log); k++ {
		n := min(sizes[k%len(sizes)], len(log)-i)
		res := f.ApplyBatch(log[i : i+n])
		if len(res) != n {
			t.Fatalf("ApplyBatch of %d entries answered %d", n, len(res))
		}
		out = append(out, res...)
		i += n
		if got := f.AppliedIndex(); got != log[i-1].Index {
			t.Fatalf("after a batch ending at %d: applied index %d", log[i-1].Index, got)
		}
	}
	return out, persist(t, f)
}

func answer(v any) string {
	r, ok := v.(Result)
	if !ok {
		return fmt.Sprintf("%T %v", v, v)
	}
	b, _ := json.Marshal(r.Value)
	if r.Err != nil {
		return "error: " + r.Err.Error()
	}
	return string(b)
}

// TestBatchesApplyLikeSingleEntries: Raft may group the same log
// differently on each replica, so the state and every answer must not
// depend on how entries are batched: one by one, all at once, or cut at
// random, a refused entry in the middle of a batch leaves no trace and the
// entries around it stay.
func TestBatchesApplyLikeSingleEntries(t *testing.T) {
	log := batchLog(t)
	wantOut, wantState := applyInBatches(t, log, []int{1})
	refused := 0
	for _, v := range wantOut {
		if r, ok := v.(Result); ok && r.Err != nil {
			refused++
		}
	}
	if refused < 30 {
		t.Fatalf("the log has only %d refused entries; it must exercise rollbacks", refused)
	}
	restoreBytes(t, wantState).Read(func(s *Store) {
		for _, id := range []string{"room-0200-zzzz", "room-0300-zzzz"} {
			if _, ok := s.Room("u1", id); ok {
				t.Fatalf("room %s of a refused command was kept", id)
			}
		}
		if _, ok := s.Room("u1", "room-0100-zzzz"); !ok {
			t.Fatal("the room of an applied request is missing")
		}
	})
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	groupings := [][]int{{len(log)}, {2}, {3, 1, 7}, {64}}
	for range 5 {
		var g []int
		for range 8 {
			g = append(g, 1+rng.IntN(20))
		}
		groupings = append(groupings, g)
	}
	for _, g := range groupings {
		out, state := applyInBatches(t, log, g)
		for i := range out {
			if answer(out[i]) != answer(wantOut[i]) {
				t.Fatalf("batches %v: entry %d answered %s, one by one %s", g, log[i].Index, answer(out[i]), answer(wantOut[i]))
			}
		}
		if !bytes.Equal(state, wantState) {
			t.Fatalf("batches %v: the state differs from applying one by one (%d vs %d bytes)", g, len(state), len(wantState))
		}
	}
	// And the snapshot of a batched FSM restores to the same indexes.
	_, state := applyInBatches(t, log, []int{len(log)})
	a, b := indexDump(t, restoreBytes(t, state)), indexDump(t, restoreBytes(t, wantState))
	if !reflect.DeepEqual(a, b) {
		t.Fatal("indexes differ after restoring a batched state")
	}
}
