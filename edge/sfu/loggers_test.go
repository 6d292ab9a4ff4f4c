package sfu

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/logging"
)

// countingLoggers counts how many loggers pion is handed by the factory
// the edge was configured with.
type countingLoggers struct {
	f     logging.LoggerFactory
	calls atomic.Int64
}

func (c *countingLoggers) NewLogger(scope string) logging.LeveledLogger {
	c.calls.Add(1)
	return c.f.NewLogger(scope)
}

// TestSubscribersShareLoggers: once one subscriber is connected and
// receiving, another subscriber's PeerConnection (its ICE agent, DTLS,
// SRTP and SRTCP sessions) builds no logger of its own: pion asks for a
// logger per scope per object, and each default one is five log.Loggers.
func TestSubscribersShareLoggers(t *testing.T) {
	cf := &countingLoggers{f: quietPion()}
	cfg := testConfig()
	cfg.PionLoggerFactory = cf
	s := newTestSFU(t, cfg)
	pub := startPublisher(t, s, "room", "alice", pubOpts{fps: 30, pktsPerFrame: 2, size: 300})
	pub.videoTrack(t)
	receive := func(id string) {
		sub := startSubscriber(t, s, "room", id, browserLike)
		eventually(t, 10*time.Second, func() string {
			if n := len(sub.received("video")); n < 5 {
				return fmt.Sprintf("%s has %d video packets", id, n)
			}
			return ""
		})
	}
	receive("bob")
	first := cf.calls.Load()
	if first == 0 {
		t.Fatal("the edge never asked the configured factory for a logger")
	}
	receive("carol")
	receive("dave")
	if got := cf.calls.Load(); got != first {
		t.Fatalf("two more subscribers made pion build %d more loggers", got-first)
	}
}
