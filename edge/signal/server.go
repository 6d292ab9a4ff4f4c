package signal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// Server is the signaling endpoint of one edge.
type Server struct {
	cfg       Config
	media     *sfu.SFU
	log       *slog.Logger
	resumeKey []byte

	mu          sync.Mutex
	rooms       map[string]*room
	closedRooms *recentSet[string] // room → when control closed it
	conns       map[*conn]struct{}
	closed      bool
	// removed: when a participant was removed from a room here (see
	// removedLately), by room and participant id.
	removed *recentSet[[2]string]

	handlers sync.WaitGroup // WebSocket handler goroutines
	// bg is canceled on Close; background calls (a lobby guest's seat) run
	// under it and are waited for in seats.
	bg      context.Context
	stopBg  context.CancelFunc
	seats   sync.WaitGroup
	cascade cascadeRef
	// socketsDropped counts sockets closed by the drop policy, by reason.
	socketsDropped *prometheus.CounterVec

	// egress: per room, whether it is recorded or streamed (egress.go),
	// kept apart from rooms: a job may outlive the room's last member here.
	egress map[string]egressOrigins
}

// room is signaling's view of a room: admitted members (active or in grace)
// and the lobby.
type room struct {
	members map[string]*member
	lobby   map[string]*member
	remotes map[string]*remoteMember // relayed from other edges
	asking  map[string]remoteAsker   // waiting in other edges' lobbies
	// admitted: when a moderator here admitted someone waiting on another
	// edge (see rememberAdmit).
	admitted map[string]time.Time
}

// roomLocked returns the room, created if this edge has none of it yet
// (s.mu held).
func (s *Server) roomLocked(roomID string) *room {
	r := s.rooms[roomID]
	if r == nil {
		r = &room{members: map[string]*member{}, lobby: map[string]*member{}}
		s.rooms[roomID] = r
	}
	return r
}

// others counts the room's admitted participants other than pid, on this
// edge and relayed from the room's other edges, each once (a participant
// moving between edges may be both). The room's maxParticipants is for
// the whole room, not for each of its edges. s.mu held.
func (r *room) others(pid string) int {
	n := 0
	for id := range r.members {
		if id != pid {
			n++
		}
	}
	for id := range r.remotes {
		if _, local := r.members[id]; !local && id != pid {
			n++
		}
	}
	return n
}

// empty: nothing of the room is left on this edge, local or relayed.
func (r *room) empty() bool {
	return len(r.members) == 0 && len(r.lobby) == 0 && len(r.remotes) == 0 && len(r.asking) == 0
}

// New creates a Server driving media. cfg is validated.
func New(cfg Config, media *sfu.SFU) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if media == nil {
		return nil, errors.New("signal: an SFU is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	key := resumeKey(cfg.InternalToken)
	if cfg.InternalToken == "" {
		// No shared secret to derive it from (tests without an edge token):
		// a key of this process's own, as good as the one shared token.
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meridian_signal_sockets_dropped_total",
		Help: "Signaling sockets closed because their client fell behind, by reason: " + dropQueueFull +
			" (more frames waiting to be written than the socket's queue holds) or " + dropHeldFull +
			" (as many held back for it before its joined)."},
		[]string{"reason"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(dropped); err != nil {
			return nil, err
		}
	}
	bg, stop := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, media: media, log: cfg.Logger, resumeKey: key, socketsDropped: dropped,
		rooms: map[string]*room{}, closedRooms: newRecentSet[string](2 * ticket.MaxTTL), removed: newRecentSet[[2]string](removedMemory), conns: map[*conn]struct{}{},
		bg: bg, stopBg: stop,
	}, nil
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Register mounts GET /rtc and the control plane's internal routes.
func (s *Server) Register(app fiber.Router) {
	app.Get("/rtc", s.checkUpgrade, websocket.New(s.handleWS, websocket.Config{
		ReadBufferSize: 4096, WriteBufferSize: 4096,
	}))
	app.Post("/internal/v1/rooms/remove-participant", s.checkInternal, s.handleRemoveParticipant)
	app.Post("/internal/v1/rooms/close", s.checkInternal, s.handleCloseRoom)
}

func jsonError(c *fiber.Ctx, status int, code, msg string) error {
	return c.Status(status).JSON(wire.Error{Code: code, Message: msg})
}

func (s *Server) checkUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return jsonError(c, fiber.StatusUpgradeRequired, wire.CodeBadRequest, "websocket upgrade required")
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !s.originAllowed(origin) {
		return jsonError(c, fiber.StatusForbidden, wire.CodeForbidden, "origin not allowed")
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return jsonError(c, fiber.StatusServiceUnavailable, wire.CodeUnavailable, "edge shutting down")
	}
	return c.Next()
}

