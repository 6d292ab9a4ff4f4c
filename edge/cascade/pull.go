package cascade

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// pullLeg is the downstream end of a leg: it keeps a leg to one upstream
// edge up (dialling again with backoff) until stopped, and shows the
// upstream edge's participants to this edge's clients. Without media it
// carries room events only: no RelayIn, the upstream edge runs no relay
// subscriber.
type pullLeg struct {
	m      *Manager
	roomID string

	mu        sync.Mutex
	peer      edgeapi.Peer
	media     bool  // the next connection carries tracks (else room events only)
	switching bool  // the connection is being replaced by one in the other mode
	lastErr   error // why the last attempt ended (diagnostics)
	// forgetPeer forgets the peer's egress state and who waits in its
	// lobby a moment after a mode switch closed the connection, unless the
	// next welcome says them again: neither the recording indicator nor a
	// moderator's list of lobby requests flickers for a redial.
	forgetPeer *time.Timer
	conn       *frameConn
	ri         *sfu.RelayIn
	remotes    map[string]bool
	// since: when each relayed participant's connection to the peer began
	// (Unix ms; 0 when the peer does not say), for remotes and displaced.
	since map[string]int64
	// displaced: participants the peer announced that another leg relays
	// from a newer connection (they moved there; the peer's copy is stale
	// or on its way out). Shown from the other leg; taken back from this
	// one if that leg loses them while the peer still has them.
	displaced map[string]bool
	shadowed  map[string]*shadowed // relayed, but the participant is local here now
	stopped   bool
	connected atomic.Bool
	wake      chan struct{} // 1-slot: stop, or a new ticket
	welcomed  chan struct{} // closed once the first attempt was welcomed, or failed
	welcOnce  sync.Once
	started   time.Time
}

func newPullLeg(m *Manager, roomID string, p edgeapi.Peer, media bool) *pullLeg {
	return &pullLeg{m: m, roomID: roomID, peer: p, media: media, remotes: map[string]bool{}, since: map[string]int64{}, displaced: map[string]bool{}, shadowed: map[string]*shadowed{}, wake: make(chan struct{}, 1),
		welcomed: make(chan struct{}), started: time.Now()}
}

