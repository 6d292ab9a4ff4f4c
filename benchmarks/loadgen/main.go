// Command loadgen measures SFU fan-out: one publisher sending VP8-shaped
// video and Opus-shaped audio (about 200 packets/s) to N receive-only
// subscribers, all pion PeerConnections on loopback, against Meridian, a
// trivial pion forwarder, LiveKit or Janus (same clients, same packets, same
// measurements; only the signaling differs). For each row it joins a fresh
// room through the server's own join flow and signaling, waits
// until every subscriber receives, then measures over a fixed window:
// forwarded packets/s, loss from sequence numbers, server CPU per forwarded
// packet (/proc/PID/stat) and server memory per subscriber (/proc/PID/status).
// Results are numbers, never pass/fail. See docs/benchmarks.md.
//
//	loadgen -url http://127.0.0.1:PORT -api-key K -api-secret S -pid PID -subs 10,50,100,250
//	loadgen baseline-server -http 127.0.0.1:PORT   # the trivial forwarder to compare with
//	loadgen -target baseline -url http://127.0.0.1:PORT -pid PID -subs 10,50
//	loadgen -target janus -url ws://127.0.0.1:PORT -pid PID -subs 50   # Janus VideoRoom
//	loadgen -target livekit -url http://127.0.0.1:PORT -api-key K -api-secret S ...  # needs the run.sh build
//	loadgen report results/*.json                  # comparison + one table from several runs
//	loadgen missing -label livekit -subs 50 -reason "..." -json f  # a server without numbers
//	loadgen cascade -mode cascade|single|failover ...  # multi-edge rows (benchmarks/cascade.sh)
//	loadgen cascade-report results/*-cascade/*.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meridian-video/meridian/benchmarks/procfs"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "baseline-server":
			if err := runBaselineServer(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "baseline-server:", err)
				os.Exit(1)
			}
			return
		case "freeport":
			// run.sh: print a free loopback TCP port (loadgen freeport), or
			// UDP port (loadgen freeport udp).
			if len(os.Args) > 2 && os.Args[2] == "udp" {
				pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					fmt.Fprintln(os.Stderr, "freeport:", err)
					os.Exit(1)
				}
				fmt.Println(pc.LocalAddr().(*net.UDPAddr).Port)
				_ = pc.Close()
				return
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				fmt.Fprintln(os.Stderr, "freeport:", err)
				os.Exit(1)
			}
			fmt.Println(ln.Addr().(*net.TCPAddr).Port)
			_ = ln.Close()
			return
		case "waitok":
			// cascade.sh: wait until GET URL answers 200 (loadgen waitok URL PID):
			// exit 1 after 20 s or as soon as process PID is gone.
			if len(os.Args) != 4 || !waitOK(os.Args[2], os.Args[3]) {
				os.Exit(1)
			}
			return
		case "cascade":
			if err := runCascade(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen cascade:", err)
				os.Exit(1)
			}
			return
		case "cascade-report":
			if err := runCascadeReport(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "cascade-report:", err)
				os.Exit(1)
			}
			return
		case "missing":
			if err := runMissing(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "missing:", err)
				os.Exit(1)
			}
			return
		case "report":
			if err := runReport(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "report:", err)
				os.Exit(1)
			}
			return
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	target, url, key, secret string
	pids                     []int // the server's processes (an edge and its control plane are two)
	serverCPU                int
	subs                     []int
	window, warmup, settle   time.Duration
	idle                     time.Duration
	feedback                 string
	concurrency              int
	probes                   int
	metricsURL               string
	jsonOut, label           string
	pprofURL, pprofDir       string
	shape                    mediaShape
	verbose                  bool
}

