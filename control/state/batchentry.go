package state

import (
	"encoding/binary"
	"fmt"
)

// A CmdBatch log entry carries several request entries (CmdRequest, as
// EncodeRequest writes them) that the leader proposed together: under load,
// every Raft round — the leader's and each follower's fsync, the
// AppendEntries exchange, one FSM transaction per replica — is paid once
// for the group instead of once per write (docs/write-batching.md).
//
// Layout: the CmdBatch byte, then for each request entry its length as a
// uvarint followed by its bytes. Each request is applied exactly as if it
// were an entry of its own at the batch's index, in order: it sees the
// effects of the ones before it, and one that fails leaves no trace.
//
// All of a batch's requests share its Raft index, so only commands that do
// not need an index of their own may be batched (Batchable).

// Batchable reports whether requests wrapping command t may share a log
// entry, and so its Raft index, with others. A room create uses its index
// only as the room's CreateIndex/ModifyIndex (list order breaks ties by the
// room's id) and enqueues no webhook deliveries, whose keys are built from
// the index of the command that enqueued them.
func Batchable(t CommandType) bool { return t&^IgnoreUnknownFlag == CmdCreateRoom }

// EncodeBatch frames request entries as one CmdBatch log entry.
func EncodeBatch(entries [][]byte) []byte {
	n := 1
	for _, e := range entries {
		n += binary.MaxVarintLen32 + len(e)
	}
	b := make([]byte, 1, n)
	b[0] = byte(CmdBatch)
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

// BatchResult is the FSM's answer to a CmdBatch entry: what each of its
// requests would have returned as an entry of its own, in order.
type BatchResult []any

// applyBatchEntry applies the requests of a CmdBatch entry. A malformed
// batch panics, as an undecodable command does: the log is corrupt, or the
// proposer has a bug, and replicas must not guess.
func (b *batch) applyBatchEntry(index uint64, body []byte) BatchResult {
	out := make(BatchResult, 0, 16)
	for len(body) > 0 {
		n, k := binary.Uvarint(body)
		if k <= 0 || n == 0 || n > uint64(len(body)-k) {
			panic(fmt.Sprintf("state: malformed batch entry at index %d", index))
		}
		entry := body[k : k+int(n)]
		body = body[k+int(n):]
		if CommandType(entry[0]) != CmdRequest {
			panic(fmt.Sprintf("state: batch entry at index %d holds command type %d; only requests may be batched", index, entry[0]))
		}
		out = append(out, b.applyCommand(index, entry))
	}
	return out
}
