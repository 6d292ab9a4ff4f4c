// Package sfu is Meridian's selective forwarding unit: one router per room,
// fanning each published track out to the room's subscribers with NACK,
// coalesced keyframe requests, per-subscriber simulcast layer selection,
// active-speaker detection and per-participant stats. docs/sfu.md explains
// the design.
package sfu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meridian-video/meridian/shared/edgeapi"
)

// Errors returned to the signaling layer.
var (
	ErrClosed     = errors.New("sfu: closed")
	ErrForbidden  = errors.New("sfu: not allowed")
	ErrBadSDP     = errors.New("sfu: bad session description")
	ErrBadRequest = errors.New("sfu: bad request")
	ErrNotFound   = errors.New("sfu: not found")
)

var errClosedPipe = io.ErrClosedPipe

// SFU is the media plane of one edge. Create it with New; Close releases
// every room and the UDP sockets.
type SFU struct {
	cfg   Config
	media *mediaAPI
	log   *slog.Logger

	mu     sync.Mutex
	rooms  map[string]*Room
	closed bool

	retired retiredTotals
	// keyframes counts the edge's keyframe requests to publishers: sent
	// (PLIs written) and deferred (held by a layer's keyframeLimiter, sent
	// later or coalesced): whether the limiter delays joins shows here.
	keyframes struct{ sent, deferred atomic.Uint64 }
}

// New builds the edge's webrtc.API from cfg.
func New(cfg Config) (*SFU, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ma, err := buildAPI(cfg)
	if err != nil {
		return nil, err
	}
	return &SFU{cfg: cfg, media: ma, log: cfg.Logger, rooms: make(map[string]*Room)}, nil
}

func (s *SFU) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Join creates a participant in a room (creating the room if needed) with
// its PeerConnections. It is not visible to others until Start.
func (s *SFU) Join(roomID string, pc ParticipantConfig) (*Participant, error) {
	if pc.ID == "" || pc.Sink == nil {
		return nil, fmt.Errorf("%w: participant id and sink are required", ErrBadRequest)
	}
	r, err := s.acquireRoom(roomID)
	if err != nil {
		return nil, err
	}
	p := &Participant{room: r, id: pc.ID, key: pc.ID, name: pc.Name, sink: pc.Sink}
	if pc.Relay {
		p.relay, p.key = true, relayKeyPrefix+pc.ID
		pc.CanPublish, pc.CanSubscribe = false, true
	}
	if pc.CanPublish {
		if p.pub, err = newPublisher(p); err != nil {
			s.release(r)
			return nil, err
		}
	}
	if pc.CanSubscribe {
		if p.sub, err = newSubscriber(p); err != nil {
			if p.pub != nil {
				p.pub.close()
			}
			s.release(r)
			return nil, err
		}
	}
	// Closing always releases the room membership taken above.
	return p, nil
}

// Keys of non-local participants in a room's map.
const (
	relayKeyPrefix  = "\x00relay/"
	remoteKeyPrefix = "\x00remote/"
)

// acquireRoom takes one membership of a room, creating it if needed.
func (s *SFU) acquireRoom(roomID string) (*Room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[roomID]
	if r == nil {
		r = newRoom(s, roomID)
		s.rooms[roomID] = r
	}
	r.members++
	return r, nil
}

// release drops one membership of r and closes it when none remain.
func (s *SFU) release(r *Room) {
	s.mu.Lock()
	r.members--
	last := r.members == 0
	if last && s.rooms[r.id] == r {
		delete(s.rooms, r.id)
	}
	s.mu.Unlock()
	if last {
		r.close()
	}
}

// Room returns a room by id, or nil.
func (s *SFU) Room(id string) *Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[id]
}

func (s *SFU) roomList() []*Room {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		out = append(out, r)
	}
	return out
}

// Load counts rooms, participants and published tracks, and sums egress.
func (s *SFU) Load() edgeapi.Load {
	var l edgeapi.Load
	for _, r := range s.roomList() {
		l.Rooms++
		for _, p := range r.all() {
			if p.local() {
				l.Participants++
				if p.pub != nil {
					l.Tracks += len(p.pub.trackList())
				}
			}
			if p.sub != nil {
				for _, f := range p.sub.forwarders() {
					l.EgressBps += int64(f.stats.bitrate.rate.Load() * 8)
				}
			}
		}
	}
	return l
}

