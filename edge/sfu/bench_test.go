package sfu

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// TestMain lets the test binary double as the subscriber process of
// BenchmarkForwardPion (see subscriberProcess).
func TestMain(m *testing.M) {
	if os.Getenv("MERIDIAN_SFU_BENCH_SUBSCRIBERS") == "1" {
		subscriberProcess(os.Stdin, os.Stdout)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkForwardPion fans one incoming video packet (1000 B) out to N real
// pion subscribers (browser-like: receiver reports, transport-cc feedback,
// NACK) and measures the edge alone: the subscribers run in a child process
// (this test binary, signaling over a pipe), so allocs/op and the CPU
// metrics count the edge's process only. Everything under the forwarder's
// write runs: pion's RTP path, SRTP, the socket, and the RTCP the
// subscribers send back. Reported per forwarded packet (per subscriber):
// allocs/fwd-pkt, µs-cpu/fwd-pkt (process user+system time, kernel
// loopback delivery included, as in the fan-out benchmark) and the share
// the subscribers received.
func BenchmarkForwardPion(b *testing.B) {
	for _, n := range []int{10, 50} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchForwardPion(b, n) })
	}
}

func benchForwardPion(b *testing.B, n int) {
	s := newTestSFU(b, testConfig())
	pub := startPublisher(b, s, "room", "alice", pubOpts{})
	var tr *PublishedTrack
	eventually(b, 10*time.Second, func() string {
		// Frames until the edge has the track (the first ones may precede
		// the transport); then the benchmark feeds the track directly.
		if tr = pub.part.pub.track("video"); tr == nil {
			pub.sendFrame(1, 1000, true)
			return "video track not published yet"
		}
		return ""
	})
	kids := startSubscriberProcess(b, s, "room", n)
	eventually(b, 60*time.Second, func() string {
		ready := 0
		for _, f := range tr.forwarders() {
			if f.dt.b.Load() != nil && f.sub.connected.Load() {
				ready++
			}
		}
		if ready < n {
			return fmt.Sprintf("%d of %d subscribers connected", ready, n)
		}
		return ""
	})
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 1, SSRC: 1234}}
	pkt.Payload = vp8Payload(make([]byte, 0, 1100), true, 0, 1, 1000)
	tr.fanOut(0, &pkt, true, monoNow())
	pkt.Payload = vp8Payload(make([]byte, 0, 1100), false, 0, 1, 1000)
	send := func() {
		pkt.SequenceNumber++
		if pkt.SequenceNumber%5 == 0 {
			pkt.Timestamp += 3000
		}
		tr.fanOut(0, &pkt, false, monoNow())
	}
	// Warm up: every subscriber receives and feedback flows.
	for i := 0; i < 400; i++ {
		send()
		time.Sleep(time.Millisecond)
	}
	runtime.GC()
	recv0 := kids.count(b)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	calls0, sent0, errs0 := s.media.batch.syscalls.Load(), s.media.batch.packets.Load(), s.media.batch.errors.Load()
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt.Payload) * n))
	b.ResetTimer()
	// Pace at about 200,000 datagrams/s in all, as fast as the subscriber
	// process keeps up with (beyond, the kernel drops at its sockets and
	// feedback stops). The rate matters on loopback: a receiver that
	// sleeps between packets is woken by each one, on the sender's CPU.
	burst := max(1, 200/n)
	for i := 0; i < b.N; i++ {
		send()
		if i%burst == burst-1 {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	calls, sent, errs := s.media.batch.syscalls.Load()-calls0, s.media.batch.packets.Load()-sent0, s.media.batch.errors.Load()-errs0
	fwd := float64(b.N) * float64(n)
	time.Sleep(300 * time.Millisecond)
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/fwd, "allocs/fwd-pkt")
	b.ReportMetric(float64(cpu.Microseconds())/fwd, "µs-cpu/fwd-pkt")
	b.ReportMetric(100*float64(kids.count(b)-recv0)/fwd, "%delivered")
	if calls > 0 {
		b.ReportMetric(float64(sent)/float64(calls), "dgrams/syscall")
		b.ReportMetric(float64(errs), "send-errors")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Messages between the benchmark (edge) and the subscriber process, one
// JSON object per line.
type pipeMsg struct {
	Op    string                   `json:"op"` // offer, answer, cand, count
	ID    string                   `json:"id,omitempty"`
	SDP   string                   `json:"sdp,omitempty"`
	Cand  *webrtc.ICECandidateInit `json:"cand,omitempty"`
	Count int64                    `json:"count,omitempty"`
}

type pipeWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *pipeWriter) send(m pipeMsg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(m)
}

type subscriberKids struct {
	out    *pipeWriter
	counts chan int64
}

// count asks the subscriber process how many RTP packets it received.
func (k *subscriberKids) count(t testing.TB) int64 {
	k.out.send(pipeMsg{Op: "count"})
	select {
	case c := <-k.counts:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber process does not answer")
		return 0
	}
}

// startSubscriberProcess joins n subscribers to room whose PeerConnections
// live in a child process.
func startSubscriberProcess(t testing.TB, s *SFU, room string, n int) *subscriberKids {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MERIDIAN_SFU_BENCH_SUBSCRIBERS=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k := &subscriberKids{out: &pipeWriter{enc: json.NewEncoder(stdin)}, counts: make(chan int64, 1)}
	parts := map[string]*Participant{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("sub-%d", i)
		sink := &pipeSink{id: id, w: k.out}
		p, err := s.Join(room, ParticipantConfig{ID: id, CanSubscribe: true, Sink: sink})
		if err != nil {
			t.Fatal(err)
		}
		parts[id] = p
	}
	go func() {
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var m pipeMsg
			if err := dec.Decode(&m); err != nil {
				return
			}
			p := parts[m.ID]
			switch {
			case m.Op == "count":
				k.counts <- m.Count
			case p == nil:
			case m.Op == "answer":
				_ = p.HandleAnswer(m.SDP)
			case m.Op == "cand" && m.Cand != nil:
				_ = p.AddICECandidate(TargetSubscriber, candidateJSON(*m.Cand))
			}
		}
	}()
	for _, p := range parts {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		p.Ready()
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		for _, p := range parts {
			p.Close()
		}
		_ = cmd.Wait()
	})
	return k
}

