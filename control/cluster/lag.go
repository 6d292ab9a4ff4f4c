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
//
// That needs the leader to speak. A follower that has not heard the
// leader's commit index for lagUnheardAfter — cut off, paused, or with no
// leader to hear — cannot tell how stale its state has grown, and answers
// no read of it; one that hears again after such a silence is behind until
// a sample finds it in step, since the first news it handles may be old
// (AppendEntries queued while it was paused: third_party/raft, change 6).

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
	// lagUnheardAfter: a follower that has not heard a leader's commit
	// index for this long is behind; it is also how stale a plain read
	// through a node cut off or paused can be. An idle leader sends one
	// every 50–100 ms (CommitTimeout), a busy one every few, and a
	// follower that hears nothing from a leader for this long (Raft's
	// HeartbeatTimeout) calls an election: the cluster gives it up too.
	lagUnheardAfter = time.Second
	// leaderConfirmSettle: how long a leader back from a gap lets the
	// answers that waited in its sockets arrive before the round of
	// heartbeats that confirms it still leads (confirmLeadership).
	leaderConfirmSettle = 100 * time.Millisecond
)

// LagError describes a node that is behind the leader: it knows of
// committed entries it has not applied. The API answers 503 while it is.
type LagError struct {
	Applied      uint64    // the last entry this node's state machine applied
	LeaderCommit uint64    // the highest commit index a leader told it of
	Since        time.Time // when it fell behind
	// Unheard is how long it had not heard a leader's commit index when
	// it fell behind that way (0: it fell behind otherwise).
	Unheard time.Duration
	// through is what it must apply before it is in step again: the
	// leader's commit index when last sampled.
	through uint64
	// resync: set on hearing a leader after a silence; the next sample
	// keeps the verdict and raises through to what it has heard by then.
	resync bool
	// leading: the node leads but did not run for Unheard (leaderGap).
	leading bool
}

func (e *LagError) Error() string {
	if e.leading {
		return fmt.Sprintf("this node leads but did not run for %s (paused or starved), so another may have taken over: it serves nothing until a quorum confirms it still leads",
			e.Unheard.Round(time.Millisecond))
	}
	if e.Unheard > 0 && e.Since.IsZero() {
		return fmt.Sprintf("this node has not heard from a leader for %s, so its state may lack committed writes (%d log entries applied)",
			e.Unheard.Round(time.Millisecond), e.Applied)
	}
	why := ""
	if e.Unheard > 0 {
		why = fmt.Sprintf(" after %s without hearing from it", e.Unheard.Round(time.Millisecond))
	}
	return fmt.Sprintf("this node is catching up with the leader%s: %d of %d committed log entries applied (behind since %s)",
		why, e.Applied, e.LeaderCommit, e.Since.UTC().Format(time.RFC3339))
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
	// heard is when a leader's commit index last reached this node, or
	// when the sampler last found it leading: nanoseconds on the monotonic
	// clock since start (0: never), so that a step of the wall clock is
	// no silence.
	heard atomic.Int64
	start time.Time
	// led: this node has led since it last heard a leader's commit index.
	// Deposed (its lease ran out: cut off from the quorum), it serves no
	// read until it hears the next leader.
	led atomic.Bool
	// leaderTick is when the sampler last ran while this node led (0: not
	// leading). A leader whose process did not run for longer than a
	// follower tolerates silence (a SIGSTOP, a frozen VM, starvation) may
	// have been replaced meanwhile, and on waking Raft still calls it
	// leader until its lease check or its successor's term reaches it: it
	// serves nothing from such a gap until a quorum confirms it leads.
	leaderTick atomic.Int64
	// unconfirmed: the gap (ns) after which this leader has not yet had
	// its leadership confirmed by a quorum (0: confirmed); confirmGen
	// tells a confirmation begun before a later gap from one begun after.
	unconfirmed atomic.Int64
	confirmGen  atomic.Uint64
	confirming  atomic.Bool
}

// lagClock reads the lag watch's monotonic clock: nanoseconds since start,
// never 0.
func (w *lagWatch) lagClock() int64 { return int64(time.Since(w.start)) + 1 }

