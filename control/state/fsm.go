// Package state is Meridian's replicated state machine: typed commands applied
// by hashicorp/raft, an in-memory store, snapshots and restore.
//
// Apply is deterministic: the leader fills IDs, timestamps and secrets (already
// encrypted) into a command before proposing, and nothing in this package reads
// the clock, random numbers, the network or the filesystem (a test enforces it).
package state

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// CommandType is the first byte of every log entry.
type CommandType uint8

// IgnoreUnknownFlag marks a command an older binary may skip instead of
// panicking (rolling upgrades). Without it an unknown type panics: silently
// diverging replicas are worse than a crash.
const IgnoreUnknownFlag CommandType = 0x80

// Command numbers are never reused; a retired one keeps a no-op case.
const (
	CmdUpsertAPIKey       CommandType = 1
	CmdRevokeAPIKey       CommandType = 2
	CmdCreateRoom         CommandType = 3
	CmdDeactivateRoom     CommandType = 4
	CmdPutRefreshToken    CommandType = 5
	CmdUseRefreshToken    CommandType = 6
	CmdSetClusterSecrets  CommandType = 7
	CmdRegisterNode       CommandType = 8
	CmdSetRoomStatus      CommandType = 9
	CmdUpsertEdge         CommandType = 10
	CmdParticipantJoin    CommandType = 11
	CmdParticipantLeave   CommandType = 12
	CmdEndSession         CommandType = 13
	CmdRecordDelivery     CommandType = 14
	CmdRedeliver          CommandType = 15
	CmdAppendStats        CommandType = 16
	CmdMarkEdgeDown       CommandType = 17
	CmdPruneRefreshTokens CommandType = 18
	CmdEnqueueEvents      CommandType = 19
	CmdSetGlobalEndpoints CommandType = 20
	CmdPlaceRoom          CommandType = 21
	CmdUnplaceRoomEdges   CommandType = 22
	CmdSetEdgeDraining    CommandType = 23
	CmdRecordAudit        CommandType = 24
	CmdRequest            CommandType = 25 // a command wrapped with its request id (requests.go)
	CmdPurgeExpired       CommandType = 26 // retention: remove listed expired records (retention.go)
	CmdBatch              CommandType = 27 // several request entries proposed together (batchentry.go)
	// 28-39 are left to work in progress elsewhere; the operator console
	// (console.go) uses 40-48 (48, CmdUseLoginState, is declared there).
	CmdStartLogin           CommandType = 40
	CmdFinishLogin          CommandType = 41
	CmdCreateConsoleSession CommandType = 42
	CmdTouchConsoleSession  CommandType = 43
	CmdEndConsoleSession    CommandType = 44
	CmdRecordConsoleAudit   CommandType = 45
	CmdPruneConsole         CommandType = 46
	CmdSetLocalAdmin        CommandType = 47
)

// Result is what Apply returns to the proposer.
type Result struct {
	Value any
	Err   error
}

// FSM implements raft.FSM over a go-memdb database. Apply runs the entries
// Raft commits together in one write transaction (ApplyBatch); a command
// that fails changes nothing. Readers open read transactions on the latest
// committed version: they never wait for Apply, and Apply never waits for
// them.
type FSM struct {
	db  atomic.Pointer[memdb.MemDB]
	log *slog.Logger
	// applied is signalled after each Apply so readers can wait for an index.
	// It is written under appliedMu (the condition's lock) and read without
	// it: every API request of a follower reads it (Node.Behind).
	appliedMu   sync.Mutex
	appliedCond *sync.Cond
	applied     atomic.Uint64
	// restores counts snapshots restored (at start, or installed from the
	// leader by a node that fell behind the compacted log).
	restores atomic.Uint64
	// keysVersion changes after every commit that changed an API key and
	// after every restore (see KeysVersion).
	keysVersion atomic.Uint64
}

// NewFSM returns an empty state machine.
func NewFSM(logger *slog.Logger) *FSM {
	if logger == nil {
		logger = slog.Default()
	}
	f := &FSM{log: logger}
	f.db.Store(newDB())
	f.appliedCond = sync.NewCond(&f.appliedMu)
	return f
}

// Read runs fn on a consistent version of the store: everything applied
// before the call, nothing applied during it. fn must not keep references
// or change the values it reads.
func (f *FSM) Read(fn func(s *Store)) {
	fn(newStore(f.db.Load().Txn(false)))
}

// AppliedIndex is the last applied Raft index.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// WaitApplied blocks until index is applied (true) or ctx is done (false).
// A wait that must block registers a wake-up with ctx (context.AfterFunc)
// rather than starting a goroutine to watch it: a follower's forwarded
// writes usually wait here.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) bool {
	if f.AppliedIndex() >= index {
		return true
	}
	stop := context.AfterFunc(ctx, func() {
		f.appliedMu.Lock()
		f.appliedCond.Broadcast()
		f.appliedMu.Unlock()
	})
	defer stop()
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	for f.applied.Load() < index {
		// Checked under appliedMu, which the wake-up takes too: a ctx
		// done after this check wakes the Wait below.
		if ctx.Err() != nil {
			return false
		}
		f.appliedCond.Wait()
	}
	return true
}

func (f *FSM) markApplied(index uint64) {
	f.appliedMu.Lock()
	if index > f.applied.Load() {
		f.applied.Store(index)
	}
	f.appliedCond.Broadcast()
	f.appliedMu.Unlock()
}

