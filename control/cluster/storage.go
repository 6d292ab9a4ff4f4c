package cluster

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// StorageError says that this node's last write to its Raft log failed: a
// full disk, a disk gone read-only, an I/O error. Raft answers the writes
// of that batch with the error and, on the leader, steps down; nothing of
// the batch was stored or sent to another node, so the writes are retried
// where a leader is (as for ErrNoLeader, which a StorageError also is), and
// a cluster with a healthy majority carries on without this node. The
// condition lasts until a write to the log succeeds again.
type StorageError struct {
	Since time.Time // the first failure of the current run of failures
	Err   error     // the last failure
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("this control node cannot write its Raft log (since %s): %v", e.Since.UTC().Format(time.RFC3339), e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// Is makes a StorageError an ErrNoLeader: the write was not stored and is
// retried where the leader is now, or answered 503.
func (e *StorageError) Is(target error) bool { return target == ErrNoLeader }

// Cause is the failure in a few words for an API client (the operating
// system's error, such as "no space left on device", without this node's
// paths), or "a storage error".
func (e *StorageError) Cause() string {
	var errno syscall.Errno
	if errors.As(e.Err, &errno) {
		return errno.Error()
	}
	return "a storage error"
}

// watchedLogStore records whether the last write to the Raft log failed
// (Node.StorageFailure) and returns such a failure as a StorageError, which
// raft's log cache above it wraps (third_party/raft/PATCHES.md, change 3:
// upstream's cache kept only its text) and raft hands to the writes of the
// batch.
type watchedLogStore struct {
	raft.LogStore
	failing atomic.Pointer[StorageError]
	// fault, when set (tests), fails every write with it before the store
	// is called: a full disk cannot be made on demand in a test.
	fault atomic.Pointer[error]
}

func (w *watchedLogStore) StoreLog(l *raft.Log) error { return w.StoreLogs([]*raft.Log{l}) }

func (w *watchedLogStore) StoreLogs(logs []*raft.Log) error {
	var err error
	if f := w.fault.Load(); f != nil {
		err = *f
	} else {
		err = w.LogStore.StoreLogs(logs)
	}
	if err == nil {
		if w.failing.Load() != nil {
			w.failing.Store(nil)
		}
		return nil
	}
	se := &StorageError{Since: time.Now(), Err: err}
	if prev := w.failing.Load(); prev != nil {
		se.Since = prev.Since
	}
	w.failing.Store(se)
	return se
}

// IsMonotonic passes on what the store under it says (raft-wal cannot
// store a gap in its indexes, and raft must know it before a snapshot
// restore).
func (w *watchedLogStore) IsMonotonic() bool {
	m, ok := w.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// StorageFailure is the node's current failure to write its Raft log, or
// nil when its last write succeeded (or it keeps its log in memory).
func (n *Node) StorageFailure() *StorageError {
	if n.watched == nil {
		return nil
	}
	return n.watched.failing.Load()
}

// FollowerStorageFailure is StorageFailure for a node that other voters can
// outvote: it stores nothing they commit, so its state falls further behind
// with every write, before the leader (which backs off from a follower that
// keeps refusing its entries) even tells it so. A leader holds every
// committed entry, and so does a lone voter whatever its disk does.
func (n *Node) FollowerStorageFailure() *StorageError {
	se := n.StorageFailure()
	if se == nil || n.IsLeader() || !n.hasOtherVoters() {
		return nil
	}
	return se
}

// hasOtherVoters reports whether the cluster's configuration has a voter
// besides this node (if it cannot tell, it assumes so). A lone voter
// commits every entry itself.
func (n *Node) hasOtherVoters() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return true
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && string(s.ID) != n.cfg.NodeID {
			return true
		}
	}
	return false
}
