package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/meridian-video/meridian/shared/egressapi"
)

// Benchmarks for the store at scale. Numbers are only meaningful as ratios
// within one run (the machine is shared); docs/state-store.md has them.
//
//	go test -run '^$' -bench . -benchtime 2000x ./control/state/
//
// -short skips the 1M-record sizes.

const benchUser = "64b0c2f1a9e4d3b2c1a0f9e8"

// benchFSM grows one FSM through Apply, as a replica would.
type benchFSM struct {
	*FSM
	index uint64
	rooms int
	at    time.Time // the latest request time applied (BenchmarkApplyCreateRequest)
}

func newBenchFSM() *benchFSM { return &benchFSM{FSM: NewFSM(nil)} }

func (f *benchFSM) apply(tb testing.TB, ct CommandType, body any) {
	b, err := Encode(ct, body)
	if err != nil {
		tb.Fatal(err)
	}
	f.index++
	if r, ok := f.Apply(&raft.Log{Index: f.index, Type: raft.LogCommand, Data: b}).(Result); ok && r.Err != nil {
		tb.Fatal(r.Err)
	}
}

// benchRoom is a room as a VideoSDK customer creates one per meeting: a
// webhook config with the usual events, every other room with a customRoomId.
func benchRoom(n int) Room {
	r := Room{ID: fmt.Sprintf("%024x", n+1), RoomID: fmt.Sprintf("%04x-%04x-%04x", n>>32&0xffff, n>>16&0xffff, n&0xffff), UserID: benchUser,
		APIKey: "9f0c3d4e-2b1a-4c5d-8e7f-6a5b4c3d2e1f", CreatedAt: t0.Add(time.Duration(n) * time.Second), UpdatedAt: t0.Add(time.Duration(n) * time.Second),
		Webhook: &RoomWebhook{EndPoint: "https://hooks.customer.example/videosdk/webhook", Events: []string{"participant-joined", "participant-left", "session-started", "session-ended"}}}
	if n%2 == 0 {
		r.CustomRoomID = fmt.Sprintf("meeting-%08d", n)
	}
	return r
}

func (f *benchFSM) growRooms(tb testing.TB, n int) {
	for ; f.rooms < n; f.rooms++ {
		f.apply(tb, CmdCreateRoom, CreateRoom{Room: benchRoom(f.rooms)})
	}
}

var bigFSM *benchFSM // shared by the 1M benchmarks of one run

func roomsFSM(tb testing.TB, n int) *benchFSM {
	if bigFSM == nil {
		bigFSM = newBenchFSM()
	}
	bigFSM.growRooms(tb, n)
	return bigFSM
}

// BenchmarkRoomsPage: GET /v2/rooms?page=1&perPage=20 as the store answers
// it (index walk, 20 copies, counter total) with 1k, 100k and 1M rooms in
// the project; the middle and last pages for comparison.
func BenchmarkRoomsPage(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		if n > 100_000 && testing.Short() {
			continue
		}
		f := roomsFSM(b, n)
		for _, pg := range []struct {
			name string
			p    Page
		}{{"page1", PageOf(1, 20)}, {"middle", PageOf(n/40, 20)}, {"last", PageOf(n/20, 20)}} {
			b.Run(fmt.Sprintf("rooms=%d/%s", n, pg.name), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuNow()
				defer func() { b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/op") }()
				for i := 0; i < b.N; i++ {
					f.Read(func(s *Store) {
						rooms, total := s.RoomsPage(benchUser, pg.p)
						if len(rooms) != 20 || total != n {
							b.Fatalf("%d rooms of %d", len(rooms), total)
						}
					})
				}
			})
		}
	}
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// endedSessions gives each of the first n bench rooms a session that
// participants joined and left (their edge event ids, audits and, for a
// room with a webhook, deliveries), as a day of meetings leaves them.
func (f *benchFSM) endedSessions(b *testing.B, n, participants int) {
	for i := 0; i < n; i++ {
		room, at := benchRoom(i).RoomID, t0.Add(time.Duration(i)*time.Second)
		for p := 0; p < participants; p++ {
			f.apply(b, CmdParticipantJoin, ParticipantJoin{EventID: fmt.Sprintf("j-%d-%d", i, p), RoomID: room, ParticipantID: fmt.Sprintf("prt%05d", p), Name: "Participant Name",
				EdgeID: "edge-eu-1", Region: "eu-west", At: at, NewSessionID: fmt.Sprintf("%024x", 1<<40+i), NewDocID: fmt.Sprintf("%024x", 1<<41+i*64+p),
				IDs: []string{fmt.Sprintf("%024x", 1<<42+i*64+2*p), fmt.Sprintf("%024x", 1<<42+i*64+2*p+1)}})
		}
		for p := 0; p < participants; p++ {
			f.apply(b, CmdParticipantLeave, ParticipantLeave{EventID: fmt.Sprintf("l-%d-%d", i, p), RoomID: room, ParticipantID: fmt.Sprintf("prt%05d", p), EdgeID: "edge-eu-1",
				At: at.Add(time.Minute), IDs: []string{fmt.Sprintf("%024x", 1<<43+i*64+2*p), fmt.Sprintf("%024x", 1<<43+i*64+2*p+1), fmt.Sprintf("%024x", 1<<44+i)}})
		}
	}
}

