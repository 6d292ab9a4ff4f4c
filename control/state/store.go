package state

import (
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Store is one consistent version of every replicated table: a memdb read
// transaction for readers, the write transaction of the command being
// applied for handlers. Methods that start with a lower-case letter mutate
// and are only called from Apply; exported methods read and return copies.
type Store struct {
	tx *memdb.Txn
	// deltas are counter changes of this transaction, written once at
	// commit (a command that enqueues ten deliveries updates each counter
	// row once).
	deltas map[string]int
	// counted caches the committed value of each counter this transaction
	// read (the rows change only in flush): evictRequests reads four for
	// every write of a batch.
	counted map[string]int
	// bumps are the table indexes this transaction moved, written once
	// in flush like the counters (every create moved "rooms" with a row
	// insert of its own).
	bumps map[string]uint64
	// reqs, in an FSM's write transaction, is where reads of the request
	// table come from (requestView); nil elsewhere.
	reqs *requestView
	// rooms is the same for the rooms table's unique lookups (roomView).
	rooms *roomView
	// sub numbers the deliveries enqueued by this command (Delivery.Sub);
	// ApplyBatch resets it for each entry of a batch (startEntry).
	sub uint32
}

// startEntry readies the store for the next log entry of a transaction.
func (s *Store) startEntry() { s.sub = 0 }

func newStore(tx *memdb.Txn) *Store { return &Store{tx: tx} }

// first returns the row with exactly the given index key (nil if none).
func (s *Store) first(table, index string, args ...any) any {
	v, err := s.tx.First(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("state: %s.%s lookup: %v", table, index, err))
	}
	return v
}

// one is first with the row's type (nil pointer when missing).
func one[T any](s *Store, table, index string, args ...any) T {
	v, _ := s.first(table, index, args...).(T)
	return v
}

// iter walks the rows whose index key starts with args, in key order or
// reversed.
func (s *Store) iter(table, index string, reverse bool, args ...any) memdb.ResultIterator {
	var it memdb.ResultIterator
	var err error
	if reverse {
		it, err = s.tx.GetReverse(table, index, args...)
	} else {
		it, err = s.tx.Get(table, index, args...)
	}
	if err != nil {
		panic(fmt.Sprintf("state: %s.%s walk: %v", table, index, err))
	}
	return it
}

// from walks rows with index keys >= args (or <= args when reverse) to the
// end of the index; the caller stops where its range ends.
func (s *Store) from(table, index string, reverse bool, args ...any) memdb.ResultIterator {
	var it memdb.ResultIterator
	var err error
	if reverse {
		it, err = s.tx.ReverseLowerBound(table, index, args...)
	} else {
		it, err = s.tx.LowerBound(table, index, args...)
	}
	if err != nil {
		panic(fmt.Sprintf("state: %s.%s range: %v", table, index, err))
	}
	return it
}

// all collects every row of an iterator (small tables only).
func all[T any](it memdb.ResultIterator) []T {
	var out []T
	for v := it.Next(); v != nil; v = it.Next() {
		out = append(out, v.(T))
	}
	return out
}

// put inserts or replaces a row. memdb only fails on schema bugs.
func (s *Store) put(table string, row any) {
	if err := s.tx.Insert(table, row); err != nil {
		panic(fmt.Sprintf("state: insert into %s: %v", table, err))
	}
}

func (s *Store) del(table string, row any) {
	if err := s.tx.Delete(table, row); err != nil {
		panic(fmt.Sprintf("state: delete from %s: %v", table, err))
	}
}

// bump records that index modified table: the last bump of a table in a
// transaction is what flush writes, as if each had written the row.
func (s *Store) bump(table string, index uint64) {
	if s.bumps == nil {
		s.bumps = map[string]uint64{}
	}
	s.bumps[table] = index
}

// TableIndex is the last index that modified table.
func (s *Store) TableIndex(table string) uint64 {
	if i, ok := s.bumps[table]; ok {
		return i
	}
	if r := one[*tableIndex](s, tIndex, "id", table); r != nil {
		return r.Index
	}
	return 0
}

// count adds delta to a counter in this transaction.
func (s *Store) count(key string, delta int) {
	if s.deltas == nil {
		s.deltas = map[string]int{}
	}
	s.deltas[key] += delta
}

// counter reads a counter, including this transaction's changes.
func (s *Store) counter(key string) int {
	n, ok := s.counted[key]
	if !ok {
		if c := one[*counter](s, tCounters, "id", key); c != nil {
			n = c.N
		}
		if s.counted == nil {
			s.counted = map[string]int{}
		}
		s.counted[key] = n
	}
	return n + s.deltas[key]
}

// recount moves a row's contribution from the counters of its old version
// to those of its new one (either may be nil: create, delete).
func (s *Store) recount(old, cur []string) {
	for _, k := range old {
		s.count(k, -1)
	}
	for _, k := range cur {
		s.count(k, 1)
	}
}

// flush writes this transaction's counter changes and table indexes.
func (s *Store) flush() {
	tables := make([]string, 0, len(s.bumps))
	for t := range s.bumps {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		s.put(tIndex, &tableIndex{Table: t, Index: s.bumps[t]})
	}
	s.bumps, s.counted = nil, nil
	// The counter rows as the transaction found them: only flush writes
	// them, once per transaction. In an FSM write transaction they are read
	// from the state before it (see requestView: a read through the
	// transaction would drop the copied nodes each counter's write reuses).
	stored := func(k string) *counter { return one[*counter](s, tCounters, "id", k) }
	if s.reqs != nil {
		stored = func(k string) *counter {
			c, err := s.reqs.base.First(tCounters, "id", k)
			if err != nil {
				panic("state: counters.id lookup: " + err.Error())
			}
			row, _ := c.(*counter)
			return row
		}
	}
	keys := make([]string, 0, len(s.deltas))
	for k, d := range s.deltas {
		if d != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := s.deltas[k]
		c := stored(k)
		if c != nil {
			n += c.N
		}
		if n < 0 {
			panic(fmt.Sprintf("state: counter %q below zero", k))
		}
		if n == 0 {
			if c != nil {
				s.del(tCounters, c)
			}
			continue
		}
		s.put(tCounters, &counter{Key: k, N: n})
	}
	s.deltas = nil
}

func ptrTime(t time.Time) *time.Time { return &t }
