package gossip

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/wait"

	"github.com/meridian-video/meridian/shared/edgeapi"
)

// testLogger discards logs unless GOSSIP_TEST_LOG is set (then memberlist's
// lines show at Debug on stderr).
func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// metaSource is a Meta func whose load tests change.
type metaSource struct{ m atomic.Pointer[Meta] }

func newMetaSource(id string, participants int) *metaSource {
	s := &metaSource{}
	s.set(Meta{
		InternalURL: "http://127.0.0.1:9000/" + id,
		Capacity:    100,
		Load:        edgeapi.Load{Participants: participants, Tracks: 2 * participants, Rooms: 1, CPU: 0.25, EgressBps: 1e6},
	})
	return s
}

func (s *metaSource) set(m Meta)      { s.m.Store(&m) }
func (s *metaSource) get() Meta       { return *s.m.Load() }
func (s *metaSource) fn() func() Meta { return s.get }

// runID makes this test binary's regions unique: go test runs packages in
// parallel, and a pool elsewhere on loopback (another package's edges, or
// this package under -count in another process) may still gossip to a port
// the kernel hands to one of ours. The region check refuses such strays.
var runID = func() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

// testRegion is region made unique to this test binary.
func testRegion(region string) string { return region + "-" + runID }

// localConfig is a pool on 127.0.0.1, port 0, local timers, fast meta, in
// testRegion(region).
func localConfig(id, region string, seeds ...string) Config {
	cfg := DefaultConfig()
	cfg.NodeID = id
	cfg.Region = testRegion(region)
	cfg.BindAddr = "127.0.0.1"
	cfg.BindPort = 0
	cfg.Seeds = seeds
	cfg.Timers = TimersLocal
	cfg.MetaEvery = 100 * time.Millisecond
	cfg.MetaRefresh = time.Second
	cfg.MetaMinInterval = 200 * time.Millisecond
	cfg.Logger = testLogger().With("node", id)
	return cfg
}

func startPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeID, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// eventually polls cond until it holds or timeout passes, then fails with the
// last reason cond gave.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	wait.Until(t, timeout, func() string {
		if ok, reason := cond(); !ok {
			return what + ": " + reason
		}
		return ""
	})
}

// sees reports whether p sees member id in state s.
func sees(p *Pool, id string, s State) (bool, string) {
	m, ok := p.Member(id)
	if !ok {
		return false, fmt.Sprintf("%s does not know %s", p.cfg.NodeID, id)
	}
	if m.State != s {
		return false, fmt.Sprintf("%s sees %s %s, want %s", p.cfg.NodeID, id, m.State, s)
	}
	return true, ""
}

// allSee reports whether every pool sees every id in state s.
func allSee(pools []*Pool, ids []string, s State) (bool, string) {
	for _, p := range pools {
		for _, id := range ids {
			if ok, why := sees(p, id, s); !ok {
				return false, why
			}
		}
	}
	return true, ""
}

func ids(pools ...*Pool) []string {
	out := make([]string, len(pools))
	for i, p := range pools {
		out[i] = p.cfg.NodeID
	}
	return out
}

// drain empties a Changes channel.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}
