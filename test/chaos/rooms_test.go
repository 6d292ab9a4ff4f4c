package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/meridian-video/meridian/shared/wait"
	"github.com/meridian-video/meridian/test/procs"
)

// roomView is the part of a room answer the checks read.
type roomView struct {
	RoomID          string          `json:"roomId"`
	CustomRoomID    string          `json:"customRoomId"`
	Disabled        bool            `json:"disabled"`
	AutoStartConfig json.RawMessage `json:"autoStartConfig"`
}

func (v roomView) tag() string {
	var a struct {
		Chaos string `json:"chaos"`
	}
	_ = json.Unmarshal(v.AutoStartConfig, &a)
	return a.Chaos
}

// roomsRun is one TestChaosRooms run: the cluster, its network, the
// clients' shared knowledge and the history.
type roomsRun struct {
	cl  *procs.Cluster
	api *api
	h   *history
	mix mix

	timeoutMu sync.Mutex
	timeRng   *rand.Rand

	mu       sync.Mutex
	active   []string          // customRoomIds in use now
	allKeys  []string          // every customRoomId ever used
	nextKey  int               // for new customRoomIds
	roomOf   map[string]string // object → a roomId some answer showed
	acked    map[string]string // customRoomId → roomId of an acknowledged create
	ackedIK  map[string]string // Idempotency-Key → roomId of an acknowledged create
	ikKeys   []string          // Idempotency-Keys used
	nextIK   int
	faults   []string // what was done when (history time)
	conflict []string // answers naming two rooms for one object
	unexpect []string // answers no correct server gives (4xx on valid requests...)

	localReads, localMisses atomic.Int64 // non-consistent gets; 404s for rooms acknowledged before the read began
	ackedAt                 map[string]int64
}

// opTimeout is a client's patience for one request: 1.5 to 6 s (the
// write path holds a write up to 5 s during an election, then answers
// 503), so some requests time out and some get their 503.
func (r *roomsRun) opTimeout() time.Duration {
	r.timeoutMu.Lock()
	defer r.timeoutMu.Unlock()
	return 1500*time.Millisecond + time.Duration(r.timeRng.Int64N(int64(4500*time.Millisecond)))
}

// nodes: the control nodes' URLs and ids (fixed for the run).
func (r *roomsRun) node(i int) *procs.Control { return r.cl.Nodes[i%len(r.cl.Nodes)] }

func (r *roomsRun) rotate() {
	r.mu.Lock()
	defer r.mu.Unlock()
	cid := fmt.Sprintf("cid-%04d", r.nextKey)
	r.nextKey++
	r.allKeys = append(r.allKeys, cid)
	if len(r.active) >= 10 {
		r.active = r.active[1:]
	}
	r.active = append(r.active, cid)
}

func (r *roomsRun) pick(rng *rand.Rand) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active[rng.IntN(len(r.active))]
}

func (r *roomsRun) known(obj string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.roomOf[obj]
}

// observe notes a roomId an answer showed for an object.
func (r *roomsRun) observe(obj, roomID string, ack bool, at int64) {
	if roomID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.roomOf[obj]; ok && prev != roomID {
		r.conflict = append(r.conflict, fmt.Sprintf("%s: answers name rooms %s and %s", obj, prev, roomID))
	} else if !ok {
		r.roomOf[obj] = roomID
	}
	if ack {
		if strings.HasPrefix(obj, "ik:") {
			r.ackedIK[strings.TrimPrefix(obj, "ik:")] = roomID
		} else {
			r.acked[obj] = roomID
			if _, ok := r.ackedAt[obj]; !ok {
				r.ackedAt[obj] = at
			}
		}
	}
}

