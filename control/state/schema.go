package state

import (
	"time"

	iradix "github.com/hashicorp/go-immutable-radix"
	"github.com/hashicorp/go-memdb"
)

// Tables. Every row is immutable once inserted: a change clones the row,
// changes the clone and inserts it (readers may hold the old version).
const (
	tIndex      = "index"      // *tableIndex: last Raft index that changed a table
	tCounters   = "counters"   // *counter: per-project totals kept by the same transactions
	tMeta       = "meta"       // *metaRow: single values (cluster secrets, global endpoints)
	tKeys       = "keys"       // *APIKey
	tRooms      = "rooms"      // *Room
	tRefresh    = "refresh"    // *refreshRow
	tNodes      = "nodes"      // *Node
	tEdges      = "edges"      // *Edge
	tSessions   = "sessions"   // *Session (participants and their timelogs inside)
	tStats      = "stats"      // *statsRow: a session's quality samples
	tLegs       = "legStats"   // *legRow: a session's cascade-leg samples
	tAudits     = "audits"     // *Audit: where a session's media went
	tOutbox     = "outbox"     // *Delivery: webhook deliveries and their log
	tSeen       = "seen"       // *seenRow: edge event ids already applied
	tGone       = "gone"       // *goneRow: endpoints that answered 410 Gone
	tPlacements = "placements" // *Placement
	tRequests   = "requests"   // *requestRecord: outcomes of recent request ids
	tTombstones = "tombstones" // *Tombstone: records removed by retention
)

type tableIndex struct {
	Table string
	Index uint64
}

type counter struct {
	Key string
	N   int
}

type metaRow struct {
	Name  string
	Value any
}

const (
	metaSecrets = "secrets"
	metaGlobal  = "global"
)

type refreshRow struct {
	Hash string
	RefreshToken
}

type statsRow struct {
	SessionID string
	Samples   []StatsSample
}

type legRow struct {
	SessionID string
	Legs      []LegSample
}

type seenRow struct {
	ID    string
	Index uint64
	At    time.Time // the reporting command's time; retention drops old ids
}

type goneRow struct {
	Key   string // project + "\x00" + URL
	Index uint64
}

var dbSchema = &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}

