// Command ctlbench measures Meridian's control plane the way a VideoSDK
// customer uses it: a room per meeting, created through POST /v2/rooms,
// read back, listed page by page, while the store grows to 1k, 100k or 1M
// rooms, on one node (meridian dev) or a 3-node Raft cluster (writes
// through the leader and through a follower). Server-side costs come from
// /proc (CPU, write_bytes, RSS) and the data directories (size, newest
// snapshot). Results are numbers, never pass/fail; see docs/benchmarks.md
// ("Control plane") and benchmarks/control.sh, which starts the servers.
//
//	ctlbench run -node dev=http://127.0.0.1:P,PID,DATA -api-key K -api-secret S -sizes 1000,100000 -json F
//	ctlbench run -node c1=URL,PID,DATA -node c2=... -node c3=... ...   # 3 nodes: the leader is found
//	ctlbench leader -node ...                       # print the leader's name
//	ctlbench ready -json F -node NAME=URL,PID,DATA -since UNIXNANO ...   # restart-to-ready, added to F
//	ctlbench seed -data DIR [-data DIR...] -api-key K -rooms N -seeded S -json F   # stopped nodes: grow to N rooms (seed.go)
//	ctlbench report F...                            # markdown tables
//	ctlbench freeport                               # a free loopback TCP port
package main

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ctlbench run|seed|leader|ready|report|freeport ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runBench(os.Args[2:])
	case "leader":
		err = runLeader(os.Args[2:])
	case "ready":
		err = runReady(os.Args[2:])
	case "seed":
		err = runSeed(os.Args[2:])
	case "idle":
		err = runIdle(os.Args[2:])
	case "report":
		err = runReport(os.Args[2:])
	case "freeport":
		var ln net.Listener
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			fmt.Println(ln.Addr().(*net.TCPAddr).Port)
			_ = ln.Close()
		}
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ctlbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

type nodeList []*node

func (l *nodeList) String() string { return fmt.Sprint(len(*l), " nodes") }
func (l *nodeList) Set(s string) error {
	n, err := parseNode(s)
	if err == nil {
		*l = append(*l, n)
	}
	return err
}

// Result is one topology's run (one JSON file).
type Result struct {
	Label       string                   `json:"label"`
	Started     time.Time                `json:"started"`
	Machine     string                   `json:"machine"`
	Leader      string                   `json:"leader"`
	Follower    string                   `json:"follower,omitempty"`
	Nodes       []*node                  `json:"nodes"`
	Clients     int                      `json:"clients"`
	ListClients int                      `json:"listClients"`
	Body        string                   `json:"body"` // what each POST /v2/rooms sends (customRoomId varies)
	Steps       []*Step                  `json:"steps"`
	Rooms       int                      `json:"rooms"`      // rooms of the key at the end
	LastRoom    string                   `json:"lastRoomId"` // checked after the restart
	Baseline    Memory                   `json:"baseline"`   // before the first room
	Snapshots   map[string]*SnapshotWait `json:"snapshots,omitempty"`
	Restart     *Restart                 `json:"restart,omitempty"`
	// With seeding (control.sh SEED=1): the seed before each size, and the
	// start that restored it (restart-to-ready at that size).
	Seeds    []*SeedResult `json:"seeds,omitempty"`
	Restarts []*Restart    `json:"restarts,omitempty"`
}

// Step is everything measured at one store size.
type Step struct {
	Target   int    `json:"target"`
	Rooms    int    `json:"rooms"` // rooms when the reads ran
	Fill     Phase  `json:"fill"`  // creates from the previous size to Target through the leader
	Memory   Memory `json:"memory"`
	Get      Phase  `json:"get"`
	Page1    Phase  `json:"page1"`
	DeepPage Phase  `json:"deepPage"`
	DeepNo   int    `json:"deepPageNo"`
	// GetUnderList: GET /v2/rooms/{id} at half the clients while the other
	// half list page 1 (a slow list must not hold up other reads).
	GetUnderList *Phase `json:"getUnderList,omitempty"`
	ListUnderGet *Phase `json:"listUnderGet,omitempty"`
	// Writes: creates at all clients through the leader for the window,
	// at this size (after the reads).
	Writes        *Phase `json:"writes,omitempty"`
	SeqLeader     *Phase `json:"seqLeader,omitempty"`
	SeqFollower   *Phase `json:"seqFollower,omitempty"`
	FollowerWrite *Phase `json:"followerWrite,omitempty"` // all clients writing through a follower
}

