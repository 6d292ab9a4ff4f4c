package main

// The cascade scenario (benchmarks/cascade.sh, docs/benchmarks.md
// "Cascade"): one publisher on edge A, N subscribers on A only ("single")
// or split over A and a far edge B ("cascade"), against a control plane
// and several `meridian edge` processes the script started. It measures
// the total CPU of all server processes per forwarded packet, the bytes on
// the A→B relay leg against one subscriber's bytes, and ("failover") the
// time for N subscribers to be re-placed and receiving again after their
// edge is killed with SIGKILL.
//
//	loadgen cascade -mode cascade -url http://127.0.0.1:CTL -api-key K -api-secret S \
//	    -procs control=PID,edge-a=PID,edge-b=PID \
//	    -edges edge-a=http://127.0.0.1:EA,edge-b=http://127.0.0.1:EB -subs 50 -json row.json
//	loadgen cascade-report rows/*.json

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meridian-video/meridian/benchmarks/procfs"
	"github.com/meridian-video/meridian/control/auth"
	wire "github.com/meridian-video/meridian/shared/signal"
)

type namedPID struct {
	name string
	pid  int
}

type cascadeOptions struct {
	mode                              string
	url, key, secret                  string
	subs                              int
	pubRegion, nearRegion, farRegion  string
	procs                             []namedPID
	edges                             map[string]string // edge id -> HTTP base URL
	window, warmup, idle, settle      time.Duration
	afterWindow                       time.Duration
	feedback                          string
	concurrency, serverCPU            int
	jsonOut                           string
	shape                             mediaShape
	lostAfter, failoverTimeout, ready time.Duration
	verbose                           bool
	pprofEdges                        map[string]string // edge id -> net/http/pprof base URL (cascade.sh DIAG=1)
	diagDir                           string
}

func (o cascadeOptions) logf(format string, args ...any) {
	if o.verbose {
		fmt.Fprintf(os.Stderr, "loadgen cascade: "+format+"\n", args...)
	}
}

// cascadeRow is one measured row of the cascade scenario.
type cascadeRow struct {
	Mode     string         `json:"mode"` // single | cascade | failover
	Subs     int            `json:"subs"`
	PubEdge  string         `json:"pubEdge"`
	OnEdge   map[string]int `json:"subsOnEdge"` // where the subscribers were placed
	Time     time.Time      `json:"time"`
	Window   float64        `json:"windowSeconds"`
	Shape    mediaShape     `json:"shape"`
	Feedback string         `json:"feedback"`

	JoinSeconds       float64 `json:"joinSeconds"` // first subscriber join → every subscriber receives
	SentPPS           float64 `json:"sentPps"`
	FwdPPS            float64 `json:"forwardedPps"` // received by all subscribers
	DeliveryPct       float64 `json:"deliveryPct"`
	VideoDeliveryPct  float64 `json:"videoDeliveryPct"`
	AudioDeliveryPct  float64 `json:"audioDeliveryPct"`
	MinSubDeliveryPct float64 `json:"minSubDeliveryPct"`
	StarvedSubs       int     `json:"starvedSubs"`
	LossPct           float64 `json:"lossPct"`

	// CPU of every server process (control plane and edges), summed.
	IdleCPUPct       float64            `json:"idleCpuPct"`
	ServerCPUPct     float64            `json:"serverCpuPct"`
	ProcCPUPct       map[string]float64 `json:"procCpuPct"`
	ServerUsPerPkt   float64            `json:"serverUsPerPkt"`
	MarginalUsPerPkt float64            `json:"marginalUsPerPkt"`
	RSSBefore        map[string]int64   `json:"rssBefore"`
	RSSAfter         map[string]int64   `json:"rssAfter"`
	RSSPerSubKB      float64            `json:"rssPerSubKB"` // Σ RSS growth of all processes ÷ N

	// From the edges' /metrics, deltas over the window.
	EdgeFwdPPS map[string]float64 `json:"edgeForwardedPps"`  // meridian_sfu_forwarded_packets_total
	LegBytesPS map[string]float64 `json:"legBytesPerSecond"` // "edge>peer/direction" → meridian_cascade_bytes_total
	LegPktsPS  map[string]float64 `json:"legPacketsPerSecond"`
	SkipsPS    map[string]float64 `json:"forwardSkipsPerSecond"` // meridian_sfu_forward_skips_total by reason, all edges
	LegOutBPS  float64            `json:"legOutBytesPerSecond"`  // Σ direction=out
	LegOutPPS  float64            `json:"legOutPacketsPerSecond"`
	SubBPS     float64            `json:"subBytesPerSecond"`      // one subscriber (mean of those off the publisher's edge; all in single mode), payload+12
	LegPerSub  float64            `json:"legBytesPerSubBytes"`    // LegOutBPS ÷ SubBPS (target ≈ 1)
	LegPerSent float64            `json:"legPacketsPerPublished"` // LegOutPPS ÷ SentPPS (copies per track)
	// Legs at the end of the window, "edge>peer/direction/state" → count
	// (meridian_cascade_legs), and legs opened during the window.
	Legs         map[string]float64 `json:"legsAtEnd,omitempty"`
	LegsOpened   map[string]float64 `json:"legsOpenedInWindow,omitempty"`
	EdgeHeapKB   map[string]float64 `json:"edgeHeapInuseKB,omitempty"`
	EdgeRoutines map[string]float64 `json:"edgeGoroutines,omitempty"`

	GenCPUPct    float64 `json:"generatorCpuPct"`
	OtherCPUPct  float64 `json:"otherCpuPct"`
	StealPct     float64 `json:"stealPct"`
	UDPRcvbufErr uint64  `json:"udpRcvbufErrors"`

	// Signaling errors the edges answered single messages with (not fatal).
	SessionErrors int64  `json:"sessionErrors"`
	LastSessErr   string `json:"lastSessionError,omitempty"`

	Failover *failoverResult `json:"failover,omitempty"`
}

