package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-video/meridian/benchmarks/procfs"
)

// node is one server process under test.
type node struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	PID  int    `json:"pid"`
	Data string `json:"data"`

	hc *fasthttp.HostClient
}

// parseNode reads "name=URL,PID,DATADIR".
func parseNode(s string) (*node, error) {
	name, rest, ok := strings.Cut(s, "=")
	parts := strings.Split(rest, ",")
	if !ok || name == "" || len(parts) != 3 {
		return nil, fmt.Errorf("-node %q: want name=URL,PID,DATADIR", s)
	}
	u, err := url.Parse(parts[0])
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("-node %q: want an http:// URL", s)
	}
	var pid int
	if _, err := fmt.Sscan(parts[1], &pid); err != nil || pid <= 0 {
		return nil, fmt.Errorf("-node %q: bad PID", s)
	}
	n := &node{Name: name, URL: strings.TrimRight(parts[0], "/"), PID: pid, Data: parts[2]}
	n.hc = newHostClient(u.Host)
	return n, nil
}

func newHostClient(addr string) *fasthttp.HostClient {
	// fasthttp: one core must drive tens of thousands of requests/s; net/http
	// would make the client the bottleneck of the GET phases.
	return &fasthttp.HostClient{
		Addr: addr, MaxConns: 256, ReadTimeout: 5 * time.Minute, WriteTimeout: time.Minute,
		MaxIdemponentCallAttempts: 1, // a failed GET is an error, never silently retried
		NoDefaultUserAgentHeader:  true,
	}
}

// httpError is a non-2xx answer (or a transport failure, Status 0).
type httpError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *httpError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s %s: %s", e.Method, e.Path, e.Body)
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// do sends one request; an answer other than 200 is an error, and so is
// an error from check, which sees the body of a 200 answer (valid only
// during the call).
func (n *node) do(method, path, token string, body []byte, check func([]byte) error) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(n.URL + path)
	req.Header.SetMethod(method)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := n.hc.Do(req, resp); err != nil {
		return &httpError{Method: method, Path: path, Body: err.Error()}
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		b := resp.Body()
		if len(b) > 500 {
			b = b[:500]
		}
		return &httpError{Method: method, Path: path, Status: resp.StatusCode(), Body: string(bytes.TrimSpace(b))}
	}
	if check == nil {
		return nil
	}
	if err := check(resp.Body()); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// health is a control node's /healthz answer.
type health struct {
	Status       string `json:"status"`
	Node         string `json:"node"`
	Leader       string `json:"leader"`
	AppliedIndex uint64 `json:"appliedIndex"`
}

func (n *node) health() (health, error) {
	var h health
	err := n.do("GET", "/healthz", "", nil, func(b []byte) error { return json.Unmarshal(b, &h) })
	return h, err
}

// Phase is what one load phase measured.
type Phase struct {
	Via     string `json:"via"` // node the requests went to
	Clients int    `json:"clients"`
	// Rate, when set, is the pace the clients were held to (requests/s,
	// all clients together); latencies then run from each request's
	// scheduled start (spec.rate).
	Rate    float64 `json:"rate,omitempty"`
	N       int     `json:"n"` // completed requests (all 200)
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
	P50Ms   float64 `json:"p50Ms"`
	P99Ms   float64 `json:"p99Ms"`
	MaxMs   float64 `json:"maxMs"`
	// Server side, summed over every server process.
	ServerCPUPct float64 `json:"serverCpuPct"` // % of one core
	CPUPerOpUs   float64 `json:"cpuPerOpUs"`
	DiskBytes    int64   `json:"diskBytes"` // Δ write_bytes
	DiskPerOp    float64 `json:"diskPerOp"`
	// WcharPerOp is Δ wchar per request: what the processes passed to
	// write calls (files and sockets). Next to DiskPerOp it shows how much
	// of what reached the block layer the process asked to write.
	WcharPerOp float64 `json:"wcharPerOp"`
	// DevicePerOp is what the block device holding the data directory
	// wrote per request (all of the machine's writes to it, from
	// /proc/diskstats; 0 when unknown).
	DevicePerOp float64 `json:"devicePerOp,omitempty"`
	// The load client's own CPU (% of one core): near 100 the client, not
	// the server, is the limit.
	ClientCPUPct float64 `json:"clientCpuPct"`
	// PeakRSS is the highest sum of the server processes' RSS seen by the
	// once-a-bin sampler (and at the start and end of the phase).
	PeakRSS int64 `json:"peakRss"`
	// Busy time of the server's CPU not spent by the server processes:
	// other work on a shared machine.
	OtherLoadPct float64 `json:"otherLoadPct"`
	Timeline     []Bin   `json:"timeline,omitempty"`
}

