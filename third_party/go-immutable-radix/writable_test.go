package iradix

import (
	"fmt"
	"math/rand"
	"testing"
)

// Meridian's patch keeps a transaction's writable nodes in a set that
// starts over when full and goes back to a pool for later transactions,
// and lets a copied node share its original's prefix bytes. None of this
// may let a transaction change a tree committed before it: here one transaction copies several times defaultModifiedCache
// nodes (so the set starts over many times) with inserts that split nodes
// and deletes that merge them (concat builds new prefixes), and every
// earlier tree still holds exactly what it held.
func TestTransactionsLeaveEarlierTreesIntact(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	key := func() string {
		return fmt.Sprintf("%x/%04x/%d", r.Intn(64), r.Intn(1<<16), r.Intn(4))
	}
	want := map[string]int{}
	tree := New()
	type version struct {
		tree *Tree
		want map[string]int
	}
	var versions []version
	for round := 0; round < 6; round++ {
		txn := tree.Txn()
		ops := 3 * defaultModifiedCache
		if round%2 == 1 {
			ops = 200 // small transactions between the big ones
		}
		for i := 0; i < ops; i++ {
			k := key()
			if _, ok := want[k]; ok && r.Intn(3) == 0 {
				if _, deleted := txn.Delete([]byte(k)); !deleted {
					t.Fatalf("round %d: %q not deleted", round, k)
				}
				delete(want, k)
				continue
			}
			txn.Insert([]byte(k), round*1_000_000+i)
			want[k] = round*1_000_000 + i
		}
		tree = txn.Commit()
		snapshot := make(map[string]int, len(want))
		for k, v := range want {
			snapshot[k] = v
		}
		versions = append(versions, version{tree, snapshot})
	}
	for i, v := range versions {
		if v.tree.Len() != len(v.want) {
			t.Errorf("version %d: %d keys, want %d", i, v.tree.Len(), len(v.want))
		}
		seen := 0
		v.tree.Root().Walk(func(k []byte, val interface{}) bool {
			seen++
			if w, ok := v.want[string(k)]; !ok || w != val.(int) {
				t.Errorf("version %d: %q = %v, want %v (present %v)", i, k, val, w, ok)
				return true
			}
			return false
		})
		if seen != len(v.want) {
			t.Errorf("version %d: walked %d keys, want %d", i, seen, len(v.want))
		}
		for k, w := range v.want {
			if got, ok := v.tree.Get([]byte(k)); !ok || got.(int) != w {
				t.Fatalf("version %d: Get(%q) = %v, %v; want %d", i, k, got, ok, w)
			}
		}
	}
}