// failoverResult: times are seconds from the SIGKILL of the victim edge.
type failoverResult struct {
	Victim        string         `json:"victim"`
	Affected      int            `json:"affected"`
	LandedOn      map[string]int `json:"landedOn"`
	Failed        int            `json:"failed"`
	FirstError    string         `json:"firstError,omitempty"`
	Reasons       map[string]int `json:"reasons"`
	JoinCalls     int64          `json:"joinApiCalls"`
	JoinErrors    int64          `json:"joinApiErrors"`
	EdgeErrors    int64          `json:"edgeErrors"` // candidate edges that did not admit (dial/join failed)
	LostAgain     int            `json:"lostAgain"`  // new edges that dropped a subscriber before media flowed
	SessionErrors int64          `json:"sessionErrors"`
	LastSessErr   string         `json:"lastSessionError,omitempty"`
	Detected      percentiles    `json:"detected"`
	Joined        percentiles    `json:"joined"`    // `joined` on the new edge
	Receiving     percentiles    `json:"receiving"` // ≥ 5 audio and 5 video packets on the new edge
	Audio         percentiles    `json:"audio"`     // ≥ 5 audio packets on the new edge (video waits for a key frame)
	AfterDelivery float64        `json:"afterDeliveryPct"`
	AfterVideo    float64        `json:"afterVideoDeliveryPct"`
	AfterAudio    float64        `json:"afterAudioDeliveryPct"`
	AfterWindow   float64        `json:"afterWindowSeconds"`
	// Seconds after the kill at which keyframe requests (PLI/FIR) reached
	// the publisher and key frames left it (until everyone received).
	PLIsAt       []float64       `json:"plisAtPublisher"`
	KeysAt       []float64       `json:"keyFramesAt"`
	Timeline     []timelinePoint `json:"timeline"`
	GenCPUPct    float64         `json:"generatorCpuPct"` // the load generator during the failover
	ServerCPUPct float64         `json:"serverCpuPct"`    // surviving server processes during the failover
}

// timelinePoint samples the failover every 250 ms: how many of the moved
// subscribers have audio and video again, and the forward skips of the
// surviving edges since the kill ("edge/reason", only non-zero).
type timelinePoint struct {
	T     float64            `json:"t"`
	Audio int                `json:"audio"`
	Video int                `json:"video"`
	Skips map[string]float64 `json:"skips,omitempty"`
	PLIs  map[string]float64 `json:"plisReceived,omitempty"` // meridian_sfu_plis_received_total since the kill, per edge
}

type percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
}

func percentilesOf(ds []time.Duration) percentiles {
	if len(ds) == 0 {
		return percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1 // nearest rank
		return s[min(max(i, 0), len(s)-1)].Seconds()
	}
	return percentiles{N: len(s), P50: at(0.50), P95: at(0.95), Max: s[len(s)-1].Seconds()}
}

func parseNamed(s string, f func(name, val string) error) error {
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want name=value", kv)
		}
		if err := f(k, v); err != nil {
			return err
		}
	}
	return nil
}