// Bin is a stretch of a long phase (the fill), to show how costs move as
// the store grows.
type Bin struct {
	Rooms   int     `json:"rooms"` // rooms in the store at the end of the bin
	N       int     `json:"n"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"perSec"`
	P50Ms   float64 `json:"p50Ms"`
	P99Ms   float64 `json:"p99Ms"`
	// MaxMs and End place a stall: the slowest request of the bin and when
	// the bin ended (UTC), to line up with the nodes' logs and gctrace.
	MaxMs        float64   `json:"maxMs"`
	End          time.Time `json:"end"`
	DiskPerOp    float64   `json:"diskPerOp"`
	ServerCPUPct float64   `json:"serverCpuPct"`
}

// procSnap is the server processes' counters at one moment.
type procSnap struct {
	at     time.Time
	done   int64 // requests completed so far in the phase
	cpu    time.Duration
	disk   int64
	wchar  int64
	device int64 // bytes written to the data directory's device
	client time.Duration
	busy   time.Duration
	rss    int64
}

type loader struct {
	servers   []*node // every process whose CPU and disk count
	serverCPU int     // CPU the servers are pinned to (-1: unknown)
	binEvery  time.Duration
	device    string // "major minor" of the first server's data directory ("": unknown)
}

func (l *loader) snap(done int64) (procSnap, error) {
	busy, _ := procfs.CPUBusy(l.serverCPU)
	s := procSnap{at: time.Now(), done: done, busy: busy}
	for _, n := range l.servers {
		c, err := procfs.CPUTime(n.PID)
		if err != nil {
			return s, fmt.Errorf("%s (pid %d) is gone: %w", n.Name, n.PID, err)
		}
		w, err := writeBytes(n.PID)
		if err != nil {
			return s, fmt.Errorf("%s: %w", n.Name, err)
		}
		wc, err := wcharBytes(n.PID)
		if err != nil {
			return s, fmt.Errorf("%s: %w", n.Name, err)
		}
		s.cpu += c
		s.disk += w
		s.wchar += wc
		if r, err := rss(n.PID); err == nil {
			s.rss += r
		}
	}
	if l.device != "" {
		s.device, _ = deviceWrites(l.device)
	}
	s.client, _ = procfs.CPUTime(0)
	return s, nil
}

// spec is one phase: clients workers call op back to back (closed loop)
// until total requests are done (total > 0) or the window has passed. A
// request that fails stops the phase with its error.
type spec struct {
	via     *node
	clients int
	total   int
	window  time.Duration
	// op does request i (0-based, unique within the phase) for worker w.
	op func(w, i int) error
	// roomsBefore, when timeline is set, is the store size at the start:
	// bin i then reports roomsBefore + requests completed.
	timeline    bool
	roomsBefore int
	// progress, when set, hears every 30 s or so how far a long phase is.
	progress func(rooms int, perSec float64)
	// rate, when set, paces the phase (open loop): request i is due
	// i/rate seconds after the start, a client waits for it if early, and
	// its latency is counted from when it was due, not from when a client
	// got to it. A stall then counts against every request that should
	// have gone during it (no coordinated omission), and a server that
	// cannot keep the pace shows as latencies that keep growing.
	rate float64
}

// due is when request i of a paced phase should start.
func (sp spec) due(start time.Time, i int) time.Time {
	return start.Add(time.Duration(float64(i) / sp.rate * float64(time.Second)))
}

