package signal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gofiber/contrib/websocket"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// protoError is an error frame to send; fatal ones end the session.
type protoError struct {
	code, msg string
}

func (e *protoError) Error() string { return e.code + ": " + e.msg }

func perr(code, format string, args ...any) *protoError {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}

func errorFrame(e *protoError) []byte {
	return wire.MustMarshal(wire.TypeError, wire.Error{Code: e.code, Message: e.msg})
}

// handleWS runs on the connection's own goroutine: it reads, while
// writeLoop writes; it returns only after writeLoop has exited.
func (s *Server) handleWS(ws *websocket.Conn) {
	c := newConn(ws, s.cfg.SendQueue, s.cfg.WriteTimeout)
	c.linger = s.cfg.EventLinger
	c.onDrop = func(reason string) {
		s.socketsDropped.WithLabelValues(reason).Inc()
		s.log.Warn("signal: client fell behind; socket closed (it may resume)", "reason", reason, "queue", s.cfg.SendQueue)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()
	go c.writeLoop()
	defer func() {
		c.close()
		<-c.done
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	ws.SetReadLimit(s.cfg.MaxMessageBytes)

	var m *member
	deadline := s.cfg.JoinTimeout
	for {
		_ = ws.SetReadDeadline(time.Now().Add(deadline))
		_, data, err := ws.ReadMessage()
		if err != nil {
			break
		}
		deadline = s.cfg.IdleTimeout
		var env wire.Envelope
		if err := json.Unmarshal(data, &env); err != nil || env.Type == "" {
			c.send(errorFrame(perr(wire.CodeBadRequest, "frame must be JSON {type, data}")))
			continue
		}
		if env.Type == wire.TypePing {
			c.send(wire.MustMarshal(wire.TypePong, nil))
			continue
		}
		if m == nil {
			if env.Type != wire.TypeJoin {
				c.sendFinal(errorFrame(perr(wire.CodeBadRequest, "first message must be join")))
				continue
			}
			var j wire.Join
			if err := json.Unmarshal(env.Data, &j); err != nil {
				c.sendFinal(errorFrame(perr(wire.CodeBadRequest, "join: %v", err)))
				continue
			}
			nm, pe := s.join(c, j)
			if pe != nil {
				c.sendFinal(errorFrame(pe))
				continue
			}
			m = nm
			continue
		}
		if m.currentConn() != c {
			continue // replaced by a resume or a duplicate join, or gone
		}
		if pe := s.handle(m, env); pe != nil {
			c.send(errorFrame(pe))
		}
	}
	if m != nil {
		s.dropped(m, c)
	}
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// join admits (or resumes, or puts in the lobby) the client on c. A join
// with a resume token and no ticket resumes; with a ticket (and, for a
// participant that moves, its resume token as proof) it joins afresh.
func (s *Server) join(c *conn, j wire.Join) (*member, *protoError) {
	if j.ResumeToken != "" && j.Ticket == "" {
		return s.resume(c, j.ResumeToken)
	}
	if j.Ticket == "" {
		return nil, perr(wire.CodeInvalidTicket, "join needs a ticket or a resume token")
	}
	key := s.cfg.TicketKey()
	if key == nil {
		return nil, perr(wire.CodeUnavailable, "edge not registered with the control plane yet")
	}
	now := s.now()
	cl, err := ticket.Verify(key, j.Ticket, s.cfg.EdgeID, now)
	switch {
	case errors.Is(err, ticket.ErrExpired):
		return nil, perr(wire.CodeTicketExpired, "ticket expired")
	case errors.Is(err, ticket.ErrWrongEdge):
		return nil, perr(wire.CodeWrongEdge, "ticket issued for another edge")
	case err != nil:
		return nil, perr(wire.CodeInvalidTicket, "ticket rejected")
	}
	if cl.ExpiresAt-cl.IssuedAt > int64(ticket.MaxTTL/time.Second) || cl.RoomID == "" || cl.ParticipantID == "" {
		return nil, perr(wire.CodeInvalidTicket, "ticket rejected")
	}
	if len(cl.AllowedRegions) > 0 && !slices.Contains(cl.AllowedRegions, s.cfg.Region) {
		return nil, perr(wire.CodeWrongEdge, "room not allowed in region %q", s.cfg.Region)
	}
	if s.cfg.Admit != nil {
		if err := s.cfg.Admit(cl.RoomID, cl); err != nil {
			s.log.Warn("signal: admission refused", "room", cl.RoomID, "participant", cl.ParticipantID, "err", err)
			return nil, perr(wire.CodeUnavailable, "this edge cannot serve the room now: %v", err)
		}
	}
	name := cl.ParticipantName
	if name == "" {
		name = j.Name
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, perr(wire.CodeUnavailable, "edge shutting down")
	}
	if at, ok := s.closedRooms.get(cl.RoomID, s.now()); ok && !cl.Issued().After(at) {
		s.mu.Unlock()
		return nil, perr(wire.CodeRoomClosed, "room closed")
	}
	r := s.roomLocked(cl.RoomID)
	// Someone who may only ask to join skips the lobby only if it proves it
	// is the participant already admitted (it moves here because its edge
	// failed or drains, or its page joins afresh): the control plane sees
	// it in the room's session (the ticket's admitted mark), it was not
	// removed here since (see removedMemory), and it presents the resume
	// token an edge of the cluster gave it when it was admitted (see
	// provesAdmission). The id alone proves nothing: an ask_join token that
	// names no participant lets its holder pick any id, the host's included.
	asker := cl.Permissions.AskJoin && !cl.Permissions.Moderate
	proven := asker && cl.Admitted && !s.removedLately(cl.RoomID, cl.ParticipantID) &&
		s.provesAdmission(j.ResumeToken, cl.RoomID, cl.ParticipantID)
	old := r.members[cl.ParticipantID]
	if old != nil && old.state == stateGone {
		old = nil
	}
	if old != nil && (!asker || proven) {
		// Duplicate: the new connection takes over the admitted participant.
		// It is the id's newest connection: the room's other edges hear so,
		// in case the id is connected to one of them too. An asker that
		// proved nothing never gets here: it waits in the lobby and the
		// participant whose id it gave stays.
		old.name, old.perms = name, cl.Permissions
		old.since, old.issued = s.now(), cl.Issued()
		s.mu.Unlock()
		nm, pe := s.takeOver(old, c, wire.MustMarshal(wire.TypeRemoved, wire.Removed{Reason: wire.ReasonDuplicate}), false)
		if pe == nil {
			s.announceSince(nm)
		}
		return nm, pe
	}
	var oldLobby *member
	if o := r.lobby[cl.ParticipantID]; o != nil {
		oldLobby = o
		delete(r.lobby, cl.ParticipantID)
		o.state = stateGone
	}
	// Not in the lobby either: a guest that proved it was admitted (above),
	// or one a moderator here admitted moments ago while it waited on
	// another edge (that edge stalled; see admitMemory) and whose id is not
	// connected here.
	lobby := asker && !proven && (old != nil || !s.admittedLocked(r, cl.ParticipantID))
	if !lobby && cl.MaxParticipants > 0 && r.others(cl.ParticipantID) >= cl.MaxParticipants {
		s.mu.Unlock()
		s.dropLobbyConn(oldLobby)
		return nil, perr(wire.CodeRoomFull, "room is full (%d participants)", cl.MaxParticipants)
	}
	m := &member{roomID: cl.RoomID, id: cl.ParticipantID, nonce: newNonce(), name: name, perms: cl.Permissions, conn: c, since: s.now(), issued: cl.Issued()}
	m.maxParticipants = cl.MaxParticipants
	var mods []*member
	if lobby {
		m.state = stateLobby
		r.lobby[m.id] = m
		mods = s.moderatorsLocked(cl.RoomID)
	} else {
		m.state = stateActive
		r.members[m.id] = m
	}
	s.mu.Unlock()
	s.dropLobbyConn(oldLobby)

	if lobby {
		c.send(wire.MustMarshal(wire.TypeLobby, struct{}{}))
		req := wire.LobbyRequest{ParticipantID: m.id, Name: name}
		msg := wire.MustMarshal(wire.TypeLobbyRequest, req)
		for _, mod := range mods {
			mod.deliverNow(msg)
		}
		s.announceLobby(cl.RoomID, req)
		return m, nil
	}
	if pe := s.activate(m); pe != nil {
		return nil, pe
	}
	return m, nil
}

func (s *Server) dropLobbyConn(m *member) {
	if m == nil {
		return
	}
	if c := m.currentConn(); c != nil {
		c.sendFinal(wire.MustMarshal(wire.TypeRemoved, wire.Removed{Reason: wire.ReasonDuplicate}))
	}
}

// deliverNow sends to the member's current media generation.
func (m *member) deliverNow(frame []byte) {
	m.mu.Lock()
	gen := m.gen
	m.mu.Unlock()
	m.deliver(gen, frame)
}

// resume attaches c to a member in (or about to enter) its grace period.
func (s *Server) resume(c *conn, tok string) (*member, *protoError) {
	roomID, pid, nonce, err := s.parseResumeToken(tok)
	if err != nil {
		return nil, perr(wire.CodeInvalidTicket, "bad resume token")
	}
	s.mu.Lock()
	var m *member
	if r := s.rooms[roomID]; r != nil {
		m = r.members[pid]
	}
	if m == nil || m.nonce != nonce || m.state == stateGone {
		s.mu.Unlock()
		return nil, perr(wire.CodeInvalidTicket, "nothing to resume (grace period over)")
	}
	s.mu.Unlock()
	return s.takeOver(m, c, nil, true)
}

// takeOver moves an admitted member onto a new connection with fresh
// PeerConnections; the old connection (if still open) gets oldFinal. The
// room sees no leave or join (resumed only sets joined.resumed).
func (s *Server) takeOver(m *member, c *conn, oldFinal []byte, resumed bool) (*member, *protoError) {
	m.op.Lock()
	defer m.op.Unlock()
	s.mu.Lock()
	if m.state == stateGone {
		s.mu.Unlock()
		return nil, perr(wire.CodeInvalidTicket, "nothing to resume (grace period over)")
	}
	if m.graceTimer != nil {
		m.graceTimer.Stop()
		m.graceTimer = nil
	}
	m.graceEpoch++
	m.state = stateActive
	unreported, name := m.unreported, m.name
	m.unreported = false
	m.mu.Lock()
	old := m.conn
	m.conn = c
	m.mu.Unlock()
	s.mu.Unlock()
	if old != nil && old != c {
		if oldFinal != nil {
			old.sendFinal(oldFinal)
		} else {
			old.close()
		}
	}
	if pe := s.activateLocked(m, resumed, false); pe != nil {
		return nil, pe
	}
	if unreported {
		s.report(edgeapi.EventParticipantJoined, m, name, "")
	}
	return m, nil
}

// activate gives an admitted member its media and sends `joined`.
func (s *Server) activate(m *member) *protoError {
	m.op.Lock()
	defer m.op.Unlock()
	return s.activateLocked(m, false, true)
}

// activateLocked (m.op held) replaces the member's media and sends joined;
// announce reports the join and tells the room (a first admission).
func (s *Server) activateLocked(m *member, resumed, announce bool) *protoError {
	s.mu.Lock()
	if m.state != stateActive {
		s.mu.Unlock()
		return perr(wire.CodeInvalidTicket, "participant left")
	}
	name, perms := m.name, m.perms
	s.mu.Unlock()

	m.mu.Lock()
	oldMedia := m.media
	m.media = nil
	m.gen++
	gen := m.gen
	m.ready = false
	m.pending = nil
	m.mu.Unlock()
	if oldMedia != nil {
		oldMedia.Close()
	}
	media, err := s.media.Join(m.roomID, sfu.ParticipantConfig{
		ID: m.id, Name: name, CanPublish: perms.Publish, CanSubscribe: perms.Subscribe, Sink: sink{m: m, gen: gen},
	})
	if err != nil {
		s.log.Warn("signal: media join failed", "room", m.roomID, "participant", m.id, "err", err)
		s.leaveLocked(m, wire.ReasonLeft, nil, !announce)
		return perr(wire.CodeUnavailable, "media unavailable")
	}
	if err := media.Start(); err != nil {
		media.Close()
		s.leaveLocked(m, wire.ReasonLeft, nil, !announce)
		return perr(wire.CodeUnavailable, "media unavailable")
	}
	var ice []wire.ICEServer
	if s.cfg.ICEServers != nil {
		ice = s.cfg.ICEServers(m.id)
	}
	if ice == nil {
		ice = []wire.ICEServer{}
	}
	participants, egress := s.snapshot(m.roomID, m.id)
	joined := wire.Joined{
		RoomID: m.roomID, ParticipantID: m.id, Name: name,
		Permissions:  wire.Permissions{Publish: perms.Publish, Subscribe: perms.Subscribe, Moderate: perms.Moderate},
		Participants: participants,
		ICEServers:   ice,
		ResumeToken:  s.resumeToken(m.roomID, m.id, m.nonce),
		Resumed:      resumed,
		Egress:       egress,
	}
	var lobbyReqs [][]byte
	if perms.Moderate {
		s.mu.Lock()
		if r := s.rooms[m.roomID]; r != nil {
			for id, l := range r.lobby {
				lobbyReqs = append(lobbyReqs, wire.MustMarshal(wire.TypeLobbyRequest, wire.LobbyRequest{ParticipantID: id, Name: l.name}))
			}
			for id, a := range r.asking {
				if r.lobby[id] == nil {
					lobbyReqs = append(lobbyReqs, wire.MustMarshal(wire.TypeLobbyRequest, wire.LobbyRequest{ParticipantID: id, Name: a.name}))
				}
			}
		}
		s.mu.Unlock()
	}

	// Tell the room first, so nobody hears of this member's tracks before
	// hearing of the member.
	if announce {
		s.report(edgeapi.EventParticipantJoined, m, name, "")
		s.mu.Lock()
		m.announced = true
		m.since = s.now()
		since := m.since
		if r := s.rooms[m.roomID]; r != nil {
			delete(r.admitted, m.id) // in the room: an admit remembered for it has served
		}
		var targets []*member
		// Already in the room through another edge (it is moving here):
		// the others know it; only its tracks change.
		if r := s.rooms[m.roomID]; r == nil || r.remotes[m.id] == nil {
			targets = s.othersLocked(m.roomID, m.id)
		}
		s.mu.Unlock()
		p := wire.Participant{ParticipantID: m.id, Name: name, Moderator: perms.Moderate, Tracks: []wire.TrackInfo{}}
		s.deliverAllSoon(targets, wire.MustMarshal(wire.TypeParticipantJoined, p))
		if casc := s.cascade.get(); casc != nil {
			casc.LocalJoined(m.roomID, edgeapi.CascadeParticipant{Participant: p, Since: since.UnixMilli()})
		}
	}
	m.mu.Lock()
	if m.gen != gen || m.conn == nil {
		m.mu.Unlock()
		media.Close()
		return perr(wire.CodeInvalidTicket, "participant left")
	}
	m.media = media
	m.sendJoinedLocked(wire.MustMarshal(wire.TypeJoined, joined), lobbyReqs)
	m.mu.Unlock()
	media.Ready()

	return nil
}

func (m *member) mediaNow() *sfu.Participant {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.media
}

// leaveReason is the reason a `leave` gives: ReasonMoved or, for anything
// else (no body, another reason, a body that does not parse), ReasonLeft —
// a leave is never refused.
func leaveReason(data json.RawMessage) string {
	var l wire.Leave
	if len(data) > 0 && json.Unmarshal(data, &l) == nil && l.Reason == wire.ReasonMoved {
		return wire.ReasonMoved
	}
	return wire.ReasonLeft
}

// handle processes one message of an admitted (or lobby) member.
func (s *Server) handle(m *member, env wire.Envelope) *protoError {
	s.mu.Lock()
	state, perms := m.state, m.perms
	s.mu.Unlock()
	if state == stateLobby {
		if env.Type == wire.TypeLeave {
			s.leave(m, wire.ReasonLeft, nil, false)
			return nil
		}
		return perr(wire.CodeBadRequest, "waiting in the lobby")
	}
	media := m.mediaNow()
	switch env.Type {
	case wire.TypeJoin:
		return perr(wire.CodeBadRequest, "already joined")
	case wire.TypeLeave:
		s.leave(m, leaveReason(env.Data), nil, true)
		return nil
	case wire.TypeOffer:
		var d wire.SDP
		if err := json.Unmarshal(env.Data, &d); err != nil || d.SDP == "" {
			return perr(wire.CodeBadRequest, "offer needs target and sdp")
		}
		if d.Target != wire.TargetPublisher {
			return perr(wire.CodeBadRequest, "clients offer on the publisher connection only")
		}
		if !perms.Publish {
			return perr(wire.CodeForbidden, "no publish permission")
		}
		if media == nil {
			return perr(wire.CodeBadRequest, "not ready")
		}
		ans, err := media.HandleOffer(d.SDP)
		if err != nil {
			return perr(wire.CodeBadSDP, "offer rejected")
		}
		m.deliverNow(wire.MustMarshal(wire.TypeAnswer, wire.SDP{Target: wire.TargetPublisher, SDP: ans}))
	case wire.TypeAnswer:
		var d wire.SDP
		if err := json.Unmarshal(env.Data, &d); err != nil || d.SDP == "" || d.Target != wire.TargetSubscriber {
			return perr(wire.CodeBadRequest, "answer needs target \"subscriber\" and sdp")
		}
		if media == nil {
			return perr(wire.CodeBadRequest, "not ready")
		}
		if err := media.HandleAnswer(d.SDP); err != nil {
			return perr(wire.CodeBadSDP, "answer rejected")
		}
	case wire.TypeCandidate:
		var d wire.Candidate
		if err := json.Unmarshal(env.Data, &d); err != nil {
			return perr(wire.CodeBadRequest, "bad candidate")
		}
		if d.Target == wire.TargetPublisher && !perms.Publish {
			return perr(wire.CodeForbidden, "no publish permission")
		}
		if media == nil {
			return perr(wire.CodeBadRequest, "not ready")
		}
		if err := media.AddICECandidate(d.Target, d.Candidate); err != nil {
			return perr(wire.CodeBadSDP, "candidate rejected")
		}
	case wire.TypeMute:
		var d wire.Mute
		if err := json.Unmarshal(env.Data, &d); err != nil || (d.TrackID == "" && d.Kind == "") {
			return perr(wire.CodeBadRequest, "mute needs trackId or kind")
		}
		if media == nil {
			return perr(wire.CodeBadRequest, "not ready")
		}
		for _, t := range media.SetTrackMuted(d.TrackID, d.Kind, d.Muted) {
			s.announceMute(m.roomID, wire.Mute{ParticipantID: m.id, Kind: t.Kind, TrackID: t.TrackID, Muted: d.Muted})
		}
	case wire.TypeMuteParticipant:
		if !perms.Moderate {
			return perr(wire.CodeForbidden, "moderators only")
		}
		var d wire.MuteParticipant
		if err := json.Unmarshal(env.Data, &d); err != nil || d.ParticipantID == "" || (d.Kind != "audio" && d.Kind != "video") {
			return perr(wire.CodeBadRequest, "mute-participant needs participantId and kind audio|video")
		}
		return s.muteParticipant(m.roomID, d)
	case wire.TypeRemoveParticipant:
		if !perms.Moderate {
			return perr(wire.CodeForbidden, "moderators only")
		}
		var d wire.RemoveParticipant
		if err := json.Unmarshal(env.Data, &d); err != nil || d.ParticipantID == "" {
			return perr(wire.CodeBadRequest, "remove-participant needs participantId")
		}
		if !s.RemoveParticipant(m.roomID, d.ParticipantID, wire.ReasonRemoved) {
			if casc := s.cascade.get(); casc == nil || !casc.Moderate(m.roomID, d.ParticipantID, edgeapi.ModerateRemove, "") {
				return perr(wire.CodeNotFound, "no such participant")
			}
		}
	case wire.TypeLobbyDecision:
		if !perms.Moderate {
			return perr(wire.CodeForbidden, "moderators only")
		}
		var d wire.LobbyDecision
		if err := json.Unmarshal(env.Data, &d); err != nil || d.ParticipantID == "" {
			return perr(wire.CodeBadRequest, "lobby-decision needs participantId")
		}
		return s.decide(m.roomID, d)
	case wire.TypeSetLayer:
		var d wire.SetLayer
		if err := json.Unmarshal(env.Data, &d); err != nil || d.TrackID == "" {
			return perr(wire.CodeBadRequest, "set-layer needs trackId and layer")
		}
		if media == nil {
			return perr(wire.CodeBadRequest, "not ready")
		}
		if err := media.SetLayer(d.TrackID, d.Layer); err != nil {
			if errors.Is(err, sfu.ErrNotFound) {
				return perr(wire.CodeNotFound, "no such track")
			}
			return perr(wire.CodeBadRequest, "layer must be q, h, f or auto")
		}
	default:
		return perr(wire.CodeUnknownType, "unknown message type %q", env.Type)
	}
	return nil
}

func (s *Server) muteParticipant(roomID string, d wire.MuteParticipant) *protoError {
	if s.muteLocal(roomID, d) {
		return nil
	}
	if casc := s.cascade.get(); casc != nil && casc.Moderate(roomID, d.ParticipantID, edgeapi.ModerateMute, d.Kind) {
		return nil
	}
	return perr(wire.CodeNotFound, "no such participant")
}

// muteLocal mutes a participant of this edge; false if there is none.
func (s *Server) muteLocal(roomID string, d wire.MuteParticipant) bool {
	s.mu.Lock()
	var t *member
	if r := s.rooms[roomID]; r != nil {
		t = r.members[d.ParticipantID]
	}
	s.mu.Unlock()
	if t == nil {
		return false
	}
	t.deliverNow(wire.MustMarshal(wire.TypeMute, wire.Mute{ParticipantID: t.id, Kind: d.Kind, Muted: true}))
	if media := t.mediaNow(); media != nil {
		for _, ti := range media.ForceMute(d.Kind, true) {
			s.announceMute(roomID, wire.Mute{ParticipantID: t.id, Kind: ti.Kind, TrackID: ti.TrackID, Muted: true})
		}
	}
	return true
}

// announceMute tells the room (here and on every edge relaying it) that a
// local participant's track changed its mute state.
func (s *Server) announceMute(roomID string, m wire.Mute) {
	s.broadcast(roomID, m.ParticipantID, wire.MustMarshal(wire.TypeMute, m))
	if casc := s.cascade.get(); casc != nil {
		casc.LocalMute(roomID, m)
	}
}

// decide carries out a moderator's lobby decision, here or on the edge
// the participant waits on.
func (s *Server) decide(roomID string, d wire.LobbyDecision) *protoError {
	if s.decideLocal(roomID, d) || s.decideRemote(roomID, d) {
		return nil
	}
	return perr(wire.CodeNotFound, "nobody with that id is waiting")
}

// decideLocal carries out a lobby decision for someone waiting on this
// edge; false if nobody with that id waits here.
func (s *Server) decideLocal(roomID string, d wire.LobbyDecision) bool {
	s.mu.Lock()
	r := s.rooms[roomID]
	var t *member
	if r != nil {
		t = r.lobby[d.ParticipantID]
	}
	if t == nil || t.state != stateLobby {
		s.mu.Unlock()
		return false
	}
	if !d.Admit {
		s.mu.Unlock()
		s.leave(t, wire.ReasonDenied, wire.MustMarshal(wire.TypeRemoved, wire.Removed{Reason: wire.ReasonDenied}), false)
		return true
	}
	if t.maxParticipants > 0 && r.others(t.id) >= t.maxParticipants {
		s.mu.Unlock()
		s.turnAwayFull(t)
		return true
	}
	if t.maxParticipants > 0 && s.cfg.Seat != nil {
		// The decision is taken; the seat is asked for off the caller's
		// goroutine (a moderator's socket, or a cascade leg for a decision
		// made on another edge).
		if s.closed {
			s.mu.Unlock()
			return true // shutting down: Close turns everybody away
		}
		s.seats.Add(1)
		s.mu.Unlock()
		go s.admitSeated(roomID, t)
		return true
	}
	s.admitLocked(roomID, r, t)
	return true
}

// seatTimeout bounds the control-plane call that holds a lobby guest's
// seat; past it the edge's own count decides.
const seatTimeout = 3 * time.Second

// admitSeated admits a lobby guest of a capped room once the control plane
// holds a seat for it, or turns it away as the room is full.
func (s *Server) admitSeated(roomID string, t *member) {
	defer s.seats.Done()
	ctx, cancel := context.WithTimeout(s.bg, seatTimeout)
	granted, err := s.cfg.Seat(ctx, roomID, t.id)
	cancel()
	if s.bg.Err() != nil {
		return // closed meanwhile
	}
	if err != nil {
		s.log.Warn("could not hold a seat for an admitted guest; counting this edge's view of the room", "room", roomID, "participant", t.id, "err", err)
		granted = true
	}
	s.mu.Lock()
	r := s.rooms[roomID]
	if r == nil || r.lobby[t.id] != t || t.state != stateLobby {
		s.mu.Unlock() // left meanwhile, or decided by another moderator
		return
	}
	if !granted || r.others(t.id) >= t.maxParticipants {
		s.mu.Unlock()
		s.turnAwayFull(t)
		return
	}
	s.admitLocked(roomID, r, t)
}

// turnAwayFull ends lobby guest t, admitted by a moderator, as its room is
// full (room-full, as a direct joiner would be refused).
func (s *Server) turnAwayFull(t *member) {
	s.leave(t, wire.ReasonDenied, errorFrame(perr(wire.CodeRoomFull, "room is full (%d participants)", t.maxParticipants)), false)
}

// admitLocked lets lobby guest t into the room (s.mu held; released).
func (s *Server) admitLocked(roomID string, r *room, t *member) {
	delete(r.lobby, t.id)
	if old := r.members[t.id]; old != nil && old != t {
		s.mu.Unlock()
		s.leave(t, wire.ReasonDuplicate, wire.MustMarshal(wire.TypeRemoved, wire.Removed{Reason: wire.ReasonDuplicate}), false)
		return
	}
	r.members[t.id] = t
	t.state = stateActive
	s.removed.forget([2]string{roomID, t.id}) // a moderator let it back in
	s.mu.Unlock()
	s.announceLobbyGone(roomID, t.id)
	if pe := s.activate(t); pe != nil {
		if c := t.currentConn(); c != nil {
			c.sendFinal(errorFrame(pe))
		}
	}
}