func (l *pullLeg) setPeer(p edgeapi.Peer) {
	l.mu.Lock()
	changed := p.RelayTicket != l.peer.RelayTicket || p.URL != l.peer.URL
	l.peer = p
	l.mu.Unlock()
	if changed {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// setMedia switches the leg between carrying tracks and room events only:
// the current connection is closed and the leg dials again at once in the
// new mode (the upstream edge decides at the handshake whether to run a
// relay subscriber). Remote participants stay shown meanwhile: their
// "lost" grace covers the redial.
func (l *pullLeg) setMedia(media bool) {
	l.mu.Lock()
	changed := l.media != media
	l.media = media
	c := l.conn
	l.mu.Unlock()
	if !changed {
		return
	}
	l.mu.Lock()
	l.switching = c != nil
	l.mu.Unlock()
	if c != nil {
		c.close()
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *pullLeg) stop() {
	l.mu.Lock()
	l.stopped = true
	for _, sh := range l.shadowed {
		sh.disarm()
	}
	c := l.conn
	pending := l.forgetPeer != nil // kept over a mode switch: forget it now
	if pending {
		l.forgetPeer.Stop()
		l.forgetPeer = nil
	}
	peer := l.peer.EdgeID
	l.mu.Unlock()
	if pending {
		l.forgetPeerState(peer)
	}
	if c != nil {
		c.close()
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *pullLeg) isStopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

// errRefused: the upstream edge said no (ticket, proof, stale epoch); a
// fresh peer list may fix it.
type errRefused struct{ code, msg string }

func (e *errRefused) Error() string { return "cascade: refused (" + e.code + "): " + e.msg }

func (l *pullLeg) run() {
	backoff := l.m.cfg.RedialMin
	for !l.isStopped() {
		start := time.Now()
		err := l.once()
		l.welcOnce.Do(func() { close(l.welcomed) }) // a failed first try ends a Prewarm wait too
		l.mu.Lock()
		l.lastErr = err
		l.mu.Unlock()
		if l.isStopped() {
			return
		}
		var ref *errRefused
		if errors.As(err, &ref) || errors.Is(err, ticket.ErrExpired) {
			if l.m.cfg.RefreshPeers != nil {
				l.m.cfg.RefreshPeers(l.roomID)
			}
		}
		if time.Since(start) > 10*time.Second {
			backoff = l.m.cfg.RedialMin // it worked for a while
		}
		l.m.log.Debug("cascade: leg ended", "room", l.roomID, "peer", l.peerID(), "err", err, "retryIn", backoff)
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-l.wake:
		case <-time.After(wait):
		}
		backoff = min(2*backoff, l.m.cfg.RedialMax)
	}
}

func (l *pullLeg) peerID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peer.EdgeID
}

func wsURL(base string) string {
	switch {
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimPrefix(base, "http://")
	}
	return base
}

// once sets one leg up and serves it until it ends.
func (l *pullLeg) once() error {
	m := l.m
	l.mu.Lock()
	p, media := l.peer, l.media
	l.mu.Unlock()
	key := m.cfg.TicketKey()
	if key == nil {
		return errors.New("cascade: not registered yet")
	}
	// Our own ticket names the peer's identity key, which its welcome
	// must prove; an expired or foreign ticket is not even tried.
	claims, peerEdge, err := ticket.VerifyRelay(key, p.RelayTicket, m.cfg.EdgeID, m.cfg.Region, m.cfg.Now())
	if err != nil {
		return fmt.Errorf("cascade: own relay ticket: %w", err)
	}
	if claims.RoomID != l.roomID || peerEdge.ID != p.EdgeID {
		return &errRefused{code: "ticket", msg: "relay ticket names another room or edge"}
	}
	dialer := fws.Dialer{HandshakeTimeout: m.cfg.HandshakeTimeout, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10, TLSClientConfig: m.cfg.TLSClientConfig}
	ws, resp, err := dialer.Dial(wsURL(strings.TrimRight(p.URL, "/"))+edgeapi.CascadePath, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return fmt.Errorf("cascade: dial %s: %w", p.EdgeID, err)
	}
	ws.SetReadLimit(edgeapi.CascadeMaxFrameLen)
	conn := newFrameConn(ws, m.cfg.SendQueue, m.cfg.HandshakeTimeout)
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		conn.closeAndWait()
		return nil
	}
	l.conn = conn
	l.mu.Unlock()
	defer l.teardown(conn, p)

	env, err := conn.read(m.cfg.HandshakeTimeout)
	if err != nil {
		return err
	}
	if env.Type == edgeapi.CascadeClose {
		return refusal(env)
	}
	var ch edgeapi.CascadeChallengeMsg
	if env.Type != edgeapi.CascadeChallenge || json.Unmarshal(env.Data, &ch) != nil || ch.Nonce == "" {
		return errors.New("cascade: expected a challenge")
	}
	nonce := newNonce()
	proof := ed25519.Sign(m.cfg.Key, ticket.ProofMessage(l.roomID, m.cfg.EdgeID, p.EdgeID, ch.Nonce))
	conn.send(edgeapi.CascadeHello, edgeapi.CascadeHelloMsg{Ticket: p.RelayTicket, RoomID: l.roomID, EdgeID: m.cfg.EdgeID, Nonce: nonce, Proof: proof, EventsOnly: !media})
	env, err = conn.read(m.cfg.HandshakeTimeout)
	if err != nil {
		return err
	}
	if env.Type == edgeapi.CascadeClose {
		return refusal(env)
	}
	var welcome edgeapi.CascadeWelcomeMsg
	if env.Type != edgeapi.CascadeWelcome || json.Unmarshal(env.Data, &welcome) != nil {
		return errors.New("cascade: expected a welcome")
	}
	if err := ticket.VerifyProof(peerEdge, l.roomID, m.cfg.EdgeID, nonce, welcome.Proof); err != nil {
		m.metrics.refused.WithLabelValues("peer-proof").Inc()
		return fmt.Errorf("cascade: %s did not prove its identity: %w", p.EdgeID, err)
	}

	// ri stays nil on a leg that carries room events only.
	var ri *sfu.RelayIn
	if media {
		ri, err = m.cfg.SFU.NewRelayIn(l.roomID, p.EdgeID, func(c *webrtc.ICECandidateInit) {
			var raw json.RawMessage = []byte("null")
			if c != nil {
				raw, _ = json.Marshal(c)
			}
			conn.send(edgeapi.CascadeCandidate, wire.Candidate{Target: wire.TargetSubscriber, Candidate: raw})
		})
		if err != nil {
			return err
		}
		ri.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
			if st == webrtc.PeerConnectionStateConnected && !l.connected.Swap(true) {
				m.report(edgeapi.EventCascadeLegUp, l.roomID, p.EdgeID, p.Region)
			}
		})
		l.mu.Lock()
		l.ri = ri
		l.mu.Unlock()
	}
	m.metrics.legsOpened.WithLabelValues("in").Inc()
	m.log.Info("cascade: pulling", "room", l.roomID, "peer", p.EdgeID, "peerRegion", p.Region, "participants", len(welcome.Participants), "media", media)
	for _, wp := range welcome.Participants {
		l.addRemote(ri, wp)
	}
	l.mu.Lock()
	if l.forgetPeer != nil {
		l.forgetPeer.Stop()
		l.forgetPeer = nil
	}
	l.mu.Unlock()
	if lm, ok := m.cfg.Members.(LobbyMembers); ok {
		lm.SetLobby(l.roomID, p.EdgeID, welcome.Lobby)
	}
	m.remoteEgress(l.roomID, p.EdgeID, welcome.Egress)
	l.welcOnce.Do(func() { close(l.welcomed) })

	pingDone := make(chan struct{})
	defer close(pingDone)
	go func() {
		t := time.NewTicker(m.cfg.IdleTimeout / 3)
		defer t.Stop()
		for {
			select {
			case <-pingDone:
				return
			case <-t.C:
				conn.send(wire.TypePing, nil)
				if time.Since(l.started) > unusedLegAfter {
					m.dropIfUnused(l.roomID, l)
				}
			}
		}
	}()

	for {
		env, err := conn.read(m.cfg.IdleTimeout)
		if err != nil {
			return err
		}
		switch env.Type {
		case edgeapi.CascadeOffer:
			if ri == nil {
				continue // an upstream edge that ignores EventsOnly: nothing here takes media
			}
			var d wire.SDP
			if err := json.Unmarshal(env.Data, &d); err != nil {
				return err
			}
			ans, err := ri.HandleOffer(d.SDP)
			if err != nil {
				return err
			}
			conn.send(edgeapi.CascadeAnswer, wire.SDP{Target: wire.TargetSubscriber, SDP: ans})
		case edgeapi.CascadeCandidate:
			var d wire.Candidate
			if ri != nil && json.Unmarshal(env.Data, &d) == nil {
				_ = ri.AddICECandidate(d.Candidate)
			}
		case edgeapi.CascadeJoined:
			var d edgeapi.CascadeParticipant
			if json.Unmarshal(env.Data, &d) == nil && d.ParticipantID != "" {
				l.addRemote(ri, d)
			}
		case edgeapi.CascadeLeft:
			var d edgeapi.CascadeLeftMsg
			if json.Unmarshal(env.Data, &d) == nil && d.ParticipantID != "" {
				l.removeRemote(ri, p.EdgeID, d.ParticipantID, d.Reason, false)
			}
		case edgeapi.CascadeMute:
			var d wire.Mute
			if json.Unmarshal(env.Data, &d) == nil && d.ParticipantID != "" {
				if d.TrackID != "" && ri != nil {
					ri.SetMuted(d.ParticipantID, d.TrackID, d.Muted)
				}
				m.cfg.Members.RemoteMute(l.roomID, d)
			}
		case edgeapi.CascadeTrackGone:
			var d edgeapi.CascadeTrackGoneMsg
			if ri != nil && json.Unmarshal(env.Data, &d) == nil {
				ri.RemoveTrack(d.ParticipantID, d.TrackID)
			}
		case edgeapi.CascadeQuality:
			var d edgeapi.CascadeQualityMsg
			if json.Unmarshal(env.Data, &d) == nil && d.ParticipantID != "" {
				m.cfg.Members.RemoteQuality(l.roomID, d.ParticipantID, d.Score)
			}
		case edgeapi.CascadeLobby:
			var d wire.LobbyRequest
			if lm, ok := m.cfg.Members.(LobbyMembers); ok && json.Unmarshal(env.Data, &d) == nil && d.ParticipantID != "" {
				lm.RemoteLobby(l.roomID, p.EdgeID, d)
			}
		case edgeapi.CascadeLobbyGone:
			var d edgeapi.CascadeLobbyGoneMsg
			if lm, ok := m.cfg.Members.(LobbyMembers); ok && json.Unmarshal(env.Data, &d) == nil && d.ParticipantID != "" {
				lm.RemoteLobbyGone(l.roomID, p.EdgeID, d.ParticipantID)
			}
		case edgeapi.CascadeEgress:
			var d wire.EgressState
			if json.Unmarshal(env.Data, &d) == nil {
				m.remoteEgress(l.roomID, p.EdgeID, d)
			}
		case edgeapi.CascadeClose:
			return refusal(env)
		}
	}
}