func (l *loader) run(sp spec) (Phase, error) {
	var next, done atomic.Int64
	per := make([][]sample, sp.clients)
	start, err := l.snap(0)
	if err != nil {
		return Phase{}, err
	}
	deadline := start.at.Add(sp.window)
	snaps := []procSnap{start} // the sampler's, then end
	sampleDone := make(chan struct{})
	var samplerWG sync.WaitGroup
	lastReport, reported := start.at, start
	if l.binEvery > 0 {
		samplerWG.Add(1)
		go func() {
			defer samplerWG.Done()
			t := time.NewTicker(l.binEvery)
			defer t.Stop()
			for {
				select {
				case <-sampleDone:
					return
				case <-t.C:
					if s, err := l.snap(done.Load()); err == nil {
						snaps = append(snaps, s)
						if sp.progress != nil && s.at.Sub(lastReport) >= 30*time.Second {
							sp.progress(sp.roomsBefore+int(s.done), float64(s.done-reported.done)/s.at.Sub(reported.at).Seconds())
							lastReport, reported = s.at, s
						}
					}
				}
			}
		}()
	}
	// One goroutine per simulated client; the first error stops them all
	// (ctx is cancelled) and is the phase's error.
	g, ctx := errgroup.WithContext(context.Background())
	for w := range sp.clients {
		g.Go(func() error {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if sp.total > 0 && i >= sp.total {
					return nil
				}
				t0 := time.Now()
				if sp.rate > 0 {
					due := sp.due(start.at, i)
					if wait := due.Sub(t0); wait > 0 {
						select {
						case <-ctx.Done():
							return nil
						case <-time.After(wait):
						}
					}
					t0 = due
				}
				if sp.total == 0 && !t0.Before(deadline) {
					return nil
				}
				if err := sp.op(w, i); err != nil {
					return err
				}
				t1 := time.Now()
				per[w] = append(per[w], sample{end: t1.Sub(start.at), lat: t1.Sub(t0)})
				done.Add(1)
			}
			return nil
		})
	}
	firstErr := g.Wait()
	close(sampleDone)
	samplerWG.Wait()
	end, serr := l.snap(done.Load())
	if firstErr != nil {
		return Phase{}, firstErr
	}
	if serr != nil {
		return Phase{}, serr
	}
	var all []sample
	for _, p := range per {
		all = append(all, p...)
	}
	slices.SortFunc(all, func(a, b sample) int { return int(a.end - b.end) })
	ph := summarize(sp.via.Name, sp.clients, all, start, end)
	ph.Rate = sp.rate
	snaps = append(snaps, end)
	for _, s := range snaps {
		ph.PeakRSS = max(ph.PeakRSS, s.rss)
	}
	if sp.timeline {
		ph.Timeline = bins(all, snaps, sp.roomsBefore)
	}
	return ph, nil
}

// summarize turns the samples of a phase (sorted by completion) and the
// counters around it into a Phase. The duration runs to the last
// completion, so requests started before the window closed all count.
func summarize(via string, clients int, all []sample, a, b procSnap) Phase {
	ph := Phase{Via: via, Clients: clients, N: len(all)}
	wall := b.at.Sub(a.at)
	if len(all) > 0 {
		wall = all[len(all)-1].end
	}
	ph.Seconds = wall.Seconds()
	lat := latencies(all)
	ph.P50Ms, ph.P99Ms = ms(percentile(lat, 50)), ms(percentile(lat, 99))
	if len(lat) > 0 {
		ph.MaxMs = ms(lat[len(lat)-1])
	}
	span := b.at.Sub(a.at).Seconds()
	ph.PerSec = ratio(float64(ph.N), ph.Seconds)
	cpu := b.cpu - a.cpu
	ph.ServerCPUPct = 100 * ratio(cpu.Seconds(), span)
	ph.CPUPerOpUs = ratio(float64(cpu.Microseconds()), float64(ph.N))
	ph.DiskBytes = b.disk - a.disk
	ph.DiskPerOp = ratio(float64(ph.DiskBytes), float64(ph.N))
	ph.WcharPerOp = ratio(float64(b.wchar-a.wchar), float64(ph.N))
	if a.device > 0 && b.device >= a.device {
		ph.DevicePerOp = ratio(float64(b.device-a.device), float64(ph.N))
	}
	ph.ClientCPUPct = 100 * ratio((b.client-a.client).Seconds(), span)
	if b.busy > 0 {
		ph.OtherLoadPct = max(0, 100*ratio((b.busy-a.busy-cpu).Seconds(), span))
	}
	return ph
}

// bins cuts a phase at the sampler's snapshots: each bin has the requests
// that completed between two snapshots.
func bins(all []sample, snaps []procSnap, roomsBefore int) []Bin {
	var out []Bin
	t0 := snaps[0].at
	j := 0
	for k := 1; k < len(snaps); k++ {
		a, b := snaps[k-1], snaps[k]
		lo := j
		for j < len(all) && all[j].end <= b.at.Sub(t0) {
			j++
		}
		if k == len(snaps)-1 {
			j = len(all)
		}
		n := j - lo
		span := b.at.Sub(a.at).Seconds()
		if n == 0 || span <= 0 {
			continue
		}
		lat := latencies(all[lo:j])
		out = append(out, Bin{
			Rooms: roomsBefore + j, N: n, Seconds: span, PerSec: float64(n) / span,
			P50Ms: ms(percentile(lat, 50)), P99Ms: ms(percentile(lat, 99)), MaxMs: ms(lat[len(lat)-1]), End: b.at.UTC(),
			DiskPerOp:    float64(b.disk-a.disk) / float64(n),
			ServerCPUPct: 100 * (b.cpu - a.cpu).Seconds() / span,
		})
	}
	return out
}
