package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/meridian-video/meridian/control/state"
)

// Group commit for writes (docs/write-batching.md). Every Raft round costs
// the same whatever it carries: an fsync on the leader and on each
// follower, an AppendEntries exchange, a transaction on every replica.
// hashicorp/raft already groups the entries that are waiting when its
// leader loop comes round, but with 16 writing clients that was about four
// per round on the leader and five on the followers, and those rounds, not
// the writes, were most of the cluster's CPU.
//
// So the leader keeps one proposal of batchable requests (state.Batchable:
// room creates) in Raft at a time. A request that finds none is proposed at
// once, as its own entry: a lone client waits for nothing. Requests that
// arrive meanwhile wait, and go out together as one CmdBatch entry (at most
// maxBatchRequests requests or maxBatchBytes) when it finishes: under load
// the batches grow by themselves. Two in flight, or a second one opened
// when the first ran long, measured no better (docs/write-batching.md).
//
// When that proposal finishes with fewer than batchFullRequests waiting,
// the batch is left to grow for Config.BatchLinger (1 ms) first, or until
// it is full. Writes that waited are the sign of concurrent clients, and
// at moderate load the rounds, not the writes, were the cost: paced at
// 1,000 creates/s, three nodes on one core spent half as much CPU again
// per create as in a closed loop. A lone client never lingers: its write
// finds no proposal in flight and goes out at once, as before.

// FeatureWriteBatch is the node feature (state.Node.Features) that says a
// node's FSM applies CmdBatch entries. The leader batches only when every
// server in the Raft configuration has registered it, so a cluster in the
// middle of a rolling upgrade never sends an older node an entry it would
// refuse.
const FeatureWriteBatch = "write-batch"

// nodeFeatures are the features this binary registers for its node.
var nodeFeatures = []string{FeatureWriteBatch}

const (
	maxBatchRequests = 128
	maxBatchBytes    = 512 << 10
	// batchFullRequests waiting writes go out without lingering: a round
	// shared by this many costs each of them little.
	batchFullRequests = 16
	// MaxBatchLinger bounds Config.BatchLinger: it is added to the writes
	// of a busy cluster, and must stay well under a write's latency budget.
	MaxBatchLinger = 20 * time.Millisecond
	// featureCheckEvery bounds how stale the leader's view of the
	// servers' features is (a configuration read and a state read).
	featureCheckEvery = time.Second
)

type batcher struct {
	n       *Node
	mu      sync.Mutex
	busy    bool // a proposal of batchable requests is in Raft
	pending []*queuedWrite
	// the cluster-wide feature check, cached for featureCheckEvery;
	// suspend bumps gen so that a check begun before it is not stored
	checked time.Time
	allowed bool
	gen     uint64
	// linger is the timer of a batch left to grow (release), nil when
	// none is; busy stays set meanwhile.
	linger *time.Timer
}

type queuedWrite struct {
	entry []byte
	start time.Time
	done  chan struct{}
	res   json.RawMessage
	index uint64
	err   error
}

func newBatcher(n *Node) *batcher { return &batcher{n: n} }

// apply proposes a batchable request entry on the leader and returns its
// outcome as applyEntry does.
func (b *batcher) apply(entry []byte) (json.RawMessage, uint64, error) {
	if !b.enabled() {
		b.observe(1)
		return b.n.applyEntry(entry)
	}
	b.mu.Lock()
	if !b.busy {
		b.busy = true
		b.mu.Unlock()
		b.observe(1)
		res, index, err := b.n.applyEntry(entry)
		b.release()
		return res, index, err
	}
	q := &queuedWrite{entry: entry, start: time.Now(), done: make(chan struct{})}
	b.pending = append(b.pending, q)
	var full []*queuedWrite
	// A lingering batch that is now full goes out without waiting for its
	// timer (if the timer already fired, flush takes the batch instead).
	if b.linger != nil && len(b.pending) >= batchFullRequests && b.linger.Stop() {
		b.linger = nil
		full = b.take()
	}
	b.mu.Unlock()
	if full != nil {
		go b.run(full)
	}
	<-q.done
	return q.res, q.index, q.err
}

// release ends the proposal in Raft; the writes that waited for it, if
// any, go out next, after lingering for more when there are few of them.
func (b *batcher) release() {
	b.mu.Lock()
	if len(b.pending) == 0 {
		b.busy = false
		b.mu.Unlock()
		return
	}
	if d := b.n.cfg.BatchLinger; d > 0 && len(b.pending) < batchFullRequests {
		b.linger = time.AfterFunc(d, b.flush)
		b.mu.Unlock()
		if obs := b.n.cfg.ObserveBatchLinger; obs != nil {
			obs()
		}
		return
	}
	next := b.take()
	b.mu.Unlock()
	go b.run(next)
}

