package cluster

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// The bolt log store, for tests and BenchmarkWrite only: the WAL was
// chosen over it by measurement (docs/state-store.md), and keeping it here
// keeps that comparison reproducible without compiling hashicorp/raft-boltdb
// (and the archived boltdb/bolt it pulls in) into meridian.
func init() {
	extraLogStores[LogStoreBolt] = func(dir string) (logStore, error) {
		// No freelist sync: bolt would otherwise write the whole freelist
		// on every commit, and it grows with the history compaction frees.
		return raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(dir, boltFile),
			BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
		})
	}
}

// TestWithoutBoltTheDataDirIsRefused: as meridian is built (no bolt store
// registered), asking for bolt or starting on a data dir that holds a bolt
// log is refused with what to do, and a new or WAL data dir still opens.
// Not parallel: it removes the test registration for its duration.
func TestWithoutBoltTheDataDirIsRefused(t *testing.T) {
	boltDir, walDir := t.TempDir(), t.TempDir()
	for dir, kind := range map[string]string{boltDir: LogStoreBolt, walDir: LogStoreWAL} {
		st, err := openLogStore(dir, kind, 0, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Close()
	}
	saved := extraLogStores[LogStoreBolt]
	delete(extraLogStores, LogStoreBolt)
	defer func() { extraLogStores[LogStoreBolt] = saved }()

	if _, err := resolveLogStore(t.TempDir(), LogStoreBolt); err == nil || !strings.Contains(err.Error(), "no longer built into meridian") {
		t.Errorf("--raft-log-store bolt: %v", err)
	}
	if _, err := resolveLogStore(boltDir, ""); err == nil || !strings.Contains(err.Error(), "empty data dir") {
		t.Errorf("a bolt data dir: %v", err)
	}
	if _, err := openLogStore(boltDir, LogStoreBolt, 0, hclog.NewNullLogger()); err == nil {
		t.Error("the bolt log opened without the bolt store")
	}
	for _, dir := range []string{walDir, t.TempDir()} {
		if kind, err := resolveLogStore(dir, ""); err != nil || kind != LogStoreWAL {
			t.Errorf("%s: %q, %v; want the WAL", dir, kind, err)
		}
	}
}