func run() error {
	var o options
	var subs, cpuprofile, pids string
	flag.StringVar(&o.target, "target", "meridian", "meridian (join API + signaling), baseline (loadgen baseline-server), janus (VideoRoom over WebSocket) or livekit (when built with benchmarks/peers/livekit.go.in)")
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "server base URL (janus: its WebSocket transport, ws://127.0.0.1:PORT)")
	flag.StringVar(&o.key, "api-key", "", "API key (meridian, livekit)")
	flag.StringVar(&o.secret, "api-secret", "", "API secret (meridian, livekit)")
	flag.StringVar(&pids, "pid", "", "server process id(s), comma-separated: CPU is summed over all (e.g. an edge and its control plane), memory is the first's (the media server's); empty: not measured")
	flag.IntVar(&o.serverCPU, "server-cpu", 0, "CPU the server is pinned to: report what else ran there (-1: skip)")
	flag.StringVar(&subs, "subs", "10,50,100,250", "comma-separated subscriber counts, one row each")
	flag.DurationVar(&o.window, "window", 10*time.Second, "measurement window per row")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "time between 'every subscriber receives' and the window")
	flag.DurationVar(&o.idle, "idle", 3*time.Second, "measure the server's CPU with the publisher alone for this long (0: skip)")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "pause after the publisher starts, and after a row ends")
	flag.StringVar(&o.feedback, "feedback", "rr,twcc", "RTCP the subscribers send, like a browser: comma list of rr, twcc, nack, or none")
	flag.IntVar(&o.concurrency, "join-concurrency", 16, "subscribers joining at once")
	flag.IntVar(&o.probes, "probes", 4, "subscribers that receive on a timestamping socket of their own, for the forwarding delay at the socket (arrival.go)")
	flag.StringVar(&o.metricsURL, "metrics", "", "Prometheus endpoint with Go runtime metrics (default <url>/metrics for meridian)")
	flag.StringVar(&o.jsonOut, "json", "", "write the rows as JSON to this file")
	flag.StringVar(&o.label, "label", "", "label stored with the rows (e.g. the server name)")
	flag.IntVar(&o.shape.FPS, "fps", 30, "video frames per second")
	flag.IntVar(&o.shape.PktsPerFrame, "pkts-per-frame", 5, "RTP packets per video frame")
	flag.IntVar(&o.shape.VideoBytes, "video-bytes", 1000, "video RTP payload size")
	flag.IntVar(&o.shape.AudioBytes, "audio-bytes", 100, "audio RTP payload size")
	flag.DurationVar(&o.shape.KeyEvery, "key-every", 2*time.Second, "key frame interval")
	flag.DurationVar(&o.shape.Pace, "pace", 0, "spread each video frame's packets over this long, as a browser's pacer does (0: back to back)")
	flag.StringVar(&o.pprofURL, "pprof", "", "server's net/http/pprof base URL (run.sh PROFILE=1): fetch CPU, allocs and mutex profiles over each window")
	flag.StringVar(&o.pprofDir, "pprof-dir", ".", "where -pprof profiles are written")
	flag.StringVar(&cpuprofile, "cpuprofile", "", "write the load generator's own CPU profile here")
	flag.BoolVar(&o.verbose, "v", false, "progress on stderr")
	flag.Parse()
	var err error
	if o.pids, err = parsePIDs(pids); err != nil {
		return err
	}
	for _, s := range strings.Split(subs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-subs: bad count %q", s)
		}
		o.subs = append(o.subs, n)
	}
	if o.label == "" {
		o.label = o.target
	}
	if o.shape.Pace < 0 || (o.shape.FPS > 0 && o.shape.Pace >= time.Second/time.Duration(o.shape.FPS)) {
		return fmt.Errorf("-pace %v: must be shorter than a frame (%v)", o.shape.Pace, time.Second/time.Duration(max(o.shape.FPS, 1)))
	}
	var srv server
	switch o.target {
	case "meridian":
		if o.key == "" || o.secret == "" {
			return errors.New("-api-key and -api-secret are required for -target meridian")
		}
		srv = signalServer{&apiJoiner{base: strings.TrimRight(o.url, "/"), key: o.key, secret: o.secret, http: &http.Client{Timeout: 15 * time.Second}}}
		if o.metricsURL == "" {
			o.metricsURL = strings.TrimRight(o.url, "/") + "/metrics"
		}
	case "baseline":
		srv = signalServer{&directJoiner{wsURL: "ws" + strings.TrimPrefix(strings.TrimRight(o.url, "/"), "http") + "/rtc"}}
	case "janus":
		srv = newJanusServer(o.url)
	default:
		mk, ok := peerServers[o.target]
		if !ok {
			return fmt.Errorf("-target %q: one of %s (livekit needs the overlay benchmarks/run.sh builds with)", o.target, knownTargets())
		}
		var err error
		if srv, err = mk(o); err != nil {
			return err
		}
	}
	// The generator allocates little per packet (pion's SRTP path does);
	// a larger GC target trades memory for CPU on the shared core.
	debug.SetGCPercent(400)
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	api, err := newAPI(o.feedback, o.verbose)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var rows []rowResult
	for _, n := range o.subs {
		r, err := runRow(ctx, api, srv, o, n)
		if err != nil {
			return fmt.Errorf("row N=%d: %w", n, err)
		}
		rows = append(rows, r)
		if o.verbose {
			printTable(os.Stderr, []rowResult{r})
		}
	}
	printReport(os.Stdout, rows)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// rowResult is one measured row.
