package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Index keys are built from typed parts so that byte order is the order a
// list wants: strings are escaped and 0-terminated (a string is never a
// prefix of a longer one), numbers and times are big-endian with the sign
// bit flipped. The same encoding serves objects (FromObject) and queries
// (FromArgs/PrefixFromArgs), so a query names index parts in order and may
// stop early to walk a prefix.

// keyOf encodes parts into an index key, allocated at its exact size
// (memdb keeps the slice; a non-unique index appends the row id to it).
func keyOf(parts ...any) []byte { return keyOfRow("", parts...) }

// keyOfRow is keyOf for a non-unique index whose row id (the id index's
// key, from the string id) memdb appends to the key: with room for it, the
// append does not copy the key into a second allocation (a create inserts
// and a request record's eviction deletes two such keys).
func keyOfRow(id string, parts ...any) []byte {
	n := 0
	if id != "" {
		n = partLen(id)
	}
	for _, p := range parts {
		n += partLen(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = appendPart(b, p)
	}
	return b
}

func partLen(p any) int {
	switch v := p.(type) {
	case string:
		n := len(v) + 1
		for i := 0; i < len(v); i++ {
			if v[i] <= 1 {
				n++
			}
		}
		return n
	case stringPrefix:
		return partLen(string(v)) - 1
	case uint64, int:
		return 16
	case uint32:
		return 8
	case time.Time:
		return 24
	case bool:
		return 1
	case maxKey:
		return 32
	}
	return 0
}

// appendNibbles writes v's bits four at a time, one per byte (0x00-0x0f).
// A radix tree node then has at most 16 children where numbers differ, so
// the path an insert copies stays small (with whole bytes, the nodes under
// a growing counter have up to 256 children, copied on every insert).
func appendNibbles(b []byte, v uint64, bits int) []byte {
	for shift := bits - 4; shift >= 0; shift -= 4 {
		b = append(b, byte(v>>shift)&0x0f)
	}
	return b
}

func appendPart(b []byte, p any) []byte {
	switch v := p.(type) {
	case string:
		// 0x00 terminates: a string is never a prefix of a longer one.
		return append(appendEscaped(b, v), 0)
	case uint64:
		return appendNibbles(b, v, 64)
	case uint32:
		return appendNibbles(b, uint64(v), 32)
	case int:
		return appendNibbles(b, uint64(v)^(1<<63), 64)
	case time.Time:
		// Seconds and nanoseconds: defined for every time.Time, including
		// the zero time (UnixNano is not).
		b = appendNibbles(b, uint64(v.Unix())^(1<<63), 64)
		return appendNibbles(b, uint64(v.Nanosecond()), 32)
	case bool:
		if v {
			return append(b, 1)
		}
		return append(b, 0)
	case stringPrefix:
		// Without the terminator: a walk of every key whose string
		// part starts with it.
		return appendEscaped(b, string(v))
	case maxKey:
		// Sorts after every key with the same prefix: reverse walks start here.
		for i := 0; i < 32; i++ {
			b = append(b, 0xff)
		}
		return b
	default:
		panic(fmt.Sprintf("state: index key part of type %T", p))
	}
}

// stringPrefix as the last query part walks the keys whose string part
// starts with it.
type stringPrefix string

// appendEscaped writes a string's bytes with 0x00 and 0x01 escaped (0x01
// 0x01, 0x01 0x02), which keeps byte order and frees 0x00 to terminate.
func appendEscaped(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case 0:
			b = append(b, 1, 1)
		case 1:
			b = append(b, 1, 2)
		default:
			b = append(b, c)
		}
	}
	return b
}

// maxKey as the last query part seeks past every key under the prefix.
type maxKey struct{}

func argsKey(args []any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return keyOf(args...), nil
}

// single indexes a row of type T under at most one key.
type single[T any] struct{ f func(T) (bool, []byte) }

func (x single[T]) FromObject(o any) (bool, []byte, error) {
	ok, k := x.f(o.(T))
	if !ok {
		// No key at all: memdb compares an update's old and new keys
		// before it looks at ok, and would keep a stale entry.
		return false, nil, nil
	}
	return true, k, nil
}
func (single[T]) FromArgs(args ...any) ([]byte, error)       { return argsKey(args) }
func (single[T]) PrefixFromArgs(args ...any) ([]byte, error) { return argsKey(args) }

// multi indexes a row of type T under several keys.
type multi[T any] struct{ f func(T) [][]byte }

func (x multi[T]) FromObject(o any) (bool, [][]byte, error) {
	ks := x.f(o.(T))
	return len(ks) > 0, ks, nil
}
func (multi[T]) FromArgs(args ...any) ([]byte, error)       { return argsKey(args) }
func (multi[T]) PrefixFromArgs(args ...any) ([]byte, error) { return argsKey(args) }

// always wraps a key function whose rows are all indexed.
func always[T any](f func(T) []byte) func(T) (bool, []byte) {
	return func(x T) (bool, []byte) { return true, f(x) }
}

func ix[T any](name string, unique bool, f func(T) (bool, []byte)) *memdb.IndexSchema {
	// AllowMissing: a row the function skips (f returns false) is simply
	// not in that index (ongoing sessions, pending deliveries, ...).
	return &memdb.IndexSchema{Name: name, Unique: unique, AllowMissing: name != "id", Indexer: single[T]{f}}
}

func ixMulti[T any](name string, f func(T) [][]byte) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: multi[T]{f}}
}

func table(name string, indexes ...*memdb.IndexSchema) *memdb.TableSchema {
	t := &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{}}
	for _, ix := range indexes {
		t.Indexes[ix.Name] = ix
	}
	return t
}