func (s *Server) originAllowed(origin string) bool {
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || o == origin {
			return true
		}
	}
	return false
}

func (s *Server) checkInternal(c *fiber.Ctx) error {
	want := "Bearer " + s.cfg.InternalToken
	got := c.Get(fiber.HeaderAuthorization)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return jsonError(c, fiber.StatusUnauthorized, "unauthorized", "bad internal token")
	}
	return c.Next()
}

func (s *Server) handleRemoveParticipant(c *fiber.Ctx) error {
	var req edgeapi.RemoveParticipant // Unmarshal copies: nothing of c is kept
	if err := json.Unmarshal(c.Body(), &req); err != nil || req.RoomID == "" || req.ParticipantID == "" {
		return jsonError(c, fiber.StatusBadRequest, wire.CodeBadRequest, "roomId and participantId are required")
	}
	reason := req.Reason
	if reason == "" {
		reason = wire.ReasonRemoved
	}
	found := s.RemoveParticipantAt(req.RoomID, req.ParticipantID, reason, req.At)
	return c.JSON(fiber.Map{"removed": found})
}

func (s *Server) handleCloseRoom(c *fiber.Ctx) error {
	var req edgeapi.CloseRoom
	if err := json.Unmarshal(c.Body(), &req); err != nil || req.RoomID == "" {
		return jsonError(c, fiber.StatusBadRequest, wire.CodeBadRequest, "roomId is required")
	}
	n := s.CloseRoomAt(req.RoomID, req.Reason, req.At)
	return c.JSON(fiber.Map{"removed": n})
}

// Close disconnects every client (their participants leave without a grace
// period) and waits for the WebSocket handlers. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.handlers.Wait()
		return nil
	}
	s.closed = true
	var ms []*member
	for _, r := range s.rooms {
		for _, m := range r.members {
			ms = append(ms, m)
		}
		for _, m := range r.lobby {
			ms = append(ms, m)
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, m := range ms {
		s.leave(m, wire.ReasonRoomClosed, nil, false)
	}
	for _, c := range conns {
		c.close()
	}
	s.stopBg()
	s.seats.Wait()
	s.handlers.Wait()
	return nil
}

func newEventID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) report(kind string, m *member, name, reason string) {
	if s.cfg.Reporter == nil {
		return
	}
	ev := edgeapi.Event{ID: newEventID(), Kind: kind, RoomID: m.roomID, ParticipantID: m.id, Name: name, Reason: reason, At: s.now().UTC()}
	if kind == edgeapi.EventParticipantJoined {
		s.cfg.Reporter.ParticipantJoined(ev)
	} else {
		s.cfg.Reporter.ParticipantLeft(ev)
	}
}

// broadcast sends frame to the room's admitted, connected members except skip.
func (s *Server) broadcast(roomID, skip string, frame []byte) {
	s.broadcastFrame(roomID, skip, frame, false)
}

// broadcastSoon is broadcast for a presence or quality event, which may
// wait briefly to share each member's next socket write (conn.sendSoon).
func (s *Server) broadcastSoon(roomID, skip string, frame []byte) {
	s.broadcastFrame(roomID, skip, frame, true)
}

func (s *Server) broadcastFrame(roomID, skip string, frame []byte, soon bool) {
	s.mu.Lock()
	targets := s.othersLocked(roomID, skip)
	s.mu.Unlock()
	s.deliverFrames(targets, frame, soon)
}