func refusal(env wire.Envelope) error {
	var e wire.Error
	_ = json.Unmarshal(env.Data, &e)
	return &errRefused{code: e.Code, msg: e.Message}
}

// shadowed is a participant the peer relays while it is local here too:
// moving here from the peer (its client leaves the peer soon), or connected
// to both (two tabs with one id). kick, armed when the peer says since when
// its connection exists, asks Members to settle a pair that stays.
type shadowed struct {
	since time.Time
	kick  *time.Timer
}

func (sh *shadowed) disarm() {
	if sh != nil && sh.kick != nil {
		sh.kick.Stop()
		sh.kick = nil
	}
}

func (l *pullLeg) addRemote(ri *sfu.RelayIn, cp edgeapi.CascadeParticipant) {
	p := cp.Participant
	if l.m.cfg.Members.IsLocal(l.roomID, p.ParticipantID) {
		l.shadowRemote(p.ParticipantID, cp.Since)
		return
	}
	// Another edge relays a newer connection of this id: it moved there
	// (the copy here is a stalled edge's stale member, or one on its way
	// out, which its edge removes as a duplicate). The newer one stays.
	if l.m.relayedNewer(l.roomID, p.ParticipantID, cp.Since, l) {
		l.mu.Lock()
		l.displaced[p.ParticipantID] = true
		l.since[p.ParticipantID] = cp.Since
		l.mu.Unlock()
		return
	}
	l.m.takeRemote(l.roomID, p.ParticipantID, l)
	if ri != nil { // nil: room events only
		if err := ri.AddParticipant(p.ParticipantID, p.Name); err != nil {
			return
		}
		for _, t := range p.Tracks {
			if t.Muted {
				ri.SetMuted(p.ParticipantID, t.TrackID, true)
			}
		}
	}
	l.mu.Lock()
	l.remotes[p.ParticipantID] = true
	l.since[p.ParticipantID] = cp.Since
	delete(l.displaced, p.ParticipantID)
	l.mu.Unlock()
	l.m.cfg.Members.RemoteJoined(l.roomID, l.peerID(), p)
}

