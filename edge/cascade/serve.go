package cascade

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync/atomic"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/pion/webrtc/v4"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// servedLeg is the upstream end of a leg: a downstream edge pulls this
// edge's local participants through a hidden relay subscriber.
type servedLeg struct {
	m          *Manager
	roomID     string
	peer       string
	peerRegion string
	conn       *frameConn
	relay      atomic.Pointer[sfu.Participant]
	connected  atomic.Bool
	// eventsOnly: the downstream edge has no subscriber; no relay
	// subscriber runs, the leg carries room events only.
	eventsOnly bool
}

// Register mounts GET /internal/v1/cascade.
func (m *Manager) Register(app fiber.Router) {
	app.Get(edgeapi.CascadePath, func(c *fiber.Ctx) error {
		if !websocket.IsWebSocketUpgrade(c) {
			return c.Status(fiber.StatusUpgradeRequired).JSON(wire.Error{Code: wire.CodeBadRequest, Message: "websocket upgrade required"})
		}
		return c.Next()
	}, websocket.New(m.serveWS, websocket.Config{ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}))
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// refuse closes a leg that failed authorisation, telling the peer why.
func (m *Manager) refuse(conn *frameConn, reason string, err error) {
	m.metrics.refused.WithLabelValues(reason).Inc()
	m.log.Warn("cascade: leg refused", "reason", reason, "err", err)
	conn.send(edgeapi.CascadeClose, wire.Error{Code: reason, Message: errString(err)})
	conn.closeAfterFlush()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (m *Manager) serveWS(ws *websocket.Conn) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()
	ws.SetReadLimit(edgeapi.CascadeMaxFrameLen)
	conn := newFrameConn(ws.Conn, m.cfg.SendQueue, m.cfg.HandshakeTimeout)
	defer conn.closeAndWait()

	nonce := newNonce()
	conn.send(edgeapi.CascadeChallenge, edgeapi.CascadeChallengeMsg{Nonce: nonce})
	env, err := conn.read(m.cfg.HandshakeTimeout)
	if err != nil || env.Type != edgeapi.CascadeHello {
		m.refuse(conn, "protocol", errors.New("expected hello"))
		return
	}
	var hello edgeapi.CascadeHelloMsg
	if err := json.Unmarshal(env.Data, &hello); err != nil || hello.RoomID == "" || hello.EdgeID == "" || hello.Nonce == "" {
		m.refuse(conn, "protocol", errors.New("malformed hello"))
		return
	}
	key := m.cfg.TicketKey()
	if key == nil {
		m.refuse(conn, "unavailable", errors.New("edge not registered yet"))
		return
	}
	claims, peer, err := ticket.VerifyRelay(key, hello.Ticket, m.cfg.EdgeID, m.cfg.Region, m.cfg.Now())
	switch {
	case err != nil:
		m.refuse(conn, "ticket", err)
		return
	case claims.RoomID != hello.RoomID || peer.ID != hello.EdgeID:
		m.refuse(conn, "ticket", errors.New("ticket names another room or edge"))
		return
	}
	if err := ticket.VerifyProof(peer, claims.RoomID, m.cfg.EdgeID, nonce, hello.Proof); err != nil {
		m.refuse(conn, "proof", err)
		return
	}
	// A ticket from before the room's last placement change is only good
	// if the peer still serves the room as far as this edge knows.
	m.mu.Lock()
	rs := m.room(claims.RoomID)
	_, stillPeer := rs.peers[peer.ID]
	stale := claims.Epoch < rs.epoch && !stillPeer
	m.mu.Unlock()
	if stale {
		m.refuse(conn, "stale", errors.New("the peer no longer serves this room"))
		return
	}

	sl := &servedLeg{m: m, roomID: claims.RoomID, peer: peer.ID, peerRegion: peer.Region, conn: conn, eventsOnly: hello.EventsOnly}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.room(claims.RoomID).served[sl] = struct{}{}
	m.mu.Unlock()
	defer m.dropServed(sl)

	// Registered before the snapshot: a join between the two is sent twice
	// at worst (harmless), never missed.
	proof := ed25519.Sign(m.cfg.Key, ticket.ProofMessage(claims.RoomID, m.cfg.EdgeID, peer.ID, hello.Nonce))
	welcome := edgeapi.CascadeWelcomeMsg{Proof: proof, Participants: m.cfg.Members.LocalParticipants(claims.RoomID)}
	if em, ok := m.cfg.Members.(EgressMembers); ok {
		welcome.Egress = em.OwnEgress(claims.RoomID)
	}
	if lm, ok := m.cfg.Members.(LobbyMembers); ok {
		welcome.Lobby = lm.LobbyRequests(claims.RoomID)
	}
	if !conn.send(edgeapi.CascadeWelcome, welcome) {
		return
	}
	// relay stays nil on a leg that carries room events only.
	var relay *sfu.Participant
	if !hello.EventsOnly {
		relay, err = m.cfg.SFU.Join(claims.RoomID, sfu.ParticipantConfig{ID: "relay-" + peer.ID, Relay: true, Sink: (*relaySink)(sl)})
		if err != nil {
			m.log.Warn("cascade: relay subscriber", "room", claims.RoomID, "peer", peer.ID, "err", err)
			return
		}
		sl.relay.Store(relay)
		defer func() {
			m.metrics.retire(sl.info()) // before Close drops the forwarders' counts
			relay.Close()
		}()
		// The leg counts as carrying the room (audit) once its PeerConnection connects.
		relay.OnSubscriberState(func(st webrtc.PeerConnectionState) {
			if st == webrtc.PeerConnectionStateConnected && !sl.connected.Swap(true) {
				m.report(edgeapi.EventCascadeLegUp, sl.roomID, sl.peer, sl.peerRegion)
			}
		})
		if err := relay.Start(); err != nil {
			return
		}
		relay.Ready()
	}
	m.log.Info("cascade: serving leg", "room", claims.RoomID, "peer", peer.ID, "peerRegion", peer.Region, "media", !hello.EventsOnly)
	m.metrics.legsOpened.WithLabelValues("out").Inc()

	for {
		env, err := conn.read(m.cfg.IdleTimeout)
		if err != nil {
			break
		}
		switch env.Type {
		case wire.TypePing:
			conn.send(wire.TypePong, nil)
		case edgeapi.CascadeAnswer:
			var d wire.SDP
			if relay == nil || json.Unmarshal(env.Data, &d) != nil || relay.HandleAnswer(d.SDP) != nil {
				m.log.Warn("cascade: bad answer from peer", "peer", peer.ID)
				return
			}
		case edgeapi.CascadeCandidate:
			var d wire.Candidate
			if relay != nil && json.Unmarshal(env.Data, &d) == nil {
				_ = relay.AddICECandidate(wire.TargetSubscriber, d.Candidate)
			}
		case edgeapi.CascadeModerate:
			var d edgeapi.CascadeModerateMsg
			if json.Unmarshal(env.Data, &d) == nil {
				m.cfg.Members.ModerateLocal(claims.RoomID, d.ParticipantID, d.Action, d.Kind)
			}
		case edgeapi.CascadeClose:
			return
		}
	}
}

func (m *Manager) dropServed(sl *servedLeg) {
	m.mu.Lock()
	if rs := m.rooms[sl.roomID]; rs != nil {
		delete(rs.served, sl)
		if rs.idle() && !m.cfg.Members.HasLocalMembers(sl.roomID) {
			delete(m.rooms, sl.roomID)
		}
	}
	m.mu.Unlock()
	if sl.connected.Load() {
		m.report(edgeapi.EventCascadeLegDown, sl.roomID, sl.peer, sl.peerRegion)
	}
}

func (sl *servedLeg) info() LegInfo {
	li := LegInfo{RoomID: sl.roomID, PeerEdgeID: sl.peer, PeerRegion: sl.peerRegion, Direction: "out", Connected: sl.connected.Load(), EventsOnly: sl.eventsOnly}
	if r := sl.relay.Load(); r != nil {
		li.Stats = r.RelayStats()
		li.Idle = !li.Connected && li.Stats.Tracks == 0
	}
	return li
}

// relaySink is the relay subscriber's sink: negotiation and track changes
// go to the downstream edge over the leg's socket.
type relaySink servedLeg

var _ sfu.Sink = (*relaySink)(nil)

func (r *relaySink) SubscriberOffer(sdp string) {
	r.conn.send(edgeapi.CascadeOffer, wire.SDP{Target: wire.TargetSubscriber, SDP: sdp})
}

func (r *relaySink) Candidate(target string, c *webrtc.ICECandidateInit) {
	var raw json.RawMessage = []byte("null")
	if c != nil {
		raw, _ = json.Marshal(c)
	}
	r.conn.send(edgeapi.CascadeCandidate, wire.Candidate{Target: wire.TargetSubscriber, Candidate: raw})
}

func (r *relaySink) TrackPublished(info wire.TrackInfo) {
	if info.Muted {
		r.conn.send(edgeapi.CascadeMute, wire.Mute{ParticipantID: info.ParticipantID, Kind: info.Kind, TrackID: info.TrackID, Muted: true})
	}
}

func (r *relaySink) TrackUnpublished(pid, trackID string) {
	r.conn.send(edgeapi.CascadeTrackGone, edgeapi.CascadeTrackGoneMsg{ParticipantID: pid, TrackID: trackID})
}

func (r *relaySink) ActiveSpeakers([]string) {} // each edge detects speakers from the relayed audio levels

func (r *relaySink) ConnectionQuality(pid string, score float64) {
	r.conn.send(edgeapi.CascadeQuality, edgeapi.CascadeQualityMsg{ParticipantID: pid, Score: score})
}
