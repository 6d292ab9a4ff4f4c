package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
	"github.com/klauspost/compress/s2"
)

// The snapshot is one JSON object, streamed row by row so that neither
// Persist nor Restore holds a second copy of the state in memory. Its
// shape is the v1 object (which marshalled a struct of every table) plus,
// in v2: "sub" on deliveries, "seenAt" and "tombstones". Fields are only
// ever added; a golden test per version guards the encoding, and restore
// reads both versions.
//
// Persist writes the JSON as an S2 stream (klauspost/compress): a million
// rooms are ~450 MB of JSON that compress about sixfold at a fraction of
// the cost of writing them out, so the snapshot a busy node takes steals
// less of the core its writes need. Restore reads S2 or the plain JSON
// earlier builds wrote.
const snapshotVersion = 2

type snapshot struct {
	db      *memdb.MemDB
	applied uint64
}

// Persist implements raft.FSMSnapshot. It runs beside Apply: the memdb
// snapshot is immutable and the rows in it are never changed in place.
func (sn *snapshot) Persist(sink raft.SnapshotSink) error {
	// One goroutine: a snapshot is background work and should not take
	// every core from the writes going on beside it.
	z := s2.NewWriter(sink, s2.WriterConcurrency(1))
	w := bufio.NewWriterSize(z, 256<<10)
	err := writeSnapshot(w, newStore(sn.db.Txn(false)), sn.applied)
	if err == nil {
		err = w.Flush()
	}
	if cerr := z.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (sn *snapshot) Release() {}

// jsonWriter writes one JSON object field by field; the first error sticks.
type jsonWriter struct {
	w     io.Writer
	err   error
	comma bool
}

func (j *jsonWriter) raw(b []byte) {
	if j.err == nil {
		_, j.err = j.w.Write(b)
	}
}

func (j *jsonWriter) value(v any) {
	if j.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		j.err = err
		return
	}
	j.raw(b)
}

func (j *jsonWriter) key(name string) {
	if j.comma {
		j.raw([]byte{','})
	}
	j.comma = true
	j.value(name)
	j.raw([]byte{':'})
}

func (j *jsonWriter) field(name string, v any) {
	j.key(name)
	j.value(v)
}

// array writes the rows of it as a JSON array (null when there are none,
// or nothing at all with omitEmpty, as encoding/json did for v1).
func array[T any](j *jsonWriter, name string, omitEmpty bool, it memdb.ResultIterator, row func(T) any) {
	first := it.Next()
	if first == nil {
		if !omitEmpty {
			j.field(name, nil)
		}
		return
	}
	j.key(name)
	j.raw([]byte{'['})
	for v, n := first, 0; v != nil; v, n = it.Next(), n+1 {
		if n > 0 {
			j.raw([]byte{','})
		}
		j.value(row(v.(T)))
	}
	j.raw([]byte{']'})
}

// object writes rows as a JSON object keyed by kv's key, in key order
// (the index order, which is the byte order encoding/json sorts map keys in).
func object[T any](j *jsonWriter, name string, omitEmpty bool, it memdb.ResultIterator, kv func(T) (string, any, bool)) {
	n := 0
	for v := it.Next(); v != nil; v = it.Next() {
		k, val, ok := kv(v.(T))
		if !ok {
			continue
		}
		if n == 0 {
			j.key(name)
			j.raw([]byte{'{'})
		} else {
			j.raw([]byte{','})
		}
		j.value(k)
		j.raw([]byte{':'})
		j.value(val)
		n++
	}
	switch {
	case n > 0:
		j.raw([]byte{'}'})
	case !omitEmpty:
		j.key(name)
		j.raw([]byte("{}"))
	}
}

// encodedArray is array for a table with its own appender (appendRoom).
func encodedArray[T any](j *jsonWriter, name string, it memdb.ResultIterator, encode func(T) ([]byte, error)) {
	first := it.Next()
	if first == nil {
		j.field(name, nil)
		return
	}
	j.key(name)
	j.raw([]byte{'['})
	for v, n := first, 0; v != nil && j.err == nil; v, n = it.Next(), n+1 {
		if n > 0 {
			j.raw([]byte{','})
		}
		b, err := encode(v.(T))
		if err != nil {
			j.err = err
			return
		}
		j.raw(b)
	}
	j.raw([]byte{']'})
}

func same[T any](x T) any { return x }