// BenchmarkMemory reports live heap per record after inserting 100k of
// each (20k with -short) through Apply: a room with its webhook config; a session (one
// participant, its audit and the two edge event ids of its join and
// leave); each further participant (its timelog, two edge event ids); a
// webhook delivery.
func BenchmarkMemory(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 20_000 // the per-record figures move little; the session runs take minutes at 100k on a shared machine
	}
	for _, custom := range []bool{false, true} {
		b.Run(fmt.Sprintf("room/customRoomId=%v", custom), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				f := newBenchFSM()
				before := heapAfterGC()
				for j := 0; j < n; j++ {
					r := benchRoom(j)
					if r.CustomRoomID == "" && custom {
						r.CustomRoomID = fmt.Sprintf("meeting-%08d", j)
					} else if !custom {
						r.CustomRoomID = ""
					}
					f.apply(b, CmdCreateRoom, CreateRoom{Room: r})
				}
				b.ReportMetric(float64(heapAfterGC()-before)/float64(n), "bytes/room")
				runtime.KeepAlive(f)
			}
		})
	}
	sessions := func(b *testing.B, participants int, hook bool) float64 {
		f := newBenchFSM()
		for i := 0; i < n; i++ {
			r := benchRoom(i)
			if !hook {
				r.Webhook = nil
			}
			f.apply(b, CmdCreateRoom, CreateRoom{Room: r})
		}
		before := heapAfterGC()
		f.endedSessions(b, n, participants)
		used := float64(heapAfterGC() - before)
		runtime.KeepAlive(f)
		return used / float64(n)
	}
	b.Run("session", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			one := sessions(b, 1, false)
			b.ReportMetric(one, "bytes/session")
			b.ReportMetric((sessions(b, 5, false)-one)/4, "bytes/participant")
		}
	})
	b.Run("delivery", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			// One participant with a webhook: four deliveries per session.
			b.ReportMetric((sessions(b, 1, true)-sessions(b, 1, false))/4, "bytes/delivery")
		}
	})
}