// Apply implements raft.FSM: one entry, one write transaction.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: the entries Raft committed
// together are applied in one write transaction. A memdb write copies the
// path from each index's root to the changed leaf once per transaction, and
// builds a cache of the nodes it copied; entry by entry, every create paid
// for both again (most of the FSM's CPU and allocations at 16 writing
// clients). The state after a batch is exactly the state after applying its
// entries one by one: each entry sees the effects of those before it, and
// one that fails leaves no trace (see batch.rollback), so replicas that
// group the same log differently stay identical.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	if len(logs) == 0 {
		return out
	}
	// After the commit: a reader that waited for these indexes sees their effects.
	defer f.markApplied(logs[len(logs)-1].Index)
	b := &batch{f: f}
	b.begin()
	defer func() { b.tx.Abort() }() // no-op after Commit; a panic leaves nothing half-applied
	for i, l := range logs {
		out[i] = b.apply(l)
	}
	_, keysChanged := b.s.bumps[tKeys]
	b.s.flush()
	b.tx.Commit()
	if keysChanged {
		f.keysVersion.Add(1) // after the commit: see KeysVersion
	}
	return out
}

// KeysVersion changes whenever the API keys may have changed: it moves
// after the commit of every transaction that created or revoked a key, and
// after a restore. A reader that takes the version before reading a key,
// and later finds the same version, knows the key is still as it read it
// (the token cache relies on this instead of looking the key up for every
// request).
func (f *FSM) KeysVersion() uint64 { return f.keysVersion.Load() }

// batch is the write transaction of one ApplyBatch.
type batch struct {
	f  *FSM
	tx *memdb.Txn
	s  *Store
	// redo holds, for each entry applied in tx so far, what it did: when a
	// later entry fails, the transaction is dropped and rebuilt from them,
	// since memdb cannot undo part of a transaction.
	redo []func(s *Store)
}

func (b *batch) begin() {
	db := b.f.db.Load()
	b.tx = db.Txn(true)
	b.s = newStore(b.tx)
	b.s.reqs, b.s.rooms = newRequestView(db), newRoomView(db)
}

// rollback drops what the failing entry wrote: a fresh transaction with
// only the entries before it. Failures are rare (a conflict, a refused
// command), so replaying is cheaper than committing after every entry.
func (b *batch) rollback() {
	b.tx.Abort()
	b.begin()
	for _, fn := range b.redo {
		b.s.startEntry()
		fn(b.s)
	}
	b.s.startEntry()
}

// again re-applies an entry that succeeded once on this same state; the FSM
// is deterministic, so failing now would mean a bug.
func again(v any, err error) {
	if err != nil {
		panic("state: an entry that applied failed when replayed: " + err.Error())
	}
}

func (b *batch) apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	if CommandType(l.Data[0]) == CmdBatch {
		return b.applyBatchEntry(l.Index, l.Data[1:])
	}
	return b.applyCommand(l.Index, l.Data)
}

// applyCommand applies one command (a log entry's data, or one request of a
// CmdBatch entry) at index.
func (b *batch) applyCommand(index uint64, data []byte) any {
	b.s.startEntry()
	t := CommandType(data[0])
	body := data[1:]
	var (
		v   any
		err error
	)
	if t&^IgnoreUnknownFlag == CmdRequest {
		v, err = b.applyRequest(index, body)
	} else {
		h, ok := handlers[t&^IgnoreUnknownFlag]
		if !ok {
			if t&IgnoreUnknownFlag != 0 {
				b.f.log.Warn("skipping unknown command", "type", uint8(t), "index", index)
				return nil
			}
			panic(fmt.Sprintf("state: unknown command type %d at index %d", t, index))
		}
		run := func(s *Store) (any, error) { return h(s, index, body) }
		if v, err = run(b.s); err != nil {
			b.rollback() // a refused command changes nothing
			v = nil
		} else {
			b.redo = append(b.redo, func(s *Store) { again(run(s)) })
			if d, ok := v.(detacher); ok {
				v = d.detach()
			}
		}
	}
	if err != nil {
		return Result{Err: err}
	}
	return Result{Value: v}
}

// detacher is a result that points into the store (rows are shared with
// readers and never changed in place): detach returns one that does not, for
// a result that leaves the state machine as a value. A request's result is
// only encoded (applyRequest), so it is never copied.
type detacher interface{ detach() any }

// handler decodes one command and applies it. A decode failure panics
// (corruption or a bug); a business rule returns *Error.
type handler func(s *Store, index uint64, body []byte) (any, error)

var handlers = map[CommandType]handler{}

func register[T any](t CommandType, apply func(s *Store, index uint64, cmd *T) (any, error)) {
	if _, dup := handlers[t]; dup {
		panic(fmt.Sprintf("state: command type %d registered twice", t))
	}
	handlers[t] = func(s *Store, index uint64, body []byte) (any, error) {
		var cmd T
		if err := decodeJSON(body, &cmd); err != nil {
			panic(fmt.Sprintf("state: decode command %d at index %d: %v", t, index, err))
		}
		return apply(s, index, &cmd)
	}
}

// Snapshot implements raft.FSM. Raft calls it on the FSM goroutine, so the
// memdb snapshot (a root pointer copy) is exactly what was applied up to
// now; Persist serialises it later while Apply goes on. A node that
// installs it has applied up to here too (read-your-writes waits rely on
// AppliedIndex).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{db: f.db.Load().Snapshot(), applied: f.AppliedIndex()}, nil
}

// Restore implements raft.FSM: it builds a new database from the stream and
// swaps it in; readers still on the old version finish on it.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	db, applied, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("state: restore: %w", err)
	}
	f.db.Store(db)
	f.keysVersion.Add(1)
	f.markApplied(applied)
	f.restores.Add(1)
	return nil
}

// Restores reports how many snapshots this FSM has restored.
func (f *FSM) Restores() uint64 { return f.restores.Load() }