// relayedSince reports whether this leg shows pid, and since when its
// connection to the peer exists (Unix ms, 0 if unknown).
func (l *pullLeg) relayedSince(pid string) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since[pid], l.remotes[pid]
}

// hasDisplaced reports whether the peer still has pid, shown from another
// leg meanwhile, and since when.
func (l *pullLeg) hasDisplaced(pid string) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since[pid], l.displaced[pid] && !l.stopped
}

// redial closes the leg's connection and dials again at once: the next
// welcome and offer bring the peer's participants and tracks back.
func (l *pullLeg) redial() {
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	if c != nil {
		c.close()
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *pullLeg) removeRemote(ri *sfu.RelayIn, origin, pid, reason string, lost bool) {
	if ri != nil {
		ri.RemoveParticipant(pid)
	}
	l.mu.Lock()
	had := l.remotes[pid]
	delete(l.remotes, pid)
	delete(l.displaced, pid)
	delete(l.since, pid)
	sh, shadowed := l.shadowed[pid]
	sh.disarm()
	delete(l.shadowed, pid)
	l.mu.Unlock()
	if !shadowed {
		if had && l.m.restoreRemote(l.roomID, pid, l) {
			// Another edge still has it: shown from there again after its
			// leg's redial, within the grace of a move.
			reason = wire.ReasonMoved
		}
		l.m.cfg.Members.RemoteLeft(l.roomID, origin, pid, reason, lost)
	}
}

// dropRemote takes pid out of the local room's media without telling
// clients it left (it is shown from elsewhere now).
func (l *pullLeg) dropRemote(pid string) {
	l.mu.Lock()
	ri, had := l.ri, l.remotes[pid]
	delete(l.remotes, pid)
	if had {
		l.displaced[pid] = true // the peer still has it
	}
	l.mu.Unlock()
	if had && ri != nil {
		ri.RemoveParticipant(pid)
	}
}

// shadow: pid joined this edge; its relayed copy is dropped (local wins)
// and remembered in case it leaves here first.
func (l *pullLeg) shadow(pid string) {
	l.mu.Lock()
	ri, had := l.ri, l.remotes[pid]
	if had {
		delete(l.remotes, pid)
		delete(l.since, pid)
		// Here since just now, so the peer's connection is the older one:
		// the peer settles it if it stays.
		l.shadowed[pid].disarm()
		l.shadowed[pid] = &shadowed{}
	}
	l.mu.Unlock()
	if had && ri != nil {
		ri.RemoveParticipant(pid)
	}
}

// unshadow: pid left this edge while the upstream edge still has it. Its
// relayed tracks were stopped here, so the leg is set up again: the new
// welcome and offer bring the participant and its tracks back.
func (l *pullLeg) unshadow(pid string) {
	l.mu.Lock()
	sh, ok := l.shadowed[pid]
	sh.disarm()
	delete(l.shadowed, pid)
	c := l.conn
	l.mu.Unlock()
	if ok && c != nil {
		c.close()
	}
}

// shadowRemote records that the peer relays pid, admitted here too, with
// its connection there since sinceMs (0: the peer does not say). If the
// pair stays for DuplicateGrace, Members removes whichever connection is
// older.
func (l *pullLeg) shadowRemote(pid string, sinceMs int64) {
	dm, settles := l.m.cfg.Members.(DuplicateMembers)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shadowed[pid].disarm()
	sh := &shadowed{}
	l.shadowed[pid] = sh
	if !settles || sinceMs <= 0 || l.stopped {
		return
	}
	sh.since = time.UnixMilli(sinceMs)
	origin := l.peer.EdgeID
	sh.kick = time.AfterFunc(l.m.cfg.DuplicateGrace, func() {
		l.mu.Lock()
		still := l.shadowed[pid] == sh && sh.kick != nil
		l.mu.Unlock()
		if still {
			dm.DuplicateElsewhere(l.roomID, pid, origin, sh.since)
		}
	})
}

func (l *pullLeg) hasRemote(pid string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.remotes[pid]
}

func (l *pullLeg) sendModerate(msg edgeapi.CascadeModerateMsg) bool {
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	return c != nil && c.send(edgeapi.CascadeModerate, msg)
}

// teardown ends one connection of the leg: the upstream edge's participants
// stop being shown here (after a grace: they may come back through another
// edge), and its tracks leave the local room at once.
func (l *pullLeg) teardown(conn *frameConn, p edgeapi.Peer) {
	conn.closeAndWait()
	l.m.metrics.retire(l.info(l.m.cfg.Now()))
	l.mu.Lock()
	ri := l.ri
	l.ri = nil
	if l.conn == conn {
		l.conn = nil
	}
	remotes := l.remotes
	l.remotes = map[string]bool{}
	l.since = map[string]int64{}
	l.displaced = map[string]bool{}
	stopped := l.stopped
	// What the peer has is unknown until its next welcome, which arms
	// these again.
	for _, sh := range l.shadowed {
		sh.disarm()
	}
	l.mu.Unlock()
	if ri != nil {
		ri.Close()
	}
	for pid := range remotes {
		// A leg that ends for good (its peer left the room) gives its
		// participants back to a leg whose peer still has them; one that
		// dials again shows them again from its next welcome.
		if stopped {
			l.m.restoreRemote(l.roomID, pid, l)
		}
		l.m.cfg.Members.RemoteLeft(l.roomID, p.EdgeID, pid, edgeapi.CascadeReasonLost, true)
	}
	// The peer's jobs and who waits in its lobby are no longer known here
	// (a decision here could not reach them); a new leg's welcome says
	// again what they are. After a mode switch that welcome is expected at
	// once: they are kept for a handshake's time meanwhile.
	l.mu.Lock()
	switching := l.switching && !l.stopped
	l.switching = false
	if switching && l.forgetPeer == nil {
		var t *time.Timer
		t = time.AfterFunc(l.m.cfg.HandshakeTimeout, func() {
			l.mu.Lock()
			mine := l.forgetPeer == t // not already answered by a welcome
			if mine {
				l.forgetPeer = nil
			}
			l.mu.Unlock()
			if mine {
				l.forgetPeerState(p.EdgeID)
			}
		})
		l.forgetPeer = t
	}
	l.mu.Unlock()
	if !switching {
		l.forgetPeerState(p.EdgeID)
	}
	if l.connected.Swap(false) {
		l.m.report(edgeapi.EventCascadeLegDown, l.roomID, p.EdgeID, p.Region)
	}
}

// forgetPeerState drops what the peer's welcome and events said about its
// egress jobs and its lobby.
func (l *pullLeg) forgetPeerState(peer string) {
	l.m.remoteEgress(l.roomID, peer, wire.EgressState{})
	if lm, ok := l.m.cfg.Members.(LobbyMembers); ok {
		lm.ForgetLobby(l.roomID, peer)
	}
}

func (l *pullLeg) info(now time.Time) LegInfo {
	l.mu.Lock()
	p, ri, media, up, lastErr := l.peer, l.ri, l.media, l.conn != nil, l.lastErr
	l.mu.Unlock()
	li := LegInfo{RoomID: l.roomID, PeerEdgeID: p.EdgeID, PeerRegion: p.Region, Direction: "in", Connected: l.connected.Load(), EventsOnly: !media && up}
	if lastErr != nil {
		li.LastError = lastErr.Error()
	}
	if ri != nil {
		li.Stats = ri.Stats(now)
		li.Idle = !li.Connected && !ri.Negotiated()
	}
	return li
}