// Memory and disk of every server process at one moment.
type Memory struct {
	Rooms     int              `json:"rooms"`
	RSS       map[string]int64 `json:"rss"`
	HeapInuse map[string]int64 `json:"heapInuse,omitempty"` // go_memstats_heap_inuse_bytes, when /metrics has it
	DataBytes map[string]int64 `json:"dataBytes"`           // every file under the data directory
}

// SnapshotWait is the newest snapshot of a node after the last fill.
type SnapshotWait struct {
	Snapshot
	Found         bool    `json:"found"`
	AppliedIndex  uint64  `json:"appliedIndex"` // the node's applied index when the wait began
	WaitedSeconds float64 `json:"waitedSeconds"`
}

// Restart is a node killed at the largest size and started again.
type Restart struct {
	Node           string    `json:"node"`
	Rooms          int       `json:"rooms"`
	ReadySeconds   float64   `json:"readySeconds"` // process start to the first 200 of /healthz
	RSSAfter       int64     `json:"rssAfter"`
	RoomsAfter     int       `json:"roomsAfter"` // list total through the restarted node
	SnapshotBefore *Snapshot `json:"snapshotBefore,omitempty"`
}

type bench struct {
	nodes            []*node
	leader, follower *node
	token            string
	body             func(i int) []byte
	ld               *loader
	clients          int
	listClients      int
	writesPhase      bool
	fillRate         float64 // creates/s the fills are paced at (0: closed loop)
	window           time.Duration
	seqN             int
	serial           atomic.Int64 // customRoomId counter
	ids              []string     // every room this run created
	rooms            int          // rooms of the key
	log              func(format string, args ...any)
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var nodes nodeList
	fs.Var(&nodes, "node", "server process name=URL,PID,DATADIR (repeat for a cluster; name is its node id)")
	key := fs.String("api-key", "", "API key")
	secret := fs.String("api-secret", "", "API secret")
	sizesFlag := fs.String("sizes", "1000,100000", "store sizes (rooms of the key) to fill to and measure at, ascending")
	clients := fs.Int("clients", 16, "concurrent clients for the fill and the read phases")
	listClients := fs.Int("list-clients", 0, "concurrent clients for the list phases (default -clients); each list of today's store copies every room, so 16 at 1M rooms needs many GB")
	window := fs.Duration("window", 5*time.Second, "length of each read phase and of the follower write phase")
	seqN := fs.Int("seq", 200, "writes of the sequential client, per node written through")
	bodyKind := fs.String("body", "customer", "room body: customer (customRoomId + webhook config) or empty ({})")
	binEvery := fs.Duration("bin", 5*time.Second, "fill timeline resolution")
	serverCPU := fs.Int("server-cpu", 0, "CPU the servers are pinned to (-1: not pinned)")
	snapWait := fs.Duration("snapshot-wait", 5*time.Minute, "after the last fill, wait this long at most for a snapshot covering -snapshot-cover of the log")
	snapCover := fs.Float64("snapshot-cover", 0.9, "fraction of the applied index the newest snapshot must reach")
	mixed := fs.Bool("mixed", true, "measure GET while other clients list page 1")
	label := fs.String("label", "", "row label (default: the number of nodes)")
	out := fs.String("json", "", "result file (rewritten after every step)")
	seeded := fs.Int("seeded", 0, "seeded rooms in the store (ctlbench seed): GET asks for them too")
	appendTo := fs.Bool("append", false, "add this run's steps to the result file's (a size per server start, with seeding)")
	baselineOnly := fs.Bool("baseline-only", false, "record memory and disk of the empty store, measure nothing")
	snapshotsOnly := fs.Bool("snapshots-only", false, "with -append: only wait for the nodes' snapshots (-snapshot-wait) and record them")
	writesPhase := fs.Bool("writes", true, "after the reads, create rooms at all clients for the window")
	fillRate := fs.Float64("fill-rate", 0, "pace the fills at this many creates/s (all clients together; latency from each create's scheduled start); 0: every client as fast as it can")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(nodes) == 0 || *key == "" || *secret == "" || *out == "" {
		return errors.New("-node, -api-key, -api-secret and -json are required")
	}
	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		return err
	}
	if *listClients <= 0 || *listClients > *clients {
		*listClients = *clients
	}
	if *fillRate < 0 {
		return errors.New("-fill-rate: want creates per second, or 0")
	}
	b := &bench{nodes: nodes, clients: *clients, writesPhase: *writesPhase, fillRate: *fillRate, listClients: *listClients, window: *window, seqN: *seqN,
		ld:  &loader{servers: nodes, serverCPU: *serverCPU, binEvery: *binEvery, device: dataDevice(nodes)},
		log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "   "+f+"\n", a...) }}
	if b.body, err = roomBody(*bodyKind); err != nil {
		return err
	}
	// One token for the whole run, minted with the key's secret exactly as
	// a customer's backend does (HS256, role crawler).
	if b.token, err = mintToken(*key, *secret, time.Now(), 48*time.Hour); err != nil {
		return err
	}
	if b.leader, err = findLeader(nodes, 60*time.Second); err != nil {
		return err
	}
	for _, n := range nodes {
		if n != b.leader {
			b.follower = n
			break
		}
	}
	res := &Result{Label: *label, Started: time.Now().UTC(), Machine: machine(), Leader: b.leader.Name, Nodes: nodes, Clients: *clients, ListClients: *listClients, Body: string(b.body(0))}
	if res.Label == "" {
		res.Label = fmt.Sprintf("%d node(s)", len(nodes))
	}
	if b.follower != nil {
		res.Follower = b.follower.Name
	}
	if b.rooms, err = b.total(b.leader); err != nil {
		return err
	}
	for i := 0; i < *seeded; i++ {
		b.ids = append(b.ids, seedRoomID(i))
	}
	if *appendTo {
		// Later sizes of one run: keep the first start's baseline, seeds
		// and restarts.
		var prev Result
		if err := readJSON(*out, &prev); err != nil {
			return err
		}
		res.Started, res.Baseline, res.Steps, res.Seeds, res.Restarts = prev.Started, prev.Baseline, prev.Steps, prev.Seeds, prev.Restarts
	} else if res.Baseline, err = b.memory(); err != nil {
		return err
	}
	if *baselineOnly {
		return writeJSON(*out, res)
	}
	save := func() error {
		res.Rooms, res.LastRoom = b.rooms, b.lastID()
		return writeJSON(*out, res)
	}
	if *snapshotsOnly {
		res.Snapshots = b.waitSnapshots(*snapWait, *snapCover)
		return save()
	}
	for _, size := range sizes {
		st, err := b.step(size, *mixed)
		if st != nil {
			res.Steps = append(res.Steps, st)
		}
		if serr := save(); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
	}
	if *snapWait > 0 {
		res.Snapshots = b.waitSnapshots(*snapWait, *snapCover)
	}
	return save()
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("-sizes %q: want positive room counts in ascending order", s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("-sizes: none given")
	}
	return out, nil
}

