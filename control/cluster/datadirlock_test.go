package cluster_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
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
