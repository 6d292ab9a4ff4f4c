// Package cluster runs the Raft side of a control node: transport and stores,
// bootstrap and join, one write path that forwards to the leader, and the
// leader-only loops that start after a barrier and stop (and are waited for)
// when leadership is lost.
package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/backoff"
	"github.com/meridian-video/meridian/shared/datadir"
	"github.com/meridian-video/meridian/shared/tlsutil"
)

// Errors callers map to HTTP statuses.
var (
	ErrNoLeader = errors.New("no cluster leader is available; retry shortly")
	ErrClosed   = errors.New("cluster node is shut down")
)

// Peer is a voter named at bootstrap.
type Peer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
}

// logCacheEntries: how many of the newest Raft log entries are kept in
// memory in front of the on-disk log (~1 KB each for a room create).
const logCacheEntries = 512

// Config configures a control node's Raft participation.
type Config struct {
	NodeID        string
	RaftBind      string // host:port to listen on for Raft
	RaftAdvertise string // host:port others dial; defaults to the bound address
	DataDir       string // "" keeps everything in memory (tests)
	// DataDirLock is DataDir's lock when the process took it itself,
	// before it read or wrote anything there (meridian control and dev
	// do); it stays the caller's to release. Nil: New takes the lock.
	DataDirLock  *datadir.Lock
	Bootstrap    bool // form a new cluster from Peers (self included) if there is no state yet
	Peers        []Peer
	HTTPAddr     string // this node's API base URL, e.g. http://10.0.0.1:8080
	ClusterToken string // authenticates node-to-node calls (forwarded writes, joins)

	HeartbeatTimeout  time.Duration
	ElectionTimeout   time.Duration
	LeaderLease       time.Duration
	CommitTimeout     time.Duration
	ApplyTimeout      time.Duration
	LeaderHoldTimeout time.Duration // how long a write waits for an election
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64 // log entries kept after a snapshot (0 = raft default)
	// BatchLinger is how long the leader lets a batch of waiting writes
	// grow after the proposal before it finished, when fewer than
	// batchFullRequests wait (batch.go). 0: they go out at once.
	BatchLinger time.Duration
	// LogStore is the on-disk Raft log backend, LogStoreWAL or LogStoreBolt;
	// "" keeps what the data dir already holds, or the WAL for a new one.
	LogStore string
	// WALSegmentBytes sizes the WAL's segment files (0: raft-wal's 64 MiB).
	// Compaction drops whole segments, and entries of the open segment stay
	// readable after compaction: tests shrink it to exercise snapshot installs.
	WALSegmentBytes int
	// ObserveApply, when set, receives the latency of every local raft.Apply (metrics).
	ObserveApply func(time.Duration)
	// ObserveWriteBatch, when set, receives the number of requests in
	// every proposal of batchable writes this node makes as leader
	// (batch.go; 1 when a write went out on its own).
	ObserveWriteBatch func(requests int)
	// ObserveBatchLinger, when set, is called each time the leader leaves
	// a batch of waiting writes to grow (BatchLinger).
	ObserveBatchLinger func()
	// Features overrides the features this node registers (nil: all this
	// binary has, nodeFeatures). Tests use it to stand in for an older binary.
	Features []string
	// HTTPTransport carries node-to-node calls (forwarded writes); nil is
	// the default transport (with MTLS: one presenting the node
	// certificate). Tests wrap it to inject faults.
	HTTPTransport http.RoundTripper
	Logger        *slog.Logger

	// MTLS, when set, runs Raft over mutual TLS with the cluster CA and
	// makes node-to-node HTTP calls present the node certificate (tls.go).
	MTLS *tlsutil.Cluster
}

// DefaultConfig returns production timeouts.
func DefaultConfig() Config {
	return Config{
		RaftBind:          "127.0.0.1:7000",
		HeartbeatTimeout:  1000 * time.Millisecond,
		ElectionTimeout:   1000 * time.Millisecond,
		LeaderLease:       500 * time.Millisecond,
		CommitTimeout:     50 * time.Millisecond,
		ApplyTimeout:      10 * time.Second,
		LeaderHoldTimeout: 5 * time.Second,
		// Snapshot policy (as Consul's defaults): every ~2–4 minutes, if
		// 16k entries accumulated, and keep 10k entries after it so a node
		// that was briefly away catches up from the log.
		SnapshotThreshold: 16384,
		SnapshotInterval:  2 * time.Minute,
		TrailingLogs:      10240,
		BatchLinger:       time.Millisecond,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("cluster: NodeID is required")
	case c.RaftBind == "":
		return errors.New("cluster: RaftBind is required")
	case c.HTTPAddr == "":
		return errors.New("cluster: HTTPAddr is required (followers forward writes to it)")
	case c.ClusterToken == "":
		return errors.New("cluster: ClusterToken is required")
	case c.ElectionTimeout <= 0 || c.HeartbeatTimeout <= 0 || c.ApplyTimeout <= 0:
		return errors.New("cluster: timeouts must be positive")
	case c.BatchLinger < 0 || c.BatchLinger > MaxBatchLinger:
		return fmt.Errorf("cluster: BatchLinger %v: want 0 to %v", c.BatchLinger, MaxBatchLinger)
	}
	return nil
}