type rowResult struct {
	Label    string     `json:"label"`
	Subs     int        `json:"subs"`
	Time     time.Time  `json:"time"`
	Window   float64    `json:"windowSeconds"`
	Shape    mediaShape `json:"shape"`
	Feedback string     `json:"feedback"`
	// Missing says why a server has no numbers for this row (not
	// installed, did not build or start, the row failed); the report
	// prints it instead of leaving the server out.
	Missing string `json:"missing,omitempty"`

	JoinSeconds float64 `json:"joinSeconds"` // first join → every subscriber receives
	// Where the join time goes: first join request → every subscriber's
	// signaling answered (Meridian: `joined`), → every subscriber read its
	// first media packet; and the generator's and the server's CPU over the
	// whole join (near 100 % of the generator's core: it, not the server,
	// set the pace).
	JoinSignaledSeconds float64 `json:"joinSignaledSeconds"`
	JoinMediaSeconds    float64 `json:"joinMediaSeconds"`
	JoinGenCPUPct       float64 `json:"joinGeneratorCpuPct"`
	JoinServerCPUPct    float64 `json:"joinServerCpuPct"`
	// Write system calls the server made over the join (its signaling
	// sockets' writes; media goes out with sendmsg and is not counted),
	// and read calls the generator made (its signaling sockets' reads).
	JoinServerWrites uint64 `json:"joinServerWrites"`
	JoinGenReads     uint64 `json:"joinGeneratorReads"`

	SentPPS     float64 `json:"sentPps"` // publisher packets/s
	FwdPPS      float64 `json:"forwardedPps"`
	DeliveryPct float64 `json:"deliveryPct"` // forwarded / (sent × N)
	LossPct     float64 `json:"lossPct"`     // sequence gaps / expected
	Late        uint64  `json:"late"`        // out-of-order or duplicate packets
	// Per kind and per subscriber: gaps the edge never numbered (a stalled
	// forwarder) are invisible to LossPct but show here.
	VideoDeliveryPct  float64 `json:"videoDeliveryPct"`
	AudioDeliveryPct  float64 `json:"audioDeliveryPct"`
	MinSubDeliveryPct float64 `json:"minSubDeliveryPct"`
	StarvedSubs       int     `json:"starvedSubs"` // subscribers below 90 % delivery

	IdleCPUPct     float64 `json:"idleCpuPct"` // server with the publisher only
	ServerCPUPct   float64 `json:"serverCpuPct"`
	ServerUsPerPkt float64 `json:"serverUsPerPkt"` // all server CPU / forwarded packets
	// ServerKernelUsPerPkt is the system part of ServerUsPerPkt: on
	// loopback mostly the per-datagram UDP work of sending and delivering
	// (the same datagrams for every server), and whatever else the server
	// makes the kernel do, such as switching between its threads.
	ServerKernelUsPerPkt float64 `json:"serverKernelUsPerPkt,omitempty"`
	MarginalUsPerPkt     float64 `json:"marginalUsPerPkt"` // (CPU − idle CPU) / forwarded packets
	RSSBefore            int64   `json:"rssBefore"`
	RSSAfter             int64   `json:"rssAfter"`
	RSSPerSubKB          float64 `json:"rssPerSubKB"`
	HeapPerSubKB         float64 `json:"heapPerSubKB,omitempty"`
	GoroutinesSub        float64 `json:"goroutinesPerSub,omitempty"`
	ServerThreads        int     `json:"serverThreads"`

	GenCPUPct float64 `json:"generatorCpuPct"`
	// OtherCPUPct is the server's core busy with anything but the server
	// (other processes, interrupts, steal): a row with a large value was
	// measured on a shared core and is not comparable.
	OtherCPUPct  float64 `json:"otherCpuPct"`
	StealPct     float64 `json:"stealPct"`
	UDPRcvbufErr uint64  `json:"udpRcvbufErrors"`

	// One-way delay publisher → server → subscriber of the packets
	// received in the window (latency.go), in ms: median, 99th percentile
	// and largest, each the upper edge of its histogram bucket (≤ 3 % high).
	DelayP50Ms   float64 `json:"delayP50Ms"`
	DelayP99Ms   float64 `json:"delayP99Ms"`
	DelayMaxMs   float64 `json:"delayMaxMs"`
	DelayPackets uint64  `json:"delayPackets"` // stamped packets counted
	// The same to the packet's arrival on the socket of the probe
	// subscribers (arrival.go): the server's part without the generator's
	// own queueing after it. ProbeSubs is how many subscribers were probes.
	SockDelayP50Ms   float64 `json:"sockDelayP50Ms"`
	SockDelayP99Ms   float64 `json:"sockDelayP99Ms"`
	SockDelayMaxMs   float64 `json:"sockDelayMaxMs"`
	SockDelayPackets uint64  `json:"sockDelayPackets"`
	ProbeSubs        int     `json:"probeSubs"`
}

