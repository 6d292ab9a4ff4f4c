package state

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// batchRequests are request entries with every outcome a batch can hold
// next to each other: fresh creates, a create that collides with a room of
// an earlier request in the same batch (refused), a repeated request id
// (its first outcome), a customRoomId seen before (the existing room), a
// refused request repeated, and an Idempotency-Key reused for another body.
func batchRequests(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(r Request) {
		b, err := Encode(CmdRequest, r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	room := func(i int, roomID, custom string) CreateRoom {
		return CreateRoom{Room: Room{ID: fmt.Sprintf("%024x", 0xd000+i), RoomID: roomID, CustomRoomID: custom, UserID: "u1", APIKey: "k1",
			CreatedAt: t0.Add(time.Duration(i) * time.Second), UpdatedAt: t0}}
	}
	for i := range 10 {
		at := t0.Add(time.Duration(i) * time.Second)
		fresh := request(t, fmt.Sprintf("rq-%d", i), false, "", at, CmdCreateRoom, room(i, fmt.Sprintf("room-%04d-bbbb", i), fmt.Sprintf("c-%d", i%4)))
		add(fresh)
		add(request(t, fmt.Sprintf("clash-%d", i), false, "", at, CmdCreateRoom, room(100+i, fmt.Sprintf("room-%04d-bbbb", i), ""))) // roomId taken: refused
		add(fresh)                                                                                                                   // repeated: its first outcome
		add(request(t, fmt.Sprintf("key-%d", i), true, "h1", at, CmdCreateRoom, room(200+i, fmt.Sprintf("room-%04d-kkkk", i), "")))
		add(request(t, fmt.Sprintf("key-%d", i), true, "h2", at, CmdCreateRoom, room(300+i, fmt.Sprintf("room-%04d-xxxx", i), "")))  // key reused: 422
		add(request(t, fmt.Sprintf("clash-%d", i), false, "", at, CmdCreateRoom, room(100+i, fmt.Sprintf("room-%04d-bbbb", i), ""))) // the refusal again
	}
	return out
}

// TestBatchEntryAppliesLikeItsRequests: a CmdBatch entry at index i leaves
// the state and answers that its requests leave as entries of their own, all
// at index i, applied in order — whatever the grouping, with refusals in the
// middle of a batch and repeats of requests of the same batch.
func TestBatchEntryAppliesLikeItsRequests(t *testing.T) {
	reqs := batchRequests(t)
	for _, sizes := range [][]int{{1}, {2}, {6}, {5, 1, 9, 3}, {len(reqs)}} {
		var batched, single []*raft.Log
		index := uint64(0)
		for i, k := 0, 0; i < len(reqs); k++ {
			n := min(sizes[k%len(sizes)], len(reqs)-i)
			index++
			batched = append(batched, &raft.Log{Index: index, Type: raft.LogCommand, Data: EncodeBatch(reqs[i : i+n])})
			for _, r := range reqs[i : i+n] {
				single = append(single, &raft.Log{Index: index, Type: raft.LogCommand, Data: r})
			}
			i += n
		}
		wantOut, wantState := applyInBatches(t, single, []int{1})
		refused := 0
		for _, v := range wantOut {
			if r := v.(Result); r.Err != nil {
				refused++
			}
		}
		if refused < 15 {
			t.Fatalf("only %d refused requests; the batches must exercise rollbacks", refused)
		}
		// Raft groups batch entries too (ApplyBatch): one by one and all together.
		for _, grouping := range []int{1, len(batched)} {
			out, state := applyInBatches(t, batched, []int{grouping})
			var flat []any
			for i, v := range out {
				br, ok := v.(BatchResult)
				if !ok {
					t.Fatalf("sizes %v: entry %d answered %T, not a BatchResult", sizes, i, v)
				}
				flat = append(flat, br...)
			}
			if len(flat) != len(wantOut) {
				t.Fatalf("sizes %v: %d answers for %d requests", sizes, len(flat), len(wantOut))
			}
			for i := range flat {
				if answer(flat[i]) != answer(wantOut[i]) {
					t.Fatalf("sizes %v: request %d answered %s in a batch, %s on its own", sizes, i, answer(flat[i]), answer(wantOut[i]))
				}
			}
			if !bytes.Equal(state, wantState) {
				t.Fatalf("sizes %v (raft groups of %d): the state differs from applying the requests one by one", sizes, grouping)
			}
		}
	}
}

// TestMalformedBatchEntryPanics: a batch that does not frame request
// entries is a corrupt log or a proposer bug; replicas stop rather than guess.
func TestMalformedBatchEntryPanics(t *testing.T) {
	req := batchRequests(t)[0]
	plain, err := Encode(CmdCreateRoom, CreateRoom{Room: Room{ID: "x", RoomID: "y", UserID: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	good := EncodeBatch([][]byte{req, req})
	for name, data := range map[string][]byte{
		"cut short":         good[:len(good)-3],
		"length past end":   append([]byte{byte(CmdBatch), 0xff, 0x7f}, req...),
		"empty request":     {byte(CmdBatch), 0},
		"not a request":     EncodeBatch([][]byte{req, plain}),
		"a batch in batch":  EncodeBatch([][]byte{good}),
		"varint overflowed": {byte(CmdBatch), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("applying %q did not panic", name)
				}
			}()
			NewFSM(nil).Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		})
	}
}