// LeaderLoop is leader-only work: it runs while this node leads and must
// return soon after ctx is cancelled.
type LeaderLoop struct {
	Name string
	Run  func(ctx context.Context) error
}

// Node is one control node's Raft member.
type Node struct {
	cfg       Config
	log       *slog.Logger
	fsm       *state.FSM
	raft      *raft.Raft
	transport *raft.NetworkTransport
	closers   []io.Closer
	client    *http.Client

	loopsMu  sync.Mutex
	loops    []LeaderLoop
	onLeader []func(ctx context.Context) error

	leaderMu     sync.Mutex
	leaderCancel context.CancelFunc
	leaderDone   chan struct{}
	leading      bool
	notifyCh     chan bool

	// stop is done once Close begins: a context, so waits can end with it
	// (context.AfterFunc) without a goroutine watching a channel.
	stop      context.Context
	halt      context.CancelFunc
	stopOnce  sync.Once
	monitorWG sync.WaitGroup

	// startLast is the last log index on disk when the node started;
	// caughtUp latches once everything known then is applied (readiness).
	startLast uint64
	caughtUp  atomic.Bool
	// lag watches, as a follower, for committed entries not applied
	// (Behind).
	lag lagWatch
	// commands remembers where the committed log's last command is, so
	// the lag checks read only entries they have not read before.
	commands commandScan
	// outside: the node started with no Raft state and did not bootstrap,
	// so it is in no cluster until one adds it (see Outside).
	outside bool

	logStoreKind string           // "wal", "bolt", or "" in memory
	watched      *watchedLogStore // the log's write failures; nil in memory
	// tokenRefused is set while the last node-to-node call this node
	// made was refused its cluster token (ClusterTokenRefused).
	tokenRefused atomic.Pointer[TokenRefusedError]
	batcher      *batcher
	logs         raft.LogStore

	// leaderEpoch is cancelled each time the leader this node knows of
	// changes (a Raft LeaderObservation) and replaced: a forwarded call
	// follows leadership by watching it, without a goroutine per call.
	epochMu     sync.Mutex
	leaderEpoch context.Context
	nextEpoch   context.CancelFunc
}