func (r *roomsRun) unexpected(format string, args ...any) {
	r.mu.Lock()
	r.unexpect = append(r.unexpect, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// record turns an answer into a history entry (and the error mix).
func (r *roomsRun) record(client int, c *procs.Control, key string, in roomInput, call int64, a answer) roomOutput {
	ret := r.h.now()
	r.mix.add(in.Kind, a, "on "+c.ID, fmt.Sprintf("at %.3fs", float64(call)/1e9))
	out := roomOutput{}
	switch {
	case a.Status/100 == 2:
		var v roomView
		if in.Kind == opList {
			var l struct {
				Data []roomView `json:"data"`
			}
			if err := json.Unmarshal(a.Body, &l); err != nil {
				r.unexpected("%s %s on %s: undecodable list: %s", in.Kind, key, c.ID, a.Body)
				return roomOutput{Unknown: true}
			}
			out.Count = len(l.Data)
			if len(l.Data) == 0 {
				out.Absent = true
				break
			}
			v = l.Data[0]
		} else if err := json.Unmarshal(a.Body, &v); err != nil || v.RoomID == "" {
			r.unexpected("%s %s on %s: undecodable answer: %s", in.Kind, key, c.ID, a.Body)
			return roomOutput{Unknown: true}
		}
		out.RoomID, out.Disabled = v.RoomID, v.Disabled
		if !strings.HasPrefix(key, "ik:") && key != "" && v.CustomRoomID != key {
			r.unexpected("%s %s on %s: answered room %s of customRoomId %q", in.Kind, key, c.ID, v.RoomID, v.CustomRoomID)
		}
		write := in.Kind == opCreate || in.Kind == opIKCreate
		r.observe(key, v.RoomID, write, ret)
	case a.Status == 404:
		out.Absent = true
	case a.definite():
		r.unexpected("%s %s (%s) on %s: %d %s", in.Kind, key, in.RoomID, c.ID, a.Status, strings.TrimSpace(string(a.Body)))
		return out
	default:
		out.Unknown = true
		if sabotage("unknown") && a.Class == "timeout" {
			return out // and not recorded: as if it had failed
		}
	}
	r.h.add(rec{Key: key, Client: client, Node: c.ID, In: in, Out: out, Call: call, Return: ret, Status: a.Status, Class: a.Class, Err: a.Err})
	return out
}

// worker sends a random mix of operations to random nodes until stop.
func (r *roomsRun) worker(client int, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(client), uint64(time.Now().UnixNano())))
	for {
		select {
		case <-stop:
			return
		default:
		}
		c := r.node(rng.IntN(len(r.cl.Nodes)))
		cid := r.pick(rng)
		x := rng.Float64()
		switch {
		case x < 0.22:
			r.create(client, c, cid)
		case x < 0.42:
			r.get(client, c, cid, true)
		case x < 0.50:
			r.list(client, c, cid)
		case x < 0.58:
			r.get(client, c, cid, false)
		case x < 0.72:
			if id := r.known(cid); id != "" {
				r.setStatus(client, c, cid, id, true)
			} else {
				r.create(client, c, cid)
			}
		case x < 0.80:
			if id := r.known(cid); id != "" {
				r.setStatus(client, c, cid, id, false)
			} else {
				r.get(client, c, cid, true)
			}
		case x < 0.93:
			r.ikCreate(client, rng)
		default:
			r.getIK(client, c, rng)
		}
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
	}
}

func (r *roomsRun) create(client int, c *procs.Control, cid string) roomOutput {
	call := r.h.now()
	a := r.api.do(c.URL, "POST", "/v2/rooms", map[string]any{"customRoomId": cid}, nil, r.opTimeout())
	return r.record(client, c, cid, roomInput{Kind: opCreate}, call, a)
}

func (r *roomsRun) get(client int, c *procs.Control, cid string, consistent bool) {
	call := r.h.now()
	if consistent {
		a := r.api.do(c.URL, "GET", "/v2/rooms/"+url.PathEscape(cid)+"?consistent=true", nil, nil, r.opTimeout())
		r.record(client, c, cid, roomInput{Kind: opGet}, call, a)
		return
	}
	// Local reads are not linearizable by design (README: reads are
	// local); they must still never show another room, and a room
	// acknowledged before the read began should be found (the read
	// catches up with the leader once when it misses).
	a := r.api.do(c.URL, "GET", "/v2/rooms/"+url.PathEscape(cid), nil, nil, r.opTimeout())
	r.mix.add("localget", a, "on "+c.ID, fmt.Sprintf("at %.3fs", float64(call)/1e9))
	r.localReads.Add(1)
	switch {
	case a.Status == 200:
		var v roomView
		if json.Unmarshal(a.Body, &v) == nil {
			r.observe(cid, v.RoomID, false, 0)
		}
	case a.Status == 404:
		r.mu.Lock()
		at, ok := r.ackedAt[cid]
		r.mu.Unlock()
		if ok && at < call {
			r.localMisses.Add(1)
		}
	case a.definite():
		r.unexpected("local get %s on %s: %d %s", cid, c.ID, a.Status, a.Body)
	}
}

