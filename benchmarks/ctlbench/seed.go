package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"

	"github.com/meridian-video/meridian/control/state"
)

// seed grows the stores of stopped nodes to a number of rooms quickly, so
// the reads and writes at 100k or 1M rooms are measured without first
// sending a million POSTs. For each data directory it rebuilds the node's
// state as Raft would (newest snapshot, then every log entry after it,
// through state.FSM.Apply), applies CreateRoom commands for the missing
// rooms through the same Apply, and writes the result as a new Raft
// snapshot at the node's last log index (hashicorp/raft's file snapshot
// store, as the node itself would). The node restores it when it starts:
// that start is the restart-to-ready time at that size. The log is left
// as it is, so new entries follow it without a gap.
//
// Seeded rooms are what POST /v2/rooms makes for the "customer" body (a
// customRoomId and the customer's webhook), with ids derived from their
// number so every node of a cluster gets the same rooms and the load
// client can ask for any of them.

// SeedResult is what one seed call did (ctlbench seed prints it as JSON).
type SeedResult struct {
	Rooms          int     `json:"rooms"`  // rooms of the key afterwards
	Seeded         int     `json:"seeded"` // seeded rooms afterwards (ids 0..Seeded-1)
	Added          int     `json:"added"`
	Index          uint64  `json:"index"`
	ApplySeconds   float64 `json:"applySeconds"`   // CreateRoom applies, all nodes
	SnapshotBytes  int64   `json:"snapshotBytes"`  // the snapshot written (first node)
	PersistSeconds float64 `json:"persistSeconds"` // FSM.Snapshot + Persist to the file store (first node)
}

// seedRoomID is seeded room i's roomId: "sd" and ten base-36 digits, in the
// form of the API's ids (xxxx-xxxx-xxxx).
func seedRoomID(i int) string {
	s := "sd" + fmt.Sprintf("%010s", strconv.FormatInt(int64(i), 36))
	return s[0:4] + "-" + s[4:8] + "-" + s[8:12]
}

func seedRoom(i int, key *state.APIKey, at time.Time, body string) state.Room {
	r := state.Room{ID: fmt.Sprintf("5eed%020x", i), RoomID: seedRoomID(i), UserID: key.UserID, APIKey: key.Key, Pin: key.Pin, CreatedAt: at, UpdatedAt: at}
	if body == "customer" {
		r.CustomRoomID = fmt.Sprintf("meeting-seed-%d", i)
		r.Webhook = &state.RoomWebhook{EndPoint: customerHook, Events: append([]string(nil), customerEvents...)}
	}
	return r
}

func runSeed(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	var dirs multiFlag
	fs.Var(&dirs, "data", "a stopped node's data directory (repeat for every node of a cluster)")
	key := fs.String("api-key", "", "the API key whose project gets the rooms")
	rooms := fs.Int("rooms", 0, "rooms the key should have afterwards")
	seeded := fs.Int("seeded", 0, "seeded rooms already in the store (the next seeded id)")
	body := fs.String("body", "customer", "customer or empty, as for run")
	file := fs.String("json", "", "the run's result file: the seed is added to it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(dirs) == 0 || *key == "" || *rooms <= 0 || *file == "" {
		return errors.New("-data, -api-key, -rooms and -json are required")
	}
	var run Result
	if err := readJSON(*file, &run); err != nil {
		return err
	}
	if *body != "customer" && *body != "empty" {
		return fmt.Errorf("-body %q: want customer or empty", *body)
	}
	var res SeedResult
	for i, dir := range dirs {
		r, err := seedDir(dir, *key, *rooms, *seeded, *body, i == 0)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		if i == 0 {
			res = r
		} else if r.Index != res.Index || r.Rooms != res.Rooms {
			return fmt.Errorf("%s: at index %d with %d rooms, but %s is at index %d with %d rooms (stop a cluster only when it is idle)",
				dir, r.Index, r.Rooms, dirs[0], res.Index, res.Rooms)
		}
		if i > 0 {
			res.ApplySeconds += r.ApplySeconds
		}
	}
	fmt.Fprintf(os.Stderr, "   seeded %d rooms (now %d) at index %d: applies %.1f s, snapshot %d MB persisted in %.2f s\n",
		res.Added, res.Rooms, res.Index, res.ApplySeconds, res.SnapshotBytes>>20, res.PersistSeconds)
	run.Seeds = append(run.Seeds, &res)
	if err := writeJSON(*file, &run); err != nil {
		return err
	}
	// The next seed's -seeded.
	fmt.Println(res.Seeded)
	return nil
}