// New builds the node; call Start to begin leadership monitoring.
func New(cfg Config, fsm *state.FSM) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	n := &Node{cfg: cfg, log: logger.With("node", cfg.NodeID), fsm: fsm, notifyCh: make(chan bool, 16),
		client: &http.Client{Timeout: cfg.ApplyTimeout + 5*time.Second, Transport: httpClientTransport(cfg)}}

	n.lag.start = time.Now()
	n.stop, n.halt = context.WithCancel(context.Background())
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLease
	rc.CommitTimeout = cfg.CommitTimeout
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.NotifyCh = n.notifyCh
	rc.LeaderCommitHeard = n.heardLeaderCommit // lag.go
	rc.LogLevel = "WARN"
	rc.Logger = newHCLogAdapter(n.log)

	var advertise net.Addr
	if cfg.RaftAdvertise != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertise)
		if err != nil {
			return nil, fmt.Errorf("cluster: RaftAdvertise: %w", err)
		}
		advertise = a
	}
	if cfg.DataDir != "" {
		// First, before any port is bound or file opened: a second process
		// on the same data directory is told so (and closed last).
		switch {
		case cfg.DataDirLock == nil:
			lock, err := datadir.Acquire(cfg.DataDir)
			if err != nil {
				return nil, fmt.Errorf("cluster: %w", err)
			}
			n.closers = append(n.closers, lock)
		case !cfg.DataDirLock.Covers(cfg.DataDir):
			return nil, fmt.Errorf("cluster: DataDirLock is on %s, not on the data directory %s", cfg.DataDirLock.Dir(), cfg.DataDir)
		}
	}
	tr, err := newRaftTransport(cfg, advertise, rc.Logger, n.log)
	if err != nil {
		n.closeAll()
		return nil, fmt.Errorf("cluster: raft transport on %s: %w", cfg.RaftBind, err)
	}
	n.transport = tr
	n.closers = append(n.closers, tr)

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.DataDir == "" {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		dir := filepath.Join(cfg.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			n.closeAll()
			return nil, err
		}
		kind, err := resolveLogStore(dir, cfg.LogStore)
		if err != nil {
			n.closeAll()
			return nil, err
		}
		store, err := openLogStore(dir, kind, cfg.WALSegmentBytes, rc.Logger)
		if err != nil {
			n.closeAll()
			return nil, fmt.Errorf("cluster: open %s log store: %w", kind, err)
		}
		n.logStoreKind = kind
		n.closers = append(n.closers, store)
		fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, rc.Logger)
		if err != nil {
			n.closeAll()
			return nil, err
		}
		// The last entries stay in memory: the leader reads each new entry
		// back once per follower to send it and every follower reads it back
		// to apply it; from the cache that is a copy, not a WAL frame read
		// and decode (what Consul and Nomad do too).
		n.watched = &watchedLogStore{LogStore: store}
		cached, err := raft.NewLogCache(logCacheEntries, n.watched)
		if err != nil {
			n.closeAll()
			return nil, err
		}
		logs, stable, snaps = cached, store, fss
	}

	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		n.closeAll()
		return nil, err
	}
	n.outside = !has && !cfg.Bootstrap
	if cfg.Bootstrap {
		if !has {
			servers := []raft.Server{{ID: rc.LocalID, Address: tr.LocalAddr()}}
			for _, p := range cfg.Peers {
				if p.ID == cfg.NodeID {
					continue
				}
				servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
			}
			if err := raft.BootstrapCluster(rc, logs, stable, snaps, tr, raft.Configuration{Servers: servers}); err != nil {
				n.closeAll()
				return nil, fmt.Errorf("cluster: bootstrap: %w", err)
			}
		}
	}
	r, err := raft.NewRaft(rc, fsm, logs, stable, snaps, tr)
	if err != nil {
		n.closeAll()
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	n.logs = logs
	n.leaderEpoch, n.nextEpoch = context.WithCancel(context.Background())
	n.watchLeader(r)
	n.batcher = newBatcher(n)
	n.startLast = r.LastIndex()
	return n, nil
}

// RaftAddr is the address peers dial.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// ID is this node's Raft id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Outside reports whether the node started with no Raft state and without
// bootstrapping: it belongs to no cluster until it joins one (JoinCluster)
// or a leader whose configuration names it contacts it, and until then it
// has no leader and answers nothing.
func (n *Node) Outside() bool { return n.outside }

// FSM is the local state machine.
func (n *Node) FSM() *state.FSM { return n.fsm }

// AddLeaderLoop registers leader-only work; call before Start.
func (n *Node) AddLeaderLoop(l LeaderLoop) {
	n.loopsMu.Lock()
	defer n.loopsMu.Unlock()
	n.loops = append(n.loops, l)
}

// OnLeadership registers a step run each time this node establishes
// leadership, after the barrier and before the loops start (e.g. generating
// cluster secrets). A failing step is run again, with backoff, until it
// succeeds or leadership is lost (runLeaderSteps), so steps must be safe
// to repeat.
func (n *Node) OnLeadership(fn func(ctx context.Context) error) {
	n.loopsMu.Lock()
	defer n.loopsMu.Unlock()
	n.onLeader = append(n.onLeader, fn)
}

// Start begins watching leadership.
func (n *Node) Start() {
	n.monitorWG.Add(3)
	go n.monitorLeadership()
	go n.registerSelf()
	go n.watchLag()
}

func (n *Node) monitorLeadership() {
	defer n.monitorWG.Done()
	for {
		select {
		case <-n.stop.Done():
			n.revokeLeadership()
			return
		case isLeader := <-n.notifyCh:
			// Drain to the latest value: lost-and-regained collapses to a
			// fresh establish, gained-and-lost to nothing.
			for more := true; more; {
				select {
				case v := <-n.notifyCh:
					if v != isLeader {
						n.revokeLeadership()
					}
					isLeader = v
				default:
					more = false
				}
			}
			if isLeader {
				// The lag sampler's clock for a leader starts now, not at
				// its first tick: a pause right after an election is a
				// gap too (leaderGap).
				n.lag.leaderTick.CompareAndSwap(0, n.lag.lagClock())
				n.revokeLeadership()
				n.establishLeadership()
			} else {
				n.revokeLeadership()
			}
		}
	}
}