// Behind returns why this node is behind the leader, or nil if it is not.
// Cheap enough for every API request: a few atomic loads while the node
// has applied about what it heard of, as it has when in step.
func (n *Node) Behind() *LagError {
	if b := n.lag.behind.Load(); b != nil {
		return b
	}
	if e := n.unheard(); e != nil {
		return e
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

// unheard is the verdict on a node that is not leading and has not heard a
// leader's commit index for lagUnheardAfter, or has not heard one since it
// was deposed (a lone voter, which commits every entry itself, never has
// this verdict). It is not stored: hearing one
// again ends it (heardLeaderCommit then stores the catch-up's verdict).
func (n *Node) unheard() *LagError {
	heard := n.lag.heard.Load()
	if n.raft.State() == raft.Leader {
		if !n.lag.led.Load() {
			n.lag.led.Store(true)
		}
		if d := n.leaderGap(); d > 0 {
			return &LagError{Applied: n.fsm.AppliedIndex(), LeaderCommit: n.raft.LeaderCommitIndex(), Unheard: d, leading: true}
		}
		return nil
	}
	led := n.lag.led.Load()
	if heard == 0 && !led {
		return nil // never heard one: not ready yet
	}
	if d := time.Duration(n.lag.lagClock() - heard); (d > n.unheardAfter() || led) && n.hasOtherVoters() {
		return &LagError{Applied: n.fsm.AppliedIndex(), LeaderCommit: n.raft.LeaderCommitIndex(), Unheard: d}
	}
	return nil
}

// leaderGap is how long a leader with other voters went without running
// (its sampler's ticks), if that is longer than a follower tolerates
// silence and no quorum has confirmed its leadership since; 0 otherwise.
// A request handled on waking, before the sampler has noticed the gap,
// sees the sampler's last tick long past.
func (n *Node) leaderGap() time.Duration {
	// The tick first: the sampler records a gap before it moves the tick.
	var gap time.Duration
	if tick := n.lag.leaderTick.Load(); tick != 0 {
		if d := time.Duration(n.lag.lagClock() - tick); d > n.unheardAfter() {
			gap = d
		}
	}
	if d := time.Duration(n.lag.unconfirmed.Load()); d > gap {
		gap = d
	}
	if gap == 0 || !n.hasOtherVoters() {
		return 0
	}
	return gap
}

// confirmLeadership asks a quorum whether this node still leads (Raft's
// VerifyLeader: a round of heartbeats; a successor's higher term deposes
// it instead) and, if so, ends the gap recorded as generation gen unless
// a later one has been recorded since.
func (n *Node) confirmLeadership() {
	w := &n.lag
	if !w.confirming.CompareAndSwap(false, true) {
		return // the running confirmation tries again for a newer gap
	}
	go func() {
		defer w.confirming.Store(false)
		for {
			gen := w.confirmGen.Load()
			// Twice: answers to appends sent before the gap wait in the
			// sockets and count as votes for the first round (Raft's
			// replication hands every success to the pending checks), so
			// only a round begun after they have been read, with its
			// heartbeats sent after the gap, proves anything. A successor's
			// higher term fails that round and deposes this node.
			var err error
			for round := 0; round < 2 && err == nil; round++ {
				if round > 0 {
					time.Sleep(leaderConfirmSettle)
				}
				err = n.raft.VerifyLeader().Error()
			}
			if err != nil {
				n.log.Info("leadership not confirmed after a gap; serving nothing until a leader is heard", "err", err)
				return // deposed: the follower's rules apply (led)
			}
			if w.confirmGen.Load() == gen {
				w.unconfirmed.Store(0)
				n.log.Info("a quorum confirmed this node still leads after a gap")
				return
			}
		}
	}()
}

// unheardAfter is the silence after which a follower is behind: at least
// lagUnheardAfter, and several of the leader's CommitTimeout ticks (tests
// that set it long hear the commit index only when something commits).
func (n *Node) unheardAfter() time.Duration {
	return max(lagUnheardAfter, 4*n.cfg.CommitTimeout)
}

// heardLeaderCommit is Raft's LeaderCommitHeard: a leader has just told
// this node its commit index. After a silence, or after leading, the node
// is behind until a sample finds it in step: the verdict is stored before
// the time is, so a request in between sees one or the other.
func (n *Node) heardLeaderCommit(index uint64) {
	now := n.lag.lagClock()
	if prev := n.lag.heard.Load(); prev != 0 {
		// A deposed leader hears its successor, which may have committed
		// what it lacks: the same as a silence.
		if silence := time.Duration(now - prev); (silence > n.unheardAfter() || n.lag.led.Load()) && n.lag.behind.Load() == nil {
			e := &LagError{Applied: n.fsm.AppliedIndex(), LeaderCommit: max(index, n.raft.LeaderCommitIndex()),
				Since: time.Now().Add(-silence), Unheard: silence, through: index, resync: true}
			if n.lag.behind.CompareAndSwap(nil, e) {
				n.logBehind(e)
			}
		}
	}
	n.lag.heard.Store(now)
	if n.lag.led.Load() {
		n.lag.led.Store(false)
	}
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
	if n.raft.State() != raft.Leader {
		w.leaderTick.Store(0)
		w.unconfirmed.Store(0)
	}
	switch n.raft.State() {
	case raft.Follower:
	case raft.Leader:
		// A leader holds every committed entry. What it knows is current
		// as of its last contact with a quorum, which its lease keeps
		// within LeaderLease of now: deposed, it counts its silence from
		// there, so it stops serving reads before a new leader (elected
		// no sooner than a HeartbeatTimeout after the followers last
		// heard it) can commit anything.
		// A gap is recorded before the tick moves on, so that a request
		// reading the new tick also sees the gap (leaderGap).
		tick := w.lagClock()
		if prev := w.leaderTick.Load(); prev != 0 && time.Duration(tick-prev) > n.unheardAfter() && n.hasOtherVoters() {
			w.confirmGen.Add(1)
			w.unconfirmed.Store(tick - prev)
			n.log.Warn("this leader did not run for a while (paused or starved); its API answers 503 until a quorum confirms it still leads",
				"gap", time.Duration(tick-prev).Round(time.Millisecond))
		}
		w.leaderTick.Store(tick)
		w.led.Store(true)
		if w.unconfirmed.Load() > 0 {
			n.confirmLeadership()
			return // its hearing stays as it was: it may have been deposed
		}
		heard := tick - int64(n.cfg.LeaderLease)
		if heard == 0 {
			heard = -1 // 0 is "never"
		}
		w.heard.Store(heard)
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
	case was != nil && (behind || was.resync || !n.appliedThrough(was.through)):
		// Still catching up, to what it has heard of by now: it is in
		// step once a sample finds applied what the one before had
		// heard of (a node keeping up with new writes is).
		n.setBehind(was, &LagError{Applied: applied, LeaderCommit: seen, Since: was.Since, Unheard: was.Unheard, through: max(seen, was.through)}, now)
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
	args := []any{"applied", e.Applied, "leaderCommit", e.LeaderCommit}
	if e.Unheard > 0 {
		args = append(args, "unheardFor", e.Unheard.Round(time.Millisecond))
	}
	n.log.Warn("this node is behind the leader; its API answers 503 until it has caught up", args...)
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