// BenchmarkSnapshot1M: snapshot size, Persist time and Restore time with a
// million rooms (written to and read from a file, as Raft's file snapshot
// store does; the restore into a heap holding nothing else, as at a
// restart). cpu-ns/op is the process's CPU (GC included), which a
// shared machine does not inflate as it does the wall time.
func BenchmarkSnapshot1M(b *testing.B) {
	if testing.Short() {
		b.Skip("1M rooms")
	}
	f := roomsFSM(b, 1_000_000)
	path := filepath.Join(b.TempDir(), "snap.json")
	b.Run("persist", func(b *testing.B) {
		runtime.GC()
		cpu0 := cpuNow()
		defer func() { b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/op") }()
		for i := 0; i < b.N; i++ {
			snap, _ := f.Snapshot()
			out, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := snap.Persist(&fileSink{File: out}); err != nil {
				b.Fatal(err)
			}
			st, _ := os.Stat(path)
			b.ReportMetric(float64(st.Size())/1e6, "MB")
		}
	})
	// A restarting node restores into an empty heap: the million rooms
	// built above are let go first, or every collection during the restore
	// would mark them too.
	f, bigFSM = nil, nil
	b.Run("restore", func(b *testing.B) {
		runtime.GC()
		cpu0 := cpuNow()
		defer func() { b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/op") }()
		for i := 0; i < b.N; i++ {
			in, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			g := NewFSM(nil)
			if err := g.Restore(in); err != nil {
				b.Fatal(err)
			}
			g.Read(func(s *Store) {
				if s.RoomCount() != 1_000_000 {
					b.Fatalf("%d rooms restored", s.RoomCount())
				}
			})
		}
	})
}

type fileSink struct{ *os.File }

func (s *fileSink) ID() string    { return "file" }
func (s *fileSink) Cancel() error { return s.File.Close() }

// BenchmarkApplyCreateRoom: one CreateRoom command applied (decode, checks,
// four index inserts, counters, commit) on a store of 100k and of 1M rooms;
// gc-cpu-ns/op is the GC's share (runtime/metrics), which grows with the
// live heap it has to mark.
func BenchmarkApplyCreateRoom(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		if n > 100_000 && testing.Short() {
			continue
		}
		b.Run(fmt.Sprintf("rooms=%d", n), func(b *testing.B) {
			f := roomsFSM(b, n)
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, gc0 := cpuNow(), gcCPU()
			defer func() {
				b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(gcCPU()-gc0)/float64(b.N), "gc-cpu-ns/op")
			}()
			for i := 0; i < b.N; i++ {
				f.apply(b, CmdCreateRoom, CreateRoom{Room: benchRoom(f.rooms)})
				f.rooms++
			}
		})
	}
}

// gcCPU is the GC's CPU time so far as the runtime estimates it (it counts
// the idle-priority mark workers' wall time, so on a busy machine it can
// exceed the process's real CPU).
func gcCPU() time.Duration {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return time.Duration(s[0].Value.Float64() * 1e9)
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMarkRooms: what a collection costs with 200k rooms shaped as
// production makes them (time-ordered document ids, random room ids) in
// the state: live bytes and objects per room, and the wall time of a full
// collection with nothing else running (the best of five). A control
// node's collector marks this heap on every cycle, so per cycle its work
// grows with the objects as much as with the bytes.
func BenchmarkMarkRooms(b *testing.B) {
	n := 200_000
	if testing.Short() {
		n = 50_000
	}
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		heapAfterGC()
		runtime.ReadMemStats(&before)
		f := newBenchFSM()
		for ; f.rooms < n; f.rooms++ {
			f.apply(b, CmdCreateRoom, CreateRoom{Room: orderedBenchRoom(f.rooms)})
		}
		heapAfterGC()
		runtime.ReadMemStats(&after)
		best := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			runtime.GC()
			best = min(best, time.Since(start))
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/room")
		b.ReportMetric(float64(after.HeapObjects-before.HeapObjects)/float64(n), "objects/room")
		b.ReportMetric(float64(best.Nanoseconds())/float64(n), "gc-ns/room")
		runtime.KeepAlive(f)
	}
}

// BenchmarkApplyCreateRequest: a room create as a cluster applies it, on
// every node: CreateRoom wrapped in a Request (the request record kept,
// the result encoded, old records evicted), eight entries per ApplyBatch
// (about what Raft commits together at 16 writing clients), with 100k
// rooms in the store and the retry records at their count bound, as they
// are after a few seconds at 2,000 creates/s. Figures are per create;
// cpu-ns/op (the process's CPU, GC included) is the one a shared machine
// disturbs least.
//
// ids=sequential numbers the document ids, room ids and request ids (the
// benchmark's first form, kept so that its figures compare); ids=random
// draws them all at random (as the API and the cluster did until document
// and request ids got a time prefix): a random key copies a path of its own
// from the root of the index, where consecutive keys share theirs within a
// transaction; ids=ordered draws them as they are drawn now (document ids
// start with their second, request ids with their nanosecond, room ids
// stay random).
func BenchmarkApplyCreateRequest(b *testing.B) {
	b.Run("ids=sequential", func(b *testing.B) { benchApplyCreateRequest(b, roomsFSM(b, 100_000), benchRoom, seqRequestID) })
	b.Run("ids=random", func(b *testing.B) {
		benchApplyCreateRequest(b, prefilled(b, &randomFSM, randomBenchRoom), randomBenchRoom, randomRequestID)
	})
	b.Run("ids=ordered", func(b *testing.B) {
		benchApplyCreateRequest(b, prefilled(b, &orderedFSM, orderedBenchRoom), orderedBenchRoom, orderedRequestID)
	})
}