func (n *Node) establishLeadership() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.leaderMu.Lock()
	n.leaderCancel, n.leaderDone, n.leading = cancel, done, false
	n.leaderMu.Unlock()

	n.loopsMu.Lock()
	loops := append([]LeaderLoop(nil), n.loops...)
	steps := append([]func(context.Context) error(nil), n.onLeader...)
	n.loopsMu.Unlock()

	go func() {
		defer close(done)
		if !n.runLeaderSteps(ctx, steps) {
			return
		}
		n.leaderMu.Lock()
		if n.leaderDone == done {
			n.leading = true
		}
		n.leaderMu.Unlock()
		n.log.Info("leadership established", "loops", len(loops))
		var wg sync.WaitGroup
		for _, l := range loops {
			wg.Add(1)
			go func(l LeaderLoop) {
				defer wg.Done()
				for ctx.Err() == nil {
					err := l.Run(ctx)
					if ctx.Err() != nil {
						return
					}
					n.log.Error("leader loop exited; restarting", "loop", l.Name, "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
				}
			}(l)
		}
		wg.Wait()
	}()
}

// leaderStepBackoff paces retries of the leadership steps.
var leaderStepBackoff = backoff.Policy{Min: 100 * time.Millisecond, Max: 2 * time.Second}

// transferAfter is how many failed rounds of leadership steps pass before
// the node also tries to hand leadership to another voter (and again at
// every round after that).
const transferAfter = 5

type leaderStep struct {
	name string
	fn   func(context.Context) error
}