// pipeSink sends what the SFU tells one subscriber to the child process.
type pipeSink struct {
	id string
	w  *pipeWriter
}

func (s *pipeSink) SubscriberOffer(sdp string) { s.w.send(pipeMsg{Op: "offer", ID: s.id, SDP: sdp}) }
func (s *pipeSink) Candidate(target string, c *webrtc.ICECandidateInit) {
	if c != nil && target == TargetSubscriber {
		s.w.send(pipeMsg{Op: "cand", ID: s.id, Cand: c})
	}
}
func (s *pipeSink) TrackPublished(wire.TrackInfo)     {}
func (s *pipeSink) TrackUnpublished(string, string)   {}
func (s *pipeSink) ActiveSpeakers([]string)           {}
func (s *pipeSink) ConnectionQuality(string, float64) {}

// subscriberProcess runs in the child: browser-like subscriber
// PeerConnections answering the edge's offers, counting what they receive.
func subscriberProcess(in io.Reader, out io.Writer) {
	api, err := newClientAPI(browserLike)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	w := &pipeWriter{enc: json.NewEncoder(out)}
	var received atomic.Int64
	type client struct {
		pc   *webrtc.PeerConnection
		mu   sync.Mutex
		pend []webrtc.ICECandidateInit
	}
	clients := map[string]*client{}
	get := func(id string) *client {
		if c := clients[id]; c != nil {
			return c
		}
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pc.OnICECandidate(func(c *webrtc.ICECandidate) {
			if c != nil {
				init := c.ToJSON()
				w.send(pipeMsg{Op: "cand", ID: id, Cand: &init})
			}
		})
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				received.Add(1)
			}
		})
		c := &client{pc: pc}
		clients[id] = c
		return c
	}
	dec := json.NewDecoder(bufio.NewReader(in))
	for {
		var m pipeMsg
		if err := dec.Decode(&m); err != nil {
			break
		}
		switch m.Op {
		case "count":
			w.send(pipeMsg{Op: "count", Count: received.Load()})
		case "cand":
			c := get(m.ID)
			c.mu.Lock()
			if c.pc.RemoteDescription() == nil {
				c.pend = append(c.pend, *m.Cand)
			} else {
				_ = c.pc.AddICECandidate(*m.Cand)
			}
			c.mu.Unlock()
		case "offer":
			c := get(m.ID)
			go func() {
				c.mu.Lock()
				err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP})
				for _, p := range c.pend {
					_ = c.pc.AddICECandidate(p)
				}
				c.pend = nil
				c.mu.Unlock()
				if err != nil {
					return
				}
				ans, err := c.pc.CreateAnswer(nil)
				if err == nil {
					err = c.pc.SetLocalDescription(ans)
				}
				if err == nil {
					w.send(pipeMsg{Op: "answer", ID: m.ID, SDP: ans.SDP})
				}
			}()
		}
	}
	for _, c := range clients {
		_ = c.pc.Close()
	}
}

