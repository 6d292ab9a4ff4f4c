package cluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// Log store backends. The write-ahead log (hashicorp/raft-wal, what Consul
// moved to) appends each batch to a segment file and drops whole segments on
// compaction, so what one commit writes does not grow with the log or the
// state; the bolt store rewrites B+tree pages and its freelist on every
// commit, which grew from ~13 KB to ~41 KB per write as raft.db grew (see
// docs/state-store.md for the measurements that chose the WAL).
//
// Only the WAL is built into meridian. The bolt store (hashicorp/raft-boltdb,
// which pulls in the archived boltdb/bolt) is registered by this package's
// tests (logstore_bolt_test.go), so BenchmarkWrite can still compare the two;
// a data dir holding a bolt log (raft.db) is refused with what to do.
const (
	LogStoreWAL  = "wal"
	LogStoreBolt = "bolt"
)

// extraLogStores are backends opened by code outside the server binary
// (tests and benchmarks), by kind.
var extraLogStores = map[string]func(dir string) (logStore, error){}

func logStoreKnown(kind string) bool {
	_, extra := extraLogStores[kind]
	return kind == LogStoreWAL || extra
}

const (
	boltFile = "raft.db"
	walDir   = "wal"
)

// resolveLogStore picks the backend for dir: what is already on disk wins
// (there is no in-place migration), otherwise the configured one, otherwise
// the WAL.
func resolveLogStore(dir, configured string) (string, error) {
	_, boltErr := os.Stat(filepath.Join(dir, boltFile))
	_, walErr := os.Stat(filepath.Join(dir, walDir))
	hasBolt, hasWAL := boltErr == nil, walErr == nil
	switch {
	case configured == LogStoreBolt && !logStoreKnown(LogStoreBolt):
		return "", fmt.Errorf("cluster: the bolt raft log store is no longer built into meridian (the WAL replaced it, docs/state-store.md); use %q", LogStoreWAL)
	case configured != "" && !logStoreKnown(configured):
		return "", fmt.Errorf("cluster: unknown raft log store %q (want %q)", configured, LogStoreWAL)
	}
	switch {
	case hasBolt && hasWAL:
		return "", fmt.Errorf("cluster: %s holds both a bolt log (%s) and a WAL (%s/); remove the one that is not in use", dir, boltFile, walDir)
	case hasBolt && !logStoreKnown(LogStoreBolt):
		return "", fmt.Errorf("cluster: %s holds a bolt raft log (%s), which this meridian no longer reads (the WAL replaced it, docs/state-store.md): "+
			"remove this node from the cluster and add it back with an empty data dir, or run the release that wrote it", dir, boltFile)
	case hasBolt:
		if configured == LogStoreWAL {
			return "", fmt.Errorf("cluster: %s already holds a bolt raft log; it cannot be switched to the WAL in place (start this node with the bolt store, or remove it from the cluster and re-add it with an empty data dir)", dir)
		}
		return LogStoreBolt, nil
	case hasWAL:
		if configured == LogStoreBolt {
			return "", fmt.Errorf("cluster: %s already holds a WAL raft log; it cannot be switched to bolt in place", dir)
		}
		return LogStoreWAL, nil
	case configured == "":
		return LogStoreWAL, nil
	}
	return configured, nil
}

// logStore is a Raft log and stable store that must be closed.
type logStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

func openLogStore(dir, kind string, walSegmentBytes int, logger hclog.Logger) (logStore, error) {
	if open, ok := extraLogStores[kind]; ok {
		return open(dir)
	}
	switch kind {
	case LogStoreWAL:
		wd := filepath.Join(dir, walDir)
		if err := os.MkdirAll(wd, 0o700); err != nil {
			return nil, err
		}
		// The WAL does not close the meta store it opened itself, and its
		// file lock would then block the next open in this process (a node
		// restarted in place): own it and close it with the WAL.
		meta := &metadb.BoltMetaDB{}
		if walSegmentBytes <= 0 {
			walSegmentBytes = raftwal.DefaultSegmentSize
		}
		w, err := raftwal.Open(wd, raftwal.WithLogger(logger), raftwal.WithMetaStore(meta), raftwal.WithSegmentSize(walSegmentBytes))
		if err != nil {
			_ = meta.Close()
			return nil, err
		}
		return &walStore{WAL: w, meta: meta}, nil
	}
	return nil, errors.New("cluster: no log store kind")
}

type walStore struct {
	*raftwal.WAL
	meta *metadb.BoltMetaDB
}

func (w *walStore) Close() error {
	return errors.Join(w.WAL.Close(), w.meta.Close())
}