// The customer's webhook config, on every room it creates.
const (
	customerHook        = "https://hooks.example.com/meridian/events"
	customerWebhookJSON = `{"endPoint":"` + customerHook + `","events":["session-started","session-ended","participant-joined","participant-left"]}`
)

var customerEvents = []string{"session-started", "session-ended", "participant-joined", "participant-left"}

// roomBody returns what POST /v2/rooms sends for room i.
func roomBody(kind string) (func(i int) []byte, error) {
	switch kind {
	case "empty":
		return func(int) []byte { return []byte("{}") }, nil
	case "customer":
		// A room per meeting, named after the meeting, with the customer's
		// webhook: what the issue's "≤ 2 KB per room with its webhook
		// config" is about. The run prefix keeps names unique across runs
		// on the same data (an existing customRoomId returns that room).
		var rb [4]byte
		_, _ = crand.Read(rb[:])
		prefix := "meeting-" + hex.EncodeToString(rb[:]) + "-"
		return func(i int) []byte {
			return []byte(`{"customRoomId":"` + prefix + strconv.Itoa(i) + `","webhook":` + customerWebhookJSON + `}`)
		}, nil
	}
	return nil, fmt.Errorf("-body %q: want customer or empty", kind)
}

func findLeader(nodes []*node, timeout time.Duration) (*node, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		for _, n := range nodes {
			h, err := n.health()
			if err != nil {
				last = err
				continue
			}
			for _, l := range nodes {
				if l.Name == h.Leader {
					return l, nil
				}
			}
			last = fmt.Errorf("%s names leader %q, not one of the nodes given", n.Name, h.Leader)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader among the nodes after %v: %v", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *bench) lastID() string {
	if len(b.ids) == 0 {
		return ""
	}
	return b.ids[len(b.ids)-1]
}

// step fills the store to size and measures there.
func (b *bench) step(size int, mixed bool) (*Step, error) {
	st := &Step{Target: size}
	if size > b.rooms {
		pace := "as fast as they can"
		if b.fillRate > 0 {
			pace = fmt.Sprintf("paced at %.0f creates/s", b.fillRate)
		}
		b.log("fill %d -> %d rooms through %s, %d clients %s", b.rooms, size, b.leader.Name, b.clients, pace)
		ph, err := b.writes(b.leader, b.clients, size-b.rooms, true)
		if err != nil {
			return nil, fmt.Errorf("fill to %d rooms: %w", size, err)
		}
		st.Fill = ph
		b.log("  %d creates in %.1f s: %.0f/s, p50 %.2f ms, p99 %.2f ms, %.0f B written per create (%.0f B at the device), server CPU %.0f %%",
			ph.N, ph.Seconds, ph.PerSec, ph.P50Ms, ph.P99Ms, ph.DiskPerOp, ph.DevicePerOp, ph.ServerCPUPct)
	}
	st.Rooms = b.rooms
	var err error
	if st.Memory, err = b.memory(); err != nil {
		return st, err
	}
	// Reads run at exactly this size: the extra write phases come after.
	if st.Get, err = b.reads("GET /v2/rooms/{id}", b.clients, b.getOp()); err != nil {
		return st, err
	}
	if st.Page1, err = b.reads("GET /v2/rooms?page=1&perPage=20", b.listClients, b.listOp(1)); err != nil {
		return st, err
	}
	st.DeepNo = (b.rooms + 19) / 20
	if st.DeepPage, err = b.reads(fmt.Sprintf("GET /v2/rooms?page=%d&perPage=20", st.DeepNo), b.listClients, b.listOp(st.DeepNo)); err != nil {
		return st, err
	}
	if mixed && b.clients >= 2 {
		if st.GetUnderList, st.ListUnderGet, err = b.mixed(); err != nil {
			return st, err
		}
	}
	if b.writesPhase {
		b.log("creates at %d rooms through %s, %d clients, %v", b.rooms, b.leader.Name, b.clients, b.window)
		ph, err := b.writes(b.leader, b.clients, 0, false)
		if err != nil {
			return st, fmt.Errorf("creates at %d rooms: %w", st.Rooms, err)
		}
		st.Writes = &ph
		b.log("  %d creates: %.0f/s, p50 %.2f ms, p99 %.2f ms, %.0f B written per create (%.0f B at the device), server CPU %.0f %%",
			ph.N, ph.PerSec, ph.P50Ms, ph.P99Ms, ph.DiskPerOp, ph.DevicePerOp, ph.ServerCPUPct)
	}
	b.log("sequential writes (1 client, %d each)", b.seqN)
	if st.SeqLeader, err = b.seq(b.leader); err != nil {
		return st, err
	}
	if b.follower != nil {
		if st.SeqFollower, err = b.seq(b.follower); err != nil {
			return st, err
		}
		b.log("%d clients writing through follower %s for %v", b.clients, b.follower.Name, b.window)
		ph, err := b.writes(b.follower, b.clients, 0, false)
		if err != nil {
			return st, fmt.Errorf("writes through a follower: %w", err)
		}
		st.FollowerWrite = &ph
	}
	return st, nil
}

func (b *bench) seq(n *node) (*Phase, error) {
	ph, err := b.writes(n, 1, b.seqN, false)
	if err != nil {
		return nil, fmt.Errorf("sequential writes through %s: %w", n.Name, err)
	}
	b.log("  through %s: p50 %.2f ms, p99 %.2f ms (%.1f writes/s)", n.Name, ph.P50Ms, ph.P99Ms, ph.PerSec)
	return &ph, nil
}

// writes creates rooms through n: total of them (0: for the window).
func (b *bench) writes(n *node, clients, total int, timeline bool) (Phase, error) {
	per := make([][]string, clients)
	op := func(w, _ int) error {
		var room struct {
			RoomID string `json:"roomId"`
		}
		err := n.do("POST", "/v2/rooms", b.token, b.body(int(b.serial.Add(1))), func(body []byte) error {
			if err := json.Unmarshal(body, &room); err != nil || room.RoomID == "" {
				return fmt.Errorf("answer without a roomId: %.200s", body)
			}
			return nil
		})
		if err == nil {
			per[w] = append(per[w], room.RoomID)
		}
		return err
	}
	sp := spec{via: n, clients: clients, total: total, window: b.window, op: op, timeline: timeline, roomsBefore: b.rooms}
	if timeline {
		sp.rate = b.fillRate
		sp.progress = func(rooms int, perSec float64) {
			b.log("  ... %d rooms, %.0f creates/s over the last 30 s", rooms, perSec)
		}
	}
	ph, err := b.ld.run(sp)
	// Rooms created before an error still exist.
	for _, ids := range per {
		b.ids = append(b.ids, ids...)
		b.rooms += len(ids)
	}
	return ph, err
}

func (b *bench) reads(what string, clients int, op func(w, i int) error) (Phase, error) {
	ph, err := b.ld.run(spec{via: b.leader, clients: clients, window: b.window, op: op})
	if err != nil {
		return ph, fmt.Errorf("%s at %d rooms: %w", what, b.rooms, err)
	}
	b.log("%s at %d rooms: %.0f/s, p50 %.2f ms, p99 %.2f ms (client CPU %.0f %%)", what, b.rooms, ph.PerSec, ph.P50Ms, ph.P99Ms, ph.ClientCPUPct)
	return ph, nil
}

// getOp reads random rooms of this run and checks each answer is the room asked for.
func (b *bench) getOp() func(w, i int) error {
	rngs := make([]*rand.Rand, b.clients)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 42))
	}
	return func(w, _ int) error {
		id := b.ids[rngs[w].IntN(len(b.ids))]
		want := []byte(`"roomId":"` + id + `"`)
		return b.leader.do("GET", "/v2/rooms/"+id, b.token, nil, func(body []byte) error {
			if !bytes.Contains(body, want) {
				return fmt.Errorf("answer is not room %s: %.200s", id, body)
			}
			return nil
		})
	}
}

