package cluster

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A follower that the leader could not reach for a while — a partition, a
// paused process, a full disk — has a leader again as soon as it hears one,
// and would serve the API from the state it had before, for as long as
// catching up takes (tens of seconds for tens of thousands of entries, a
// snapshot install at a million rooms). Its own commit index cannot tell:
// Raft stops it at the end of the follower's log. The leader's commit
// index, which every AppendEntries carries (third_party/raft, change 4),
// can. A follower is behind when
//
//   - it lacks entries the leader told it are committed, or has many
//     committed entries unapplied (it missed them: seen at once, on any
//     request, or by a sampler when its state machine has them queued), or
//   - a committed entry it heard of has gone unapplied for long (its state
//     machine stalls: seen by the sampler),
//
// and stays behind until neither holds and it has applied everything it
// had heard of at the sample before.

const (
	// lagSampleEvery is how often the sampler looks.
	lagSampleEvery = 200 * time.Millisecond
	// lagBehindAfter: a committed entry this node has known of for this
	// long and still not applied makes it behind. A follower in step
	// applies an entry milliseconds after hearing that it committed; a
	// saturated one sharing its core with the leader, within a second.
	lagBehindAfter = 2 * time.Second
	// lagBehindEntries known-committed entries not applied make a node
	// behind at once: more than a follower in step queues (a second of a
	// busy cluster's writes is a few hundred entries, creates being
	// batched), so it missed them.
	lagBehindEntries = 1000
	// lagMissingSlack committed entries may be missing from a follower's
	// log, or unapplied, before the other tests are made: four requests'
	// worth of entries (MaxAppendEntries is 64), which a busy follower can
	// have in flight. Fewer are left to lagBehindAfter.
	lagMissingSlack = 256
	// lagMaxMarks bounds the marks kept while a node is far behind; when
	// full, the newest mark is raised instead of appending one (its time
	// then errs on the old side, which keeps the node behind a little
	// longer, never shorter).
	lagMaxMarks = 256
)

// LagError describes a node that is behind the leader: it knows of
// committed entries it has not applied. The API answers 503 while it is.
type LagError struct {
	Applied      uint64    // the last entry this node's state machine applied
	LeaderCommit uint64    // the highest commit index a leader told it of
	Since        time.Time // when it fell behind
	// through is what it must apply before it is in step again: the
	// leader's commit index when last sampled.
	through uint64
}

func (e *LagError) Error() string {
	return fmt.Sprintf("this node is catching up with the leader: %d of %d committed log entries applied (behind since %s)",
		e.Applied, e.LeaderCommit, e.Since.UTC().Format(time.RFC3339))
}

type lagMark struct {
	index uint64    // a leader's commit index
	at    time.Time // when this node first heard of it
}

// lagWatch holds the committed indexes a node heard of and has not
// applied yet, oldest first (only the sampler touches them), and the
// verdict (a request may set it, the sampler alone clears it).
type lagWatch struct {
	marks  []lagMark
	behind atomic.Pointer[LagError] // never changed once stored
}

// Behind returns why this node is behind the leader, or nil if it is not.
// Cheap enough for every API request: a few atomic loads while the node
// has applied about what it heard of, as it has when in step.
func (n *Node) Behind() *LagError {
	if b := n.lag.behind.Load(); b != nil {
		return b
	}
	seen := n.raft.LeaderCommitIndex()
	if !n.missedEntries(seen) {
		return nil
	}
	e := &LagError{Applied: n.fsm.AppliedIndex(), LeaderCommit: seen, Since: time.Now(), through: seen}
	if n.lag.behind.CompareAndSwap(nil, e) {
		n.logBehind(e)
		return e
	}
	if b := n.lag.behind.Load(); b != nil {
		return b
	}
	return e
}

