package iradix

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// DisableWatchChannels is process-wide and the other tests here need the
// channels, so the test runs itself in a child process.
func TestDisableWatchChannels(t *testing.T) {
	if os.Getenv("IRADIX_WATCH_OFF_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDisableWatchChannels$", "-test.v")
		cmd.Env = append(os.Environ(), "IRADIX_WATCH_OFF_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}

	key := func(i int) []byte { return []byte(fmt.Sprintf("room/%06d", i)) }
	// A tree from before the switch keeps its channels; nodes copied or
	// made after it have none, and commits that track mutations on the
	// mixed tree (fast path, and the overflow path's full comparison)
	// close only the channels that exist.
	const n = defaultModifiedCache * 2 // rewriting them all overflows the tracking
	build := New().Txn()
	for i := 0; i < n; i++ {
		build.Insert(key(i), i)
	}
	old := build.Commit()
	oldWatch, _, _ := old.Root().GetWatch(key(7))
	if oldWatch == nil {
		t.Fatal("a leaf made before DisableWatchChannels has no channel")
	}

	DisableWatchChannels()
	if !WatchChannelsDisabled() {
		t.Fatal("WatchChannelsDisabled() = false after DisableWatchChannels")
	}
	tree := old
	// The first commit leaves nodes without channels in the tree; the
	// second, tracking more old channels than it can hold, compares the
	// whole tree before and after instead and meets those nodes there.
	for _, keys := range []int{10, n} {
		txn := tree.Txn()
		txn.TrackMutate(true)
		for i := 0; i < keys; i++ {
			txn.Insert(key(i), i*10)
		}
		txn.Delete(key(3))
		tree = txn.Commit()
	}
	select {
	case <-oldWatch:
	default:
		t.Fatal("the old leaf's channel was not closed when its key changed")
	}

	fresh := New()
	txn := fresh.Txn()
	txn.TrackMutate(true)
	for i := 0; i < 5000; i++ {
		txn.Insert(key(i), i)
	}
	fresh = txn.Commit()

	// Every key of the old tree was written again, so no node of the
	// mutated tree is from before the switch.
	for name, tr := range map[string]*Tree{"mutated": tree, "fresh": fresh} {
		nodes := 0
		var walk func(n *Node)
		walk = func(n *Node) {
			nodes++
			if n.mutateCh != nil {
				t.Fatalf("%s tree: node %q has a mutation channel", name, n.prefix)
			}
			if n.leaf != nil && n.leaf.mutateCh != nil {
				t.Fatalf("%s tree: leaf %q has a mutation channel", name, n.leaf.key)
			}
			for _, e := range n.edges {
				walk(e.node)
			}
		}
		walk(tr.Root())
		if nodes < 100 {
			t.Fatalf("%s tree: walked %d nodes", name, nodes)
		}
	}
	// Every key the mutated tree was written with carries the new value.
	for i := 0; i < n; i++ {
		v, ok := tree.Get(key(i))
		if i == 3 {
			if ok {
				t.Fatal("deleted key still there")
			}
			continue
		}
		if !ok || v.(int) != i*10 {
			t.Fatalf("key %d = %v, %v", i, v, ok)
		}
	}
	if w, _, ok := fresh.Root().GetWatch(key(42)); !ok || w != nil {
		t.Fatalf("GetWatch on a tree without channels = %v, %v; want nil, true", w, ok)
	}
}