type snapshot struct {
	at           time.Time
	recv, late   uint64
	video, audio uint64
	perSub       []uint64
	expected     int64
	recvVideo    uint64
	recvAudio    uint64
	sent         uint64
	srvCPU       time.Duration
	srvSys       time.Duration // the system part of srvCPU
	genCPU       time.Duration
	udpIn, udpRB uint64
	coreBusy     time.Duration
	coreSteal    time.Duration
	delay        []uint64 // delay histogram counts over every subscriber track
	sockDelay    []uint64 // the same to the socket, probe subscribers only
}

func take[P participant](subs []P, gen *generator, pids []int, serverCPU int) snapshot {
	s := snapshot{at: time.Now(), sent: gen.sent.Load(), perSub: make([]uint64, len(subs)),
		delay: make([]uint64, histBuckets), sockDelay: make([]uint64, histBuckets)}
	s.video, s.audio = gen.videoSent.Load(), gen.audioSent.Load()
	for i, c := range subs {
		for _, t := range c.counters() {
			p := t.packets.Load()
			s.recv += p
			s.perSub[i] += p
			s.late += t.late.Load()
			s.expected += t.highest.Load()
			t.delay.addTo(s.delay)
			t.sockDelay.addTo(s.sockDelay)
			if t.video {
				s.recvVideo += p
			} else {
				s.recvAudio += p
			}
		}
	}
	if len(pids) > 0 {
		s.srvCPU, s.srvSys, _ = serverCPUTimes(pids)
	}
	s.genCPU, _ = procfs.CPUTime(os.Getpid())
	s.udpIn, s.udpRB = udpErrors()
	if serverCPU >= 0 {
		s.coreBusy, s.coreSteal = procfs.CPUBusy(serverCPU)
	}
	return s
}

func (o options) logf(format string, args ...any) {
	if o.verbose {
		fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	}
}