// othersLocked lists the room's members that got their snapshot, except skip.
func (s *Server) othersLocked(roomID, skip string) []*member {
	var targets []*member
	if r := s.rooms[roomID]; r != nil {
		for id, m := range r.members {
			if id != skip && m.listed {
				targets = append(targets, m)
			}
		}
	}
	return targets
}

func (s *Server) deliverAll(targets []*member, frame []byte) { s.deliverFrames(targets, frame, false) }

// deliverAllSoon is deliverAll for a presence or quality event.
func (s *Server) deliverAllSoon(targets []*member, frame []byte) {
	s.deliverFrames(targets, frame, true)
}

func (s *Server) deliverFrames(targets []*member, frame []byte, soon bool) {
	for _, m := range targets {
		m.mu.Lock()
		gen := m.gen
		m.mu.Unlock()
		m.deliverFrame(gen, frame, soon)
	}
}

// moderators returns the room's connected moderators.
func (s *Server) moderatorsLocked(roomID string) []*member {
	var out []*member
	if r := s.rooms[roomID]; r != nil {
		for _, m := range r.members {
			if m.perms.Moderate && m.state == stateActive {
				out = append(out, m)
			}
		}
	}
	return out
}

// RemoveParticipant disconnects a participant (control plane or moderator);
// it reports whether one was found.
func (s *Server) RemoveParticipant(roomID, pid, reason string) bool {
	return s.RemoveParticipantAt(roomID, pid, reason, time.Time{})
}

// RemoveParticipantAt is RemoveParticipant for a participant the control
// plane removed at `at` (zero: now), however late the order arrives (it was
// retried while this edge was cut off, or repeated by a heartbeat reply
// because it was missed): it spares a connection of pid whose ticket was
// issued after `at` (the participant came back, as a removed participant
// may). Both times are the control plane's, so this edge's clock does not
// enter.
func (s *Server) RemoveParticipantAt(roomID, pid, reason string, at time.Time) bool {
	s.mu.Lock()
	var m *member
	if r := s.rooms[roomID]; r != nil {
		m = r.members[pid]
		if m == nil {
			m = r.lobby[pid]
		}
	}
	if m != nil && !at.IsZero() && m.issued.After(at) {
		m = nil
	}
	if m != nil {
		s.rememberRemovedLocked(roomID, pid)
	}
	s.mu.Unlock()
	if m == nil {
		return false
	}
	s.leave(m, wire.ReasonRemoved, wire.MustMarshal(wire.TypeRemoved, wire.Removed{Reason: reason}), true)
	return true
}

// removedMemory is how long a removal here outweighs the "admitted" mark
// of a guest's ticket. The join API marks a ticket admitted when the guest
// is active in the room's session, which it stays until this edge's leave
// report is applied: a guest reconnecting the moment a moderator removed
// it would be let straight back in. The report normally lands within a
// second; two minutes also covers one retried while the control plane was
// out of reach. A guest admitted again meanwhile is no longer held (see
// admitLocked); one that is not waits in the lobby, asking again, which is
// what a removal means for a guest.
const removedMemory = 2 * time.Minute

// rememberRemovedLocked notes that pid was removed from roomID just now,
// forgetting removals older than removedMemory. s.mu held.
func (s *Server) rememberRemovedLocked(roomID, pid string) {
	now := s.now()
	s.removed.note([2]string{roomID, pid}, now, now)
}

// removedLately reports whether pid was removed from roomID here within
// removedMemory. s.mu held.
func (s *Server) removedLately(roomID, pid string) bool {
	_, ok := s.removed.get([2]string{roomID, pid}, s.now())
	return ok
}