// Stats returns a snapshot per participant of every room, ordered by room
// and participant id.
func (s *SFU) Stats() []edgeapi.ParticipantStats {
	now := s.now()
	var out []edgeapi.ParticipantStats
	for _, r := range s.roomList() {
		for _, p := range r.all() {
			if p.local() {
				out = append(out, p.stats(r.id, now))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].RoomID != out[j].RoomID {
			return out[i].RoomID < out[j].RoomID
		}
		return out[i].ParticipantID < out[j].ParticipantID
	})
	return out
}

// Close ends every participant and room and releases the UDP sockets. Idempotent.
func (s *SFU) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	rooms := make([]*Room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		for _, p := range r.all() {
			p.Close()
		}
		r.close()
	}
	return s.media.close()
}

// stats builds one participant's snapshot. Both directions carry what the
// edge measures of them: Send (what the participant publishes) loss and
// jitter from the packets that arrive, and the round trip of its publisher
// connection (ICE consent checks: iceRTT); Recv (what it receives) loss,
// jitter and round trip from its receiver reports, the round trip of its
// subscriber connection's consent checks standing in until a report has
// timed one. The score takes the worst of every direction in use.
func (p *Participant) stats(roomID string, now time.Time) edgeapi.ParticipantStats {
	st := edgeapi.ParticipantStats{RoomID: roomID, ParticipantID: p.id, Time: now, Send: []edgeapi.TrackStats{}, Recv: []edgeapi.TrackStats{}}
	worstLoss, worstRTT, worstJitter := 0.0, 0.0, 0.0
	if p.pub != nil {
		ts := p.pub.trackList()
		pubRTT := 0.0
		if len(ts) > 0 && !p.pub.shared {
			pubRTT = iceRTT(p.pub.pc)
		}
		for _, t := range ts {
			br, pk, lost, jit, w, h, fps := t.inbound()
			st.Send = append(st.Send, edgeapi.TrackStats{
				Kind: t.info.Kind, Bitrate: br, Packets: pk, PacketsLost: lost, JitterMs: jit,
				RTTMs: pubRTT * 1000, Width: w, Height: h, FPS: fps,
			})
			if pk+lost > 0 {
				worstLoss = max(worstLoss, float64(lost)/float64(pk+lost))
			}
			worstJitter = max(worstJitter, jit/1000)
			worstRTT = max(worstRTT, pubRTT)
		}
	}
	if p.sub != nil {
		fs := p.sub.forwarders()
		subRTT, measured := 0.0, false
		for _, f := range fs {
			rtt := f.stats.rtt.Load()
			if rtt == 0 {
				if !measured {
					subRTT, measured = iceRTT(p.sub.pc), true
				}
				rtt = subRTT
			}
			ts := edgeapi.TrackStats{
				Kind:        f.track.info.Kind,
				Bitrate:     f.stats.bitrate.rate.Load() * 8,
				Packets:     int64(f.stats.packets.Load()),
				PacketsLost: f.stats.totalLost.Load(),
				JitterMs:    f.stats.jitter.Load() * 1000,
				RTTMs:       rtt * 1000,
			}
			if cur := int(f.current.Load()); cur >= 0 {
				f.track.mu.Lock()
				l := f.track.layers[cur]
				f.track.mu.Unlock()
				if l != nil {
					ts.Width, ts.Height = int(l.stats.width.Load()), int(l.stats.height.Load())
					ts.FPS = l.stats.fps.rate.Load()
				}
			}
			st.Recv = append(st.Recv, ts)
			worstLoss = max(worstLoss, f.stats.fraction.Load())
			worstRTT = max(worstRTT, rtt)
			worstJitter = max(worstJitter, f.stats.jitter.Load())
		}
	}
	st.Quality = qualityScore(worstLoss, worstRTT, worstJitter)
	return st
}