// orderedBenchRoom: a document id that starts with its creation second
// (5,000 creates a second), then random.
func orderedBenchRoom(n int) Room {
	r := randomBenchRoom(n)
	g := rand.New(rand.NewPCG(uint64(n), 3))
	r.ID = fmt.Sprintf("%08x%016x", 0x6900_0000+n/5000, g.Uint64())
	return r
}

func orderedRequestID(n int) string {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	return fmt.Sprintf("r-%016x%016x", 0x1880_0000_0000_0000+uint64(n)*200_000, r.Uint64())
}

// 100k rooms with random, and with ordered, ids; each shared by the runs
// of one process.
var randomFSM, orderedFSM *benchFSM

// prefilled returns *shared, first filled with 100k rooms made by room.
func prefilled(tb testing.TB, shared **benchFSM, room func(int) Room) *benchFSM {
	if *shared == nil {
		f := newBenchFSM()
		for ; f.rooms < 100_000; f.rooms++ {
			f.apply(tb, CmdCreateRoom, CreateRoom{Room: room(f.rooms)})
		}
		*shared = f
	}
	return *shared
}

func seqRequestID(n int) string { return fmt.Sprintf("r-%032x", n) }

// randomRequestID is shaped as control/cluster's nextRequestID makes one
// (deterministic per n, so every run applies the same log).
func randomRequestID(n int) string {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	return fmt.Sprintf("r-%016x%016x", r.Uint64(), r.Uint64())
}

// randomBenchRoom is benchRoom with ids shaped as shared/ids draws them: a
// 24-hex document id and an abcd-efgh-ijkl room id over [a-z0-9].
func randomBenchRoom(n int) Room {
	r := benchRoom(n)
	g := rand.New(rand.NewPCG(uint64(n), 2))
	r.ID = fmt.Sprintf("%016x%08x", g.Uint64(), g.Uint32())
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	var id [14]byte
	for i := range id {
		id[i] = alnum[g.IntN(len(alnum))]
	}
	id[4], id[9] = '-', '-'
	r.RoomID = string(id[:])
	return r
}

func benchApplyCreateRequest(b *testing.B, f *benchFSM, room func(int) Room, requestID func(int) string) {
	const batchLen = 8
	at := t0.Add(30 * 24 * time.Hour) // after every other record of the shared FSM
	if f.at.After(at) {
		at = f.at
	}
	defer func() { f.at = at }()
	entry := func(n int) *raft.Log {
		body, err := json.Marshal(CreateRoom{Room: room(n)})
		if err != nil {
			b.Fatal(err)
		}
		at = at.Add(500 * time.Microsecond)
		data, err := Encode(CmdRequest, Request{ID: requestID(n), At: at, Type: CmdCreateRoom, Body: body})
		if err != nil {
			b.Fatal(err)
		}
		f.index++
		return &raft.Log{Index: f.index, Type: raft.LogCommand, Data: data}
	}
	applyAll := func(logs []*raft.Log) {
		for len(logs) > 0 {
			n := min(batchLen, len(logs))
			for _, r := range f.ApplyBatch(logs[:n]) {
				if r, ok := r.(Result); !ok || r.Err != nil {
					b.Fatalf("apply: %v", r)
				}
			}
			logs = logs[n:]
		}
	}
	var fill []*raft.Log // the retry records up to their bound
	for range MaxRetryRecords {
		fill = append(fill, entry(f.rooms))
		f.rooms++
	}
	applyAll(fill)
	logs := make([]*raft.Log, b.N)
	for i := range logs {
		logs[i] = entry(f.rooms)
		f.rooms++
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, gc0 := cpuNow(), gcCPU()
	applyAll(logs)
	b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(gcCPU()-gc0)/float64(b.N), "gc-cpu-ns/op")
}