// runLeaderSteps establishes leadership: everything committed in earlier
// terms must be applied before the leader acts on state (the webhook
// dispatcher must see the whole outbox), followers must know where to
// forward (the node's address), and the registered steps (cluster
// secrets...) must have run. A leader without its loops sends no webhooks,
// watches no edges and closes no rooms, so it never gives up: a failing
// step is retried (from where it failed) with backoff until it succeeds or
// leadership is lost (ctx is cancelled). After transferAfter failed rounds
// it also tries to hand leadership over, in case another node can do
// better; a transfer that fails (a single node, no reachable voter) just
// means it keeps trying here. It reports whether the loops may start.
func (n *Node) runLeaderSteps(ctx context.Context, steps []func(context.Context) error) bool {
	all := []leaderStep{
		{"barrier", func(context.Context) error { return n.raft.Barrier(n.cfg.ApplyTimeout).Error() }},
		{"register address", func(context.Context) error {
			_, _, err := n.applyLocal(state.CmdRegisterNode, state.RegisterNode{Node: state.Node{ID: n.cfg.NodeID, HTTPAddr: n.cfg.HTTPAddr, Features: n.features()}})
			return err
		}},
	}
	for i, fn := range steps {
		all = append(all, leaderStep{fmt.Sprintf("leadership step %d", i+1), fn})
	}
	next := 0
	for attempt := 0; ; attempt++ {
		for next < len(all) {
			if err := all[next].fn(ctx); err != nil {
				if ctx.Err() != nil || !n.IsLeader() {
					return false // leadership moved on; the next leader runs the steps
				}
				n.log.Warn("establishing leadership: retrying", "step", all[next].name, "attempt", attempt+1, "err", err)
				break
			}
			next++
		}
		if next == len(all) {
			return true
		}
		if attempt+1 >= transferAfter {
			if err := n.raft.LeadershipTransfer().Error(); err != nil {
				n.log.Warn("establishing leadership: handing over failed; retrying here", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(leaderStepBackoff.Jittered(attempt, rand.Float64())):
		}
	}
}

// revokeLeadership cancels leader work and waits for it: no loop from an old
// term may still run when a new term starts.
func (n *Node) revokeLeadership() {
	n.leaderMu.Lock()
	cancel, done := n.leaderCancel, n.leaderDone
	n.leaderCancel, n.leaderDone, n.leading = nil, nil, false
	n.leaderMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// LeaderLoopsRunning reports whether this node currently runs leader work.
func (n *Node) LeaderLoopsRunning() bool {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leading
}

// IsLeader reports Raft leadership.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Ready reports whether the node may serve the API: a leader is known and
// its address registered (writes can be forwarded), and the node has
// applied everything it had on disk when it started and everything it
// knows to be committed, the leader's commit index included — so a
// restarted node never answers from a half-replayed state (acknowledged
// rooms missing, keys unknown) — and it is not behind the leader now
// (Behind: back from a partition, a pause or a full disk).
func (n *Node) Ready() bool {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return false
	}
	if !n.caughtUp.Load() {
		applied := n.fsm.AppliedIndex() // raft's own counter runs ahead of the FSM
		// A tail that was on disk but never committed may be replaced by
		// the new leader's log (LastIndex goes down): then the commit
		// index is what counts.
		if applied < n.lastCommittedCommandUpTo(n.raft.CommitIndex(), applied) {
			return false
		}
		if n.raft.LastIndex() >= n.startLast {
			if last, _ := n.lastCommandUpTo(n.startLast, applied); applied < last {
				return false
			}
		}
		// A follower that was down missed what the leader committed
		// meanwhile, which its own log (and commit index) does not show:
		// it waits to hear the leader's commit index and to apply up to it.
		if n.raft.State() == raft.Follower {
			if seen := n.raft.LeaderCommitIndex(); seen == 0 || !n.appliedThrough(seen) {
				return false
			}
		}
		n.caughtUp.Store(true)
		n.log.Info("caught up with the log", "applied", applied, "onDiskAtStart", n.startLast)
	}
	if n.Behind() != nil {
		return false
	}
	ok := false
	n.fsm.Read(func(s *state.Store) { _, ok = s.Node(string(id)) })
	return ok
}

// Progress reports replay progress for "not ready" answers.
func (n *Node) Progress() (applied, target uint64) {
	return n.fsm.AppliedIndex(), max(n.startLast, n.raft.CommitIndex(), n.raft.LeaderCommitIndex())
}

// LeaderID returns the current leader's id (empty if unknown).
func (n *Node) LeaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Stats exposes Raft stats for metrics.
func (n *Node) Stats() map[string]string {
	st := n.raft.Stats()
	st["log_store"] = n.logStoreKind
	if st["log_store"] == "" {
		st["log_store"] = "memory"
	}
	return st
}

// Apply is the one write path: it proposes on the leader (forwarding from a
// follower), then waits until the local FSM has applied the entry so the
// caller reads its own write. It returns the JSON-encoded result.
//
// The command is wrapped with a request id made here, once: every retry
// (the leader died mid-request, a forward timed out, leadership moved)
// sends the same id, and the FSM answers a repeat with the first outcome,
// so a write is applied exactly once and never reported as failed because
// its first attempt succeeded.
func (n *Node) Apply(ctx context.Context, t state.CommandType, body any) (json.RawMessage, uint64, error) {
	id, hash, key := nextRequestID(ctx)
	entry, req, err := state.EncodeRequest(state.Request{ID: id, Key: key, BodyHash: hash, At: time.Now().UTC(), Type: t}, body)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: encode command %d: %w", t, err)
	}
	return n.propose(ctx, req, entry)
}

// propose sends a request to the leader until its outcome is known,
// holding through elections (up to LeaderHoldTimeout), and waits until the
// local FSM has applied it. entry, when not nil, is req's log entry
// (state.EncodeRequest), proposed as it is when this node leads.
func (n *Node) propose(ctx context.Context, req state.Request, entry []byte) (json.RawMessage, uint64, error) {
	deadline := time.Now().Add(n.cfg.LeaderHoldTimeout)
	for {
		var (
			res   json.RawMessage
			index uint64
			err   error
		)
		if n.IsLeader() {
			// Leadership lost: the outcome is unknown, so retry the same
			// request (at most once applied) where the leader is now.
			if entry != nil {
				res, index, err = n.applyProposed(entry, state.Batchable(req.Type))
			} else {
				res, index, err = n.applyLocal(state.CmdRequest, req)
			}
			err = leaderless(err)
		} else {
			res, index, err = n.forwardApply(ctx, state.CmdRequest, req)
		}
		if errors.Is(err, ErrNoLeader) && time.Now().Before(deadline) {
			// Hold the request while an election finishes, with jitter.
			select {
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			case <-n.stop.Done():
				return nil, 0, ErrClosed
			case <-time.After(50*time.Millisecond + rand.N(50*time.Millisecond)):
				continue
			}
		}
		if errors.Is(err, ErrNoLeader) {
			if se := n.StorageFailure(); se != nil {
				// Held for a leader in vain: say why this node leads no more.
				return res, index, se
			}
		}
		if err != nil {
			return res, index, err
		}
		if err := n.waitCommittedApplied(ctx, index); err != nil {
			return nil, index, err
		}
		return res, index, nil
	}
}

// waitCommittedApplied waits until this node has applied index, which the
// leader committed for a write this node proposed, so the caller can read
// its write back here. The wait is bounded: a follower learns of a commit
// only from a leader, and if the leader lost its quorum right after
// committing — with this node not among the nodes that stored the entry —
// no leader may tell it for as long as the quorum stays lost. The write's
// outcome is known all the same (committed, with the leader's result), so
// after ApplyTimeout, or when the node stops, the caller gets it without
// the read-your-writes wait instead of waiting without end.
func (n *Node) waitCommittedApplied(ctx context.Context, index uint64) error {
	if n.fsm.AppliedIndex() >= index {
		return nil
	}
	if n.FollowerStorageFailure() != nil {
		// Its log cannot be written, so it will not apply the write for
		// as long as that lasts: answer now. Its reads answer 503 for as
		// long, and once its log can be written it catches up as any
		// follower that missed entries does (Behind).
		return nil
	}
	var lag *LagError
	if err := n.WaitApplied(ctx, index); !errors.As(err, &lag) {
		return err
	}
	n.log.Warn("a write this node proposed was committed, but this node has not applied it yet; answering without waiting for it",
		"index", index, "applied", n.fsm.AppliedIndex(), "waited", n.cfg.ApplyTimeout)
	return nil
}

// WaitApplied blocks until the local FSM has applied index, a committed
// entry, for up to ApplyTimeout: a follower that cannot store or apply
// what the leader committed (a full disk, a stalled state machine) would
// otherwise hold its caller for as long as the caller waits. It then says
// it is behind (a *LagError), and the caller asks again or asks another
// node.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	waiting := time.Now()
	bounded, err := waitBounded(ctx, n.stop, n.cfg.ApplyTimeout, func(wctx context.Context) error {
		if !n.fsm.WaitApplied(wctx, index) {
			return wctx.Err()
		}
		return nil
	})
	if !bounded {
		return err
	}
	if b := n.Behind(); b != nil {
		return b
	}
	return &LagError{Applied: n.fsm.AppliedIndex(), LeaderCommit: index, Since: waiting}
}