// missedEntries reports a follower that lacks entries a leader told it are
// committed, or has not even handed 1,000 of them to its state machine.
// One in step lacks at most the entries of the request it is storing (the
// leader sends a follower everything it has, up to 64 entries a request,
// with a commit index that may cover them, noted before they are stored:
// third_party/raft, change 4), so only one several requests behind does.
// Raft's applied index counts barriers and no-ops, which the state
// machine never sees (a log can end with a thousand barriers of
// consistent reads); what the state machine has queued is the sampler's.
func (n *Node) missedEntries(seen uint64) bool {
	dispatched := n.raft.AppliedIndex()
	if seen <= dispatched+lagMissingSlack || n.raft.State() != raft.Follower {
		return false
	}
	return seen-dispatched >= lagBehindEntries || n.raft.LastIndex()+lagMissingSlack < seen
}

func (n *Node) watchLag() {
	defer n.monitorWG.Done()
	t := time.NewTicker(lagSampleEvery)
	defer t.Stop()
	for {
		select {
		case <-n.stop.Done():
			return
		case now := <-t.C:
			n.sampleLag(now)
		}
	}
}

// sampleLag records the leader's commit index, drops what has been applied
// since, and judges whether the node is behind or in step again.
func (n *Node) sampleLag(now time.Time) {
	w := &n.lag
	switch n.raft.State() {
	case raft.Follower:
	case raft.Leader:
		// A leader holds every committed entry.
		w.marks = w.marks[:0]
		n.setBehind(w.behind.Load(), nil, now)
		return
	default:
		// A candidate has no leader, which readiness answers already;
		// what it knew of its lag stays until a leader speaks again.
		return
	}
	seen := n.raft.LeaderCommitIndex()
	current := n.appliedThrough(seen)
	if last := len(w.marks) - 1; !current && (last < 0 || w.marks[last].index < seen) {
		if last+1 < lagMaxMarks {
			w.marks = append(w.marks, lagMark{index: seen, at: now})
		} else {
			w.marks[last].index = seen
		}
	}
	drop := 0
	for drop < len(w.marks) && n.appliedThrough(w.marks[drop].index) {
		drop++
	}
	w.marks = append(w.marks[:0], w.marks[drop:]...)

	applied := n.fsm.AppliedIndex()
	stalled := len(w.marks) > 0 && now.Sub(w.marks[0].at) >= lagBehindAfter
	queued := !current && seen-applied >= lagBehindEntries // commands handed over, not applied
	behind := stalled || queued || n.missedEntries(seen)
	was := w.behind.Load()
	switch {
	case was == nil && behind:
		n.setBehind(nil, &LagError{Applied: applied, LeaderCommit: seen, Since: now, through: seen}, now)
	case was != nil && (behind || !n.appliedThrough(was.through)):
		// Still catching up, to what it has heard of by now: it is in
		// step once a sample finds applied what the one before had
		// heard of (a node keeping up with new writes is).
		n.setBehind(was, &LagError{Applied: applied, LeaderCommit: seen, Since: was.Since, through: max(seen, was.through)}, now)
	case was != nil:
		n.setBehind(was, nil, now)
	}
}

// setBehind replaces the verdict was with e unless a request changed it
// meanwhile (then the next sample judges again).
func (n *Node) setBehind(was, e *LagError, now time.Time) {
	if was == e || !n.lag.behind.CompareAndSwap(was, e) {
		return
	}
	switch {
	case was == nil:
		n.logBehind(e)
	case e == nil:
		n.log.Info("caught up with the leader", "behindFor", now.Sub(was.Since).Round(time.Millisecond),
			"applied", n.fsm.AppliedIndex())
	}
}

func (n *Node) logBehind(e *LagError) {
	n.log.Warn("this node is behind the leader; its API answers 503 until it has caught up",
		"applied", e.Applied, "leaderCommit", e.LeaderCommit)
}

// appliedThrough reports whether the state machine has applied every
// command up to index. Barriers, no-ops and configuration changes never
// reach it, so its applied index can stop below a committed index for
// good; what counts is the last command at or below index.
func (n *Node) appliedThrough(index uint64) bool {
	applied := n.fsm.AppliedIndex()
	if applied >= index {
		return true
	}
	if n.raft.AppliedIndex() < index {
		return false // not even handed to the state machine yet
	}
	// Raft has applied through index, so the entries up to it are
	// committed here.
	return applied >= n.lastCommittedCommandUpTo(index, applied)
}