// BenchmarkSubscriberFootprint joins N subscribers (in a child process) to a
// publisher sending 200 packets/s of video and audio, and reports what each
// costs the edge once media flows: goroutines, Go heap and RSS per
// subscriber. Run with -benchtime 1x; -v lists the goroutines by function.
//
// addrs=all is the edge as tests and `meridian dev` run it: a media socket
// on every local address, loopback included (4 on a host with IPv4 and
// IPv6 on lo and one interface), and pion gives each subscriber a host
// candidate per address, each with a reader goroutine, a mux watcher and
// read buffers, for the connection's life. addrs=1 binds one address
// (Config.UDPMuxAddr), as an edge with a single public address has.
func BenchmarkSubscriberFootprint(b *testing.B) {
	b.Run("addrs=all", func(b *testing.B) { benchSubscriberFootprint(b, testConfig()) })
	one := testConfig()
	one.UDPMuxAddr = "127.0.0.1"
	b.Run("addrs=1", func(b *testing.B) { benchSubscriberFootprint(b, one) })
	// What direct SRTP costs in memory: the same with pion's send path.
	pionSend := one
	pionSend.PionSendPath = true
	b.Run("addrs=1,pion-send-path", func(b *testing.B) { benchSubscriberFootprint(b, pionSend) })
}

func benchSubscriberFootprint(b *testing.B, cfg Config) {
	const n = 50
	for i := 0; i < b.N; i++ {
		s := newTestSFU(b, cfg)
		pub := startPublisher(b, s, "room", "alice", pubOpts{fps: 30, pktsPerFrame: 5, size: 1000, keyEvery: 60, audio: true})
		pub.videoTrack(b)
		// Let the publisher's rings fill before the baseline: its NACK
		// responder keeps 1024 packets (7 s of its 150 video packets/s)
		// and the edge's retransmission ring 512 (3.4 s). Filling during
		// the measurement counted them (~35 kB) as per-subscriber memory.
		time.Sleep(7500 * time.Millisecond)
		runtime.GC()
		g0, heap0, rss0, stack0, mapped0 := runtime.NumGoroutine(), heapInuse(), rssKB(), stackInuse(), heapMapped()
		debug.FreeOSMemory()
		rssFree0 := rssKB()
		stacks0 := goroutineStacks()
		if path := os.Getenv("MERIDIAN_SFU_FOOTPRINT_HEAPPROFILE"); path != "" {
			writeHeapProfile(b, path+".base") // for pprof -diff_base
		}
		kids := startSubscriberProcess(b, s, "room", n)
		eventually(b, 60*time.Second, func() string {
			if got := kids.count(b); got < int64(n)*400 {
				return fmt.Sprintf("subscribers received %d packets", got)
			}
			return ""
		})
		time.Sleep(3 * time.Second)
		runtime.GC()
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/sub")
		b.ReportMetric(float64(heapInuse()-heap0)/1024/n, "heap-KB/sub")
		b.ReportMetric(float64(rssKB()-rss0)/n, "RSS-KB/sub")
		// RSS moves with when the runtime last collected and returned
		// memory; after FreeOSMemory it is what the subscribers hold, which
		// is steadier from run to run.
		debug.FreeOSMemory()
		b.ReportMetric(float64(rssKB()-rssFree0)/n, "RSS-freed-KB/sub")
		b.ReportMetric(float64(stackInuse()-stack0)/1024/n, "stack-KB/sub")
		// Heap memory the runtime holds from the OS (live, garbage not yet
		// collected, free spans not yet returned): what RSS sees of the heap.
		b.ReportMetric(float64(heapMapped()-mapped0)/1024/n, "heap-mapped-KB/sub")
		if path := os.Getenv("MERIDIAN_SFU_FOOTPRINT_HEAPPROFILE"); path != "" {
			// -memprofile is written after the subscribers are gone; this
			// one is taken while they are connected and receiving.
			writeHeapProfile(b, path)
		}
		if testing.Verbose() {
			var lines []string
			for k, v := range goroutineStacks() {
				if d := v - stacks0[k]; d >= n/2 {
					lines = append(lines, fmt.Sprintf("%6.1f  %s", float64(d)/n, strings.ReplaceAll(k, "\n", " | ")))
				}
			}
			sort.Strings(lines)
			b.Logf("goroutines per subscriber by where they wait and who started them:\n%s", strings.Join(lines, "\n"))
		}
	}
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

func stackInuse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}

func heapMapped() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapSys - ms.HeapReleased)
}

func heapInuse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
