package sfu

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// TestFanOutToRealSubscribersDoesNotAllocate: a packet fanned out to ten
// real pion subscribers (in a child process) allocates nothing anywhere
// under PublishedTrack.fanOut (fewer than one allocation per hundred
// packets, for one-offs the runtime makes; without the race detector it is
// zero): the forwarders, pion's RTP path, SRTP, the
// UDP mux and the batched socket. Allocations are attributed by stack
// (every allocation recorded, MemProfileRate 1), so what the edge does on
// other goroutines meanwhile (RTCP from the subscribers, ICE keepalives,
// housekeeping) does not count, however long a loaded machine makes the
// loop take.
//
// sync.Pool refills are counted apart: a pool allocates when it is empty
// (after a garbage collection; under the race detector also at random, as
// it drops a quarter of what is put back), and so does the pool's own
// bookkeeping. x/net sizes the sendmmsg headers it keeps in a pool on
// their first use (mmsghdrsPacker.prepare), which counts as a refill too,
// as does the runtime refilling its cache of waiter records when a
// forwarder's lock is contended (the subscribers' RTCP takes it too).
// Refills must stay well below one per packet: a pool that never gets its
// buffers back would allocate on every packet. The collector is off
// during the measured loop, so without the race detector there are
// almost none.
func TestFanOutToRealSubscribersDoesNotAllocate(t *testing.T) {
	s := newTestSFU(t, testConfig())
	pub := startPublisher(t, s, "room", "alice", pubOpts{})
	var tr *PublishedTrack
	eventually(t, 10*time.Second, func() string {
		if tr = pub.part.pub.track("video"); tr == nil {
			pub.sendFrame(1, 1000, true)
			return "video track not published yet"
		}
		return ""
	})
	const n = 10
	kids := startSubscriberProcess(t, s, "room", n)
	eventually(t, 30*time.Second, func() string {
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
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 1}}
	pkt.Payload = vp8Payload(make([]byte, 0, 1100), true, 0, 1, 1000)
	tr.fanOut(0, &pkt, true, monoNow())
	pkt.Payload = vp8Payload(make([]byte, 0, 1100), false, 0, 1, 1000)
	send := func() {
		pkt.SequenceNumber++
		tr.fanOut(0, &pkt, false, monoNow())
	}
	for i := 0; i < 200; i++ { // every subscriber receiving, first feedback in
		send()
		time.Sleep(time.Millisecond)
	}

	const runs = 1000
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	before := allocsUnder(t, "sfu.(*PublishedTrack).fanOut")
	recv0 := kids.count(t)
	fwd0 := map[*Forwarder]uint64{}
	for _, f := range tr.forwarders() {
		fwd0[f] = f.stats.packets.Load()
	}
	sent0 := s.media.batch.packets.Load()
	gc := debug.SetGCPercent(-1)
	for i := 0; i < runs; i++ {
		send()
		if i%10 == 9 {
			time.Sleep(time.Millisecond) // let the subscribers keep up
		}
	}
	debug.SetGCPercent(gc)
	after := allocsUnder(t, "sfu.(*PublishedTrack).fanOut")
	// Every packet went to every subscriber's socket: each forwarder
	// wrote it and the batches handed it to the kernel. (What reaches the
	// subscribers' process depends on the machine's load: loopback drops
	// at a receiver that is not scheduled.)
	for f, p0 := range fwd0 {
		if got := f.stats.packets.Load() - p0; got != runs {
			t.Fatalf("a forwarder wrote %d of %d packets", got, runs)
		}
	}
	if got := s.media.batch.packets.Load() - sent0; got < runs*n {
		t.Fatalf("the media sockets sent %d datagrams for %d packets to %d subscribers", got, runs, n)
	}
	eventually(t, 10*time.Second, func() string {
		if got := kids.count(t) - recv0; got == 0 {
			return "the subscribers received none of the packets"
		}
		return ""
	})
	// Fewer than one allocation per hundred packets: anything that
	// allocates per packet (or per packet and subscriber) gives thousands
	// here; the rare one-off (a lazily grown runtime cache) passes.
	if d := after.other - before.other; d >= runs/100 {
		t.Errorf("%d allocations under fanOut in %d packets fanned out to %d subscribers:\n%s", d, runs, n, after.sites(before))
	}
	pool := after.pool - before.pool
	limit := int64(runs / 10)
	if raceEnabled {
		limit = runs * n // fewer than one per forwarded packet
	}
	if pool >= limit {
		t.Errorf("%d sync.Pool refills under fanOut in %d packets to %d subscribers (limit %d, race detector %v):\n%s", pool, runs, n, limit, raceEnabled, after.sites(before))
	}
}

// allocCount is what the allocation profile says about stacks through one
// function: objects allocated by sync.Pool's New and all others, by site.
type allocCount struct {
	pool, other int64
	bySite      map[string]int64
}

// sites lists the allocation sites that grew since before.
func (a allocCount) sites(before allocCount) string {
	var b strings.Builder
	for site, n := range a.bySite {
		if d := n - before.bySite[site]; d > 0 {
			fmt.Fprintf(&b, "%8d  %s\n", d, site)
		}
	}
	return b.String()
}

// allocsUnder reads the allocation profile (objects allocated since the
// program started; the collection publishes the latest) and counts the
// objects allocated by stacks that pass through fn.
func allocsUnder(t *testing.T, fn string) allocCount {
	t.Helper()
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("allocs").WriteTo(&buf, 1); err != nil {
		t.Fatal(err)
	}
	out := allocCount{bySite: map[string]int64{}}
	// debug=1 format: "inuse: bytes [allocs: bytes] @ pcs" then one
	// "#\tpc\tfunction+off\tfile:line" line per frame, innermost first.
	var objs int64
	var frames []string
	flush := func() {
		through, pool := false, false
		for _, f := range frames {
			through = through || strings.HasPrefix(f, fn+"+") || strings.HasSuffix(strings.SplitN(f, "+", 2)[0], fn)
			pool = pool || strings.HasPrefix(f, "sync.(*Pool)") || strings.HasPrefix(f, "sync.(*poolChain)") ||
				strings.Contains(f, "socket.(*mmsghdrsPacker).prepare") || strings.Contains(f, "runtime_Semacquire")
		}
		if through && objs > 0 {
			site := strings.Join(frames[:min(len(frames), 6)], " < ")
			if pool {
				site = "(refill) " + site
			}
			out.bySite[site] += objs
			if pool {
				out.pool += objs
			} else {
				out.other += objs
			}
		}
		objs, frames = 0, frames[:0]
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#\t"):
			if f := strings.Split(l, "\t"); len(f) >= 3 {
				frames = append(frames, f[2])
			}
		case strings.Contains(l, " @ ") && strings.Contains(l, "["):
			flush()
			in := l[strings.Index(l, "[")+1:]
			if v, err := strconv.ParseInt(strings.TrimSpace(in[:strings.Index(in, ":")]), 10, 64); err == nil {
				objs = v
			}
		}
	}
	flush()
	return out
}
