package cluster_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

// BenchmarkWrite measures replicated writes on a 3-node cluster on disk with
// production commit timing, per log store and entry node:
//
//	go test -run '^$' -bench Write -benchtime 2000x ./control/cluster/
//
// It reports latency percentiles and bytes written to disk per write (all
// three nodes, from /proc/self/io). Compare rows of one run, never absolute
// numbers across machines.
func BenchmarkWrite(b *testing.B) {
	for _, store := range []string{cluster.LogStoreWAL, cluster.LogStoreBolt} {
		for _, via := range []string{"leader", "follower"} {
			b.Run(fmt.Sprintf("store=%s/via=%s/clients=1", store, via), func(b *testing.B) { benchWrites(b, store, via, 1) })
			b.Run(fmt.Sprintf("store=%s/via=%s/clients=16", store, via), func(b *testing.B) { benchWrites(b, store, via, 16) })
		}
	}
}

var benchRoomSeq atomic.Int64

func benchWrites(b *testing.B, store, via string, clients int) {
	c := clustertest.New(b, 3, clustertest.Options{Persist: true, Configure: func(i int, cfg *server.Config) {
		// Production timing: the short test timeouts would add elections
		// (and their log entries) on a busy machine.
		prod := cluster.DefaultConfig()
		cfg.Cluster.CommitTimeout = prod.CommitTimeout
		cfg.Cluster.HeartbeatTimeout, cfg.Cluster.ElectionTimeout, cfg.Cluster.LeaderLease = prod.HeartbeatTimeout, prod.ElectionTimeout, prod.LeaderLease
		cfg.Cluster.LogStore = store
	}})
	entry := c.Leader()
	if via == "follower" {
		entry = c.Followers()[0]
	}
	node := c.Node(entry).Node()
	ctx := context.Background()
	write := func() time.Duration {
		n := benchRoomSeq.Add(1)
		id := fmt.Sprintf("%024x", n)
		cmd := state.CreateRoom{Room: state.Room{ID: id, RoomID: fmt.Sprintf("bnch-%04x-%04x", n>>16&0xffff, n&0xffff), UserID: "bench", APIKey: "bench",
			Webhook: &state.RoomWebhook{EndPoint: "https://hooks.example.com/meridian"}, CreatedAt: time.Unix(n, 0).UTC()}}
		start := time.Now()
		if _, _, err := node.Apply(ctx, state.CmdCreateRoom, cmd); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for range 50 { // warm up connections and the log
		write()
	}
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	term := node.Stats()["term"]
	disk0 := processWriteBytes(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				d := write()
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	disk := processWriteBytes(b) - disk0
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(disk)/float64(b.N), "disk-B/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	if st := node.Stats(); st["term"] != term {
		b.Logf("leadership changed during the run (term %s -> %s): numbers include an election", term, st["term"])
	}
}

// processWriteBytes is what this process has caused to be written to
// storage so far (Linux /proc/self/io), or 0 where that is unknown.
func processWriteBytes(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	return 0
}