// listOp lists one page and checks total and page length: a page that is
// fast but wrong must not count. Every decodeEvery-th answer of each
// client is decoded in full (decodePage), the others checked by a scan
// (checkPage).
func (b *bench) listOp(page int) func(w, i int) error {
	total := b.rooms
	want := min(20, max(0, total-(page-1)*20))
	path := fmt.Sprintf("/v2/rooms?page=%d&perPage=20", page)
	return func(_, i int) error {
		return b.leader.do("GET", path, b.token, nil, func(body []byte) error {
			if i%decodeEvery == 0 {
				return decodePage(body, total, want)
			}
			return checkPage(body, total, want)
		})
	}
}

// decodeEvery: decoding a 12 KB page with encoding/json costs the client
// about as much CPU as the server spends answering it, so with the client
// on one core the list numbers measured the client. A scan of fifteen
// answers in sixteen and a full decode of the sixteenth catch every kind
// of wrong page (TestCheckPageRefusesWrongTotalsAndLengths).
const decodeEvery = 16

// checkPage checks a page by a scan: a JSON object whose data array comes
// first and holds want rooms (objects that start with "roomId", as the
// API writes them), and whose pageInfo's total is total.
func checkPage(body []byte, total, want int) error {
	rest, ok := bytes.CutPrefix(body, []byte(`{"data":[`))
	i := bytes.LastIndex(rest, []byte(`],"pageInfo":{`))
	if !ok || i < 0 || !bytes.HasSuffix(rest, []byte("}}")) {
		return fmt.Errorf("bad page: %.200s", body)
	}
	data, info := rest[:i], rest[i:]
	rooms := bytes.Count(data, []byte(`{"roomId":`))
	if rooms > 0 && !bytes.HasPrefix(data, []byte(`{"roomId":`)) || rooms == 0 && len(data) > 0 {
		return fmt.Errorf("bad page data: %.200s", data)
	}
	_, t, ok := bytes.Cut(info, []byte(`"total":`))
	if !ok {
		return fmt.Errorf("page without total: %.200s", info)
	}
	t = t[:len(t)-2]
	if j := bytes.IndexByte(t, ','); j >= 0 {
		t = t[:j]
	}
	got, err := strconv.Atoi(string(t))
	if err != nil {
		return fmt.Errorf("page total %q: %v", t, err)
	}
	if got != total || rooms != want {
		return fmt.Errorf("page has total %d and %d rooms, want total %d and %d rooms", got, rooms, total, want)
	}
	return nil
}