func runRow(ctx context.Context, api *webrtc.API, srv server, o options, n int) (rowResult, error) {
	r := rowResult{Label: o.label, Subs: n, Time: time.Now().UTC(), Shape: o.shape, Feedback: o.feedback}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	roomID, err := srv.newRoom(ctx)
	if err != nil {
		return r, err
	}
	o.logf("N=%d room %s", n, roomID)

	// Publisher.
	gen, err := newGenerator(o.shape, "camera")
	if err != nil {
		return r, err
	}
	pub, senders, err := srv.publish(ctx, api, roomID, gen.video, gen.audio)
	if err != nil {
		return r, fmt.Errorf("publisher: %w", err)
	}
	defer pub.close()
	gen.start(senders)
	defer gen.close()
	sleep(ctx, o.settle)
	// Idle: the server with the publisher alone (ingest, control plane,
	// housekeeping), the fixed cost the marginal figure leaves out.
	var idle cpuSample
	if len(o.pids) > 0 && o.idle > 0 {
		idle.cpu0, _ = serverCPUTime(o.pids)
		idle.at0 = time.Now()
		sleep(ctx, o.idle)
		idle.cpu1, _ = serverCPUTime(o.pids)
		idle.at1 = time.Now()
	}
	if len(o.pids) > 0 {
		r.RSSBefore, _, _ = procStatus(o.pids[0])
	}
	m0 := goMetrics(o.metricsURL)

	// Subscribers, o.concurrency at a time.
	t0 := time.Now()
	genCPU0, _ := procfs.CPUTime(os.Getpid())
	genReads0, _, _ := ioCalls(os.Getpid())
	var srvCPU0 time.Duration
	var srvWrites0 uint64
	if len(o.pids) > 0 {
		srvCPU0, _ = serverCPUTime(o.pids)
		srvWrites0, _ = serverWrites(o.pids)
	}
	subs := make([]participant, n)
	var (
		wg    sync.WaitGroup
		emu   sync.Mutex
		first error
	)
	sem := make(chan struct{}, o.concurrency)
	// o.probes subscribers each receive on a timestamping socket, spread
	// evenly over the join order (the middle of each n/probes stretch): a
	// server that fans out in join order sends the first joiners' copies
	// first, and probes among them only would see its best case.
	probeAPIs := make([]*webrtc.API, min(o.probes, n))
	probeAt := make(map[int]int, len(probeAPIs)) // subscriber index -> probe
	for k := range probeAPIs {
		probeAt[(2*k+1)*n/(2*len(probeAPIs))] = k
	}
	probeArr := make([]*arrivals, len(probeAPIs))
	for i := range probeAPIs {
		a, arr, closeMux, err := probeAPI(o.feedback, o.verbose)
		if err != nil {
			return r, fmt.Errorf("probe subscriber: %w", err)
		}
		defer closeMux()
		probeAPIs[i], probeArr[i] = a, arr
	}
	r.ProbeSubs = len(probeAPIs)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sapi := api
			k, probe := probeAt[i]
			if probe {
				sapi = probeAPIs[k]
			}
			c, err := srv.subscribe(ctx, sapi, roomID, fmt.Sprintf("sub-%03d", i))
			if err == nil && probe {
				p, ok := c.(interface{ probeWith(*arrivals) })
				if !ok {
					err = fmt.Errorf("%T cannot be a probe subscriber", c)
				} else {
					p.probeWith(probeArr[k])
				}
			}
			if err != nil {
				emu.Lock()
				if first == nil {
					first = err
				}
				emu.Unlock()
				return
			}
			subs[i] = c
		}()
	}
	wg.Wait()
	defer func() {
		var cw sync.WaitGroup
		for _, c := range subs {
			if c != nil {
				cw.Add(1)
				go func() { defer cw.Done(); c.close() }()
			}
		}
		cw.Wait()
		sleep(context.Background(), o.settle)
	}()
	if first != nil {
		return r, first
	}
	r.JoinSignaledSeconds = time.Since(t0).Seconds()
	o.logf("N=%d joined in %v; waiting for media", n, time.Since(t0).Round(time.Millisecond))
	if steps := joinSteps.take(); steps != "" {
		o.logf("N=%d per subscriber, %d at a time: %s", n, o.concurrency, steps)
	}
	for {
		ready := 0
		for _, c := range subs {
			if c.receiving(5) {
				ready++
			}
		}
		if ready == n {
			break
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("only %d of %d subscribers receive audio and video", ready, n)
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.JoinSeconds = time.Since(t0).Seconds()
	if genCPU1, err := procfs.CPUTime(os.Getpid()); err == nil {
		r.JoinGenCPUPct = 100 * (genCPU1 - genCPU0).Seconds() / r.JoinSeconds
	}
	if genReads1, _, err := ioCalls(os.Getpid()); err == nil {
		r.JoinGenReads = genReads1 - genReads0
	}
	if len(o.pids) > 0 {
		if srvCPU1, err := serverCPUTime(o.pids); err == nil {
			r.JoinServerCPUPct = 100 * (srvCPU1 - srvCPU0).Seconds() / r.JoinSeconds
		}
		if srvWrites1, err := serverWrites(o.pids); err == nil {
			r.JoinServerWrites = srvWrites1 - srvWrites0
		}
	}
	for _, c := range subs {
		r.JoinMediaSeconds = max(r.JoinMediaSeconds, c.firstPacketAt().Sub(t0).Seconds())
	}
	o.logf("N=%d all receiving after %.1fs (all signaled %.2fs, all with a first packet %.2fs; generator CPU %.0f%%, server %.0f%% over the join; server write calls %d, generator read calls %d)",
		n, r.JoinSeconds, r.JoinSignaledSeconds, r.JoinMediaSeconds, r.JoinGenCPUPct, r.JoinServerCPUPct, r.JoinServerWrites, r.JoinGenReads)
	sleep(ctx, o.warmup)

	a := take(subs, gen, o.pids, o.serverCPU)
	profDone := fetchProfiles(o, n)
	sleep(ctx, o.window)
	b := take(subs, gen, o.pids, o.serverCPU)
	<-profDone
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	r.measure(a, b, idle, len(o.pids) > 0, o.serverCPU >= 0)
	r.GenCPUPct = 100 * (b.genCPU - a.genCPU).Seconds() / r.Window
	r.UDPRcvbufErr = b.udpRB - a.udpRB
	if len(o.pids) > 0 {
		var threads int
		r.RSSAfter, threads, _ = procStatus(o.pids[0])
		r.ServerThreads = threads
		r.RSSPerSubKB = float64(r.RSSAfter-r.RSSBefore) / 1024 / float64(n)
	}
	m1 := goMetrics(o.metricsURL)
	h0, ok0 := m0["go_memstats_heap_inuse_bytes"]
	h1, ok1 := m1["go_memstats_heap_inuse_bytes"]
	if ok0 && ok1 {
		r.HeapPerSubKB = (h1 - h0) / 1024 / float64(n)
		r.GoroutinesSub = (m1["go_goroutines"] - m0["go_goroutines"]) / float64(n)
	}
	return r, nil
}

// cpuSample is the server's CPU time at the start and end of the idle
// measurement (the publisher alone).
type cpuSample struct {
	at0, at1   time.Time
	cpu0, cpu1 time.Duration
}

// pct is the share of one core the process used between the two samples.
func (c cpuSample) pct() float64 {
	dt := c.at1.Sub(c.at0).Seconds()
	if dt <= 0 {
		return 0
	}
	return 100 * (c.cpu1 - c.cpu0).Seconds() / dt
}

// measure fills the rates, delivery, loss and server CPU figures of r from
// two snapshots a (window start) and b (window end) of r.Subs subscribers.
// withServer: a and b hold the server's CPU time; withCore: they hold the
// busy time of its core.
//
// µs/fwd pkt is all the server's CPU time in the window over the packets
// the subscribers received in it. The marginal figure first removes what
// the server burns with the publisher alone (idle CPU share × window): the
// cost of one more forwarded packet, without the fixed cost of ingest,
// timers and housekeeping.
func (r *rowResult) measure(a, b snapshot, idle cpuSample, withServer, withCore bool) {
	n := r.Subs
	dt := b.at.Sub(a.at).Seconds()
	r.Window = dt
	if dt <= 0 {
		return
	}
	recv := float64(b.recv - a.recv)
	sent := float64(b.sent - a.sent)
	r.SentPPS = sent / dt
	r.FwdPPS = recv / dt
	if exp := sent * float64(n); exp > 0 {
		r.DeliveryPct = 100 * recv / exp
	}
	// Expected per track = advance of its highest sequence number; a late
	// packet (reordered or duplicated, rare on loopback) counts as received.
	if exp := float64(b.expected - a.expected); exp > 0 {
		r.LossPct = max(0, 100*(exp-recv)/exp)
	}
	r.Late = b.late - a.late
	r.DelayP50Ms, r.DelayP99Ms, r.DelayMaxMs, r.DelayPackets = delayStats(a.delay, b.delay)
	r.SockDelayP50Ms, r.SockDelayP99Ms, r.SockDelayMaxMs, r.SockDelayPackets = delayStats(a.sockDelay, b.sockDelay)
	if v := float64(b.video-a.video) * float64(n); v > 0 {
		r.VideoDeliveryPct = 100 * float64(b.recvVideo-a.recvVideo) / v
	}
	if v := float64(b.audio-a.audio) * float64(n); v > 0 {
		r.AudioDeliveryPct = 100 * float64(b.recvAudio-a.recvAudio) / v
	}
	r.MinSubDeliveryPct = 100
	r.StarvedSubs = 0
	if sent > 0 {
		for i := range min(len(a.perSub), len(b.perSub)) {
			d := 100 * float64(b.perSub[i]-a.perSub[i]) / sent
			r.MinSubDeliveryPct = min(r.MinSubDeliveryPct, d)
			if d < 90 {
				r.StarvedSubs++
			}
		}
	}
	if !withServer {
		return
	}
	r.IdleCPUPct = idle.pct()
	cpu := (b.srvCPU - a.srvCPU).Seconds()
	r.ServerCPUPct = 100 * cpu / dt
	if recv > 0 {
		r.ServerUsPerPkt = cpu * 1e6 / recv
		r.ServerKernelUsPerPkt = (b.srvSys - a.srvSys).Seconds() * 1e6 / recv
		r.MarginalUsPerPkt = max(0, cpu-r.IdleCPUPct/100*dt) * 1e6 / recv
	}
	if withCore {
		r.OtherCPUPct = max(0, 100*((b.coreBusy-a.coreBusy).Seconds()-cpu)/dt)
		r.StealPct = 100 * (b.coreSteal - a.coreSteal).Seconds() / dt
	}
}

// fetchProfiles collects the server's profiles over the window (its
// last second excluded, so they end inside it).
func fetchProfiles(o options, n int) <-chan struct{} {
	done := make(chan struct{})
	if o.pprofURL == "" {
		close(done)
		return done
	}
	secs := max(1, int(o.window.Seconds())-1)
	var wg sync.WaitGroup
	for _, kind := range []string{"profile", "allocs", "mutex", "block"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := http.Client{Timeout: o.window + 30*time.Second}
			resp, err := cl.Get(fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", strings.TrimRight(o.pprofURL, "/"), kind, secs))
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: pprof:", err)
				return
			}
			defer resp.Body.Close()
			name := kind
			if kind == "profile" {
				name = "cpu"
			}
			f, err := os.Create(fmt.Sprintf("%s/%s-%s-%d.pprof", o.pprofDir, o.label, name, n))
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: pprof:", err)
				return
			}
			_, _ = io.Copy(f, resp.Body)
			_ = f.Close()
		}()
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Design targets (docs/benchmarks.md); reported next to the numbers, never asserted.
const (
	targetUsPerPkt = 9.0
	targetKBPerSub = 300.0
	// p99 one-way delay a forwarded packet may take, at half a core of
	// server CPU (issue 11).
	targetDelayP99Ms = 2.0
)

func printTable(w io.Writer, rows []rowResult) {
	fmt.Fprintln(w, "| server | N subs | fwd pkt/s | delivered (video/audio) | subs < 90 % | seq loss | server CPU (idle) | µs/fwd pkt (target ≤ 9) | of which in the kernel | marginal µs/pkt | RSS/sub KB (target ≤ 300) | heap/sub KB | goroutines/sub | join s (all N receiving) | loadgen CPU | other load on server core | UDP rcvbuf drops | forwarding delay ms to the socket p50 / p99 (target ≤ 2) / max | to the subscriber's read p50 / p99 / max |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		if r.Missing != "" {
			fmt.Fprintf(w, "| %s | %d | **missing**: %s %s\n", r.Label, r.Subs, cell(r.Missing), strings.Repeat("|", 17))
			continue
		}
		heap, gor := "–", "–"
		if r.HeapPerSubKB != 0 || r.GoroutinesSub != 0 {
			heap, gor = fmt.Sprintf("%.0f", r.HeapPerSubKB), fmt.Sprintf("%.1f", r.GoroutinesSub)
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.1f%% (%.1f/%.1f) | %d | %.3f%% | %.0f%% (%.0f%%) | %.2f%s | %s | %.2f | %.0f%s | %s | %s | %.2f | %.0f%% | %.0f%% | %d | %s | %s |\n",
			r.Label, r.Subs, r.FwdPPS, r.DeliveryPct, r.VideoDeliveryPct, r.AudioDeliveryPct, r.StarvedSubs, r.LossPct, r.ServerCPUPct, r.IdleCPUPct,
			r.ServerUsPerPkt, mark(r.ServerUsPerPkt <= targetUsPerPkt), kernelCell(r), r.MarginalUsPerPkt, r.RSSPerSubKB, mark(r.RSSPerSubKB <= targetKBPerSub),
			heap, gor, r.JoinSeconds, r.GenCPUPct, r.OtherCPUPct, r.UDPRcvbufErr, sockDelayCell(r), delayCell(r))
	}
	ratios(w, measured(rows))
}