func (r *roomsRun) list(client int, c *procs.Control, cid string) {
	call := r.h.now()
	a := r.api.do(c.URL, "GET", "/v2/rooms?perPage=10&consistent=true&query="+url.QueryEscape(cid), nil, nil, r.opTimeout())
	r.record(client, c, cid, roomInput{Kind: opList}, call, a)
}

func (r *roomsRun) setStatus(client int, c *procs.Control, cid, roomID string, deactivate bool) {
	call := r.h.now()
	var a answer
	kind := opDeactivate
	if deactivate {
		a = r.api.do(c.URL, "POST", "/v2/rooms/deactivate", map[string]any{"roomId": roomID}, nil, r.opTimeout())
	} else {
		kind = opEnable
		a = r.api.do(c.URL, "POST", "/v2/rooms/"+url.PathEscape(roomID), map[string]any{"status": "enabled"}, nil, r.opTimeout())
	}
	r.record(client, c, cid, roomInput{Kind: kind, RoomID: roomID}, call, a)
}

// ikCreate creates a room without a customRoomId under a fresh
// Idempotency-Key (or, sometimes, one used before), retrying on other
// nodes until an answer is definite, as a careful client would.
func (r *roomsRun) ikCreate(client int, rng *rand.Rand) {
	r.mu.Lock()
	var key string
	if len(r.ikKeys) > 0 && rng.IntN(4) == 0 {
		key = r.ikKeys[len(r.ikKeys)-1-rng.IntN(min(len(r.ikKeys), 8))]
	} else {
		key = fmt.Sprintf("ik-%05d", r.nextIK)
		r.nextIK++
		r.ikKeys = append(r.ikKeys, key)
	}
	r.mu.Unlock()
	body := []byte(`{"autoStartConfig":{"chaos":"` + key + `"}}`)
	start := rng.IntN(len(r.cl.Nodes))
	for attempt := 0; attempt < 5; attempt++ {
		c := r.node(start + attempt)
		call := r.h.now()
		a := r.api.do(c.URL, "POST", "/v2/rooms", body, map[string]string{"Idempotency-Key": key}, r.opTimeout())
		out := r.record(client, c, "ik:"+key, roomInput{Kind: opIKCreate}, call, a)
		if !out.Unknown {
			return
		}
		time.Sleep(time.Duration(50+rng.IntN(200)) * time.Millisecond)
	}
}

func (r *roomsRun) getIK(client int, c *procs.Control, rng *rand.Rand) {
	r.mu.Lock()
	if len(r.ikKeys) == 0 {
		r.mu.Unlock()
		return
	}
	key := r.ikKeys[rng.IntN(len(r.ikKeys))]
	id := r.roomOf["ik:"+key]
	r.mu.Unlock()
	if id == "" {
		return
	}
	call := r.h.now()
	a := r.api.do(c.URL, "GET", "/v2/rooms/"+url.PathEscape(id)+"?consistent=true", nil, nil, r.opTimeout())
	r.record(client, c, "ik:"+key, roomInput{Kind: opGetID, RoomID: id}, call, a)
}

// ---- faults and recovery ----------------------------------------------------

// recovery is how long a node took to acknowledge a write after a fault
// began (or, for the node the fault hit, after it ended).
type recovery struct {
	Fault, Node, Role string
	Took              time.Duration // -1: no write acknowledged within the limit
}

