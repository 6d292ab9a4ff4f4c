package gossip

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a member's state as this node sees it.
type State string

// Member states.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect" // this node's probe of it failed; not yet refuted or dead
	StateDead    State = "dead"    // declared failed by the pool
	StateLeft    State = "left"    // left gracefully (Pool.Leave)
)

// States lists every State, in the order metrics use.
var States = [...]State{StateAlive, StateSuspect, StateDead, StateLeft}

// Member is one member of the pool as this node sees it.
type Member struct {
	ID, Region string
	Addr       string // gossip host:port
	State      State
	Meta       Meta // last meta decoded (zero if undecodable)
	// Incarnation is the member's meta generation: it starts at the Unix time
	// the member's Pool was created and grows by one with every publication
	// (each of which also bumps memberlist's own incarnation, which
	// memberlist v0.7.0 does not expose).
	Incarnation uint32
	Since       time.Time // when State last changed (local clock)
}

type entry struct {
	m            Member
	leaving      bool      // last meta said the member is leaving
	suspectUntil time.Time // a suspect mark older than this was refuted
}

// table is the id -> Member map fed by memberlist callbacks. Its methods
// never block (one short mutex, no I/O, no channel operation) and report
// whether anything visible changed, so the caller can nudge Changes() after
// the lock is released.
type table struct {
	self string
	now  func() time.Time

	mu   sync.Mutex
	byID map[string]*entry
}

func newTable(self string, now func() time.Time) *table {
	return &table{self: self, now: now, byID: make(map[string]*entry)}
}

// get returns the entry for id, creating a dead one (so the first alive is a
// state change). mu must be held.
func (t *table) get(id string) *entry {
	e, ok := t.byID[id]
	if !ok {
		e = &entry{m: Member{ID: id, State: StateDead}}
		t.byID[id] = e
	}
	return e
}

func (t *table) setState(e *entry, s State) bool {
	if e.m.State == s {
		return false
	}
	e.m.State = s
	e.m.Since = t.now()
	return true
}

// setMeta records decoded meta (when decodable) and the address.
func setMeta(e *entry, addr string, w wireMeta, ok bool) bool {
	changed := false
	if addr != "" && e.m.Addr != addr {
		e.m.Addr = addr
		changed = true
	}
	if !ok {
		return changed
	}
	if m := w.meta(); e.m.Meta != m || e.m.Region != w.Region || e.m.Incarnation != w.Gen {
		e.m.Meta, e.m.Region, e.m.Incarnation = m, w.Region, w.Gen
		changed = true
	}
	e.leaving = w.Leaving
	return changed
}

// alive records a join or an update: memberlist accepted a newer alive
// message, so the member is alive (this also ends a suspicion).
func (t *table) alive(id, addr string, w wireMeta, ok bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(id)
	changed := t.setState(e, StateAlive)
	e.suspectUntil = time.Time{}
	return setMeta(e, addr, w, ok) || changed
}

// gone records NotifyLeave: left when the member announced it (memberlist's
// own flag, set only by a memberlist that fills Node.State, or our leaving
// meta), dead otherwise.
func (t *table) gone(id, addr string, w wireMeta, ok, left bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(id)
	changed := setMeta(e, addr, w, ok)
	s := StateDead
	if left || e.leaving {
		s = StateLeft
	}
	e.suspectUntil = time.Time{}
	return t.setState(e, s) || changed
}

// suspect marks an alive member suspect until the given time.
func (t *table) suspect(id string, until time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok || id == t.self || e.m.State != StateAlive {
		return false
	}
	e.suspectUntil = until
	return t.setState(e, StateSuspect)
}

// proofOfLife ends a suspicion (a direct ack from the member).
func (t *table) proofOfLife(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok || e.m.State != StateSuspect {
		return false
	}
	e.suspectUntil = time.Time{}
	return t.setState(e, StateAlive)
}

// housekeep ends suspicions that outlived memberlist's longest suspicion
// timeout without a death (memberlist accepted a refutation we cannot see)
// and forgets members dead or left for longer than forget.
func (t *table) housekeep(forget time.Duration) bool {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	for id, e := range t.byID {
		switch e.m.State {
		case StateSuspect:
			if now.After(e.suspectUntil) {
				e.suspectUntil = time.Time{}
				changed = t.setState(e, StateAlive) || changed
			}
		case StateDead, StateLeft:
			if id != t.self && now.Sub(e.m.Since) > forget {
				delete(t.byID, id)
				changed = true
			}
		}
	}
	return changed
}