// Barrier makes every entry committed before the call applied locally:
// ?consistent=true reads and catch-up after a local miss. On the leader it is
// a Raft barrier; a follower asks the leader for its index and waits for it.
// Like Apply it holds through an election (up to LeaderHoldTimeout): raft's
// ErrNotLeader/ErrLeadershipLost mean "ask the new leader", never a 500. A
// follower that has not applied the leader's index after ApplyTimeout
// returns a *LagError.
func (n *Node) Barrier(ctx context.Context) error {
	deadline := time.Now().Add(n.cfg.LeaderHoldTimeout)
	for {
		err := n.barrierOnce(ctx)
		if !errors.Is(err, ErrNoLeader) || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stop.Done():
			return ErrClosed
		case <-time.After(50*time.Millisecond + rand.N(50*time.Millisecond)):
		}
	}
}

func (n *Node) barrierOnce(ctx context.Context) error {
	if n.IsLeader() {
		return leaderless(n.raft.Barrier(n.cfg.ApplyTimeout).Error())
	}
	var out struct {
		Index uint64 `json:"index"`
	}
	if err := n.forward(ctx, "/internal/v1/raft/index", struct{}{}, &out); err != nil {
		return err
	}
	return n.WaitApplied(ctx, out.Index)
}

// LeaderIndex returns the leader's applied index after a barrier (served to
// followers' consistent reads).
func (n *Node) LeaderIndex() (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNoLeader
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		return 0, leaderless(err)
	}
	return n.fsm.AppliedIndex(), nil
}

// leaderless maps raft's "this node stopped leading" errors to ErrNoLeader
// (503 with Retry-After, and a retry where the leader is now).
func leaderless(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrEnqueueTimeout) {
		return ErrNoLeader
	}
	return err
}

func (n *Node) applyLocal(t state.CommandType, body any) (json.RawMessage, uint64, error) {
	b, err := state.Encode(t, body)
	if err != nil {
		return nil, 0, err
	}
	return n.applyEntry(b)
}

// applyProposed applies a proposal's log entry on the leader: through the
// batcher when its command may share a CmdBatch entry with others (the
// batcher still applies it alone while the cluster cannot take batches),
// else on its own. Local writes (propose) and forwarded ones
// (HandleForwardedApply) both come here.
func (n *Node) applyProposed(entry []byte, batchable bool) (json.RawMessage, uint64, error) {
	if batchable {
		return n.batcher.apply(entry)
	}
	return n.applyEntry(entry)
}

// applyEntry applies log entry b (state.Encode's) through Raft on the leader.
func (n *Node) applyEntry(b []byte) (json.RawMessage, uint64, error) {
	if len(b) > 512*1024 {
		n.log.Warn("large raft entry", "type", b[0], "bytes", len(b))
	}
	start := time.Now()
	f := n.raft.Apply(b, n.cfg.ApplyTimeout)
	err := f.Error()
	if n.cfg.ObserveApply != nil {
		n.cfg.ObserveApply(time.Since(start))
	}
	if err != nil {
		return nil, 0, err
	}
	return resultOf(f.Response(), f.Index())
}

