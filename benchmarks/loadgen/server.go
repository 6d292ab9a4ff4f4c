package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// participant is one client of the server under test, whatever its
// signaling: what it received (a sink) and how to leave.
type participant interface {
	counters() []*trackCounter
	receiving(min uint64) bool
	firstPacketAt() time.Time
	close()
}

// server is how the load generator reaches one kind of SFU: its rooms, its
// join flow and its signaling. Every implementation uses the same
// webrtc.API (codecs, interceptors, loopback-only ICE), the same publisher
// tracks and the same sink, so only the server differs between rows.
type server interface {
	newRoom(ctx context.Context) (string, error)
	// publish joins room as its one publisher of tracks and returns once
	// the publisher's PeerConnection is connected; the senders (one per
	// track, in order) carry the keyframe requests back.
	publish(ctx context.Context, api *webrtc.API, room string, tracks ...webrtc.TrackLocal) (participant, []*webrtc.RTPSender, error)
	// subscribe joins room as receive-only participant pid and returns once
	// the server admitted it; media may not flow yet.
	subscribe(ctx context.Context, api *webrtc.API, room, pid string) (participant, error)
}

// peerServers holds the servers whose clients are compiled in on demand
// (livekit: benchmarks/peers/livekit.go.in, added by run.sh with an overlay
// because its protocol module stays out of Meridian's go.mod). The factory
// gets the options and the value of -url.
var peerServers = map[string]func(o options) (server, error){}

func knownTargets() string {
	names := []string{"meridian", "baseline", "janus"}
	for n := range peerServers {
		names = append(names, n)
	}
	sort.Strings(names[3:])
	return strings.Join(names, ", ")
}

// signalServer speaks docs/signaling.md: Meridian through its join API, or
// the baseline forwarder directly.
type signalServer struct{ j joiner }

func (s signalServer) newRoom(ctx context.Context) (string, error) { return s.j.newRoom(ctx) }

func (s signalServer) publish(ctx context.Context, api *webrtc.API, room string, tracks ...webrtc.TrackLocal) (participant, []*webrtc.RTPSender, error) {
	url, ticket, err := s.j.join(ctx, room, "pub", true)
	if err != nil {
		return nil, nil, err
	}
	c, err := dialClient(ctx, api, url, "pub")
	if err != nil {
		return nil, nil, err
	}
	senders, err := func() ([]*webrtc.RTPSender, error) {
		if err := c.join(ctx, ticket); err != nil {
			return nil, err
		}
		senders, err := c.publish(ctx, tracks...)
		if err != nil {
			return nil, err
		}
		return senders, waitConnected(ctx, c.pub)
	}()
	if err != nil {
		c.close()
		return nil, nil, err
	}
	return c, senders, nil
}

func (s signalServer) subscribe(ctx context.Context, api *webrtc.API, room, pid string) (participant, error) {
	t0 := time.Now()
	url, ticket, err := s.j.join(ctx, room, pid, false)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	c, err := dialClient(ctx, api, url, pid)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	if err := c.join(ctx, ticket); err != nil {
		c.close()
		return nil, fmt.Errorf("%s: %w", pid, err)
	}
	joinSteps.add(t1.Sub(t0), t2.Sub(t1), time.Since(t2))
	return c, nil
}

// joinSteps collects how long each subscriber's join steps took (the join
// API request, the signaling socket's dial, `join` → `joined`), for the
// join breakdown of -v.
var joinSteps stepTimes

type stepTimes struct {
	mu                  sync.Mutex
	api, dial, signaled []time.Duration
}

func (s *stepTimes) add(api, dial, signaled time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.api, s.dial, s.signaled = append(s.api, api), append(s.dial, dial), append(s.signaled, signaled)
}

// take returns a summary of the steps recorded since the last take and
// forgets them ("" when none were).
func (s *stepTimes) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.api) == 0 {
		return ""
	}
	q := func(d []time.Duration) string {
		p := percentilesOf(d)
		return fmt.Sprintf("p50 %.0f ms, p95 %.0f ms, max %.0f ms", 1000*p.P50, 1000*p.P95, 1000*p.Max)
	}
	out := fmt.Sprintf("join API %s; socket dial %s; join → joined %s", q(s.api), q(s.dial), q(s.signaled))
	s.api, s.dial, s.signaled = nil, nil, nil
	return out
}