// flush sends the batch that lingered, once its time is up.
func (b *batcher) flush() {
	b.mu.Lock()
	b.linger = nil
	if len(b.pending) == 0 { // cannot happen: only a full batch is taken early, stopping the timer
		b.busy = false
		b.mu.Unlock()
		return
	}
	next := b.take()
	b.mu.Unlock()
	b.run(next)
}

// take removes the next batch from the waiting writes (b.mu held).
func (b *batcher) take() []*queuedWrite {
	n, size := 0, 0
	for n < len(b.pending) && n < maxBatchRequests && (n == 0 || size+len(b.pending[n].entry) <= maxBatchBytes) {
		size += len(b.pending[n].entry)
		n++
	}
	next := slices.Clone(b.pending[:n])
	b.pending = append(b.pending[:0], b.pending[n:]...)
	return next
}

// run proposes queued writes together and answers each of them.
func (b *batcher) run(qs []*queuedWrite) {
	defer b.release()
	b.observe(len(qs))
	if len(qs) == 1 {
		q := qs[0]
		q.res, q.index, q.err = b.n.applyEntry(q.entry)
		close(q.done)
		return
	}
	entries := make([][]byte, len(qs))
	for i, q := range qs {
		entries[i] = q.entry
	}
	f := b.n.raft.Apply(state.EncodeBatch(entries), b.n.cfg.ApplyTimeout)
	err := f.Error()
	if obs := b.n.cfg.ObserveApply; obs != nil {
		for _, q := range qs {
			obs(time.Since(q.start))
		}
	}
	results, ok := f.Response().(state.BatchResult)
	if err == nil && (!ok || len(results) != len(qs)) {
		err = fmt.Errorf("cluster: a batch of %d requests was answered with %T", len(qs), f.Response())
	}
	for i, q := range qs {
		if err != nil {
			q.err = err
		} else {
			q.res, q.index, q.err = resultOf(results[i], f.Index())
		}
		close(q.done)
	}
}

func (b *batcher) observe(requests int) {
	if obs := b.n.cfg.ObserveWriteBatch; obs != nil {
		obs(requests)
	}
}

// enabled reports whether every server in the Raft configuration applies
// CmdBatch entries (checked at most once per featureCheckEvery).
func (b *batcher) enabled() bool {
	b.mu.Lock()
	if time.Since(b.checked) < featureCheckEvery {
		defer b.mu.Unlock()
		return b.allowed
	}
	b.checked = time.Now() // writes meanwhile go by the last answer
	gen := b.gen
	b.mu.Unlock()
	ok := b.n.clusterHasFeature(FeatureWriteBatch)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen != gen {
		return false // a server was added meanwhile: the next check decides
	}
	b.allowed = ok
	return ok
}

// suspend stops batching until the next feature check: a server about to
// join may not apply CmdBatch entries, and the cached answer predates it.
func (b *batcher) suspend() {
	b.mu.Lock()
	b.checked, b.allowed = time.Now(), false
	b.gen++
	b.mu.Unlock()
}

// batchableRequest reports whether a forwarded request envelope wraps a
// batchable command (the leader decides from the envelope itself, not from
// anything the follower claims).
func batchableRequest(body json.RawMessage) bool {
	var head struct {
		Type state.CommandType `json:"type"`
	}
	return json.Unmarshal(body, &head) == nil && state.Batchable(head.Type)
}

// clusterHasFeature reports whether every server in the latest Raft
// configuration registered feature.
func (n *Node) clusterHasFeature(feature string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	ok := len(servers) > 0
	n.fsm.Read(func(s *state.Store) {
		for _, srv := range servers {
			row, found := s.Node(string(srv.ID))
			if !found || !slices.Contains(row.Features, feature) {
				ok = false
				return
			}
		}
	})
	return ok
}

// features are the features this node registers.
func (n *Node) features() []string {
	if n.cfg.Features != nil {
		return n.cfg.Features
	}
	return nodeFeatures
}

// registerSelf records this node's API address and its binary's features
// once the node is ready and its row lacks them. Only the leader registers
// itself at once (and the leader registers nodes that join with --join,
// without features), so this is what records a follower of a bootstrapped
// cluster — whose address the console's health page probes — and the
// features of a node upgraded in place. It stops once the row has them.
func (n *Node) registerSelf() {
	defer n.monitorWG.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n.Ready() {
			has, want := false, n.features()
			n.fsm.Read(func(s *state.Store) {
				if row, ok := s.Node(n.cfg.NodeID); ok {
					has = !slices.ContainsFunc(want, func(f string) bool { return !slices.Contains(row.Features, f) })
				}
			})
			if has {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
			_, _, err := n.Apply(ctx, state.CmdRegisterNode, state.RegisterNode{Node: state.Node{ID: n.cfg.NodeID, HTTPAddr: n.cfg.HTTPAddr, Features: want}})
			cancel()
			if err != nil {
				n.log.Debug("registering this node failed; retrying", "err", err)
			}
		}
		select {
		case <-n.stop.Done():
			return
		case <-t.C:
		}
	}
}