func seedDir(dataDir, key string, rooms, seeded int, body string, measure bool) (SeedResult, error) {
	res := SeedResult{Seeded: seeded}
	dir := filepath.Join(dataDir, "raft")
	logs, closeLogs, err := openLogs(dir)
	if err != nil {
		return res, err
	}
	defer closeLogs()
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return res, err
	}
	fsm := state.NewFSM(nil)
	var (
		conf      raft.Configuration
		confIndex uint64
		index     uint64
		term      uint64
	)
	metas, err := snaps.List()
	if err != nil {
		return res, err
	}
	if len(metas) > 0 {
		meta, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			return res, err
		}
		if err := fsm.Restore(rc); err != nil {
			return res, fmt.Errorf("restore snapshot %s: %w", meta.ID, err)
		}
		conf, confIndex, index, term = meta.Configuration, meta.ConfigurationIndex, meta.Index, meta.Term
	}
	first, err := logs.FirstIndex()
	if err != nil {
		return res, err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return res, err
	}
	for i := max(first, index+1); i <= last && i > 0; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return res, fmt.Errorf("log entry %d: %w", i, err)
		}
		switch l.Type {
		case raft.LogCommand:
			fsm.Apply(&l)
		case raft.LogConfiguration:
			conf, confIndex = raft.DecodeConfiguration(l.Data), l.Index
		}
		index, term = l.Index, l.Term
	}
	if index == 0 || len(conf.Servers) == 0 {
		return res, errors.New("no Raft state: start the node once first")
	}
	var k *state.APIKey
	fsm.Read(func(s *state.Store) {
		if kk, ok := s.APIKey(key); ok {
			k = kk
			_, res.Rooms = s.RoomsPage(kk.UserID, state.Page{Limit: 0})
		}
	})
	if k == nil {
		return res, fmt.Errorf("no API key %q in the store", key)
	}
	res.Index = index
	add := rooms - res.Rooms
	if add <= 0 {
		return res, nil
	}
	// Creation times a millisecond apart, ending now: the newest rooms
	// (page 1) are the seeded ones until the load client adds more.
	start := time.Now().UTC().Add(-time.Duration(add) * time.Millisecond)
	t0 := time.Now()
	for j := 0; j < add; j++ {
		i := seeded + j
		b, err := state.Encode(state.CmdCreateRoom, state.CreateRoom{Room: seedRoom(i, k, start.Add(time.Duration(j)*time.Millisecond), body)})
		if err != nil {
			return res, err
		}
		if r, ok := fsm.Apply(&raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: b}).(state.Result); ok && r.Err != nil {
			return res, fmt.Errorf("seeded room %d: %w", i, r.Err)
		}
	}
	res.ApplySeconds = time.Since(t0).Seconds()
	res.Added, res.Rooms, res.Seeded = add, rooms, seeded+add

	t0 = time.Now()
	// The transport only encodes the legacy peer list (addresses as bytes,
	// as the TCP transport does).
	_, tr := raft.NewInmemTransport("")
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, confIndex, tr)
	if err != nil {
		return res, err
	}
	snap, err := fsm.Snapshot()
	if err != nil {
		_ = sink.Cancel()
		return res, err
	}
	if err := snap.Persist(sink); err != nil {
		return res, fmt.Errorf("persist: %w", err)
	}
	snap.Release()
	if measure {
		res.PersistSeconds = time.Since(t0).Seconds()
		if s, ok := newestSnapshot(dataDir); ok && s.Index == index {
			res.SnapshotBytes = s.Bytes
		}
	}
	return res, nil
}

// openLogs opens the node's Raft log read-write (the node is stopped):
// the WAL, the only log store meridian has.
func openLogs(dir string) (raft.LogStore, func(), error) {
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil {
		return nil, nil, fmt.Errorf("%s holds a bolt Raft log (raft.db), which meridian no longer reads: seed a data dir made by this meridian", dir)
	}
	wd := filepath.Join(dir, "wal")
	if _, err := os.Stat(wd); err != nil {
		return nil, nil, fmt.Errorf("no Raft log under %s", dir)
	}
	w, err := raftwal.Open(wd)
	if err != nil {
		return nil, nil, err
	}
	return w, func() { _ = w.Close() }, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