func writeSnapshot(w io.Writer, s *Store, applied uint64) error {
	j := &jsonWriter{w: w}
	j.raw([]byte{'{'})
	j.field("version", snapshotVersion)
	if applied != 0 {
		j.field("appliedIndex", applied)
	}
	array(j, "keys", false, s.iter(tKeys, "id", false), same[*APIKey])
	var rb rowBuf
	encodedArray(j, "rooms", s.iter(tRooms, "id", false), func(r *Room) ([]byte, error) { return rb.room(r), rb.Err })
	object(j, "refresh", false, s.iter(tRefresh, "id", false), func(r *refreshRow) (string, any, bool) { return r.Hash, &r.RefreshToken, true })
	if sec := s.secrets(); sec != nil {
		j.field("secrets", sec)
	}
	array(j, "nodes", false, s.iter(tNodes, "id", false), same[*Node])
	array(j, "edges", false, s.iter(tEdges, "id", false), same[*Edge])
	array(j, "sessions", false, s.iter(tSessions, "id", false), same[*Session])
	// By project, then in enqueue order; Sub makes the order explicit.
	array(j, "outbox", false, s.iter(tOutbox, "project", false), same[*Delivery])
	object(j, "seen", false, s.iter(tSeen, "id", false), func(r *seenRow) (string, any, bool) { return r.ID, r.Index, true })
	object(j, "stats", false, s.iter(tStats, "id", false), func(r *statsRow) (string, any, bool) { return r.SessionID, r.Samples, true })
	object(j, "indexes", false, s.iter(tIndex, "id", false), func(r *tableIndex) (string, any, bool) { return r.Table, r.Index, true })
	if g := s.GlobalEndpoints(); len(g) > 0 {
		j.field("global", g)
	}
	object(j, "gone", true, s.iter(tGone, "id", false), func(r *goneRow) (string, any, bool) { return r.Key, r.Index, true })
	array(j, "placements", true, s.iter(tPlacements, "id", false), same[*Placement])
	object(j, "audits", true, s.iter(tAudits, "id", false), func(a *Audit) (string, any, bool) { return a.SessionID, a, true })
	object(j, "legStats", true, s.iter(tLegs, "id", false), func(r *legRow) (string, any, bool) { return r.SessionID, r.Legs, true })
	array(j, "requests", true, s.iter(tRequests, "fifo", false), same[*requestRecord])
	object(j, "seenAt", true, s.iter(tSeen, "id", false), func(r *seenRow) (string, any, bool) { return r.ID, r.At, !r.At.IsZero() })
	array(j, "tombstones", true, s.iter(tTombstones, "id", false), same[*Tombstone])
	consoleSnapshot(j, s)
	jobsSnapshot(j, s)
	j.raw([]byte{'}'})
	return j.err
}