// probeWrites creates rooms through each node until one is acknowledged,
// from since; the probes join the history.
func (r *roomsRun) probeWrites(label string, since time.Time, nodes []*procs.Control, role string, out chan<- recovery) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, c := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(since) < 45*time.Second; i++ {
				cid := fmt.Sprintf("probe-%s-%s-%d", label, c.ID, i)
				call := r.h.now()
				a := r.api.do(c.URL, "POST", "/v2/rooms", map[string]any{"customRoomId": cid}, nil, 3*time.Second)
				r.mu.Lock()
				r.allKeys = append(r.allKeys, cid)
				r.mu.Unlock()
				r.record(99, c, cid, roomInput{Kind: opCreate}, call, a)
				if a.Status == 200 {
					out <- recovery{Fault: label, Node: c.ID, Role: role, Took: time.Since(since)}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			out <- recovery{Fault: label, Node: c.ID, Role: role, Took: -1}
		}()
	}
	return &wg
}

// staleProbe runs while victim is paused: it creates a room through the
// other nodes and, once that is acknowledged, sends victim writes and a
// read about it, which wait in victim's socket until it resumes. A
// node that answers them from the state it had before the pause is
// caught by the model (or, as a known bug, by record).
func (r *roomsRun) staleProbe(label string, victim *procs.Control) *sync.WaitGroup {
	var wg sync.WaitGroup
	cid := "stale-" + label
	r.mu.Lock()
	r.allKeys = append(r.allKeys, cid)
	r.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var id string
		for i := 0; i < 100 && id == ""; i++ {
			out := r.create(98, others(r.cl, victim)[i%2], cid)
			if !out.Unknown && out.RoomID != "" {
				id = out.RoomID
			}
		}
		if id == "" {
			return
		}
		for _, op := range []func(){
			func() {
				call := r.h.now()
				a := r.api.do(victim.URL, "POST", "/v2/rooms/"+url.PathEscape(id), map[string]any{"status": "enabled"}, nil, 20*time.Second)
				r.record(98, victim, cid, roomInput{Kind: opEnable, RoomID: id}, call, a)
			},
			func() {
				call := r.h.now()
				a := r.api.do(victim.URL, "POST", "/v2/rooms/deactivate", map[string]any{"roomId": id}, nil, 20*time.Second)
				r.record(98, victim, cid, roomInput{Kind: opDeactivate, RoomID: id}, call, a)
			},
			func() {
				call := r.h.now()
				a := r.api.do(victim.URL, "GET", "/v2/rooms/"+url.PathEscape(cid)+"?consistent=true", nil, nil, 20*time.Second)
				r.record(98, victim, cid, roomInput{Kind: opGet}, call, a)
			},
		} {
			wg.Add(1)
			go func() { defer wg.Done(); op() }()
		}
	}()
	return &wg
}

// agreedLeader waits until every running node names the same leader.
func agreedLeader(t *testing.T, cl *procs.Cluster, timeout time.Duration) *procs.Control {
	t.Helper()
	var leader *procs.Control
	wait.Until(t, timeout, labelled("the nodes agree on a leader", func() string {
		ids := map[string]bool{}
		for _, c := range cl.Live() {
			h, err := c.Health()
			if err != nil {
				return fmt.Sprintf("%s: %v", c.ID, err)
			}
			ids[h.Leader] = true
		}
		if len(ids) != 1 {
			return fmt.Sprintf("leaders named: %v", ids)
		}
		for _, c := range cl.Live() {
			if ids[c.ID] {
				leader = c
				return ""
			}
		}
		return fmt.Sprintf("leader %v is not a running node", ids)
	}))
	return leader
}

func others(cl *procs.Cluster, not *procs.Control) []*procs.Control {
	var out []*procs.Control
	for _, c := range cl.Nodes {
		if c != not {
			out = append(out, c)
		}
	}
	return out
}

