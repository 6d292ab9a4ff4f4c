package turn

import (
	"net"
	"sync"
	"time"

	"github.com/meridian-video/meridian/shared/ids"
)

// Revocation: a participant's relays last only while AllowParticipant says
// yes (on an edge: while the participant is admitted there). pion/turn has
// no call to delete an allocation, but it deletes one whose relay socket
// fails: its read loop ends and removes the allocation (permissions,
// channels, the quota slot through the deleted event). So the relay sockets
// our generator hands pion are wrapped and kept per participant, and
// closing them ends the participant's allocations in both directions: the
// peer's packets are no longer read, the client's are no longer written,
// and the allocation is gone for Refresh, CreatePermission and ChannelBind.

// defaultRecheckEvery is RecheckEvery's zero value.
const defaultRecheckEvery = time.Second

// relaySet holds the open relay sockets by participant.
type relaySet struct {
	mu     sync.Mutex
	closed bool
	by     map[ids.ParticipantID]map[*relayConn]struct{}
}

func newRelaySet() *relaySet {
	return &relaySet{by: map[ids.ParticipantID]map[*relayConn]struct{}{}}
}

// relayConn is an allocation's relay socket, known by its participant.
type relayConn struct {
	net.PacketConn
	participant ids.ParticipantID
	set         *relaySet
	once        sync.Once
	err         error
}

// Close closes the socket once (pion closes it again when it deletes the
// allocation a revocation ended) and forgets it.
func (c *relayConn) Close() error {
	c.once.Do(func() {
		c.set.forget(c)
		c.err = c.PacketConn.Close()
	})
	return c.err
}

// add wraps a relay socket of participant p; a set that is closed (the
// server is closing) refuses it.
func (r *relaySet) add(p ids.ParticipantID, conn net.PacketConn) (net.PacketConn, bool) {
	c := &relayConn{PacketConn: conn, participant: p, set: r}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false
	}
	m := r.by[p]
	if m == nil {
		m = map[*relayConn]struct{}{}
		r.by[p] = m
	}
	m[c] = struct{}{}
	return c, true
}

func (r *relaySet) forget(c *relayConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.by[c.participant]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(r.by, c.participant)
		}
	}
}

// participants lists the participants holding relay sockets.
func (r *relaySet) participants() []ids.ParticipantID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ids.ParticipantID, 0, len(r.by))
	for p := range r.by {
		out = append(out, p)
	}
	return out
}

// closeAll closes p's relay sockets and returns how many there were.
func (r *relaySet) closeAll(p ids.ParticipantID) int {
	r.mu.Lock()
	conns := make([]*relayConn, 0, len(r.by[p]))
	for c := range r.by[p] {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// close refuses new sockets (pion closes the open ones with its
// allocations).
func (r *relaySet) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}

// allowed asks AllowParticipant (yes when there is none).
func (s *Server) allowed(p ids.ParticipantID) bool {
	return s.cfg.AllowParticipant == nil || s.cfg.AllowParticipant(p)
}

// recheckLoop asks AllowParticipant again about every participant holding
// relays, every `every`, until stop is closed.
func (s *Server) recheckLoop(every time.Duration, stop <-chan struct{}) {
	defer s.bg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.recheck()
	}
}

// recheck closes the relays of participants AllowParticipant now refuses.
func (s *Server) recheck() {
	for _, p := range s.relays.participants() {
		if s.allowed(p) {
			continue
		}
		if n := s.relays.closeAll(p); n > 0 {
			s.metrics.allocationsRevoked.Add(float64(n))
			s.log.Info("turn: relays closed: participant no longer admitted", "participant", string(p), "allocations", n)
		}
	}
}
