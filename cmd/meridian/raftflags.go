package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
)

// raftFlags tune the Raft log and its compaction (shared by control and dev).
type raftFlags struct {
	logStore          string
	snapshotThreshold uint64
	snapshotInterval  time.Duration
	trailingLogs      uint64
	batchLinger       time.Duration
}

func (r *raftFlags) register(fs *flag.FlagSet) {
	def := cluster.DefaultConfig()
	fs.StringVar(&r.logStore, "raft-log-store", "", `Raft log backend: "wal" (the default and only one; segment files, flat cost per write)`)
	fs.Uint64Var(&r.snapshotThreshold, "raft-snapshot-threshold", def.SnapshotThreshold, "log entries since the last snapshot that make the next check take one")
	fs.DurationVar(&r.snapshotInterval, "raft-snapshot-interval", def.SnapshotInterval, "how often to check the threshold (randomised up to 2x so nodes do not snapshot together)")
	fs.Uint64Var(&r.trailingLogs, "raft-trailing-logs", def.TrailingLogs, "log entries kept after a snapshot, so a briefly absent node catches up from the log instead of a full snapshot")
	fs.DurationVar(&r.batchLinger, "raft-batch-linger", def.BatchLinger, "how long the leader lets a batch of room creates that waited for the previous Raft round grow before proposing it (0: at once; at most "+cluster.MaxBatchLinger.String()+"); a lone client never waits")
}

func (r *raftFlags) apply(cc *cluster.Config) error {
	switch r.logStore {
	case "", cluster.LogStoreWAL:
	case cluster.LogStoreBolt:
		return fmt.Errorf("--raft-log-store bolt: the bolt store is no longer built in (the WAL replaced it, docs/state-store.md); use %q", cluster.LogStoreWAL)
	default:
		return fmt.Errorf("--raft-log-store %q: want %q", r.logStore, cluster.LogStoreWAL)
	}
	if r.snapshotThreshold == 0 {
		return fmt.Errorf("--raft-snapshot-threshold must be at least 1")
	}
	if r.snapshotInterval < time.Second {
		return fmt.Errorf("--raft-snapshot-interval %v: must be at least 1s", r.snapshotInterval)
	}
	if r.batchLinger < 0 || r.batchLinger > cluster.MaxBatchLinger {
		return fmt.Errorf("--raft-batch-linger %v: want 0 to %v", r.batchLinger, cluster.MaxBatchLinger)
	}
	cc.LogStore, cc.SnapshotThreshold, cc.SnapshotInterval, cc.TrailingLogs = r.logStore, r.snapshotThreshold, r.snapshotInterval, r.trailingLogs
	cc.BatchLinger = r.batchLinger
	return nil
}
