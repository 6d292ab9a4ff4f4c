package cluster_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/datadir"
	"github.com/meridian-video/meridian/shared/porttest"
)

// A second node given a running node's data directory fails at once,
// naming the directory and the process that holds it (it used to wait
// without a word on the Raft log's metadata database); once the first
// node has stopped, the directory opens again with its data.
func TestDataDirInUseIsRefused(t *testing.T) {
	var cfg server.Config
	c := clustertest.New(t, 1, clustertest.Options{Persist: true, Configure: func(_ int, sc *server.Config) { cfg = *sc }})
	c.WaitReady()
	room := createRoom(t, c, 0, "kept")

	done := make(chan error, 1)
	go func() {
		second, err := server.New(cfg)
		if err == nil {
			second.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		want := fmt.Sprintf("data directory %s is in use by process %d", cfg.Cluster.DataDir, os.Getpid())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("second node on the same data dir: %v, want an error saying %q", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second node on the same data dir neither started nor failed in 10 s")
	}

	c.Stop(0)
	c.Restart(0)
	c.WaitReady()
	if r := c.Do(0, "GET", "/v2/rooms/"+room, c.Token(), nil); r.Status != 200 {
		t.Fatalf("room after the restart: %d %s", r.Status, r.Body)
	}
}

// Outside: a node with no Raft state that did not bootstrap is in no
// cluster (meridian control warns about it); a bootstrapped one is, and so
// is a node restarted on a data directory that has state, with or without
// --bootstrap.
func TestOutsideUntilBootstrappedOrJoined(t *testing.T) {
	open := func(dir string, bootstrap bool) *cluster.Node {
		t.Helper()
		cfg := cluster.DefaultConfig()
		cfg.NodeID, cfg.RaftBind, cfg.HTTPAddr, cfg.ClusterToken = "n1", porttest.Addr(t), "http://127.0.0.1:1", "token"
		cfg.DataDir, cfg.Bootstrap = dir, bootstrap
		cfg.Logger = slog.New(slog.DiscardHandler)
		n, err := cluster.New(cfg, state.NewFSM(nil))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	root := t.TempDir()
	for _, step := range []struct {
		dir       string
		bootstrap bool
		outside   bool
	}{
		{"empty", false, true},
		{"empty", false, true}, // still nothing: it never joined
		{"boot", true, false},
		{"boot", false, false}, // restarted on its state
		{"boot", true, false},  // --bootstrap ignored on a node with state
	} {
		n := open(filepath.Join(root, step.dir), step.bootstrap)
		if got := n.Outside(); got != step.outside {
			t.Errorf("%s, bootstrap %v: Outside %v, want %v", step.dir, step.bootstrap, got, step.outside)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A node handed its data directory's lock (the process took it before
// reading the keys kept there) opens the directory without locking it a
// second time, and leaves the lock to its holder on Close; a lock on
// another directory is refused.
func TestNodeUsesTheLockItIsGiven(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "node")
	lock, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	cfg := cluster.DefaultConfig()
	cfg.NodeID, cfg.RaftBind, cfg.HTTPAddr, cfg.ClusterToken = "n1", porttest.Addr(t), "http://127.0.0.1:1", "token"
	cfg.DataDir, cfg.Bootstrap, cfg.DataDirLock = dir, true, lock
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := cluster.New(cfg, state.NewFSM(nil))
	if err != nil {
		t.Fatalf("New with the data directory's lock: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := datadir.Acquire(dir); err == nil || !strings.Contains(err.Error(), "is in use by process") {
		t.Fatalf("the lock after the node closed: %v, want still held by its taker", err)
	}

	other, err := datadir.Acquire(filepath.Join(root, "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cfg.DataDirLock, cfg.RaftBind = other, porttest.Addr(t)
	if _, err := cluster.New(cfg, state.NewFSM(nil)); err == nil || !strings.Contains(err.Error(), "DataDirLock is on "+other.Dir()) {
		t.Fatalf("New with another directory's lock: %v, want it refused", err)
	}
}