func mark(ok bool) string {
	if ok {
		return ""
	}
	return " (over)"
}

// ratios prints the scaling ratio per label (µs/pkt at the largest N over
// the smallest) and, for each N measured for both, meridian over baseline.
func ratios(w io.Writer, rows []rowResult) {
	byLabel := map[string][]rowResult{}
	var labels []string
	for _, r := range rows {
		if _, ok := byLabel[r.Label]; !ok {
			labels = append(labels, r.Label)
		}
		byLabel[r.Label] = append(byLabel[r.Label], r)
	}
	var lines []string
	for _, l := range labels {
		rs := byLabel[l]
		lo, hi := rs[0], rs[0]
		for _, r := range rs {
			if r.Subs < lo.Subs {
				lo = r
			}
			if r.Subs > hi.Subs {
				hi = r
			}
		}
		if hi.Subs > lo.Subs && lo.ServerUsPerPkt > 0 {
			lines = append(lines, fmt.Sprintf("- %s scaling: µs/pkt at N=%d ÷ N=%d = %.2f", l, hi.Subs, lo.Subs, hi.ServerUsPerPkt/lo.ServerUsPerPkt))
		}
	}
	if base := byLabel["baseline"]; len(base) > 0 {
		for _, l := range labels {
			if l == "baseline" {
				continue
			}
			for _, r := range byLabel[l] {
				for _, b := range base {
					if b.Subs == r.Subs && b.ServerUsPerPkt > 0 {
						lines = append(lines, fmt.Sprintf("- %s ÷ baseline at N=%d: µs/pkt %.2f×, RSS/sub %s", l, r.Subs, r.ServerUsPerPkt/b.ServerUsPerPkt, ratio(r.RSSPerSubKB, b.RSSPerSubKB)))
					}
				}
			}
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// waitOK polls url until it answers 200, for at most 20 s, giving up when
// process pid has exited.
func waitOK(url, pid string) bool {
	p, _ := strconv.Atoi(pid)
	cl := http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := cl.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		if p > 0 && syscall.Kill(p, 0) != nil {
			return false
		}
	}
	return false
}
