package iradix

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Meridian's patch allocates a leaf with its node (leafCarrier). A carrier
// written a second time in one transaction is used in place, except to
// change its leaf: replacing or removing the leaf in place would leave the
// old key and value in the carrier's own allocation, alive for as long as
// the node is in the tree. Here a key's node becomes a writable carrier
// (a longer key is added under it), then in the same transaction the key
// is updated, another key is deleted the same way, and the old values must
// be collectable while the tree is kept.
func TestCarrierDropsReplacedLeaves(t *testing.T) {
	type payload struct{ b [1024]byte }
	var freed int32
	value := func() *payload {
		p := &payload{}
		runtime.SetFinalizer(p, func(*payload) { atomic.AddInt32(&freed, 1) })
		return p
	}

	tree := New()
	txn := tree.Txn()
	for i := 0; i < 100; i++ {
		txn.Insert([]byte(fmt.Sprintf("base-%03d", i)), i)
	}
	tree = txn.Commit()

	txn = tree.Txn()
	txn.Insert([]byte("key-a"), value())
	txn.Insert([]byte("key-b"), value())
	// Each insert below the leaf makes its node a writable carrier.
	txn.Insert([]byte("key-a/x"), 1)
	txn.Insert([]byte("key-b/x"), 2)
	if _, updated := txn.Insert([]byte("key-a"), "new"); !updated {
		t.Fatal("key-a not updated")
	}
	old, deleted := txn.Delete([]byte("key-b"))
	if !deleted {
		t.Fatal("key-b not deleted")
	}
	if _, ok := old.(*payload); !ok {
		t.Fatalf("Delete returned %v, want the deleted value", old)
	}
	old = nil
	tree = txn.Commit()

	deadline := time.Now().Add(5 * time.Second)
	for atomic.LoadInt32(&freed) < 2 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := atomic.LoadInt32(&freed); n != 2 {
		t.Fatalf("%d of the 2 replaced values collected: the tree still holds the others", n)
	}
	for k, want := range map[string]interface{}{"key-a": "new", "key-a/x": 1, "key-b/x": 2, "base-042": 42} {
		if v, ok := tree.Get([]byte(k)); !ok || v != want {
			t.Fatalf("%s = %v, %v; want %v", k, v, ok, want)
		}
	}
	if _, ok := tree.Get([]byte("key-b")); ok {
		t.Fatal("key-b still in the tree")
	}
	runtime.KeepAlive(tree)
}
