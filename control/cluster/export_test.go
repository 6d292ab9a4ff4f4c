package cluster

import "time"

// InjectStorageFault makes every write to n's Raft log fail with err from
// now on (nil: succeed again), as a full or failed disk would: the failure
// comes from under raft's log cache, where the store's would; the store
// itself is the real one. Tests only: a full disk cannot be made on
// demand without privileges.
func InjectStorageFault(n *Node, err error) {
	if err == nil {
		n.watched.fault.Store(nil)
		return
	}
	n.watched.fault.Store(&err)
}

// LagSampleEvery is how often a node samples its lag.
const LagSampleEvery = lagSampleEvery

// CommandScanReads counts the log entries n read back to find the last
// command below a committed index (readiness and the lag watch).
func CommandScanReads(n *Node) uint64 { return n.commands.read.Load() }

// MoveLeaderCommitHeard moves the time n last heard a leader's commit index
// by d (negative: as if a silence had begun that long ago).
func MoveLeaderCommitHeard(n *Node, d time.Duration) {
	n.lag.heard.Store(n.lag.heard.Load() + int64(d))
}

// SimulateLeaderGap makes leader n look as if its process had not run for
// d: the sampler's last tick moves d into the past.
func SimulateLeaderGap(n *Node, d time.Duration) {
	n.lag.leaderTick.Store(n.lag.lagClock() - int64(d))
}