// BenchmarkProposeCreate is what the node a client called spends encoding
// one room create for the log (cluster.Node.Apply): the command body, then
// the request envelope around it. encoding-json is how it was done before
// MarshalBody and the envelope appender; the bytes are the same
// (TestEncodeMatchesEncodingJSON).
func BenchmarkProposeCreate(b *testing.B) {
	room := benchRoom(7)
	at := t0.Add(time.Second)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			body, err := json.Marshal(CreateRoom{Room: room})
			if err != nil {
				b.Fatal(err)
			}
			env, err := json.Marshal(Request{ID: "0123456789abcdef01234567", At: at, Type: CmdCreateRoom, Body: body})
			if err != nil {
				b.Fatal(err)
			}
			_ = append([]byte{byte(CmdRequest)}, env...)
		}
	})
	for _, compact := range []bool{true, false} {
		b.Run(fmt.Sprintf("appenders,compact=%v", compact), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				body, err := MarshalBody(CreateRoom{Room: room})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Encode(CmdRequest, Request{ID: "0123456789abcdef01234567", At: at, Type: CmdCreateRoom, Body: body, Compact: compact}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRestoreHistory: Restore of a store whose history, not its
// rooms, is most of the snapshot: 50k rooms with a webhook, each with an
// ended session of two participants (sessions, their audits and edge
// event ids, four webhook deliveries per participant), as a customer's
// state looks after a day of meetings.
func BenchmarkRestoreHistory(b *testing.B) {
	n := 50_000
	if testing.Short() {
		n = 5_000
	}
	f := newBenchFSM()
	for i := 0; i < n; i++ {
		f.apply(b, CmdCreateRoom, CreateRoom{Room: benchRoom(i)})
	}
	f.endedSessions(b, n, 2)
	snap, _ := f.Snapshot()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		b.Fatal(err)
	}
	raw := sink.Bytes()
	var sessions int
	f.Read(func(s *Store) { sessions = len(all[*Session](s.iter(tSessions, "id", false))) })
	f = nil
	runtime.GC()
	b.ResetTimer()
	cpu0 := cpuNow()
	defer func() { b.ReportMetric(float64(cpuNow()-cpu0)/float64(b.N), "cpu-ns/op") }()
	for i := 0; i < b.N; i++ {
		g := NewFSM(nil)
		if err := g.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
			b.Fatal(err)
		}
		g.Read(func(s *Store) {
			if got := len(all[*Session](s.iter(tSessions, "id", false))); got != sessions || got != n {
				b.Fatalf("%d sessions restored, %d persisted, %d made", got, sessions, n)
			}
		})
	}
	b.ReportMetric(float64(len(raw))/1e6, "MB")
}

// BenchmarkFilteredPages: page 1 of lists filtered the way the API offers,
// with 1k and 100k records in the project: the delivery log by event type
// (a quarter of it) and by endpoint URL, sessions by a date range (half of
// them, one started every second), and a project's participant recordings
// (alone, and by state). Each should cost the same at both sizes, except
// the date range: its ends walk an hour of sessions, up to 3,600 here.
func BenchmarkFilteredPages(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		f := newBenchFSM()
		f.growRooms(b, n/4)
		f.endedSessions(b, n/4, 1) // four deliveries each
		for i := 0; i < n; i++ {
			f.apply(b, CmdCreateJob, CreateJob{Job: Job{ID: fmt.Sprintf("job-%08d", i), Kind: egressapi.KindParticipant, UserID: benchUser, APIKey: "k",
				RoomID: benchRoom(i % (n / 4)).RoomID, ParticipantID: fmt.Sprintf("prt%05d", i/(n/4)), CreatedAt: t0, UpdatedAt: t0}})
		}
		for _, c := range []struct {
			name string
			want int
			page func(s *Store) (int, int)
		}{
			{"deliveries/event", n / 4, func(s *Store) (int, int) {
				d, total := s.DeliveriesPage(DeliveryFilter{UserID: benchUser, EventType: "participant-left"}, PageOf(1, 20))
				return len(d), total
			}},
			{"deliveries/url", n, func(s *Store) (int, int) {
				d, total := s.DeliveriesPage(DeliveryFilter{UserID: benchUser, URL: "https://hooks.customer.example/videosdk/webhook"}, PageOf(1, 20))
				return len(d), total
			}},
			{"sessions/dateRange", n / 8, func(s *Store) (int, int) {
				// the middle half of the sessions, which started a second apart
				after, before := t0.Add(time.Duration(n/16)*time.Second), t0.Add(time.Duration(3*n/16-1)*time.Second)
				ss, total := s.SessionsPage(SessionFilter{UserID: benchUser, StartAfter: &after, StartBefore: &before}, PageOf(1, 20))
				return len(ss), total
			}},
			{"recordings", n, func(s *Store) (int, int) {
				j, total := s.JobsPage(JobFilter{UserID: benchUser, Kind: egressapi.KindParticipant}, PageOf(1, 20))
				return len(j), total
			}},
			{"recordings/state", n, func(s *Store) (int, int) {
				j, total := s.JobsPage(JobFilter{UserID: benchUser, Kind: egressapi.KindParticipant, State: egressapi.StateStarting}, PageOf(1, 20))
				return len(j), total
			}},
		} {
			b.Run(fmt.Sprintf("records=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					f.Read(func(s *Store) {
						if got, total := c.page(s); got != 20 || total != c.want {
							b.Fatalf("%d rows of %d, want 20 of %d", got, total, c.want)
						}
					})
				}
			})
		}
	}
}

