package cluster_test

import (
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
)

// diskFull is the error a write to a full disk returns.
var diskFull = &fs.PathError{Op: "write", Path: "/data/raft/wal/00000000000000000001-0000000000000000.wal", Err: syscall.ENOSPC}

// A lone node whose disk is full answers writes 503 naming the cause
// (without its paths), stores nothing, says so on /healthz, keeps serving
// reads, and takes writes again once its log can be written.
func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	c := clustertest.New(t, 1, clustertest.Options{Persist: true})
	c.WaitReady()
	kept := createRoom(t, c, 0, "before")
	before := roomCount(c, 0)

	cluster.InjectStorageFault(c.Node(0).Node(), diskFull)
	r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "during"})
	if r.Status != 503 || !strings.Contains(string(r.Body), "writing its Raft log failed (no space left on device)") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("create on a full disk: %d %s (Retry-After %q), want a 503 naming the full disk", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	if strings.Contains(string(r.Body), "/data/raft") {
		t.Fatalf("the answer shows the node's paths: %s", r.Body)
	}
	if n := roomCount(c, 0); n != before {
		t.Fatalf("rooms after a failed create: %d, want %d", n, before)
	}
	if h := c.Do(0, "GET", "/healthz", "", nil); h.Status != 503 || !strings.Contains(string(h.Body), "cannot write its Raft log") || !strings.Contains(string(h.Body), "no space left on device") {
		t.Fatalf("/healthz on a full disk: %d %s", h.Status, h.Body)
	}
	if g := c.Do(0, "GET", "/v2/rooms/"+kept, c.Token(), nil); g.Status != 200 {
		t.Fatalf("read on a full disk: %d %s", g.Status, g.Body)
	}

	cluster.InjectStorageFault(c.Node(0).Node(), nil)
	clustertest.Eventually(t, 30*time.Second, func() string {
		if h := c.Do(0, "GET", "/healthz", "", nil); h.Status != 200 {
			return "healthz: " + string(h.Body)
		}
		return ""
	})
	createRoom(t, c, 0, "after")
	if n := roomCount(c, 0); n != before+1 {
		t.Fatalf("rooms after the disk recovered: %d, want %d", n, before+1)
	}
}

// When the leader's disk fills, the cluster carries on: a write through
// another node is answered 200 (stored by a new leader), the full node says
// so on /healthz, and once its disk recovers it catches up.
func TestLeaderWithFullDiskIsReplaced(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{Persist: true})
	c.WaitReady()
	full := c.Leader()
	other := (full + 1) % 3
	cluster.InjectStorageFault(c.Node(full).Node(), diskFull)

	room := createRoom(t, c, other, "while-full")
	if h := c.Do(full, "GET", "/healthz", "", nil); h.Status != 503 || !strings.Contains(string(h.Body), "cannot write its Raft log") {
		t.Fatalf("/healthz of the node with the full disk: %d %s", h.Status, h.Body)
	}
	if c.Node(full).Node().IsLeader() {
		t.Fatal("the node that cannot write its log still leads")
	}

	cluster.InjectStorageFault(c.Node(full).Node(), nil)
	clustertest.Eventually(t, 30*time.Second, func() string {
		if h := c.Do(full, "GET", "/healthz", "", nil); h.Status != 200 {
			return "healthz: " + string(h.Body)
		}
		if g := c.Do(full, "GET", "/v2/rooms/"+room, c.Token(), nil); g.Status != 200 {
			return "room on the recovered node: " + string(g.Body)
		}
		return ""
	})
}
