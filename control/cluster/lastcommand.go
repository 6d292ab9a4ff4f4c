package cluster

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Barriers (consistent reads, a new leader's first step), no-ops
// (elections) and configuration changes never reach the FSM, so its
// applied index stops below a log that ends with them; readiness and the
// lag watch compare it with the last entry the FSM will actually apply,
// which means reading the log back from the end. An idle cluster serving
// consistent reads grows such a tail by an entry per read, up to what
// compaction leaves (tens of thousands of entries), and the lag watch
// asks five times a second: commandScan remembers what earlier walks of
// the committed log found, so each walk reads only entries no walk has
// read before.

// commandScan records that no command lies in (below, upTo] of the
// committed log, below being a command or an index the FSM had applied.
// Committed entries never change, so what it records stays true; only
// walks of committed entries (lastCommittedCommandUpTo) use it.
type commandScan struct {
	mu    sync.Mutex
	below uint64
	upTo  uint64 // 0: nothing recorded
	// read counts the entries walks read from the log (tests).
	read atomic.Uint64
}

// lastCommandUpTo is the index of the last command entry in (floor, index],
// or floor if there is none. known is false when the walk met an entry
// missing from the log: compacted into a snapshot the FSM restored (which
// holds everything up to it: floor is returned) or not written yet
// (counted as a command, to be waited for: its index is returned).
func (n *Node) lastCommandUpTo(index, floor uint64) (last uint64, known bool) {
	read := uint64(0)
	defer func() { n.commands.read.Add(read) }()
	for i := index; i > floor; i-- {
		var l raft.Log
		read++
		if err := n.logs.GetLog(i, &l); err != nil {
			if i <= n.lastSnapshotIndex() {
				return floor, false
			}
			return i, false
		}
		if l.Type == raft.LogCommand {
			return i, true
		}
	}
	return floor, true
}

// lastCommittedCommandUpTo is lastCommandUpTo for an index this node knows
// to be committed (its own commit index, or one raft has applied through),
// reading only the entries above what earlier walks covered.
func (n *Node) lastCommittedCommandUpTo(index, floor uint64) uint64 {
	if floor >= index {
		return floor
	}
	s := &n.commands
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upTo == 0 || index < s.below {
		last, known := n.lastCommandUpTo(index, floor)
		if known && s.upTo == 0 {
			s.below, s.upTo = last, index
		}
		return last
	}
	if index <= s.upTo {
		return max(s.below, floor)
	}
	// Only (upTo, index] is new.
	last, known := n.lastCommandUpTo(index, max(s.upTo, floor))
	switch {
	case !known:
		return last
	case last > s.upTo:
		s.below, s.upTo = last, index // a command among the new entries
	case floor > s.upTo:
		s.below, s.upTo = floor, index // none above the floor
	default:
		s.upTo = index // none among the new entries
	}
	return max(s.below, floor)
}

func (n *Node) lastSnapshotIndex() uint64 {
	v, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	return v
}