// BenchmarkRoomHistoryViews: the views that read one session's or one
// job's deliveries (GET /v2/sessions/{id}/audit, a recording's webhook
// summary, 20 of them on a page of recordings) in a room that has held 250
// and 25,000 sessions (1k and 100k deliveries): the cost is the session's
// or job's own, not the room's history.
func BenchmarkRoomHistoryViews(b *testing.B) {
	for _, sessions := range []int{250, 25_000} {
		f := newBenchFSM()
		f.growRooms(b, 1)
		room := benchRoom(0).RoomID
		sessionID := func(i int) string { return fmt.Sprintf("%024x", 1<<40+i) }
		for i := 0; i < sessions; i++ {
			at := t0.Add(time.Duration(i) * time.Hour)
			f.apply(b, CmdParticipantJoin, ParticipantJoin{EventID: fmt.Sprintf("j-%d", i), RoomID: room, ParticipantID: "prt00000", Name: "Participant Name",
				EdgeID: "edge-eu-1", Region: "eu-west", At: at, NewSessionID: sessionID(i), NewDocID: fmt.Sprintf("%024x", 1<<41+i),
				IDs: []string{fmt.Sprintf("%024x", 1<<42+2*i), fmt.Sprintf("%024x", 1<<42+2*i+1)}})
			f.apply(b, CmdParticipantLeave, ParticipantLeave{EventID: fmt.Sprintf("l-%d", i), RoomID: room, ParticipantID: "prt00000", EdgeID: "edge-eu-1",
				At: at.Add(time.Minute), IDs: []string{fmt.Sprintf("%024x", 1<<43+2*i), fmt.Sprintf("%024x", 1<<43+2*i+1), fmt.Sprintf("%024x", 1<<44+i)}})
		}
		// A recording of the first session, started and stopped: its
		// lifecycle webhooks go to a URL of its own.
		job := Job{ID: "job-00000001", Kind: egressapi.KindComposite, UserID: benchUser, APIKey: "k", RoomID: room, SessionID: sessionID(0),
			WebhookURL: "https://hooks.customer.example/recordings", CreatedAt: t0, UpdatedAt: t0}
		f.apply(b, CmdCreateJob, CreateJob{Job: job})
		for seq, st := range []egressapi.State{egressapi.StateRunning, egressapi.StateStopped} {
			f.apply(b, CmdJobStatus, JobStatus{Status: egressapi.Status{ID: job.ID, State: st, Seq: uint64(seq + 1)}, At: t0})
		}
		b.Run(fmt.Sprintf("deliveries=%d/sessionAudit", 4*sessions), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				f.Read(func(s *Store) {
					if d := s.SessionDeliveries(sessionID(0)); len(d) < 4 {
						b.Fatalf("%d deliveries, want the session's 4 and its recording's", len(d))
					}
				})
			}
		})
		b.Run(fmt.Sprintf("deliveries=%d/jobWebhooks", 4*sessions), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				f.Read(func(s *Store) {
					if w := s.JobWebhooks(s.job(job.ID)); len(w) < 2 {
						b.Fatalf("%d webhooks, want the recording's start and stop", len(w))
					}
				})
			}
		})
	}
}