// resultOf turns what the FSM answered for a command applied at index into
// the command's result.
func resultOf(resp any, index uint64) (json.RawMessage, uint64, error) {
	var value any
	if r, ok := resp.(state.Result); ok {
		if r.Err != nil {
			return nil, index, r.Err
		}
		value = r.Value
	}
	if raw, ok := value.(json.RawMessage); ok && raw != nil {
		// A request's result, encoded once by the FSM (as json.Marshal
		// writes it): re-encoding would only compact it again. The
		// record keeps these bytes; capped, an append cannot reach them.
		return raw[:len(raw):len(raw)], index, nil
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return nil, index, err
	}
	return raw, index, nil
}

// waitBounded runs wait with ctx, cut short after timeout or when stop is
// done. bounded reports that one of those ended it (err is then nil);
// otherwise err is wait's, the caller's context error included.
func waitBounded(ctx, stop context.Context, timeout time.Duration, wait func(context.Context) error) (bounded bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer context.AfterFunc(stop, cancel)()
	err = wait(wctx)
	if err == nil || ctx.Err() != nil {
		return false, err
	}
	return true, nil
}

// ForwardedApply is the wire form of a write forwarded to the leader.
type ForwardedApply struct {
	Type uint8           `json:"type"`
	Body json.RawMessage `json:"body"`
}

// ForwardedResult is the leader's answer.
type ForwardedResult struct {
	Index  uint64          `json:"index"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *state.Error    `json:"error,omitempty"`
	Other  string          `json:"other,omitempty"`
}

// HandleForwardedApply runs a forwarded write on the leader. It never forwards
// again: a node that is not the leader answers ErrNoLeader and the sender retries.
func (n *Node) HandleForwardedApply(req ForwardedApply) ForwardedResult {
	if !n.IsLeader() {
		return ForwardedResult{Other: ErrNoLeader.Error()}
	}
	var (
		res   json.RawMessage
		index uint64
	)
	t := state.CommandType(req.Type)
	entry, err := state.Encode(t, req.Body)
	if err == nil {
		res, index, err = n.applyProposed(entry, t == state.CmdRequest && batchableRequest(req.Body))
	}
	out := ForwardedResult{Index: index, Result: res}
	if index > 0 {
		// The sender waits to apply index itself, and a follower learns
		// that an entry committed only from the leader's next
		// AppendEntries, which would come with the next write or after
		// CommitTimeout (50–100 ms): send one to every follower now. It
		// carries no entry (nothing to store or fsync) and pushes that
		// share a pending one are merged, so a busy leader sends few.
		n.raft.PushCommitIndex()
	}
	var se *state.Error
	switch {
	case errors.As(err, &se):
		out.Error = se
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, ErrNoLeader): // a StorageError: not stored, this node no longer leads
		// Unknown outcome: the follower retries the same request id.
		out.Other = ErrNoLeader.Error()
	case err != nil:
		out.Other = err.Error()
	}
	return out
}

func (n *Node) forwardApply(ctx context.Context, t state.CommandType, body any) (json.RawMessage, uint64, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, 0, err
	}
	var out ForwardedResult
	if err := n.forward(ctx, "/internal/v1/raft/apply", ForwardedApply{Type: uint8(t), Body: raw}, &out); err != nil {
		return nil, 0, err
	}
	switch {
	case out.Error != nil:
		return nil, out.Index, out.Error
	case out.Other == ErrNoLeader.Error():
		return nil, 0, ErrNoLeader
	case out.Other != "":
		return nil, out.Index, fmt.Errorf("leader: %s", out.Other)
	}
	return out.Result, out.Index, nil
}

// ForwardedHeader marks node-to-node requests so they are never forwarded twice.
const ForwardedHeader = "X-Meridian-Forwarded"

// TokenHeader carries the cluster token on node-to-node requests.
const TokenHeader = "X-Meridian-Cluster-Token"

// forward sends a request to the leader. It follows leadership: the call
// is abandoned (ErrNoLeader, so the caller retries where the leader is
// now) as soon as another leader is known, or when a silent leader has
// not answered within about an election timeout — a paused leader must
// not hold writes for the length of its pause.
func (n *Node) forward(ctx context.Context, path string, in, out any) error {
	epoch := n.currentLeaderEpoch() // before the leader is read: a change after it cancels the epoch
	leaderID := n.LeaderID()
	if leaderID == "" || leaderID == n.cfg.NodeID {
		return ErrNoLeader
	}
	var node *state.Node
	n.fsm.Read(func(s *state.Store) { node, _ = s.Node(leaderID) })
	if node == nil {
		return ErrNoLeader // leader has not registered its address yet
	}
	fctx, cancel := context.WithTimeout(ctx, n.forwardPatience())
	defer cancel()
	// Leadership moved since leaderID was read: give up, retry there.
	defer context.AfterFunc(epoch, cancel)()
	err := n.post(fctx, node.HTTPAddr+path, in, out, true)
	if err != nil && ctx.Err() == nil && fctx.Err() != nil {
		return ErrNoLeader
	}
	return err
}

// watchLeader ends the current leader epoch at every leader change Raft
// observes. The observer does not block Raft; its buffer holds far more
// changes than can happen between two reads, and a forward that missed
// one still ends at forwardPatience.
func (n *Node) watchLeader(r *raft.Raft) {
	ch := make(chan raft.Observation, 64)
	r.RegisterObserver(raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	go func() {
		for {
			select {
			case <-n.stop.Done():
				return
			case <-ch:
				n.epochMu.Lock()
				n.nextEpoch()
				n.leaderEpoch, n.nextEpoch = context.WithCancel(context.Background())
				n.epochMu.Unlock()
			}
		}
	}()
}

func (n *Node) currentLeaderEpoch() context.Context {
	n.epochMu.Lock()
	defer n.epochMu.Unlock()
	return n.leaderEpoch
}

// forwardPatience bounds one forwarded call: an answer normally takes
// milliseconds; a leader silent for an election timeout is being replaced
// (the followers' own heartbeat timeout is about as long), and the
// request id makes a retry — to the new leader, or to the same one if it
// was only slow — safe.
func (n *Node) forwardPatience() time.Duration {
	return min(max(n.cfg.ElectionTimeout, time.Second), n.cfg.ApplyTimeout)
}

// ForwardHTTP sends a node-to-node request to the leader's HTTP API.
func (n *Node) ForwardHTTP(ctx context.Context, path string, in, out any) error {
	return n.forward(ctx, path, in, out)
}

// post sends a node-to-node request; forwarded marks it as already relayed to
// the leader so the receiver never relays it again.
func (n *Node) post(ctx context.Context, url string, in, out any, forwarded bool) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(TokenHeader, n.cfg.ClusterToken)
	if forwarded {
		req.Header.Set(ForwardedHeader, n.cfg.NodeID)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// The leader may have just died; let the caller hold and retry.
		return ErrNoLeader
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode == http.StatusServiceUnavailable {
		return ErrNoLeader
	}
	if resp.StatusCode == http.StatusUnauthorized {
		err := &TokenRefusedError{At: time.Now(), Answer: string(bytes.TrimSpace(body))}
		n.tokenRefused.Store(err)
		return err
	}
	n.tokenRefused.Store(nil)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leader answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}

// JoinRequest asks the leader to add a voter.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raftAddr"`
	HTTPAddr string `json:"httpAddr"`
}