func init() {
	for _, t := range []*memdb.TableSchema{
		table(tIndex, ix("id", true, always(func(r *tableIndex) []byte { return keyOf(r.Table) }))),
		table(tCounters, ix("id", true, always(func(r *counter) []byte { return keyOf(r.Key) }))),
		table(tMeta, ix("id", true, always(func(r *metaRow) []byte { return keyOf(r.Name) }))),
		table(tKeys,
			ix("id", true, always(func(k *APIKey) []byte { return keyOf(k.Key) })),
			// Only active keys authenticate by secret.
			ix("secret", true, func(k *APIKey) (bool, []byte) { return k.RevokedAt == nil, keyOf(k.SecretHash) })),
		table(tRooms,
			ix("id", true, always(func(r *Room) []byte { return keyOf(r.ID) })),
			ix("roomId", true, always(func(r *Room) []byte { return keyOf(r.RoomID) })),
			ix("custom", true, func(r *Room) (bool, []byte) { return r.CustomRoomID != "", keyOf(r.UserID, r.CustomRoomID) }),
			// A project's rooms in creation order: list pages walk it backwards.
			ix("project", false, always(func(r *Room) []byte { return keyOfRow(r.ID, r.UserID, r.CreateIndex) }))),
		table(tRefresh,
			ix("id", true, always(func(r *refreshRow) []byte { return keyOf(r.Hash) })),
			ix("apiKey", false, always(func(r *refreshRow) []byte { return keyOf(r.APIKey) })),
			ix("expires", false, always(func(r *refreshRow) []byte { return keyOf(r.ExpiresAt) }))),
		table(tNodes, ix("id", true, always(func(n *Node) []byte { return keyOf(n.ID) }))),
		table(tEdges, ix("id", true, always(func(e *Edge) []byte { return keyOf(e.ID) }))),
		table(tSessions,
			ix("id", true, always(func(ss *Session) []byte { return keyOf(ss.ID) })),
			// Lists are newest first by start time (creation order breaks ties):
			// project, project+status and room orderings; a date range is a
			// bounded walk of the same index.
			ix("project", false, always(func(ss *Session) []byte { return keyOf(ss.UserID, ss.Start, ss.CreateIndex) })),
			ix("status", false, always(func(ss *Session) []byte { return keyOf(ss.UserID, ss.Status(), ss.Start, ss.CreateIndex) })),
			ix("room", false, always(func(ss *Session) []byte { return keyOf(ss.RoomDocID, ss.Start, ss.CreateIndex) })),
			ix("ongoing", true, func(ss *Session) (bool, []byte) { return ss.End == nil, keyOf(ss.RoomDocID) }),
			// Ended sessions by end time: what retention walks.
			ix("ended", false, func(ss *Session) (bool, []byte) {
				if ss.End == nil {
					return false, nil
				}
				return true, keyOf(*ss.End)
			})),
		table(tStats, ix("id", true, always(func(r *statsRow) []byte { return keyOf(r.SessionID) }))),
		table(tLegs, ix("id", true, always(func(r *legRow) []byte { return keyOf(r.SessionID) }))),
		table(tAudits, ix("id", true, always(func(a *Audit) []byte { return keyOf(a.SessionID) }))),
		table(tOutbox,
			ix("id", true, always(func(d *Delivery) []byte { return keyOf(d.ID) })),
			// Pending deliveries in enqueue order: the dispatcher's queue.
			ix("pending", false, func(d *Delivery) (bool, []byte) { return d.Status == DeliveryPending, keyOf(d.Seq, d.Sub) }),
			// and by endpoint: what a 410 Gone from it fails.
			ix("pendingURL", false, func(d *Delivery) (bool, []byte) {
				return d.Status == DeliveryPending, keyOf(d.UserID, d.URL, d.Seq, d.Sub)
			}),
			ix("project", false, always(func(d *Delivery) []byte { return keyOf(d.UserID, d.Seq, d.Sub) })),
			ix("status", false, always(func(d *Delivery) []byte { return keyOf(d.UserID, d.Status, d.Seq, d.Sub) })),
			ix("room", false, always(func(d *Delivery) []byte { return keyOf(d.RoomID, d.Seq, d.Sub) })),
			// A session's deliveries (its audit view): a long-lived room's
			// log would otherwise be walked for one session of it.
			ix("session", false, func(d *Delivery) (bool, []byte) { return d.SessionID != "", keyOf(d.SessionID, d.Seq, d.Sub) }),
			// The log's other filters, each an index of its own (lists).
			ix("event", false, always(func(d *Delivery) []byte { return keyOf(d.UserID, d.EventType, d.Seq, d.Sub) })),
			ix("url", false, always(func(d *Delivery) []byte { return keyOf(d.UserID, d.URL, d.Seq, d.Sub) })),
			// Finished deliveries by the time they finished: what retention walks.
			ix("finished", false, func(d *Delivery) (bool, []byte) { return d.Status != DeliveryPending, keyOf(d.finishedAt()) })),
		table(tSeen,
			ix("id", true, always(func(r *seenRow) []byte { return keyOf(r.ID) })),
			ix("at", false, always(func(r *seenRow) []byte { return keyOf(r.At) }))),
		table(tGone, ix("id", true, always(func(r *goneRow) []byte { return keyOf(r.Key) }))),
		table(tPlacements,
			ix("id", true, always(func(p *Placement) []byte { return keyOf(p.RoomID) })),
			ixMulti("edge", func(p *Placement) [][]byte {
				out := make([][]byte, len(p.Edges))
				for i, e := range p.Edges {
					out[i] = keyOf(e.EdgeID)
				}
				return out
			})),
		table(tRequests,
			ix("id", true, always(func(r *requestRecord) []byte { return keyOf(r.ID) })),
			// One FIFO per retention class, oldest first.
			ix("fifo", false, always(func(r *requestRecord) []byte { return keyOfRow(r.ID, r.Key, r.Index) }))),
		table(tTombstones,
			ix("id", true, always(func(t *Tombstone) []byte { return keyOf(t.Kind, t.ID) })),
			ix("removed", false, always(func(t *Tombstone) []byte { return keyOf(t.RemovedAt) }))),
	} {
		dbSchema.Tables[t.Name] = t
	}
	if err := dbSchema.Validate(); err != nil {
		panic("state: schema: " + err.Error())
	}
}

// Nothing in this process watches the state's trees (memdb.WatchSet,
// WatchCh), so their nodes carry no watch channels: with them, channels
// were 40 % of a room's memory (about nine 96-byte channels per room) and
// a fifth of what a create allocates on every replica. The switch is
// Meridian's patch of go-immutable-radix (third_party/go-immutable-radix,
// PATCHES.md), process-wide, and must be set before the first tree is built.
func init() { iradix.DisableWatchChannels() }

// newDB returns an empty database without watch notifications: nothing
// here blocks on memdb watch channels, and a database made by Snapshot
// skips the per-commit bookkeeping (tracking and closing the channel of
// every radix node a commit replaces) that only watches need.
func newDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(dbSchema)
	if err != nil {
		panic("state: " + err.Error())
	}
	return db.Snapshot()
}