// CloseRoomAt disconnects everybody in a room the control plane closed at
// `at` (zero: now) and returns how many it disconnected. Tickets issued
// until then are refused, and whoever joined with a ticket issued in a
// later moment is spared: they are in the room's next session. Both times
// are the control plane's, so the same order does the same thing however
// late it arrives (retried while this edge was cut off, or repeated by a
// heartbeat reply because it was missed) and whatever this edge's clock
// says.
func (s *Server) CloseRoomAt(roomID, reason string, at time.Time) int {
	now := s.now()
	// A close made "now" (zero) spares no ticket; one the control plane
	// made at a moment spares tickets it issued after it, and refuses the
	// others whatever this edge's clock says.
	spareIssued := !at.IsZero()
	if at.IsZero() {
		at = now
	}
	s.mu.Lock()
	// Kept while a ticket issued before the close may still be valid here.
	s.closedRooms.note(roomID, at, now)
	// Spared: whoever joined with a ticket handed out after the close.
	goes := func(m *member) bool { return !(spareIssued && m.issued.After(at)) }
	var ms []*member
	if r := s.rooms[roomID]; r != nil {
		for _, m := range r.members {
			if goes(m) {
				ms = append(ms, m)
			}
		}
		for _, m := range r.lobby {
			if goes(m) {
				ms = append(ms, m)
			}
		}
	}
	s.mu.Unlock()
	frame := wire.MustMarshal(wire.TypeRemoved, wire.Removed{Reason: wire.ReasonRoomClosed})
	for _, m := range ms {
		s.leave(m, wire.ReasonRoomClosed, frame, false)
	}
	return len(ms)
}

// leave ends a member for good: the socket gets final (if any) and closes,
// media stops, the Reporter hears about it (if the member had been admitted)
// and, when announce is set, the others get participant-left.
func (s *Server) leave(m *member, reason string, final []byte, announce bool) {
	m.op.Lock()
	defer m.op.Unlock()
	s.leaveLocked(m, reason, final, announce)
}

// leaveLocked is leave with m.op held.
func (s *Server) leaveLocked(m *member, reason string, final []byte, announce bool) {
	s.mu.Lock()
	if m.state == stateGone {
		s.mu.Unlock()
		return
	}
	wasAdmitted := m.state != stateLobby
	m.state = stateGone
	if m.graceTimer != nil {
		m.graceTimer.Stop()
		m.graceTimer = nil
	}
	name := m.name
	moved := reason == wire.ReasonMoved
	roomGone, remoteStays := false, false
	if r := s.rooms[m.roomID]; r != nil {
		if r.members[m.id] == m {
			delete(r.members, m.id)
		}
		if r.lobby[m.id] == m {
			delete(r.lobby, m.id)
		}
		_, remoteStays = r.remotes[m.id]
		if len(r.members) == 0 && len(r.lobby) == 0 {
			r.clearRemotes()
			delete(s.rooms, m.roomID)
			roomGone = true
		} else if moved && wasAdmitted && announce && !remoteStays && s.cfg.RemoteGrace > 0 {
			// It moved to another edge whose leg may not have relayed it
			// here yet: listed as a remote whose leg is lost, as if it had
			// always been relayed, until that leg brings it back.
			s.movedAwayLocked(r, m)
			remoteStays = true
		}
	}
	s.mu.Unlock()
	if !wasAdmitted {
		s.announceLobbyGone(m.roomID, m.id)
	}
	casc := s.cascade.get()
	if casc != nil && roomGone {
		defer casc.LocalRoomEmpty(m.roomID)
	}

	m.mu.Lock()
	c, media := m.conn, m.media
	m.conn, m.media = nil, nil
	m.gen++
	m.ready = false
	m.pending = nil
	m.mu.Unlock()
	if c != nil {
		if final != nil {
			c.sendFinal(final)
		} else {
			c.close()
		}
	}
	if media != nil {
		media.Close()
	}
	if !wasAdmitted {
		return
	}
	// For the control plane and clients a move is a leave here (and a join
	// there); only the cascade hears "moved", so the other edges wait.
	shown := reason
	if moved {
		shown = wire.ReasonLeft
	}
	s.report(edgeapi.EventParticipantLeft, m, name, shown)
	if casc != nil {
		casc.LocalLeft(m.roomID, m.id, reason)
	}
	// The same participant already reconnected through another edge (or
	// is listed until it does): the room keeps seeing it (its tracks
	// change), so nobody is told it left.
	if announce && !remoteStays {
		s.broadcastSoon(m.roomID, m.id, wire.MustMarshal(wire.TypeParticipantLeft, wire.ParticipantLeft{ParticipantID: m.id, Reason: shown}))
	}
}