func (t *table) members() []Member {
	t.mu.Lock()
	out := make([]Member, 0, len(t.byID))
	for _, e := range t.byID {
		out = append(out, e.m)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (t *table) member(id string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok {
		return Member{}, false
	}
	return e.m, true
}

// counts returns the number of members per state, in States order, and the
// number not dead or left.
func (t *table) counts() (per [len(States)]int, live int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.byID {
		for i, s := range States {
			if e.m.State == s {
				per[i]++
			}
		}
	}
	return per, per[0] + per[1]
}

// delegate adapts a Pool to memberlist's delegate interfaces. Every method
// may run on memberlist's packet or probe goroutines, most with memberlist's
// node lock held: none blocks, takes more than the table's short lock, calls
// back into memberlist, or keeps a buffer it was given (meta is decoded from,
// or copied out of, the node).
type delegate struct{ p *Pool }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
	_ memberlist.AliveDelegate = delegate{}
	_ memberlist.MergeDelegate = delegate{}
	_ memberlist.PingDelegate  = delegate{}
)

// NodeMeta returns the last good encoded meta: an atomic load, no encoding.
// The ticker only stores meta that fits MetaMaxSize, so this never makes
// memberlist panic.
func (d delegate) NodeMeta(limit int) []byte {
	b := d.p.meta.Load()
	if b == nil || len(*b) > limit {
		return nil
	}
	return *b
}

func (delegate) NotifyMsg([]byte)                  {}
func (delegate) GetBroadcasts(_, _ int) [][]byte   { return nil }
func (delegate) LocalState(bool) []byte            { return nil }
func (delegate) MergeRemoteState(_ []byte, _ bool) {}

func (d delegate) NotifyJoin(n *memberlist.Node)   { d.alive(n) }
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.alive(n) }

func (d delegate) alive(n *memberlist.Node) {
	w, err := decodeWire(n.Meta)
	d.p.changed(d.p.members.alive(n.Name, n.Address(), w, err == nil))
}

// NotifyLeave: memberlist v0.7.0 passes the Node embedded in its private
// nodeState, whose State field is never set (hashicorp/memberlist#266,
// #321), so StateLeft is honoured if present but the leaving flag of the
// member's last meta is what normally tells "left" from "dead".
func (d delegate) NotifyLeave(n *memberlist.Node) {
	w, err := decodeWire(n.Meta)
	left := n.State == memberlist.StateLeft || (n.Name == d.p.cfg.NodeID && d.p.leaving.Load())
	d.p.changed(d.p.members.gone(n.Name, n.Address(), w, err == nil, left))
}

// NotifyAlive refuses members of another region (and members whose meta
// cannot be read, so their region is unknown). memberlist then ignores the
// alive message: the node never enters the pool.
func (d delegate) NotifyAlive(n *memberlist.Node) error {
	return d.check(n.Name, n.Meta)
}

// NotifyMerge refuses a join (push/pull with join set, either side) when any
// node of the other side belongs to another region.
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := d.check(n.Name, n.Meta); err != nil {
			return err
		}
	}
	return nil
}

func (d delegate) check(name string, meta []byte) error {
	w, err := decodeWire(meta)
	switch {
	case err != nil:
		err = fmt.Errorf("gossip: member %q: %w", name, err)
	case w.Region != d.p.cfg.Region:
		err = fmt.Errorf("gossip: member %q is in region %q, this pool is %q", name, w.Region, d.p.cfg.Region)
	case w.ID != name:
		err = fmt.Errorf("gossip: member %q announces id %q", name, w.ID)
	}
	if err != nil {
		d.p.refused.Add(1)
	}
	return err
}

func (delegate) AckPayload() []byte { return nil }

// NotifyPingComplete is called for a direct ack to this node's probe: proof
// that the member is alive, which ends a suspicion.
func (d delegate) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	d.p.changed(d.p.members.proofOfLife(n.Name))
}