// BenchmarkAuditPage: the console's audit log at its bound (100,000
// entries), page 1 of 20 filtered by an actor with 1 % of the entries and
// by one route (1 %), by an action prefix that two routes share (2 %), and
// by both.
func BenchmarkAuditPage(b *testing.B) {
	f := newBenchFSM()
	for i := 0; i < MaxAuditEntries; i++ {
		action := []string{"GET /v2/rooms", "POST /v2/rooms", "GET /v2/sessions"}[i%3]
		switch i % 100 {
		case 7:
			action = "POST /v2/rooms/:roomId/deactivate"
		case 8:
			action = "DELETE /v2/recordings/:id"
		case 9:
			action = "DELETE /v2/rooms/:roomId/participants/:participantId"
		}
		f.apply(b, CmdRecordConsoleAudit, RecordConsoleAudit{Entry: AuditEntry{At: t0.Add(time.Duration(i) * time.Second), Actor: fmt.Sprintf("user%02d@example.com", i%100),
			Via: "oidc", Action: action, Status: 200}})
	}
	for _, c := range []struct {
		name string
		f    AuditFilter
		want int
	}{
		{"all", AuditFilter{}, MaxAuditEntries},
		{"actor", AuditFilter{Actor: "user42@example.com"}, MaxAuditEntries / 100},
		{"action", AuditFilter{Action: "DELETE /v2/recordings"}, MaxAuditEntries / 100},
		{"actionPrefix", AuditFilter{Action: "DELETE /v2/"}, MaxAuditEntries / 50},
		{"actor+action", AuditFilter{Actor: "user07@example.com", Action: "POST /v2/rooms/"}, MaxAuditEntries / 100},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				f.Read(func(s *Store) {
					if page, total := s.AuditPage(c.f, PageOf(1, 20)); len(page) != 20 || total != c.want {
						b.Fatalf("%d entries of %d, want 20 of %d", len(page), total, c.want)
					}
				})
			}
		})
	}
}

// BenchmarkMissedOrders: what a heartbeat costs the control node that
// answers it for the missed-orders check (state.MissedOrders), for an edge
// reporting 1,000 rooms among 100,000, each with an earlier session that
// ended and an ongoing one with two participants on the edge. One op is
// one heartbeat; ns per room is the op divided by 1,000.
func BenchmarkMissedOrders(b *testing.B) {
	const rooms, reported = 100_000, 1_000
	f := newBenchFSM()
	f.growRooms(b, rooms)
	id := 0
	next := func() string { id++; return fmt.Sprintf("%024x", 1<<40+id) }
	for n := 0; n < reported; n++ {
		room := benchRoom(n * (rooms / reported)).RoomID
		for s, at := range []time.Time{t0, t0.Add(time.Hour)} {
			for _, pid := range []string{"prt00000", "prt00001"} {
				f.apply(b, CmdParticipantJoin, ParticipantJoin{EventID: next(), RoomID: room, ParticipantID: pid, Name: "Participant Name",
					EdgeID: "edge-eu-1", Region: "eu-west", At: at, NewSessionID: next(), NewDocID: next(), IDs: []string{next(), next()}})
			}
			if s == 0 {
				for _, pid := range []string{"prt00000", "prt00001"} {
					f.apply(b, CmdParticipantLeave, ParticipantLeave{EventID: next(), RoomID: room, ParticipantID: pid, EdgeID: "edge-eu-1",
						At: at.Add(time.Minute), IDs: []string{next(), next(), next()}})
				}
			}
		}
	}
	since := t0.Add(time.Hour)
	ids := make([]string, reported)
	for n := range ids {
		ids[n] = benchRoom(n * (rooms / reported)).RoomID
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.Read(func(s *Store) {
			for _, room := range ids {
				if m := s.MissedOrders(room, "edge-eu-1", since); !m.ClosedAt.IsZero() || m.Removed != nil {
					b.Fatalf("orders for a room nobody closed: %+v", m)
				}
			}
		})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/reported, "ns/room")
}