// readSnapshot builds a database from a v1 or v2 snapshot, row by row, in
// one write transaction that also rebuilds every index and counter.
func readSnapshot(r io.Reader) (*memdb.MemDB, uint64, error) {
	plain, err := OpenSnapshot(r)
	if err != nil {
		return nil, 0, err
	}
	dec := newJSONStream(plain)
	db := newDB()
	tx := db.Txn(true)
	defer tx.Abort()
	s := newStore(tx)
	var (
		version int
		applied uint64
		prevSeq uint64
		sub     uint32
		// the "seen" rows, held until the object is read (see below)
		seen       []*seenRow
		seenByID   = map[string]*seenRow{}
		lastOrders = map[string]time.Time{}
	)
	err = dec.object(func(name string) (err error) {
		switch name {
		case "version":
			err = dec.decode(&version)
		case "appliedIndex":
			err = dec.decode(&applied)
		case "keys":
			err = rows(dec, func(k *APIKey) { k.UserID = intern(k.UserID); s.put(tKeys, k) })
		case "rooms":
			err = rows(dec, func(r *Room) { r.intern(); s.putRoom(nil, r) })
		case "refresh":
			err = entries(dec, func(h string, t *RefreshToken) { s.put(tRefresh, &refreshRow{Hash: h, RefreshToken: *t}) })
		case "secrets":
			var sec *ClusterSecrets
			if err = dec.decode(&sec); err == nil && sec != nil {
				s.put(tMeta, &metaRow{Name: metaSecrets, Value: sec})
			}
		case "nodes":
			err = rows(dec, func(n *Node) { s.put(tNodes, n) })
		case "edges":
			err = rows(dec, func(e *Edge) { s.put(tEdges, e) })
		case "sessions":
			err = rows(dec, func(ss *Session) {
				ss.intern()
				s.putSession(nil, ss)
				if at := sessionLastOrder(ss); !at.IsZero() && at.After(lastOrders[ss.RoomDocID]) {
					lastOrders[ss.RoomDocID] = at
				}
			})
		case "outbox":
			err = rows(dec, func(d *Delivery) {
				if version < 2 {
					// v1 lists the outbox in enqueue order: number each
					// command's deliveries in the order listed.
					if d.Seq == prevSeq {
						sub++
					} else {
						prevSeq, sub = d.Seq, 0
					}
					d.Sub = sub
				}
				d.intern()
				s.putDelivery(nil, d)
			})
		case "seen":
			err = entries(dec, func(id string, index *uint64) {
				r := &seenRow{ID: id, Index: *index}
				seen = append(seen, r)
				seenByID[id] = r
			})
		case "seenAt":
			err = entries(dec, func(id string, at *time.Time) {
				if r := seenByID[id]; r != nil {
					r.At = *at
				}
			})
		case "stats":
			err = entries(dec, func(id string, samples *[]StatsSample) { s.put(tStats, &statsRow{SessionID: id, Samples: *samples}) })
		case "legStats":
			err = entries(dec, func(id string, legs *[]LegSample) { s.put(tLegs, &legRow{SessionID: id, Legs: *legs}) })
		case "indexes":
			err = entries(dec, func(table string, index *uint64) { s.put(tIndex, &tableIndex{Table: table, Index: *index}) })
		case "global":
			var g []GlobalEndpoint
			if err = dec.decode(&g); err == nil && len(g) > 0 {
				s.put(tMeta, &metaRow{Name: metaGlobal, Value: g})
			}
		case "gone":
			err = entries(dec, func(key string, index *uint64) { s.put(tGone, &goneRow{Key: key, Index: *index}) })
		case "placements":
			err = rows(dec, func(p *Placement) { s.put(tPlacements, p) })
		case "audits":
			err = entries(dec, func(id string, a *Audit) { s.put(tAudits, a) })
		case "requests":
			err = rows(dec, func(r *requestRecord) { s.addRequest(r) })
		case "tombstones":
			err = rows(dec, func(t *Tombstone) { s.putTombstone(t) })
		default:
			var known bool
			if known, err = consoleRestore(name, dec, s); !known && err == nil {
				known, err = jobsRestore(name, dec, s)
			}
			if !known && err == nil {
				// A field this version does not know: skip it.
				_, err = dec.value()
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	// The edge event ids are inserted once, with their times: "seenAt"
	// comes after "seen" and updating each row in the tree would insert it
	// twice (a third of the restore of a store with a day's history).
	for _, r := range seen {
		s.put(tSeen, r)
	}
	// Rooms' lastOrder, derived from their sessions. The rooms are this
	// restore's own, seen by nobody yet: set in place.
	for id, at := range lastOrders {
		if r := s.roomByID(id); r != nil {
			r.lastOrder = orderSecond(at)
		}
	}
	if version < 1 || version > snapshotVersion {
		return nil, 0, fmt.Errorf("snapshot version %d is not one this build reads (1-%d)", version, snapshotVersion)
	}
	s.flush()
	tx.Commit()
	return db, applied, nil
}

// OpenSnapshot returns the JSON of a persisted snapshot: it undoes the S2
// framing Persist writes, and passes the plain JSON of earlier builds
// through. The result is not buffered beyond the S2 reader's own blocks:
// its reader (jsonStream) reads it in large chunks into a buffer of its own.
func OpenSnapshot(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(len(s2Magic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if bytes.Equal(head, s2Magic) {
		return s2.NewReader(br), nil
	}
	return br, nil
}

// s2Magic opens every S2 stream (its stream identifier chunk); a JSON
// snapshot starts with '{'.
var s2Magic = []byte("\xff\x06\x00\x00S2sTwO")

// rows decodes a JSON array (or null) element by element. A type with a
// fast decoder (rooms, which appendRoom wrote) is decoded by decodeJSON,
// which falls back to encoding/json for any other shape: a million rooms
// restore in ~10 % less time and CPU than by reflection
// (BenchmarkSnapshot1M/restore).
func rows[T any](dec *jsonStream, fn func(*T)) error {
	return pipelined(func(emit func(*T)) error {
		return dec.array(func() error {
			raw, err := dec.value() // reused: the decoders copy what they keep
			if err != nil {
				return err
			}
			v := new(T)
			if err := decodeJSON(raw, v); err != nil {
				return err
			}
			emit(v)
			return nil
		})
	}, fn)
}

type keyed[T any] struct {
	key string
	v   *T
}

// entries decodes a JSON object (or null) entry by entry.
func entries[T any](dec *jsonStream, fn func(string, *T)) error {
	return pipelined(func(emit func(keyed[T])) error {
		return dec.object(func(k string) error {
			v := new(T)
			if err := dec.decode(v); err != nil {
				return err
			}
			emit(keyed[T]{k, v})
			return nil
		})
	}, func(e keyed[T]) { fn(e.key, e.v) })
}

// restoreBatch is how many decoded rows go to the inserting goroutine at a
// time: enough that the channel costs nothing per row, few enough that the
// rows in flight are a few hundred KB.
const restoreBatch = 256

// pipelined runs decode on this goroutine while another one calls insert
// with what it emits. Decoding and inserting are each about half of a
// restore's CPU (BenchmarkSnapshot1M/restore, BenchmarkRestoreHistory), so
// on a node with two cores or more a large table restores in about the
// time of the slower half. insert runs on one goroutine at a time, in the
// order decode emits, and every call has returned when pipelined does: the
// caller's transaction is never used by two goroutines at once.
func pipelined[E any](decode func(emit func(E)) error, insert func(E)) error {
	batches := make(chan []E, 4)
	inserted := make(chan struct{})
	go func() {
		defer close(inserted)
		for batch := range batches {
			for _, e := range batch {
				insert(e)
			}
		}
	}()
	batch := make([]E, 0, restoreBatch)
	err := decode(func(e E) {
		if batch = append(batch, e); len(batch) == restoreBatch {
			batches <- batch
			batch = make([]E, 0, restoreBatch)
		}
	})
	if err == nil && len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	<-inserted
	return err
}