// dropped is called when a member's socket ends without a leave: the member
// enters the resume grace period.
func (s *Server) dropped(m *member, c *conn) {
	s.mu.Lock()
	m.mu.Lock()
	current := m.conn == c
	if current {
		m.conn = nil
		m.ready = false
		m.pending = nil
	}
	m.mu.Unlock()
	if !current || m.state == stateGone {
		s.mu.Unlock()
		return
	}
	if m.state == stateLobby {
		s.mu.Unlock()
		s.leave(m, wire.ReasonLeft, nil, false)
		return
	}
	m.state = stateGrace
	m.graceEpoch++
	epoch := m.graceEpoch
	m.graceTimer = time.AfterFunc(s.cfg.ResumeGrace, func() { s.graceExpired(m, epoch) })
	s.mu.Unlock()
}

func (s *Server) graceExpired(m *member, epoch int) {
	s.mu.Lock()
	expired := m.state == stateGrace && m.graceEpoch == epoch
	s.mu.Unlock()
	if expired {
		s.leave(m, wire.ReasonTimeout, nil, true)
	}
}

// snapshot lists the room's other admitted participants with their tracks,
// and the room's egress state, read together with marking self listed: a
// later change reaches self as egress-state.
func (s *Server) snapshot(roomID, self string) ([]wire.Participant, wire.EgressState) {
	type entry struct {
		id, name string
		mod      bool
		m        *member
	}
	s.mu.Lock()
	var es []entry
	var remotes []entry
	if r := s.rooms[roomID]; r != nil {
		for id, m := range r.members {
			if id != self && m.announced {
				es = append(es, entry{id, m.name, m.perms.Moderate, m})
			}
		}
		for id, rm := range r.remotes {
			if id != self && !r.localAnnounced(id) {
				remotes = append(remotes, entry{id: id, name: rm.name, mod: rm.moderator})
			}
		}
		if me := r.members[self]; me != nil {
			me.listed = true
		}
	}
	egress := s.egress[roomID].merged()
	s.mu.Unlock()
	out := make([]wire.Participant, 0, len(es)+len(remotes))
	if len(remotes) > 0 {
		var relayed map[string][]wire.TrackInfo
		if sr := s.media.Room(roomID); sr != nil {
			relayed = sr.Tracks()
		}
		for _, e := range remotes {
			tracks := relayed[e.id]
			if tracks == nil {
				tracks = []wire.TrackInfo{}
			}
			out = append(out, wire.Participant{ParticipantID: e.id, Name: e.name, Moderator: e.mod, Tracks: tracks})
		}
	}
	for _, e := range es {
		e.m.mu.Lock()
		media := e.m.media
		e.m.mu.Unlock()
		tracks := []wire.TrackInfo{}
		if media != nil {
			tracks = media.Tracks()
		}
		out = append(out, wire.Participant{ParticipantID: e.id, Name: e.name, Moderator: e.mod, Tracks: tracks})
	}
	slices.SortFunc(out, func(a, b wire.Participant) int {
		if a.ParticipantID < b.ParticipantID {
			return -1
		}
		if a.ParticipantID > b.ParticipantID {
			return 1
		}
		return 0
	})
	return out, egress
}

func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// HasParticipant reports whether pid is admitted (or resuming) in any room on
// this edge. TURN uses it so only participants that presented a valid ticket
// here (and so passed the room's pin policy) can allocate relays, and it
// asks again while they hold relays (edge/turn RecheckEvery): someone still
// waiting in the lobby gets none, and one that left, was removed or denied
// loses the ones it has. A member in its resume grace keeps them.
func (s *Server) HasParticipant(pid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rooms {
		if m := r.members[pid]; m != nil && m.state != stateGone && m.state != stateLobby {
			return true
		}
	}
	return false
}