// decodePage checks a page as checkPage does, by decoding it.
func decodePage(body []byte, total, want int) error {
	var p struct {
		PageInfo struct {
			Total int `json:"total"`
		} `json:"pageInfo"`
		Data []struct {
			RoomID string `json:"roomId"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("bad page: %v", err)
	}
	for _, r := range p.Data {
		if r.RoomID == "" {
			return fmt.Errorf("page has a room without a roomId")
		}
	}
	if p.PageInfo.Total != total || len(p.Data) != want {
		return fmt.Errorf("page has total %d and %d rooms, want total %d and %d rooms", p.PageInfo.Total, len(p.Data), total, want)
	}
	return nil
}

// mixed runs GET at some clients while the others list page 1: half
// and half, or -list-clients listing when that is fewer.
func (b *bench) mixed() (get, list *Phase, err error) {
	listers := min(b.listClients, b.clients/2)
	half := b.clients - listers
	var g errgroup.Group
	var gp, lp Phase
	g.Go(func() (err error) {
		gp, err = b.ld.run(spec{via: b.leader, clients: half, window: b.window, op: b.getOp()})
		return err
	})
	g.Go(func() (err error) {
		lp, err = b.ld.run(spec{via: b.leader, clients: listers, window: b.window, op: b.listOp(1)})
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, nil, fmt.Errorf("GET while listing: %w", err)
	}
	b.log("GET at %d clients while %d list page 1: p50 %.2f ms, p99 %.2f ms (list: %.0f/s)", half, listers, gp.P50Ms, gp.P99Ms, lp.PerSec)
	return &gp, &lp, nil
}

// total is the key's room count from the list API.
func (b *bench) total(n *node) (int, error) {
	var total int
	err := n.do("GET", "/v2/rooms?page=1&perPage=1", b.token, nil, func(body []byte) error {
		var p struct {
			PageInfo struct {
				Total int `json:"total"`
			} `json:"pageInfo"`
		}
		err := json.Unmarshal(body, &p)
		total = p.PageInfo.Total
		return err
	})
	return total, err
}

func (b *bench) memory() (Memory, error) {
	m := Memory{Rooms: b.rooms, RSS: map[string]int64{}, HeapInuse: map[string]int64{}, DataBytes: map[string]int64{}}
	for _, n := range b.nodes {
		r, err := rss(n.PID)
		if err != nil {
			return m, fmt.Errorf("%s: %w", n.Name, err)
		}
		m.RSS[n.Name] = r
		if h, ok := heapInuse(n); ok {
			m.HeapInuse[n.Name] = h
		}
		m.DataBytes[n.Name] = dirBytes(n.Data)
	}
	return m, nil
}

// heapInuse scrapes go_memstats_heap_inuse_bytes from the node's /metrics.
func heapInuse(n *node) (int64, bool) {
	var v float64
	found := false
	_ = n.do("GET", "/metrics", "", nil, func(body []byte) error {
		for _, line := range bytes.Split(body, []byte("\n")) {
			if rest, ok := bytes.CutPrefix(line, []byte("go_memstats_heap_inuse_bytes ")); ok {
				if f, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64); err == nil {
					v, found = f, true
				}
			}
		}
		return nil
	})
	return int64(v), found
}

// waitSnapshots waits until every node's newest snapshot covers cover of
// the index it had applied when the wait began, or until wait has passed.
func (b *bench) waitSnapshots(wait time.Duration, cover float64) map[string]*SnapshotWait {
	out := map[string]*SnapshotWait{}
	for _, n := range b.nodes {
		sw := &SnapshotWait{}
		if h, err := n.health(); err == nil {
			sw.AppliedIndex = h.AppliedIndex
		}
		out[n.Name] = sw
	}
	b.log("waiting up to %v for snapshots covering %.0f %% of the log", wait, 100*cover)
	start := time.Now()
	for {
		pending := 0
		for _, n := range b.nodes {
			sw := out[n.Name]
			if s, ok := newestSnapshot(n.Data); ok {
				sw.Snapshot, sw.Found = s, true
			}
			sw.WaitedSeconds = time.Since(start).Seconds()
			if !sw.Found || float64(sw.Index) < cover*float64(sw.AppliedIndex) {
				pending++
			}
		}
		if pending == 0 || time.Since(start) >= wait {
			for name, sw := range out {
				b.log("%s: snapshot at index %d of %d applied, %d bytes (found: %v)", name, sw.Index, sw.AppliedIndex, sw.Bytes, sw.Found)
			}
			return out
		}
		time.Sleep(time.Second)
	}
}

// runIdle waits until every node has applied the same index and it has
// not moved for a second: then the nodes can be stopped with identical
// logs and seeded alike.
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	var nodes nodeList
	fs.Var(&nodes, "node", "name=URL,PID,DATADIR (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	var last uint64
	var since time.Time
	for time.Now().Before(deadline) {
		var idx []uint64
		for _, n := range nodes {
			h, err := n.health()
			if err != nil {
				// Starting (replaying its log) or electing: wait.
				idx = append(idx, 0)
				continue
			}
			idx = append(idx, h.AppliedIndex)
		}
		same := idx[0] != 0
		for _, i := range idx {
			same = same && i == idx[0]
		}
		switch {
		case !same || idx[0] != last:
			last, since = idx[0], time.Now()
		case time.Since(since) >= time.Second:
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the nodes did not settle on one applied index within 2 minutes")
}

func runLeader(args []string) error {
	fs := flag.NewFlagSet("leader", flag.ContinueOnError)
	var nodes nodeList
	fs.Var(&nodes, "node", "name=URL,PID,DATADIR (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := findLeader(nodes, 60*time.Second)
	if err != nil {
		return err
	}
	fmt.Println(l.Name)
	return nil
}

// runReady measures restart-to-ready: the caller started the node's
// process again at -since (unix ns); this polls /healthz until it answers
// 200, then checks through that node that the last room of the run and
// the room count are there, and adds the result to the run's JSON file.
func runReady(args []string) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	var nodes nodeList
	fs.Var(&nodes, "node", "the restarted node: name=URL,PID,DATADIR")
	since := fs.Int64("since", 0, "when the process was started (unix nanoseconds)")
	key := fs.String("api-key", "", "API key")
	secret := fs.String("api-secret", "", "API secret")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after")
	file := fs.String("json", "", "the run's result file")
	snapDir := fs.String("snapshot-before", "", "data directory whose newest snapshot was on disk at the kill (recorded)")
	seededStart := fs.Bool("seeded-start", false, "a start after ctlbench seed: add to the run's restarts, check the newest seeded room and the seed's count")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(nodes) != 1 || *since == 0 || *file == "" {
		return errors.New("one -node, -since and -json are required")
	}
	var res Result
	if err := readJSON(*file, &res); err != nil {
		return err
	}
	n := nodes[0]
	start := time.Unix(0, *since)
	rs := &Restart{Node: n.Name}
	if *snapDir != "" {
		if s, ok := newestSnapshot(*snapDir); ok {
			rs.SnapshotBefore = &s
		}
	}
	for {
		if _, err := n.health(); err == nil {
			break
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", n.PID)); err != nil {
			return fmt.Errorf("%s (pid %d) exited before it was ready", n.Name, n.PID)
		}
		if time.Since(start) > *timeout {
			return fmt.Errorf("%s not ready after %v", n.Name, *timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rs.ReadySeconds = time.Since(start).Seconds()
	tok, err := mintToken(*key, *secret, time.Now(), time.Hour)
	if err != nil {
		return err
	}
	b := &bench{token: tok}
	lastRoom, rooms := res.LastRoom, res.Rooms
	if *seededStart {
		if len(res.Seeds) == 0 {
			return errors.New("-seeded-start: the result file has no seed")
		}
		sd := res.Seeds[len(res.Seeds)-1]
		lastRoom, rooms = seedRoomID(sd.Seeded-1), sd.Rooms
	}
	if lastRoom != "" {
		if err := n.do("GET", "/v2/rooms/"+lastRoom, tok, nil, nil); err != nil {
			return fmt.Errorf("after the restart: %w", err)
		}
	}
	if rs.RoomsAfter, err = b.total(n); err != nil {
		return err
	}
	if rs.RoomsAfter != rooms {
		return fmt.Errorf("after the restart %s lists %d rooms, want %d", n.Name, rs.RoomsAfter, rooms)
	}
	if rs.RSSAfter, err = rss(n.PID); err != nil {
		return err
	}
	rs.Rooms = rooms
	if *seededStart {
		res.Restarts = append(res.Restarts, rs)
	} else {
		res.Restart = rs
	}
	fmt.Fprintf(os.Stderr, "   %s ready %.2f s after its start, %d rooms, RSS %d MB\n", n.Name, rs.ReadySeconds, rs.RoomsAfter, rs.RSSAfter>>20)
	return writeJSON(*file, &res)
}

func machine() string {
	// runtime.NumCPU would count only the CPU this process is pinned to.
	model, cpus := "", 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok && model == "" {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
			if strings.HasPrefix(line, "processor") {
				cpus++
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%d CPUs, %s, %s, load average at start %s", cpus, model, runtime.Version(), strings.Fields(string(load) + " ?")[0])
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// dataDevice is the block device of the first node's data directory ("" if
// it cannot be found: the device column stays empty).
func dataDevice(nodes nodeList) string {
	if len(nodes) == 0 || nodes[0].Data == "" {
		return ""
	}
	dev, err := deviceOf(nodes[0].Data)
	if err != nil {
		return ""
	}
	if _, err := deviceWrites(dev); err != nil {
		return ""
	}
	return dev
}