// AddVoter adds a node to the cluster (leader only) and records its address.
func (n *Node) AddVoter(req JoinRequest) error {
	if !n.IsLeader() {
		return ErrNoLeader
	}
	n.batcher.suspend()
	if err := n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return err
	}
	_, _, err := n.applyLocal(state.CmdRegisterNode, state.RegisterNode{Node: state.Node{ID: req.ID, HTTPAddr: req.HTTPAddr}})
	return err
}

// JoinCluster asks an existing member (any node; followers forward) to add this node.
func (n *Node) JoinCluster(ctx context.Context, memberHTTP string) error {
	var out struct{}
	// Not marked forwarded: the member we ask may be a follower that relays it.
	return n.post(ctx, memberHTTP+"/internal/v1/cluster/join", JoinRequest{ID: n.cfg.NodeID, RaftAddr: n.RaftAddr(), HTTPAddr: n.cfg.HTTPAddr}, &out, false)
}

// RemoveServer removes a node from the configuration (leader only).
func (n *Node) RemoveServer(id string) error {
	return n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error()
}

// Servers lists the Raft configuration.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// Snapshot forces a snapshot (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close stops leader work, shuts Raft down and closes stores. Idempotent.
func (n *Node) Close() error {
	var err error
	n.stopOnce.Do(func() {
		n.halt()
		n.monitorWG.Wait()
		err = n.raft.Shutdown().Error()
		n.closeAll()
	})
	return err
}

func (n *Node) closeAll() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		_ = n.closers[i].Close()
	}
	n.closers = nil
}
