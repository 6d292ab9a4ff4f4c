package state

import (
	"sort"
	"time"
)

// Store holds every replicated table. Methods that start with a lower-case
// letter mutate and are only called from Apply; exported methods read.
type Store struct {
	keys             map[string]*APIKey       // by public key
	keyBySecret      map[string]string        // secret hash -> public key
	rooms            map[string]*Room         // by DocID
	roomByRoomID     map[string]string        // roomId -> DocID
	roomByCustom     map[string]string        // apikey + "\x00" + customRoomId -> DocID
	refresh          map[string]*RefreshToken // by token hash
	secrets          *ClusterSecrets
	nodes            map[string]*Node // raft server id -> node
	edges            map[string]*Edge
	sessions         map[string]*Session // by DocID
	ongoing          map[string]string   // room DocID -> session DocID
	outbox           map[string]*Delivery
	outboxOrder      []string                 // delivery ids in enqueue order
	seenEvents       map[string]uint64        // edge event id -> index (dedupe retries)
	stats            map[string][]StatsSample // session id -> samples
	indexes          map[string]uint64        // table -> last modify index
	globalEndpoints  []GlobalEndpoint
	goneURLs         map[string]uint64              // user + url -> index of the 410
	placements       map[string]*Placement          // public room id -> edges serving it
	placementsByEdge map[string]map[string]struct{} // edge id -> room ids
	audits           map[string]*Audit              // session id -> where its media went
	legStats         map[string][]LegSample         // session id -> cascade leg samples
	requests         requestLog                     // recent request ids and their outcomes
}

func newStore() *Store {
	return &Store{
		keys:             map[string]*APIKey{},
		keyBySecret:      map[string]string{},
		rooms:            map[string]*Room{},
		roomByRoomID:     map[string]string{},
		roomByCustom:     map[string]string{},
		refresh:          map[string]*RefreshToken{},
		nodes:            map[string]*Node{},
		edges:            map[string]*Edge{},
		sessions:         map[string]*Session{},
		ongoing:          map[string]string{},
		outbox:           map[string]*Delivery{},
		seenEvents:       map[string]uint64{},
		stats:            map[string][]StatsSample{},
		indexes:          map[string]uint64{},
		goneURLs:         map[string]uint64{},
		placements:       map[string]*Placement{},
		placementsByEdge: map[string]map[string]struct{}{},
		audits:           map[string]*Audit{},
		legStats:         map[string][]LegSample{},
		requests:         newRequestLog(),
	}
}

func (s *Store) bump(table string, index uint64) { s.indexes[table] = index }

// TableIndex is the last index that modified table.
func (s *Store) TableIndex(table string) uint64 { return s.indexes[table] }

// snapshotData is the persisted shape. Add fields, never rename them; a golden
// test guards the encoding.
type snapshotData struct {
	Version      int                      `json:"version"`
	AppliedIndex uint64                   `json:"appliedIndex,omitempty"`
	Keys         []*APIKey                `json:"keys"`
	Rooms        []*Room                  `json:"rooms"`
	Refresh      map[string]*RefreshToken `json:"refresh"`
	Secrets      *ClusterSecrets          `json:"secrets,omitempty"`
	Nodes        []*Node                  `json:"nodes"`
	Edges        []*Edge                  `json:"edges"`
	Sessions     []*Session               `json:"sessions"`
	Outbox       []*Delivery              `json:"outbox"`
	Seen         map[string]uint64        `json:"seen"`
	Stats        map[string][]StatsSample `json:"stats"`
	Indexes      map[string]uint64        `json:"indexes"`
	Global       []GlobalEndpoint         `json:"global,omitempty"`
	Gone         map[string]uint64        `json:"gone,omitempty"`
	Placements   []*Placement             `json:"placements,omitempty"`
	Audits       map[string]*Audit        `json:"audits,omitempty"`
	LegStats     map[string][]LegSample   `json:"legStats,omitempty"`
	Requests     []*requestRecord         `json:"requests,omitempty"`
}

func (s *Store) snapshotData() *snapshotData {
	d := &snapshotData{Version: 1, Refresh: s.refresh, Secrets: s.secrets, Seen: s.seenEvents, Stats: s.stats, Indexes: s.indexes, Global: s.globalEndpoints, Gone: s.goneURLs}
	for _, k := range sortedKeys(s.keys) {
		d.Keys = append(d.Keys, s.keys[k])
	}
	for _, k := range sortedKeys(s.rooms) {
		d.Rooms = append(d.Rooms, s.rooms[k])
	}
	for _, k := range sortedKeys(s.nodes) {
		d.Nodes = append(d.Nodes, s.nodes[k])
	}
	for _, k := range sortedKeys(s.edges) {
		d.Edges = append(d.Edges, s.edges[k])
	}
	for _, k := range sortedKeys(s.sessions) {
		d.Sessions = append(d.Sessions, s.sessions[k])
	}
	for _, id := range s.outboxOrder {
		d.Outbox = append(d.Outbox, s.outbox[id])
	}
	for _, k := range sortedKeys(s.placements) {
		d.Placements = append(d.Placements, s.placements[k])
	}
	if len(s.audits) > 0 {
		d.Audits = s.audits
	}
	if len(s.legStats) > 0 {
		d.LegStats = s.legStats
	}
	for _, q := range [][]string{s.requests.retry, s.requests.keys} {
		for _, id := range q {
			d.Requests = append(d.Requests, s.requests.byID[id])
		}
	}
	return d
}

func (s *Store) restore(d *snapshotData) {
	for _, k := range d.Keys {
		s.keys[k.Key] = k
		s.keyBySecret[k.SecretHash] = k.Key
	}
	for _, r := range d.Rooms {
		s.indexRoom(r)
	}
	if d.Refresh != nil {
		s.refresh = d.Refresh
	}
	s.secrets = d.Secrets
	for _, n := range d.Nodes {
		s.nodes[n.ID] = n
	}
	for _, e := range d.Edges {
		s.edges[e.ID] = e
	}
	for _, ss := range d.Sessions {
		s.sessions[ss.ID] = ss
		if ss.End == nil {
			s.ongoing[ss.RoomDocID] = ss.ID
		}
	}
	for _, del := range d.Outbox {
		s.outbox[del.ID] = del
		s.outboxOrder = append(s.outboxOrder, del.ID)
	}
	if d.Seen != nil {
		s.seenEvents = d.Seen
	}
	if d.Stats != nil {
		s.stats = d.Stats
	}
	s.globalEndpoints = d.Global
	if d.Gone != nil {
		s.goneURLs = d.Gone
	}
	if d.Indexes != nil {
		s.indexes = d.Indexes
	}
	for _, p := range d.Placements {
		s.placements[p.RoomID] = p
		for _, e := range p.Edges {
			s.indexPlacementEdge(e.EdgeID, p.RoomID)
		}
	}
	if d.Audits != nil {
		s.audits = d.Audits
	}
	if d.LegStats != nil {
		s.legStats = d.LegStats
	}
	for _, r := range d.Requests {
		s.requests.add(r)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// clone copies a value through a shallow struct copy; slices that callers may
// mutate are copied by the per-type Clone methods.
func ptrTime(t time.Time) *time.Time { return &t }