func runCascade(args []string) error {
	var o cascadeOptions
	var procs, edges string
	fs := flag.NewFlagSet("cascade", flag.ContinueOnError)
	fs.StringVar(&o.mode, "mode", "cascade", "single (every subscriber near the publisher), cascade (half near, half far) or failover (all far, then their edge is killed)")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "control plane base URL")
	fs.StringVar(&o.key, "api-key", "", "API key")
	fs.StringVar(&o.secret, "api-secret", "", "API secret")
	fs.IntVar(&o.subs, "subs", 10, "subscribers")
	fs.StringVar(&o.pubRegion, "pub-region", "eu-west", "region hint of the publisher")
	fs.StringVar(&o.nearRegion, "near-region", "eu-west", "region hint of the subscribers near the publisher")
	fs.StringVar(&o.farRegion, "far-region", "ca-east", "region hint of the far subscribers (more than 1000 km away, so they get their own edge)")
	fs.StringVar(&procs, "procs", "", "server processes to measure: name=pid,... (edges named by their edge id; failover kills the victim's pid)")
	fs.StringVar(&edges, "edges", "", "edges: id=http://host:port,... (their /metrics is scraped)")
	fs.DurationVar(&o.window, "window", 10*time.Second, "measurement window")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "time between 'every subscriber receives' and the window")
	fs.DurationVar(&o.idle, "idle", 2*time.Second, "measure the servers' CPU with the publisher alone for this long (0: skip)")
	fs.DurationVar(&o.settle, "settle", 1*time.Second, "pause after the publisher starts")
	fs.DurationVar(&o.afterWindow, "after-window", 5*time.Second, "failover: delivery window once everyone receives again")
	fs.StringVar(&o.feedback, "feedback", "rr,twcc", "RTCP the subscribers send: comma list of rr, twcc, nack, or none")
	fs.IntVar(&o.concurrency, "join-concurrency", 16, "subscribers joining at once (the failover rejoin is not limited, like real clients)")
	fs.IntVar(&o.serverCPU, "server-cpu", 0, "CPU the servers are pinned to: report what else ran there (-1: skip)")
	fs.StringVar(&o.jsonOut, "json", "", "write the row as JSON to this file")
	fs.DurationVar(&o.lostAfter, "lost-after", 3*time.Second, "failover: a subscriber PeerConnection not connected this long means its edge is gone (a closed socket counts at once)")
	fs.DurationVar(&o.failoverTimeout, "failover-timeout", 60*time.Second, "failover: a subscriber not receiving again within this (from the kill) counts as failed")
	fs.DurationVar(&o.ready, "ready-timeout", 30*time.Second, "wait this long for every -edges edge to be offered by the control plane")
	fs.IntVar(&o.shape.FPS, "fps", 30, "video frames per second")
	fs.IntVar(&o.shape.PktsPerFrame, "pkts-per-frame", 5, "RTP packets per video frame")
	fs.IntVar(&o.shape.VideoBytes, "video-bytes", 1000, "video RTP payload size")
	fs.IntVar(&o.shape.AudioBytes, "audio-bytes", 100, "audio RTP payload size")
	fs.DurationVar(&o.shape.KeyEvery, "key-every", 2*time.Second, "key frame interval")
	fs.BoolVar(&o.verbose, "v", false, "progress on stderr")
	var pprofEdges string
	fs.StringVar(&pprofEdges, "pprof-edges", "", "edges' pprof listeners, id=http://host:port,... (cascade.sh DIAG=1): goroutine dumps when a subscriber gets < 90 % of the media")
	fs.StringVar(&o.diagDir, "diag-dir", ".", "where -pprof-edges dumps are written")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.pprofEdges = map[string]string{}
	if err := parseNamed(pprofEdges, func(k, v string) error { o.pprofEdges[k] = strings.TrimRight(v, "/"); return nil }); err != nil {
		return err
	}
	switch o.mode {
	case "single", "cascade", "failover":
	default:
		return fmt.Errorf("-mode %q: single, cascade or failover", o.mode)
	}
	if o.key == "" || o.secret == "" {
		return errors.New("-api-key and -api-secret are required")
	}
	if o.subs <= 0 {
		return errors.New("-subs must be positive")
	}
	if err := parseNamed(procs, func(k, v string) error {
		pid, err := strconv.Atoi(v)
		if err != nil || pid <= 0 {
			return fmt.Errorf("-procs %s: bad pid %q", k, v)
		}
		o.procs = append(o.procs, namedPID{k, pid})
		return nil
	}); err != nil {
		return err
	}
	o.edges = map[string]string{}
	if err := parseNamed(edges, func(k, v string) error { o.edges[k] = strings.TrimRight(v, "/"); return nil }); err != nil {
		return err
	}
	debug.SetGCPercent(400)
	api, err := newAPI(o.feedback, o.verbose)
	if err != nil {
		return err
	}
	j := &apiJoiner{base: strings.TrimRight(o.url, "/"), key: o.key, secret: o.secret, http: &http.Client{Timeout: 15 * time.Second}}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := waitEdges(ctx, j, o); err != nil {
		return err
	}
	r, err := runCascadeRow(ctx, api, j, o)
	if err != nil {
		return fmt.Errorf("%s N=%d: %w", o.mode, o.subs, err)
	}
	printCascadeTable(os.Stdout, []cascadeRow{r})
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent([]cascadeRow{r}, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitEdges waits until the control plane offers every edge of -edges
// (registered and up), so the first join cannot miss one.
func waitEdges(ctx context.Context, j *apiJoiner, o cascadeOptions) error {
	if len(o.edges) == 0 {
		return nil
	}
	deadline := time.Now().Add(o.ready)
	var last string
	for {
		tok, err := j.token(auth.MintOptions{Permissions: []string{auth.PermAllowJoin}, Roles: []string{auth.RoleRTC}})
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, j.base+"/v2/edges/nearest?limit=100", nil)
		req.Header.Set("Authorization", tok)
		if resp, err := j.http.Do(req); err == nil {
			var nr struct {
				Edges []struct {
					EdgeID string `json:"edgeId"`
				} `json:"edges"`
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
			if json.Unmarshal(b, &nr) == nil {
				seen := map[string]bool{}
				for _, e := range nr.Edges {
					seen[e.EdgeID] = true
				}
				all := true
				for id := range o.edges {
					all = all && seen[id]
				}
				if all {
					return nil
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("edges %v not all offered by the control plane after %v (last answer: %s)", keys(o.edges), o.ready, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// csub is one subscriber that can follow its room to another edge.
type csub struct {
	pid, region string
	mu          sync.Mutex
	c           *client
	edge        string
}

func (s *csub) current() (*client, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c, s.edge
}

// connect asks the join API (same participant id, region hint, edges to
// avoid) and joins the first candidate that admits it, as
// edge/signal/signaltest.Session does.
func connect(ctx context.Context, api *webrtc.API, j *apiJoiner, roomID, pid, region string, avoid []string, stats *joinStats) (*client, string, error) {
	if stats != nil {
		stats.calls.Add(1)
	}
	cands, err := j.place(ctx, roomID, pid, false, region, avoid)
	if err != nil {
		if stats != nil {
			stats.apiErrors.Add(1)
		}
		return nil, "", err
	}
	var errs []error
	for _, e := range cands {
		c, err := dialClient(ctx, api, e.SignalingURL, pid)
		if err == nil {
			if err = c.join(ctx, e.Ticket); err == nil {
				return c, e.EdgeID, nil
			}
			go c.close()
		}
		if stats != nil {
			stats.edgeErrors.Add(1)
		}
		errs = append(errs, fmt.Errorf("edge %s: %w", e.EdgeID, err))
	}
	return nil, "", errors.Join(errs...)
}

type joinStats struct{ calls, apiErrors, edgeErrors atomic.Int64 }

// procSnap is the server side of a snapshot.
type procSnap struct {
	cpu     map[string]time.Duration
	metrics map[string][]promSample // edge id -> samples
	subRTP  []uint64                // per subscriber, payload+12 bytes
}

func takeProcs(o cascadeOptions, subs []*client, skip map[string]bool) procSnap {
	p := procSnap{cpu: procCPUs(o, skip), metrics: map[string][]promSample{}, subRTP: make([]uint64, len(subs))}
	for i, c := range subs {
		for _, t := range c.counters() {
			p.subRTP[i] += t.rtpBytes.Load()
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, base := range o.edges {
		if skip[id] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := scrape(base + "/metrics")
			mu.Lock()
			p.metrics[id] = s
			mu.Unlock()
		}()
	}
	wg.Wait()
	return p
}

// procCPUs reads utime+stime of every -procs process not in skip.
func procCPUs(o cascadeOptions, skip map[string]bool) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, np := range o.procs {
		if skip[np.name] {
			continue
		}
		if d, err := procfs.CPUTime(np.pid); err == nil {
			m[np.name] = d
		}
	}
	return m
}

func sumCPU(m map[string]time.Duration) time.Duration {
	var t time.Duration
	for _, d := range m {
		t += d
	}
	return t
}

func runCascadeRow(ctx context.Context, api *webrtc.API, j *apiJoiner, o cascadeOptions) (cascadeRow, error) {
	n := o.subs
	r := cascadeRow{Mode: o.mode, Subs: n, Time: time.Now().UTC(), Shape: o.shape, Feedback: o.feedback, OnEdge: map[string]int{},
		ProcCPUPct: map[string]float64{}, RSSBefore: map[string]int64{}, RSSAfter: map[string]int64{}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	roomID, err := j.newRoom(ctx)
	if err != nil {
		return r, err
	}
	o.logf("%s N=%d room %s", o.mode, n, roomID)

	// Publisher, placed near its region hint.
	cands, err := j.place(ctx, roomID, "pub", true, o.pubRegion, nil)
	if err != nil {
		return r, err
	}
	r.PubEdge = cands[0].EdgeID
	pub, err := dialClient(ctx, api, cands[0].SignalingURL, "pub")
	if err != nil {
		return r, err
	}
	defer pub.close()
	if err := pub.join(ctx, cands[0].Ticket); err != nil {
		return r, err
	}
	gen, err := newGenerator(o.shape, "camera")
	if err != nil {
		return r, err
	}
	senders, err := pub.publish(ctx, gen.video, gen.audio)
	if err != nil {
		return r, err
	}
	if err := waitConnected(ctx, pub.pub); err != nil {
		return r, err
	}
	gen.start(senders)
	defer gen.close()
	sleep(ctx, o.settle)
	if o.idle > 0 {
		a := procCPUs(o, nil)
		t := time.Now()
		sleep(ctx, o.idle)
		b := procCPUs(o, nil)
		r.IdleCPUPct = 100 * (sumCPU(b) - sumCPU(a)).Seconds() / time.Since(t).Seconds()
	}
	for _, np := range o.procs {
		r.RSSBefore[np.name], _, _ = procStatus(np.pid)
	}

	// Subscribers.
	subs := make([]*csub, n)
	for i := range subs {
		region := o.nearRegion
		if o.mode == "failover" || (o.mode == "cascade" && i%2 == 1) {
			region = o.farRegion
		}
		subs[i] = &csub{pid: fmt.Sprintf("sub-%03d", i), region: region}
	}
	var retireWG sync.WaitGroup
	defer func() {
		var cw sync.WaitGroup
		for _, s := range subs {
			s.mu.Lock()
			c := s.c
			s.mu.Unlock()
			if c != nil {
				cw.Add(1)
				go func() { defer cw.Done(); c.close() }()
			}
		}
		cw.Wait()
		retireWG.Wait()
	}()
	t0 := time.Now()
	var (
		wg    sync.WaitGroup
		emu   sync.Mutex
		first error
	)
	sem := make(chan struct{}, o.concurrency)
	for _, s := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, edge, err := connect(ctx, api, j, roomID, s.pid, s.region, nil, nil)
			if err != nil {
				emu.Lock()
				if first == nil {
					first = err
				}
				emu.Unlock()
				return
			}
			s.mu.Lock()
			s.c, s.edge = c, edge
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	if first != nil {
		return r, first
	}
	for _, s := range subs {
		r.OnEdge[s.edge]++
	}
	o.logf("%s N=%d joined in %v on %v; waiting for media", o.mode, n, time.Since(t0).Round(time.Millisecond), r.OnEdge)
	clients := func() []*client {
		out := make([]*client, len(subs))
		for i, s := range subs {
			out[i], _ = s.current()
		}
		return out
	}
	if err := waitReceiving(ctx, clients(), 5, 60*time.Second+time.Duration(n)*200*time.Millisecond); err != nil {
		return r, err
	}
	r.JoinSeconds = time.Since(t0).Seconds()
	o.logf("%s N=%d all receiving after %.1fs", o.mode, n, r.JoinSeconds)
	sleep(ctx, o.warmup)

	cs := clients()
	a, pa := take(cs, gen, nil, o.serverCPU), takeProcs(o, cs, nil)
	sleep(ctx, o.window)
	b, pb := take(cs, gen, nil, o.serverCPU), takeProcs(o, cs, nil)
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	dt := b.at.Sub(a.at).Seconds()
	r.Window = dt
	recv := float64(b.recv - a.recv)
	r.SentPPS = float64(b.sent-a.sent) / dt
	r.FwdPPS = recv / dt
	r.DeliveryPct, r.VideoDeliveryPct, r.AudioDeliveryPct = delivery(a, b, n)
	if exp := float64(b.expected - a.expected); exp > 0 {
		r.LossPct = max(0, 100*(exp-recv)/exp)
	}
	r.MinSubDeliveryPct = 100
	if sent := float64(b.sent - a.sent); sent > 0 {
		for i := range cs {
			d := 100 * float64(b.perSub[i]-a.perSub[i]) / sent
			r.MinSubDeliveryPct = min(r.MinSubDeliveryPct, d)
			if d < 90 {
				r.StarvedSubs++
			}
		}
	}
	if r.StarvedSubs > 0 {
		dumpGoroutines(o, "window", nil)
	}
	r.GenCPUPct = 100 * (b.genCPU - a.genCPU).Seconds() / dt
	r.UDPRcvbufErr = b.udpRB - a.udpRB
	for name, c1 := range pb.cpu {
		if c0, ok := pa.cpu[name]; ok {
			r.ProcCPUPct[name] = 100 * (c1 - c0).Seconds() / dt
		}
	}
	cpu := (sumCPU(pb.cpu) - sumCPU(pa.cpu)).Seconds()
	r.ServerCPUPct = 100 * cpu / dt
	if recv > 0 {
		r.ServerUsPerPkt = cpu * 1e6 / recv
		r.MarginalUsPerPkt = max(0, cpu-r.IdleCPUPct/100*dt) * 1e6 / recv
	}
	if o.serverCPU >= 0 {
		r.OtherCPUPct = max(0, 100*((b.coreBusy-a.coreBusy).Seconds()-cpu)/dt)
		r.StealPct = 100 * (b.coreSteal - a.coreSteal).Seconds() / dt
	}
	var rssGrowth int64
	for _, np := range o.procs {
		r.RSSAfter[np.name], _, _ = procStatus(np.pid)
		rssGrowth += r.RSSAfter[np.name] - r.RSSBefore[np.name]
	}
	r.RSSPerSubKB = float64(rssGrowth) / 1024 / float64(n)
	edgeMetrics(&r, pa, pb, dt)
	for _, c := range cs {
		r.SessionErrors += c.sessionErrs.Load()
		if e, ok := c.lastSessErr.Load().(string); ok {
			r.LastSessErr = e
		}
	}
	// One subscriber's bytes: the mean over those the relay leg serves
	// (not on the publisher's edge); every subscriber in single mode.
	var sum float64
	var cnt int
	for i, s := range subs {
		if o.mode == "single" || s.edge != r.PubEdge {
			sum += float64(pb.subRTP[i] - pa.subRTP[i])
			cnt++
		}
	}
	if cnt > 0 {
		r.SubBPS = sum / float64(cnt) / dt
	}
	if r.SubBPS > 0 {
		r.LegPerSub = r.LegOutBPS / r.SubBPS
	}
	if r.SentPPS > 0 {
		r.LegPerSent = r.LegOutPPS / r.SentPPS
	}

	if o.mode == "failover" {
		fo, err := failover(ctx, api, j, o, roomID, subs, gen, &retireWG)
		if err != nil {
			return r, err
		}
		r.Failover = fo
	}
	return r, nil
}

func delivery(a, b snapshot, n int) (all, video, audio float64) {
	if exp := float64(b.sent-a.sent) * float64(n); exp > 0 {
		all = 100 * float64(b.recv-a.recv) / exp
	}
	if v := float64(b.video-a.video) * float64(n); v > 0 {
		video = 100 * float64(b.recvVideo-a.recvVideo) / v
	}
	if v := float64(b.audio-a.audio) * float64(n); v > 0 {
		audio = 100 * float64(b.recvAudio-a.recvAudio) / v
	}
	return all, video, audio
}

func waitReceiving(ctx context.Context, cs []*client, min uint64, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		ready := 0
		for _, c := range cs {
			if c.receiving(min) {
				ready++
			}
		}
		if ready == len(cs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			// Say where the others are stuck.
			states := map[string]int{}
			for _, c := range cs {
				if c.receiving(min) {
					continue
				}
				c.mu.Lock()
				pc := c.sub
				c.mu.Unlock()
				a, v := c.receivingKinds(min)
				st := "no subscriber offer yet"
				if pc != nil {
					st = "PeerConnection " + pc.ConnectionState().String()
				}
				states[fmt.Sprintf("%s, audio %v, video %v", st, a, v)]++
			}
			var parts []string
			for _, k := range keys(states) {
				parts = append(parts, fmt.Sprintf("%d: %s", states[k], k))
			}
			return fmt.Errorf("only %d of %d subscribers receive audio and video after %v (the others: %s)", ready, len(cs), timeout, strings.Join(parts, "; "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dumpGoroutines saves every live edge's goroutine dump (DIAG=1), to see
// where a relay leg or forwarder is stuck when media goes missing.
func dumpGoroutines(o cascadeOptions, tag string, skip map[string]bool) {
	for id, base := range o.pprofEdges {
		if skip[id] {
			continue
		}
		cl := http.Client{Timeout: 10 * time.Second}
		resp, err := cl.Get(base + "/debug/pprof/goroutine?debug=2")
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: goroutine dump:", err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		name := fmt.Sprintf("%s/%s-%d-%s-%s-goroutines.txt", o.diagDir, o.mode, o.subs, tag, id)
		if err := os.WriteFile(name, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: goroutine dump:", err)
			continue
		}
		fmt.Fprintln(os.Stderr, "loadgen: starved subscribers; goroutine dump in", name)
	}
}

// edgeMetrics fills the /metrics deltas of a row.
func edgeMetrics(r *cascadeRow, pa, pb procSnap, dt float64) {
	r.EdgeFwdPPS, r.LegBytesPS, r.LegPktsPS, r.SkipsPS = map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
	r.EdgeHeapKB, r.EdgeRoutines = map[string]float64{}, map[string]float64{}
	r.Legs, r.LegsOpened = map[string]float64{}, map[string]float64{}
	for id, s1 := range pb.metrics {
		s0 := pa.metrics[id]
		if len(s1) == 0 || len(s0) == 0 {
			continue
		}
		d := func(name string, match map[string]string) float64 {
			return promSum(s1, name, match) - promSum(s0, name, match)
		}
		r.EdgeFwdPPS[id] = d("meridian_sfu_forwarded_packets_total", nil) / dt
		for _, smp := range s1 {
			switch smp.name {
			case "meridian_cascade_bytes_total", "meridian_cascade_packets_total":
				m := map[string]string{"peer": smp.labels["peer"], "direction": smp.labels["direction"]}
				v := (smp.value - promSum(s0, smp.name, m)) / dt
				k := id + ">" + m["peer"] + "/" + m["direction"]
				if smp.name == "meridian_cascade_bytes_total" {
					r.LegBytesPS[k] = v
					if m["direction"] == "out" {
						r.LegOutBPS += v
					}
				} else {
					r.LegPktsPS[k] = v
					if m["direction"] == "out" {
						r.LegOutPPS += v
					}
				}
			case "meridian_cascade_legs":
				if smp.value != 0 {
					r.Legs[id+">"+smp.labels["peer"]+"/"+smp.labels["direction"]+"/"+smp.labels["state"]] = smp.value
				}
			case "meridian_cascade_legs_opened_total":
				dir := smp.labels["direction"]
				if v := smp.value - promSum(s0, smp.name, map[string]string{"direction": dir}); v != 0 {
					r.LegsOpened[id+"/"+dir] = v
				}
			case "meridian_sfu_forward_skips_total":
				rs := smp.labels["reason"]
				r.SkipsPS[rs] += (smp.value - promSum(s0, smp.name, map[string]string{"reason": rs})) / dt
			}
		}
		r.EdgeHeapKB[id] = promSum(s1, "go_memstats_heap_inuse_bytes", nil) / 1024
		r.EdgeRoutines[id] = promSum(s1, "go_goroutines", nil)
	}
	for k, v := range r.SkipsPS {
		if v == 0 {
			delete(r.SkipsPS, k)
		}
	}
}

// failover kills the edge most subscribers are on and lets each of them
// rejoin like a client: notice the loss (socket closed, or the subscriber
// PeerConnection not connected for -lost-after), ask the join API again
// with the same participant id and avoidEdges [victim], join the first
// candidate that admits it, and wait for media.
func failover(ctx context.Context, api *webrtc.API, j *apiJoiner, o cascadeOptions, roomID string, subs []*csub, gen *generator, retireWG *sync.WaitGroup) (*failoverResult, error) {
	fo := &failoverResult{LandedOn: map[string]int{}, Reasons: map[string]int{}}
	count := map[string]int{}
	for _, s := range subs {
		count[s.edge]++
	}
	for e, c := range count {
		if c > count[fo.Victim] || (c == count[fo.Victim] && e < fo.Victim) {
			fo.Victim = e
		}
	}
	victimPID := 0
	for _, np := range o.procs {
		if np.name == fo.Victim {
			victimPID = np.pid
		}
	}
	if victimPID == 0 {
		return nil, fmt.Errorf("failover: no -procs entry for edge %q", fo.Victim)
	}
	var affected []*csub
	for _, s := range subs {
		if s.edge == fo.Victim {
			affected = append(affected, s)
		}
	}
	fo.Affected = len(affected)
	skip := map[string]bool{fo.Victim: true}
	g0 := time.Now()
	genCPU0, _ := procfs.CPUTime(os.Getpid())
	srv0 := procCPUs(o, skip)
	o.logf("failover: SIGKILL %s (pid %d), %d subscribers on it", fo.Victim, victimPID, len(affected))
	tKill := time.Now()
	if err := syscall.Kill(victimPID, syscall.SIGKILL); err != nil {
		return nil, fmt.Errorf("failover: kill %s: %w", fo.Victim, err)
	}
	var st joinStats
	type outcome struct {
		detected, joined, receiving time.Duration
		audio                       time.Duration // ≥ 5 audio packets on the new edge
		reason, edge                string
		lostAgain                   int // new edges lost before media flowed
		err                         error
	}
	outs := make([]outcome, len(affected))
	deadline := tKill.Add(o.failoverTimeout)
	fctx, fcancel := context.WithDeadline(ctx, deadline)
	defer fcancel()
	// Timeline sampler (diagnostics: where video waits after the move).
	base := map[string][]promSample{}
	for id, u := range o.edges {
		if id != fo.Victim {
			base[id] = scrape(u + "/metrics")
		}
	}
	tlDone := make(chan struct{})
	tlStopped := make(chan struct{})
	go func() {
		defer close(tlStopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tlDone:
				return
			case <-tick.C:
			}
			pt := timelinePoint{T: math.Round(time.Since(tKill).Seconds()*1000) / 1000, Skips: map[string]float64{}, PLIs: map[string]float64{}}
			for _, s := range affected {
				c, _ := s.current()
				if c == nil {
					continue
				}
				a, v := c.receivingKinds(5)
				if a {
					pt.Audio++
				}
				if v {
					pt.Video++
				}
			}
			for id, b0 := range base {
				b1 := scrape(o.edges[id] + "/metrics")
				if b1 == nil {
					continue
				}
				for _, rs := range []string{"not-connected", "waiting-keyframe", "duplicate-or-old", "write-error"} {
					m := map[string]string{"reason": rs}
					if d := promSum(b1, "meridian_sfu_forward_skips_total", m) - promSum(b0, "meridian_sfu_forward_skips_total", m); d != 0 {
						pt.Skips[id+"/"+rs] = d
					}
				}
				if d := promSum(b1, "meridian_sfu_plis_received_total", nil) - promSum(b0, "meridian_sfu_plis_received_total", nil); d != 0 {
					pt.PLIs[id] = d
				}
			}
			fo.Timeline = append(fo.Timeline, pt)
		}
	}()
	var wg sync.WaitGroup
	for i, s := range affected {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := &outs[i]
			cur, _ := s.current()
			avoid := []string{fo.Victim}
			for {
				// Notice the loss: a closed socket at once, or the
				// subscriber PeerConnection not connected for -lost-after.
				reason := ""
				var lostSince time.Time
				for reason == "" {
					select {
					case <-cur.lost:
						reason = "socket-closed"
						continue
					case <-fctx.Done():
						out.err = errors.New("loss never noticed")
						return
					case <-time.After(50 * time.Millisecond):
					}
					cur.mu.Lock()
					pc := cur.sub
					cur.mu.Unlock()
					if pc != nil && pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
						lostSince = time.Time{}
					} else if lostSince.IsZero() {
						lostSince = time.Now()
					} else if time.Since(lostSince) > o.lostAfter {
						reason = "media-lost"
					}
				}
				if out.reason == "" {
					out.reason, out.detected = reason, time.Since(tKill)
				}
				old := cur
				retireWG.Add(1)
				go func() { defer retireWG.Done(); old.close() }()
				// Rejoin with the same participant id, avoiding the lost
				// edge(s), with backoff (signaltest.Session, web SDK).
				for attempt := 0; ; attempt++ {
					actx, acancel := context.WithTimeout(fctx, 15*time.Second)
					c, edge, err := connect(actx, api, j, roomID, s.pid, s.region, avoid, &st)
					acancel()
					if err == nil {
						s.mu.Lock()
						s.c, s.edge = c, edge
						s.mu.Unlock()
						cur, out.edge, out.joined, out.err = c, edge, time.Since(tKill), nil
						break
					}
					out.err = err
					select {
					case <-fctx.Done():
						return
					case <-time.After(min(time.Duration(100<<min(attempt, 5))*time.Millisecond, 2*time.Second)):
					}
				}
				lost := false
				for !lost {
					a, v := cur.receivingKinds(5)
					if a && out.audio == 0 {
						out.audio = time.Since(tKill)
					}
					if a && v {
						break
					}
					select {
					case <-fctx.Done():
						out.err = errors.New("joined but no media before the timeout")
						return
					case <-cur.lost:
						lost = true
					case <-time.After(20 * time.Millisecond):
					}
				}
				if !lost {
					out.receiving = time.Since(tKill)
					return
				}
				// The new edge dropped us before media flowed: a client
				// would stay out when removed, and move on otherwise.
				out.lostAgain++
				out.err = fmt.Errorf("lost edge %s after joining it: %w", out.edge, cur.lostErr)
				if strings.Contains(cur.lostErr.Error(), wire.TypeRemoved) {
					return
				}
				if len(avoid) < 16 {
					avoid = append(avoid, out.edge)
				}
			}
		}()
	}
	wg.Wait()
	close(tlDone)
	<-tlStopped
	genCPU1, _ := procfs.CPUTime(os.Getpid())
	srv1 := procCPUs(o, skip)
	gdt := time.Since(g0).Seconds()
	fo.GenCPUPct = 100 * (genCPU1 - genCPU0).Seconds() / gdt
	fo.ServerCPUPct = 100 * (sumCPU(srv1) - sumCPU(srv0)).Seconds() / gdt
	var det, joined, recv, audio []time.Duration
	for _, out := range outs {
		fo.LostAgain += out.lostAgain
		if out.audio > 0 {
			audio = append(audio, out.audio)
		}
		if out.reason != "" {
			fo.Reasons[out.reason]++
			det = append(det, out.detected)
		}
		if out.edge != "" {
			fo.LandedOn[out.edge]++
			joined = append(joined, out.joined)
		}
		if out.err != nil || out.receiving == 0 {
			fo.Failed++
			if fo.FirstError == "" && out.err != nil {
				fo.FirstError = out.err.Error()
			}
			continue
		}
		recv = append(recv, out.receiving)
	}
	fo.Detected, fo.Joined, fo.Receiving, fo.Audio = percentilesOf(det), percentilesOf(joined), percentilesOf(recv), percentilesOf(audio)
	for _, s := range subs {
		if c, _ := s.current(); c != nil {
			fo.SessionErrors += c.sessionErrs.Load()
			if e, ok := c.lastSessErr.Load().(string); ok {
				fo.LastSessErr = e
			}
		}
	}
	fo.JoinCalls, fo.JoinErrors, fo.EdgeErrors = st.calls.Load(), st.apiErrors.Load(), st.edgeErrors.Load()
	plis, kfs := gen.events(tKill)
	for _, d := range plis {
		fo.PLIsAt = append(fo.PLIsAt, math.Round(d.Seconds()*1000)/1000)
	}
	for _, d := range kfs {
		fo.KeysAt = append(fo.KeysAt, math.Round(d.Seconds()*1000)/1000)
	}
	o.logf("failover: %d/%d receiving again, p50 %.2fs p95 %.2fs max %.2fs", len(recv), len(affected), fo.Receiving.P50, fo.Receiving.P95, fo.Receiving.Max)
	// Delivery once everyone who made it is back (every subscriber counted).
	if o.afterWindow > 0 && ctx.Err() == nil {
		cs := make([]*client, len(subs))
		for i, s := range subs {
			cs[i], _ = s.current()
		}
		sleep(ctx, time.Second)
		a := take(cs, gen, nil, -1)
		sleep(ctx, o.afterWindow)
		b := take(cs, gen, nil, -1)
		fo.AfterWindow = b.at.Sub(a.at).Seconds()
		fo.AfterDelivery, fo.AfterVideo, fo.AfterAudio = delivery(a, b, len(subs))
		if fo.AfterDelivery < 90 {
			dumpGoroutines(o, "after", skip)
		}
	}
	// Old clients (closing in the background) are waited for by the caller.
	return fo, nil
}

// promSample is one Prometheus text-format sample.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads a Prometheus text endpoint (nil on any error).
func scrape(url string) []promSample {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: metrics:", err)
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "loadgen: metrics:", url, resp.Status)
		return nil
	}
	var out []promSample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !(strings.HasPrefix(line, "meridian_") || strings.HasPrefix(line, "go_")) {
			continue
		}
		s := promSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			k := strings.LastIndexByte(line, '}')
			if k < i {
				continue
			}
			s.name = line[:i]
			for _, kv := range splitLabels(line[i+1 : k]) {
				if a, b, ok := strings.Cut(kv, "="); ok {
					s.labels[a] = strings.Trim(b, `"`)
				}
			}
			rest = strings.TrimSpace(line[k+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			s.name, rest = f[0], f[1]
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// splitLabels splits `a="x",b="y,z"` at commas outside quotes.
func splitLabels(s string) []string {
	var out []string
	inq, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inq = !inq
		case ',':
			if !inq {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// promSum adds the samples of a metric whose labels include match.
func promSum(ss []promSample, name string, match map[string]string) float64 {
	var t float64
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			ok = ok && s.labels[k] == v
		}
		if ok {
			t += s.value
		}
	}
	return t
}

// --- report ---

func printCascadeTable(w io.Writer, rows []cascadeRow) {
	var media []cascadeRow
	for _, r := range rows {
		media = append(media, r)
	}
	fmt.Fprintln(w, "| mode | N subs (per edge) | fwd pkt/s | delivered (video/audio) | subs < 90 % | server CPU, all processes (idle) | CPU per process | µs/fwd pkt | marginal µs/pkt | relay leg out | leg bytes ÷ one sub's bytes (target ≈ 1) | leg pkts ÷ published pkts | RSS/sub KB (all processes) | join s | forward skips/s | loadgen CPU | other load on server core |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
	for _, r := range media {
		leg, legRatio, legPkts := "–", "–", "–"
		if r.LegOutBPS > 0 {
			leg = fmt.Sprintf("%.0f kbit/s", r.LegOutBPS*8/1000)
			legRatio = fmt.Sprintf("%.2f", r.LegPerSub)
			legPkts = fmt.Sprintf("%.2f", r.LegPerSent)
		}
		fmt.Fprintf(w, "| %s | %d (%s) | %.0f | %.1f%% (%.1f/%.1f) | %d | %.0f%% (%.0f%%) | %s | %.2f | %.2f | %s | %s | %s | %.0f | %.1f | %s | %.0f%% | %.0f%% |\n",
			modeLabel(r.Mode), r.Subs, placement(r.OnEdge), r.FwdPPS, r.DeliveryPct, r.VideoDeliveryPct, r.AudioDeliveryPct, r.StarvedSubs,
			r.ServerCPUPct, r.IdleCPUPct, procCPU(r.ProcCPUPct), r.ServerUsPerPkt, r.MarginalUsPerPkt, leg, legRatio, legPkts,
			r.RSSPerSubKB, r.JoinSeconds, skips(r.SkipsPS), r.GenCPUPct, r.OtherCPUPct)
	}
	for _, r := range media {
		if r.SessionErrors > 0 {
			fmt.Fprintf(w, "\n%s N=%d: %d signaling session errors in the window, last %s\n", r.Mode, r.Subs, r.SessionErrors, r.LastSessErr)
		}
	}
	cascadeRatios(w, rows)
	var fos []cascadeRow
	for _, r := range rows {
		if r.Failover != nil {
			fos = append(fos, r)
		}
	}
	if len(fos) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Failover: SIGKILL of the edge the subscribers are on; times in seconds from the kill.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| N subs | killed edge → landed on | loss noticed p50 / p95 / max | re-placed (`joined`) p50 / p95 / max | audio again p50 / p95 / max | **receiving again** (audio + video) p50 / p95 / max | failed | join API calls (errors) | candidates refused / new edge lost | delivery after (video/audio) | surviving servers' CPU / loadgen CPU during failover |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range fos {
		f := r.Failover
		reasons := make([]string, 0, len(f.Reasons))
		for _, k := range keys(f.Reasons) {
			reasons = append(reasons, fmt.Sprintf("%s %d", k, f.Reasons[k]))
		}
		fmt.Fprintf(w, "| %d | %s (%d) → %s | %s (%s) | %s | %s | %s | %d | %d (%d) | %d / %d | %.1f%% (%.1f/%.1f) | %.0f%% / %.0f%% |\n",
			r.Subs, f.Victim, f.Affected, placement(f.LandedOn), pct(f.Detected), strings.Join(reasons, ", "), pct(f.Joined), pct(f.Audio), pct(f.Receiving),
			f.Failed, f.JoinCalls, f.JoinErrors, f.EdgeErrors, f.LostAgain, f.AfterDelivery, f.AfterVideo, f.AfterAudio, f.ServerCPUPct, f.GenCPUPct)
	}
	for _, r := range fos {
		f := r.Failover
		fmt.Fprintf(w, "\nN=%d: keyframe requests reached the publisher at %s s and key frames left it at %s s after the kill (periodic key frame every %v)",
			r.Subs, secs(f.PLIsAt, 8), secs(f.KeysAt, 8), r.Shape.KeyEvery)
		if n := len(f.Timeline); n > 0 {
			last := f.Timeline[n-1]
			fmt.Fprintf(w, "; until all received again, the surviving edges skipped %s packets and received %s keyframe requests",
				skips(last.Skips), skips(last.PLIs))
		}
		fmt.Fprintln(w)
		if f.FirstError != "" || f.SessionErrors > 0 {
			fmt.Fprintf(w, "\nN=%d: first failure: %q; session errors after the move: %d %s\n", r.Subs, f.FirstError, f.SessionErrors, f.LastSessErr)
		}
	}
}

func secs(v []float64, max int) string {
	if len(v) == 0 {
		return "none"
	}
	var parts []string
	for i, x := range v {
		if i == max {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(parts, ", ")
}

func modeLabel(m string) string {
	if m == "failover" {
		return "failover, before the kill"
	}
	return m
}

func pct(p percentiles) string {
	if p.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f", p.P50, p.P95, p.Max)
}

func placement(m map[string]int) string {
	var parts []string
	for _, k := range keys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func procCPU(m map[string]float64) string {
	var parts []string
	for _, k := range keys(m) {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func skips(m map[string]float64) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range keys(m) {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// cascadeRatios prints cascade ÷ single for every N measured both ways
// (means when a mode was measured several times at one N).
func cascadeRatios(w io.Writer, rows []cascadeRow) {
	type acc struct{ us, marg, cpu float64 }
	mean := map[string]map[int]*acc{}
	cnt := map[string]map[int]int{}
	for _, r := range rows {
		if r.Mode != "single" && r.Mode != "cascade" {
			continue
		}
		if mean[r.Mode] == nil {
			mean[r.Mode], cnt[r.Mode] = map[int]*acc{}, map[int]int{}
		}
		if mean[r.Mode][r.Subs] == nil {
			mean[r.Mode][r.Subs] = &acc{}
		}
		a := mean[r.Mode][r.Subs]
		a.us += r.ServerUsPerPkt
		a.marg += r.MarginalUsPerPkt
		a.cpu += r.ServerCPUPct
		cnt[r.Mode][r.Subs]++
	}
	var ns []int
	for n := range mean["cascade"] {
		if mean["single"][n] != nil {
			ns = append(ns, n)
		}
	}
	if len(ns) == 0 {
		return
	}
	sort.Ints(ns)
	fmt.Fprintln(w)
	for _, n := range ns {
		c, s := mean["cascade"][n], mean["single"][n]
		cc, sc := float64(cnt["cascade"][n]), float64(cnt["single"][n])
		fmt.Fprintf(w, "- N=%d, cascade ÷ single edge: µs/fwd pkt %s, marginal µs/pkt %s, total server CPU %s\n", n,
			ratio(c.us/cc, s.us/sc), ratio(c.marg/cc, s.marg/sc), ratio(c.cpu/cc, s.cpu/sc))
	}
}

func runCascadeReport(files []string) error {
	var rows []cascadeRow
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var rs []cascadeRow
		if err := json.Unmarshal(b, &rs); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		rows = append(rows, rs...)
	}
	printCascadeTable(os.Stdout, rows)
	return nil
}