// TestChaosRooms: see the package documentation.
func TestChaosRooms(t *testing.T) {
	t.Parallel()
	began := time.Now()
	nw := newNetwork()
	cl := procs.StartCluster(t, nw.clusterOptions(t, procs.ClusterOptions{Nodes: 3}))
	key := cl.NewAPIKey(t, cl.Nodes[0])
	r := &roomsRun{cl: cl, api: newAPI(key.Crawler(t)), h: newHistory(), timeRng: rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano()))),
		roomOf: map[string]string{}, acked: map[string]string{}, ackedIK: map[string]string{}, ackedAt: map[string]int64{}}
	waitKey(t, r.api, cl)
	for range 10 {
		r.rotate()
	}
	// The sessions history: its own rooms, its own clients.
	sr := &sessRun{cl: cl, api: r.api, edge: newAPI("Bearer " + cl.EdgeToken), t0: r.h.t0, mix: &r.mix}
	for try := 0; len(sr.rooms) < sessRooms; try++ {
		if try == 50 {
			t.Fatalf("could not create the sessions' rooms: %d of %d", len(sr.rooms), sessRooms)
		}
		sr.rotate()
	}
	t.Logf("cluster up in %v; raft links through %d pair proxies, node-to-node HTTP through %d proxies", ms(time.Since(began)), len(nw.pairs), len(nw.https))

	stop := make(chan struct{})
	var workers sync.WaitGroup
	const clients = 8
	for i := range clients {
		workers.Add(1)
		go func() { defer workers.Done(); r.worker(i, stop) }()
	}
	const sessClients = 3
	for i := range sessClients {
		workers.Add(1)
		go func() { defer workers.Done(); sr.worker(200+i, r.opTimeout, stop) }()
	}
	workers.Add(1)
	go func() {
		defer workers.Done()
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		sessTicks := 0
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				r.rotate()
				if sessTicks++; sessTicks%5 == 0 {
					sr.rotate()
				}
			}
		}
	}()
	stopped := false
	stopWorkers := func() {
		if !stopped {
			stopped = true
			close(stop)
			workers.Wait()
		}
	}
	defer stopWorkers()

	// The faults, one at a time.
	type fault struct {
		name string
		kind string // kill, pause, partition
		lead bool   // the leader (else a follower)
		down time.Duration
	}
	short := []fault{
		{"kill-leader", "kill", true, 2 * time.Second},
		{"kill-follower", "kill", false, 1 * time.Second},
		{"pause-leader", "pause", true, 3 * time.Second},
		{"pause-follower", "pause", false, 2 * time.Second},
		{"partition-leader", "partition", true, 4 * time.Second},
		{"partition-follower", "partition", false, 2 * time.Second},
	}
	// Short: each fault once. Long: random faults (1-8 s each) for ten
	// minutes.
	faultRng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	next := func(i int) (fault, bool) {
		if !long() {
			if i < len(short) {
				return short[i], true
			}
			return fault{}, false
		}
		if time.Since(began) > 10*time.Minute {
			return fault{}, false
		}
		f := short[faultRng.IntN(len(short))]
		f.down = time.Duration(1000+faultRng.IntN(7000)) * time.Millisecond
		return f, true
	}

	recs := make(chan recovery, 4096)
	var probes []*sync.WaitGroup
	var lastKilled *procs.Control
	time.Sleep(2 * time.Second) // a calm start
	for i := 0; ; i++ {
		f, ok := next(i)
		if !ok {
			break
		}
		label := fmt.Sprintf("%02d-%s", i+1, f.name)
		leader := agreedLeader(t, cl, 30*time.Second)
		victim := leader
		if !f.lead {
			victim = others(cl, leader)[i%2]
			if f.kind == "kill" && lastKilled != nil && lastKilled != leader {
				// The node killed last, restarted, and killed again: a
				// leader killed mid-append comes back with a log tail the
				// new leader truncates, and must survive a second crash.
				victim = lastKilled
			}
		}
		if f.kind == "kill" {
			lastKilled = victim
		}
		role := "follower"
		if f.lead {
			role = "leader"
		}
		t0, h0 := time.Now(), r.h.now()
		heldBefore := 0
		switch f.kind {
		case "kill":
			if f.lead {
				// Killed with entries it appended but could not commit:
				// cut off, it still takes writes for a moment (its lease
				// lasts 500 ms), so its log has a tail the next leader
				// will have it truncate after the restart.
				nw.Isolate(victim.ID)
				for j := range 3 {
					cid := fmt.Sprintf("tail-%s-%d", label, j)
					r.mu.Lock()
					r.allKeys = append(r.allKeys, cid)
					r.mu.Unlock()
					go r.create(97, victim, cid)
				}
				time.Sleep(300 * time.Millisecond)
				victim.Kill(t)
				nw.Heal()
			} else {
				victim.Kill(t)
			}
		case "pause":
			victim.Pause(t)
		case "partition":
			heldBefore = nw.RaftDialsHeld(victim.ID)
			nw.Isolate(victim.ID)
		}
		probes = append(probes, r.probeWrites(label, t0, others(cl, victim), "survivor", recs))
		if f.kind == "pause" {
			probes = append(probes, r.staleProbe(label, victim))
		}
		time.Sleep(f.down)
		t1, h1 := time.Now(), r.h.now()
		switch f.kind {
		case "kill":
			victim.Restart(t)
		case "pause":
			victim.Resume(t)
		case "partition":
			// Raft retries its links every heartbeat: across a real cut
			// some of those dials must have been held.
			if held := nw.RaftDialsHeld(victim.ID) - heldBefore; held == 0 {
				t.Errorf("%s: %s was isolated for %v and no Raft connection to or from it was held: the partition was not exercised", label, victim.ID, f.down)
			}
			nw.Heal()
		}
		probes = append(probes, r.probeWrites(label, t1, []*procs.Control{victim}, role+" (after "+f.kind+")", recs))
		what := fmt.Sprintf("%s: %s %s %s from %.3fs to %.3fs (history time)", label, role, victim.ID,
			map[string]string{"kill": "killed (SIGKILL)", "pause": "paused (SIGSTOP)", "partition": "isolated"}[f.kind], float64(h0)/1e9, float64(h1)/1e9)
		if f.kind == "kill" {
			victim.WaitHealthy(t, 30*time.Second)
			what += fmt.Sprintf(", restarted on its data directory, healthy %v after the restart", ms(time.Since(t1)))
		}
		t.Log(what)
		r.faults = append(r.faults, what)
		time.Sleep(time.Second)
	}
	for _, wg := range probes {
		wg.Wait()
	}
	close(recs)
	faultsDone := time.Now()

	// Quiet: every node runs, the partition is healed, one leader.
	nw.Heal()
	for _, c := range cl.Nodes {
		if done, _ := c.Exited(); done {
			t.Fatalf("%s is not running at the end: %v", c.ID, c.Unexpected())
		}
	}
	agreedLeader(t, cl, 30*time.Second)
	time.Sleep(time.Second)
	stopWorkers()

	// Final reads through every node, part of the history.
	r.mu.Lock()
	keys := append([]string(nil), r.allKeys...)
	ikKeys := append([]string(nil), r.ikKeys...)
	r.mu.Unlock()
	for _, c := range cl.Nodes {
		for _, cid := range keys {
			for try := 0; ; try++ {
				call := r.h.now()
				a := r.api.do(c.URL, "GET", "/v2/rooms/"+url.PathEscape(cid)+"?consistent=true", nil, nil, 10*time.Second)
				if out := r.record(100, c, cid, roomInput{Kind: opGet}, call, a); !out.Unknown || try == 5 {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		for _, k := range ikKeys {
			if id := r.known("ik:" + k); id != "" {
				call := r.h.now()
				a := r.api.do(c.URL, "GET", "/v2/rooms/"+url.PathEscape(id)+"?consistent=true", nil, nil, 10*time.Second)
				r.record(100, c, "ik:"+k, roomInput{Kind: opGetID, RoomID: id}, call, a)
			}
		}
	}
	sr.final()
	// An Idempotency-Key reused for another request is refused on every
	// node, whichever node saw it first.
	misuse := 0
	for i, k := range ikKeys {
		if i >= 3 {
			break
		}
		for _, c := range cl.Nodes {
			a := r.api.do(c.URL, "POST", "/v2/rooms", []byte(`{"autoStartConfig":{"chaos":"other"}}`), map[string]string{"Idempotency-Key": k}, 10*time.Second)
			misuse++
			if a.Status != 422 {
				r.unexpected("Idempotency-Key %s reused with another body on %s: %d %s (want 422)", k, c.ID, a.Status, bytes.TrimSpace(a.Body))
			}
		}
	}
	// Every node's whole room list.
	listings := map[string][]finalRoom{}
	for _, c := range cl.Nodes {
		var all []finalRoom
		for page := 1; ; page++ {
			var l struct {
				PageInfo struct {
					LastPage int `json:"lastPage"`
				} `json:"pageInfo"`
				Data []roomView `json:"data"`
			}
			r.api.mustJSON(t, []string{c.URL}, "GET", fmt.Sprintf("/v2/rooms?perPage=1000&page=%d&consistent=true", page), nil, &l, 30*time.Second)
			for _, v := range l.Data {
				all = append(all, finalRoom{RoomID: v.RoomID, CustomRoomID: v.CustomRoomID, Tag: v.tag(), Disabled: v.Disabled})
			}
			if page >= l.PageInfo.LastPage {
				break
			}
		}
		listings[c.ID] = all
	}
	sabotageListings(listings, r.acked, r.ackedIK)

	// ---- checks ----
	ops := r.h.snapshot()
	checkStart := time.Now()
	lin := checkLinearizable(ops, 20*time.Second)
	fin := checkFinal(r.acked, r.ackedIK, listings)
	sessLin, sessRecs := checkSessions(sr.snapshot(), 20*time.Second)

	var rs []recovery
	for x := range recs {
		rs = append(rs, x)
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Fault != rs[j].Fault {
			return rs[i].Fault < rs[j].Fault
		}
		if rs[i].Role != rs[j].Role {
			return rs[i].Role > rs[j].Role
		}
		return rs[i].Node < rs[j].Node
	})
	var b strings.Builder
	var worstSurvivor time.Duration
	for _, x := range rs {
		took := "none within 45s"
		if x.Took >= 0 {
			took = ms(x.Took)
		}
		fmt.Fprintf(&b, "  %-22s %-3s %-26s first acknowledged write after %s\n", x.Fault, x.Node, x.Role, took)
		if x.Role == "survivor" && (x.Took < 0 || x.Took > worstSurvivor) {
			worstSurvivor = x.Took
			if x.Took < 0 {
				worstSurvivor = time.Hour
			}
		}
	}
	if !long() {
		t.Logf("recovery (fault start → first acknowledged write through each surviving node; for the node hit: fault end → its first):\n%s", b.String())
	}
	t.Logf("recovery summary (n, median, max):\n%s", recoverySummary(rs))
	t.Logf("error mix (per operation; ok=2xx, 4xx=definite 404s etc, 503, timeout, refused/reset=connection errors):\n%s", r.mix.String())
	t.Logf("history: %d operations on %d objects (%d writes of unknown outcome), checked in %v; %d acknowledged creates × %d nodes checked at the end; "+
		"local (non-consistent) reads: %d, of which %d missed a room acknowledged before they began; node-to-node requests held by partitions: %d; "+
		"Idempotency-Key reuses with another body: %d",
		lin.Ops, lin.Keys, lin.Unknown, ms(time.Since(checkStart)), len(r.acked)+len(r.ackedIK), len(cl.Nodes), r.localReads.Load(), r.localMisses.Load(), nw.held.Load(), misuse)
	t.Logf("sessions history: %d operations on %d rooms (%d writes of unknown outcome); %d joins and %d session ends acknowledged",
		sessLin.Ops, sessLin.Keys, sessLin.Unknown, sr.started.Load(), sr.ended.Load())
	t.Logf("faults took %v; whole test %v", ms(faultsDone.Sub(began)), ms(time.Since(began)))

	for _, k := range lin.Illegal {
		p := evidencePath(t, "rooms-"+strings.ReplaceAll(k, ":", "_")+".html")
		if err := porcupine.VisualizePath(roomModel, lin.Infos[k], p); err != nil {
			p = err.Error()
		}
		t.Errorf("NOT LINEARIZABLE: object %s (visualisation: %s):\n%s\nfaults:\n  %s", k, p, describeHistory(lin.Recs[k], 80), strings.Join(r.faults, "\n  "))
	}
	for _, k := range sessLin.Illegal {
		p := evidencePath(t, "sessions-"+k+".html")
		if err := porcupine.VisualizePath(sessModel, sessLin.Infos[k], p); err != nil {
			p = err.Error()
		}
		t.Errorf("NOT LINEARIZABLE: sessions of room %s (visualisation: %s):\n%s\nfaults:\n  %s", k, p, describeHistory(sessRecs[k], 80), strings.Join(r.faults, "\n  "))
	}
	for _, k := range sessLin.TimedOut {
		t.Errorf("linearizability of room %s's sessions undecided within the checker's time limit:\n%s", k, describeHistory(sessRecs[k], 40))
	}
	for _, s := range sr.unexpect {
		t.Errorf("unexpected sessions answer: %s", s)
	}
	if sr.started.Load() == 0 || sr.ended.Load() == 0 || sessLin.Ops < 100 {
		t.Errorf("too little happened to the sessions: %d acknowledged joins, %d acknowledged ends, %d operations", sr.started.Load(), sr.ended.Load(), sessLin.Ops)
	}
	for _, k := range lin.TimedOut {
		t.Errorf("linearizability of object %s undecided within the checker's time limit:\n%s", k, describeHistory(lin.Recs[k], 40))
	}
	r.mix.check(t)
	for _, s := range fin.Lost {
		t.Errorf("ACKNOWLEDGED WRITE LOST: %s", s)
	}
	for _, s := range fin.Dups {
		t.Errorf("DUPLICATE: %s", s)
	}
	for _, s := range fin.Diverged {
		t.Errorf("REPLICAS DIFFER: %s", s)
	}
	for _, s := range r.conflict {
		t.Errorf("DUPLICATE (answers): %s", s)
	}
	for _, s := range r.unexpect {
		t.Errorf("unexpected answer: %s", s)
	}
	if worstSurvivor > 30*time.Second {
		t.Errorf("a surviving node took %v (or never) to acknowledge a write after a fault", worstSurvivor)
	}
	if len(r.acked) == 0 || len(r.ackedIK) == 0 || lin.Ops < 500 {
		t.Errorf("too little happened to check anything: %d acknowledged creates, %d Idempotency-Key creates, %d operations", len(r.acked), len(r.ackedIK), lin.Ops)
	}
}

// recoverySummary groups recovery times by fault kind and node role.
func recoverySummary(rs []recovery) string {
	groups := map[string][]time.Duration{}
	for _, x := range rs {
		kind := x.Fault[strings.Index(x.Fault, "-")+1:]
		role := "surviving nodes, from the fault"
		if x.Role != "survivor" {
			role = "the node hit, from its return"
		}
		groups[kind+": "+role] = append(groups[kind+": "+role], x.Took)
	}
	var names []string
	for k := range groups {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		ds := groups[k]
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		never := 0
		for _, d := range ds {
			if d < 0 {
				never++
			}
		}
		ok := ds[never:]
		if len(ok) == 0 {
			fmt.Fprintf(&b, "  %-58s n=%-3d never\n", k, len(ds))
			continue
		}
		fmt.Fprintf(&b, "  %-58s n=%-3d median %-8s max %-8s", k, len(ds), ms(ok[len(ok)/2]), ms(ok[len(ok)-1]))
		if never > 0 {
			fmt.Fprintf(&b, " (%d never)", never)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// sabotageListings breaks the final listings on request (MERIDIAN_CHAOS_BREAK).
func sabotageListings(l map[string][]finalRoom, acked, ackedIK map[string]string) {
	node := "c2"
	switch {
	case sabotage("lost"):
		for cid := range acked {
			l[node] = dropRoom(l[node], func(f finalRoom) bool { return f.CustomRoomID == cid })
			return
		}
	case sabotage("dup"):
		for cid := range acked {
			l[node] = append(l[node], finalRoom{RoomID: "fake-dup-room", CustomRoomID: cid})
			return
		}
	case sabotage("ikdup"):
		for k := range ackedIK {
			l[node] = append(l[node], finalRoom{RoomID: "fake-ik-room", Tag: k})
			return
		}
	case sabotage("diverge"):
		l[node] = l[node][1:]
	}
}

func dropRoom(rs []finalRoom, match func(finalRoom) bool) []finalRoom {
	var out []finalRoom
	for _, r := range rs {
		if !match(r) {
			out = append(out, r)
		}
	}
	return out
}
