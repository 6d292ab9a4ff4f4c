// Package cascade links the edges that serve one room with relay legs
// (docs/multi-edge.md, "Cascade"). A leg is directional: the downstream
// edge pulls the upstream edge's local tracks while something here needs
// them — a local participant that subscribes, or an egress job recording
// the room (Hold) — and only the room's events while its local
// participants only publish. Legs are authorised by a relay
// ticket the control plane signed, and each end proves with its identity
// key that it is the edge the ticket names.
package cascade

import (
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
)

// Members is the edge's signaling server as the cascade needs it: it lists
// this edge's participants and shows other edges' participants to local
// clients. Its methods must not block for long.
type Members interface {
	RemoteJoined(roomID, origin string, p wire.Participant)
	RemoteLeft(roomID, origin, pid, reason string, lost bool)
	RemoteMute(roomID string, m wire.Mute)
	RemoteQuality(roomID, pid string, score float64)
	LocalParticipants(roomID string) []edgeapi.CascadeParticipant
	HasLocalMembers(roomID string) bool
	// HasLocalSubscribers: some local participant may subscribe.
	HasLocalSubscribers(roomID string) bool
	// IsLocal reports whether pid is admitted on this edge.
	IsLocal(roomID, pid string) bool
	ModerateLocal(roomID, pid, action, kind string) bool
}

// EgressMembers is what a Members that shows a room's recording and
// streaming state to its clients also does (signal.Server): the state of
// this edge's own jobs goes to the peers, theirs comes in by edge.
type EgressMembers interface {
	OwnEgress(roomID string) wire.EgressState
	SetEgress(roomID, origin string, st wire.EgressState)
}

// DuplicateMembers is what a Members that keeps one connection per
// participant id across the room's edges also does (signal.Server).
type DuplicateMembers interface {
	// DuplicateElsewhere: pid, admitted here, has been connected to edge
	// origin since `since` for DuplicateGrace; the older of the two
	// connections is removed by its own edge.
	DuplicateElsewhere(roomID, pid, origin string, since time.Time)
}

// LobbyMembers is what a Members whose rooms have a lobby also does
// (signal.Server): who waits in this edge's lobby goes to the peers, who
// waits in theirs comes in by edge, for this edge's moderators to answer.
type LobbyMembers interface {
	LobbyRequests(roomID string) []wire.LobbyRequest
	RemoteLobby(roomID, origin string, req wire.LobbyRequest)
	// SetLobby: who waits in origin's lobby, as a leg's welcome lists it
	// (the ones no longer listed are gone).
	SetLobby(roomID, origin string, reqs []wire.LobbyRequest)
	RemoteLobbyGone(roomID, origin, pid string)
	// ForgetLobby: the leg to origin ended; who waits there is unknown
	// until its next welcome.
	ForgetLobby(roomID, origin string)
}

// Config configures a Manager.
type Config struct {
	EdgeID, Region string
	// Key is this edge's identity key; its public half is registered with
	// the control plane, which names it in relay tickets.
	Key ed25519.PrivateKey
	// TicketKey returns the control plane's public key (nil before registration).
	TicketKey func() ed25519.PublicKey
	SFU       *sfu.SFU
	Members   Members
	// Report receives leg lifecycle events (cascade-leg-up/down) for the
	// session audit; nil drops them. Must not block.
	Report func(edgeapi.Event)
	// RefreshPeers asks the control plane for a room's current peers (a
	// relay ticket expired or a leg was refused); nil disables. Must not block.
	RefreshPeers func(roomID string)
	// RedialMin and RedialMax bound the backoff between attempts to set a
	// leg up again.
	RedialMin, RedialMax time.Duration
	// HandshakeTimeout bounds each step of a leg's handshake.
	HandshakeTimeout time.Duration
	// DuplicateGrace is how long a participant id may stay connected both
	// here and to a peer before the older connection is removed
	// (DuplicateMembers): a participant moving between edges is on both
	// until its client leaves the old one, which takes well under it.
	DuplicateGrace time.Duration
	// IdleTimeout closes a leg whose socket stays silent this long (pings
	// every IdleTimeout/3 keep a quiet leg up).
	IdleTimeout time.Duration
	// SendQueue bounds the frames queued on one leg's socket.
	SendQueue  int
	HTTPClient *http.Client
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time

	// TLSClientConfig is used to dial other edges' cascade sockets over
	// wss:// (with mTLS: this edge's certificate, the cluster CA as the
	// only roots). Nil uses the system roots. The relay ticket and
	// identity proofs are checked either way.
	TLSClientConfig *tls.Config
}

// DefaultConfig returns production timings.
func DefaultConfig() Config {
	return Config{RedialMin: 200 * time.Millisecond, RedialMax: 5 * time.Second, HandshakeTimeout: 5 * time.Second,
		DuplicateGrace: 10 * time.Second, IdleTimeout: 30 * time.Second, SendQueue: 4096}
}

// Validate names the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.EdgeID == "" || c.Region == "":
		return errors.New("cascade: EdgeID and Region are required")
	case len(c.Key) != ed25519.PrivateKeySize:
		return errors.New("cascade: Key must be an Ed25519 private key")
	case c.TicketKey == nil:
		return errors.New("cascade: TicketKey is required")
	case c.SFU == nil || c.Members == nil:
		return errors.New("cascade: SFU and Members are required")
	case c.RedialMin <= 0 || c.RedialMax < c.RedialMin:
		return errors.New("cascade: RedialMin must be positive and not above RedialMax")
	case c.HandshakeTimeout <= 0 || c.IdleTimeout <= 0 || c.SendQueue <= 0 || c.DuplicateGrace <= 0:
		return errors.New("cascade: HandshakeTimeout, DuplicateGrace, IdleTimeout and SendQueue must be positive")
	}
	return nil
}

// Manager owns every leg of one edge.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu     sync.Mutex
	rooms  map[string]*roomState
	closed bool
	wg     sync.WaitGroup
}

// roomState is what the edge knows of one room's other edges.
type roomState struct {
	id     string
	epoch  uint64
	member bool
	peers  map[string]edgeapi.Peer // by edge id
	pulls  map[string]*pullLeg     // downstream legs, by upstream edge id
	served map[*servedLeg]struct{} // upstream legs we serve
	// holds: in-process consumers (egress jobs) that need the room's
	// remote media here whether or not participants are, by key.
	holds map[string]struct{}
}

// idle reports whether nothing keeps the room's state (m.mu held).
func (rs *roomState) idle() bool {
	return len(rs.served) == 0 && len(rs.pulls) == 0 && len(rs.holds) == 0
}

// New builds a manager; Register mounts its WebSocket route.
func New(cfg Config) (*Manager, error) {
	d := DefaultConfig()
	if cfg.RedialMin == 0 {
		cfg.RedialMin = d.RedialMin
	}
	if cfg.RedialMax == 0 {
		cfg.RedialMax = d.RedialMax
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = d.HandshakeTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = d.IdleTimeout
	}
	if cfg.DuplicateGrace == 0 {
		cfg.DuplicateGrace = d.DuplicateGrace
	}
	if cfg.SendQueue == 0 {
		cfg.SendQueue = d.SendQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "cascade"), rooms: map[string]*roomState{}}
	m.metrics = newMetrics(m)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(m.metrics); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// PublicKey is the edge's identity key to register with the control plane.
func (m *Manager) PublicKey() ed25519.PublicKey { return m.cfg.Key.Public().(ed25519.PublicKey) }

func (m *Manager) room(id string) *roomState {
	rs := m.rooms[id]
	if rs == nil {
		rs = &roomState{id: id, peers: map[string]edgeapi.Peer{}, pulls: map[string]*pullLeg{}, served: map[*servedLeg]struct{}{}, holds: map[string]struct{}{}}
		m.rooms[id] = rs
	}
	return rs
}

// SetPeers installs a room's current peers from the control plane. Older
// epochs than the one known are ignored. Legs to edges that left the room
// are closed; legs to new peers start when this edge has participants there.
func (m *Manager) SetPeers(rp edgeapi.RoomPeers) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	rs := m.room(rp.RoomID)
	if rp.Epoch < rs.epoch {
		m.mu.Unlock()
		return
	}
	rs.epoch, rs.member = rp.Epoch, rp.Member
	next := map[string]edgeapi.Peer{}
	for _, p := range rp.Peers {
		if p.EdgeID != m.cfg.EdgeID && p.EdgeID != "" {
			next[p.EdgeID] = p
		}
	}
	rs.peers = next
	var stop []*pullLeg
	for id, l := range rs.pulls {
		if _, ok := next[id]; !ok {
			stop = append(stop, l)
			delete(rs.pulls, id)
		}
	}
	var drop []*servedLeg
	for sl := range rs.served {
		if _, ok := next[sl.peer]; !ok {
			drop = append(drop, sl)
		}
	}
	m.mu.Unlock()
	for _, l := range stop {
		l.stop()
	}
	for _, sl := range drop {
		sl.conn.close() // the peer no longer serves this room
	}
	m.ensurePulls(rp.RoomID)
}

// Prewarm sets up the legs to a room's peers before the room's first
// participant here is admitted, and waits up to timeout for each to be
// welcomed, so that participant's `joined` already lists the participants
// of the other edges (instead of hearing of them a moment later). media:
// the participant subscribes (or a job records), so the legs carry the
// tracks too. Legs nobody here ends up using are closed after a while.
func (m *Manager) Prewarm(roomID string, media bool, timeout time.Duration) {
	legs := m.startPulls(roomID, media || m.wantMedia(roomID))
	deadline := time.After(timeout)
	for _, l := range legs {
		select {
		case <-l.welcomed:
		case <-deadline:
			return
		}
	}
}

// ensurePulls starts a downstream leg to every known peer of a room that
// is needed here, and updates tickets of running ones.
func (m *Manager) ensurePulls(roomID string) {
	if !m.needed(roomID) {
		return
	}
	m.startPulls(roomID, m.wantMedia(roomID))
}

// needed reports whether something on this edge needs legs to the room's
// other edges: a local participant (their room events at least), or a
// hold (egress job).
func (m *Manager) needed(roomID string) bool {
	return m.Held(roomID) || m.cfg.Members.HasLocalMembers(roomID)
}

// wantMedia reports whether the legs must carry the other edges' tracks:
// a local participant subscribes, or a hold (egress job) records them.
func (m *Manager) wantMedia(roomID string) bool {
	return m.Held(roomID) || m.cfg.Members.HasLocalSubscribers(roomID)
}

// Hold makes this edge pull the room's remote media for key (an egress
// job recording the room here) until Release, whether or not the room has
// participants here: a recording on the home edge must see the
// participants of the other edges even when nobody is left locally.
// Holding a key twice holds it once.
func (m *Manager) Hold(roomID, key string) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.room(roomID).holds[key] = struct{}{}
	m.mu.Unlock()
	m.startPulls(roomID, true)
}

// Release ends a Hold; the room's legs close when nothing else needs them.
func (m *Manager) Release(roomID, key string) {
	m.mu.Lock()
	rs := m.rooms[roomID]
	if rs == nil {
		m.mu.Unlock()
		return
	}
	if _, ok := rs.holds[key]; !ok {
		m.mu.Unlock()
		return
	}
	delete(rs.holds, key)
	m.mu.Unlock()
	m.stopIfUnneeded(roomID)
}

// Held reports whether some Hold keeps the room's remote media here.
func (m *Manager) Held(roomID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.rooms[roomID]
	return rs != nil && len(rs.holds) > 0
}

// HeldRooms lists the rooms kept here by a Hold (sorted).
func (m *Manager) HeldRooms() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id, rs := range m.rooms {
		if len(rs.holds) > 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// startPulls starts (or refreshes) the legs to a room's peers and returns
// them; media says whether they carry tracks or room events only (a leg in
// the other mode is set up again in this one).
func (m *Manager) startPulls(roomID string, media bool) []*pullLeg {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.rooms[roomID]
	if m.closed || rs == nil {
		return nil
	}
	var legs []*pullLeg
	for id, p := range rs.peers {
		if l := rs.pulls[id]; l != nil {
			l.setPeer(p)
			l.setMedia(media)
			legs = append(legs, l)
			continue
		}
		l := newPullLeg(m, roomID, p, media)
		rs.pulls[id] = l
		legs = append(legs, l)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			l.run()
		}()
	}
	return legs
}

// unusedLegAfter: a leg set up ahead of a participant who never arrived.
const unusedLegAfter = 15 * time.Second

// dropIfUnused stops a room's leg to peer when nobody here needs it.
func (m *Manager) dropIfUnused(roomID string, l *pullLeg) {
	if m.needed(roomID) {
		return
	}
	m.mu.Lock()
	if rs := m.rooms[roomID]; rs != nil {
		for id, x := range rs.pulls {
			if x == l {
				delete(rs.pulls, id)
			}
		}
	}
	m.mu.Unlock()
	l.stop()
}

// RoomEpochs lists the rooms with participants here and the epoch known for
// each (heartbeats carry it; the control plane answers with what changed).
func (m *Manager) RoomEpochs(rooms []string) []edgeapi.RoomEpoch {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]edgeapi.RoomEpoch, 0, len(rooms))
	for _, id := range rooms {
		var e uint64
		if rs := m.rooms[id]; rs != nil {
			e = rs.epoch
		}
		out = append(out, edgeapi.RoomEpoch{RoomID: id, Epoch: e})
	}
	return out
}

// Epoch is the placement epoch known for a room (0 if none).
func (m *Manager) Epoch(roomID string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rs := m.rooms[roomID]; rs != nil {
		return rs.epoch
	}
	return 0
}

// Member reports whether the control plane said this edge serves the room.
func (m *Manager) Member(roomID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.rooms[roomID]
	return rs != nil && rs.member
}

// Peers lists the peer edges known for a room (sorted).
func (m *Manager) Peers(roomID string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	if rs := m.rooms[roomID]; rs != nil {
		for id := range rs.peers {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// LocalJoined implements signal.Cascade. A participant that joins here
// while it is still relayed from another edge (it is moving) is shown from
// here only: local wins.
func (m *Manager) LocalJoined(roomID string, p edgeapi.CascadeParticipant) {
	for _, l := range m.pulls(roomID) {
		l.shadow(p.ParticipantID)
	}
	m.broadcastServed(roomID, edgeapi.CascadeJoined, p)
	m.ensurePulls(roomID)
}

// LocalLeft implements signal.Cascade. When the last local subscriber
// left but participants that only publish remain, the legs go on with
// room events only (LocalRoomEmpty closes them when nobody remains).
func (m *Manager) LocalLeft(roomID, pid, reason string) {
	m.broadcastServed(roomID, edgeapi.CascadeLeft, edgeapi.CascadeLeftMsg{ParticipantID: pid, Reason: reason})
	for _, l := range m.pulls(roomID) {
		l.unshadow(pid)
	}
	m.ensurePulls(roomID)
}

func (m *Manager) pulls(roomID string) []*pullLeg {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*pullLeg
	if rs := m.rooms[roomID]; rs != nil {
		for _, l := range rs.pulls {
			out = append(out, l)
		}
	}
	return out
}

// takeRemote makes leg the only one relaying pid into the local room: a
// participant that reappears through another edge (failover, drain) is
// dropped from the leg of the edge it left, so it is never shown twice.
func (m *Manager) takeRemote(roomID, pid string, leg *pullLeg) {
	for _, l := range m.pulls(roomID) {
		if l != leg {
			l.dropRemote(pid)
		}
	}
}

// relayedNewer reports whether a leg other than leg relays pid from a
// connection newer than sinceMs: that is where the participant is now (a
// stalled edge that resumes announces its old, dead connection again).
// Unknown times (0) decide nothing: the latest announcement wins.
func (m *Manager) relayedNewer(roomID, pid string, sinceMs int64, leg *pullLeg) bool {
	if sinceMs <= 0 {
		return false
	}
	for _, l := range m.pulls(roomID) {
		if l == leg {
			continue
		}
		if s, ok := l.relayedSince(pid); ok && s > sinceMs {
			return true
		}
	}
	return false
}

// restoreRemote: leg no longer shows pid. If another leg's peer still has
// it (displaced there by leg's newer copy), that leg dials again so its
// welcome shows pid and its offer carries its tracks again. It reports
// whether such a leg exists.
func (m *Manager) restoreRemote(roomID, pid string, leg *pullLeg) bool {
	var best *pullLeg
	var bestSince int64
	for _, l := range m.pulls(roomID) {
		if l == leg {
			continue
		}
		if s, ok := l.hasDisplaced(pid); ok && (best == nil || s > bestSince) {
			best, bestSince = l, s
		}
	}
	if best == nil {
		return false
	}
	best.redial()
	return true
}

// LocalMute implements signal.Cascade.
func (m *Manager) LocalMute(roomID string, mu wire.Mute) {
	m.broadcastServed(roomID, edgeapi.CascadeMute, mu)
}

// LocalLobby implements signal's optional lobby hook: req waits in this
// edge's lobby.
func (m *Manager) LocalLobby(roomID string, req wire.LobbyRequest) {
	m.broadcastServed(roomID, edgeapi.CascadeLobby, req)
}

// LocalLobbyGone implements signal's optional lobby hook: pid no longer
// waits in this edge's lobby.
func (m *Manager) LocalLobbyGone(roomID, pid string) {
	m.broadcastServed(roomID, edgeapi.CascadeLobbyGone, edgeapi.CascadeLobbyGoneMsg{ParticipantID: pid})
}

// Decide implements signal's optional lobby hook: a moderator here
// decided on pid, who waits in the lobby of edge origin.
func (m *Manager) Decide(roomID, origin, pid string, admit bool) bool {
	m.mu.Lock()
	var leg *pullLeg
	if rs := m.rooms[roomID]; rs != nil {
		leg = rs.pulls[origin]
	}
	m.mu.Unlock()
	action := edgeapi.ModerateDeny
	if admit {
		action = edgeapi.ModerateAdmit
	}
	return leg != nil && leg.sendModerate(edgeapi.CascadeModerateMsg{Action: action, ParticipantID: pid})
}

// LocalEgress implements signal's optional egress hook: the room's
// recording/streaming state by this edge's jobs changed.
func (m *Manager) LocalEgress(roomID string, st wire.EgressState) {
	m.broadcastServed(roomID, edgeapi.CascadeEgress, st)
}

// remoteEgress shows the state of peer's jobs to this edge's clients.
func (m *Manager) remoteEgress(roomID, peer string, st wire.EgressState) {
	if em, ok := m.cfg.Members.(EgressMembers); ok {
		em.SetEgress(roomID, peer, st)
	}
}

// LocalRoomEmpty implements signal.Cascade: no participant here needs the
// other edges' media any more (a Hold may still).
func (m *Manager) LocalRoomEmpty(roomID string) { m.stopIfUnneeded(roomID) }

// stopIfUnneeded closes the room's downstream legs when nothing here needs
// them, and forgets the room when nothing is left of it.
func (m *Manager) stopIfUnneeded(roomID string) {
	if m.needed(roomID) {
		m.ensurePulls(roomID) // perhaps with room events only now
		return
	}
	m.mu.Lock()
	rs := m.rooms[roomID]
	var stop []*pullLeg
	if rs != nil {
		for id, l := range rs.pulls {
			stop = append(stop, l)
			delete(rs.pulls, id)
		}
		if rs.idle() {
			delete(m.rooms, roomID)
		}
	}
	m.mu.Unlock()
	for _, l := range stop {
		l.stop()
	}
}

// Moderate implements signal.Cascade: forward a moderator's action to the
// edge the participant is on.
func (m *Manager) Moderate(roomID, pid, action, kind string) bool {
	m.mu.Lock()
	var target *pullLeg
	if rs := m.rooms[roomID]; rs != nil {
		for _, l := range rs.pulls {
			if l.hasRemote(pid) {
				target = l
				break
			}
		}
	}
	m.mu.Unlock()
	if target == nil {
		return false
	}
	return target.sendModerate(edgeapi.CascadeModerateMsg{Action: action, ParticipantID: pid, Kind: kind})
}

func (m *Manager) broadcastServed(roomID, typ string, v any) {
	m.mu.Lock()
	var legs []*servedLeg
	if rs := m.rooms[roomID]; rs != nil {
		for sl := range rs.served {
			legs = append(legs, sl)
		}
	}
	m.mu.Unlock()
	for _, sl := range legs {
		sl.conn.send(typ, v)
	}
}

// LegInfo describes one leg end for stats and diagnostics.
type LegInfo struct {
	RoomID     string
	PeerEdgeID string
	PeerRegion string
	Direction  string // "in" (we pull) or "out" (we serve)
	// EventsOnly: the leg carries room events, no media (no local
	// subscriber on the pulling edge); it never connects a PeerConnection.
	EventsOnly bool
	Connected  bool
	// LastError: why the leg's last attempt ended (pulled legs; "" if none).
	LastError string
	// Idle: the leg's socket is up but it has no track to carry, so its
	// PeerConnection was never negotiated.
	Idle  bool
	Stats sfu.LegStats
}

// Legs lists every leg end of this edge.
func (m *Manager) Legs() []LegInfo {
	m.mu.Lock()
	var pulls []*pullLeg
	var served []*servedLeg
	for _, rs := range m.rooms {
		for _, l := range rs.pulls {
			pulls = append(pulls, l)
		}
		for sl := range rs.served {
			served = append(served, sl)
		}
	}
	m.mu.Unlock()
	now := m.cfg.Now()
	out := make([]LegInfo, 0, len(pulls)+len(served))
	for _, l := range pulls {
		out = append(out, l.info(now))
	}
	for _, sl := range served {
		out = append(out, sl.info())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].RoomID != out[j].RoomID {
			return out[i].RoomID < out[j].RoomID
		}
		if out[i].PeerEdgeID != out[j].PeerEdgeID {
			return out[i].PeerEdgeID < out[j].PeerEdgeID
		}
		return out[i].Direction < out[j].Direction
	})
	return out
}

// Close ends every leg and waits for their goroutines. Idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.closed = true
	var pulls []*pullLeg
	var served []*servedLeg
	for _, rs := range m.rooms {
		for _, l := range rs.pulls {
			pulls = append(pulls, l)
		}
		for sl := range rs.served {
			served = append(served, sl)
		}
	}
	m.rooms = map[string]*roomState{}
	m.mu.Unlock()
	for _, l := range pulls {
		l.stop()
	}
	for _, sl := range served {
		sl.conn.close()
	}
	m.wg.Wait()
	return nil
}

func (m *Manager) report(kind, roomID, peer, peerRegion string) {
	if m.cfg.Report != nil {
		m.cfg.Report(edgeapi.Event{Kind: kind, RoomID: roomID, PeerEdgeID: peer, PeerRegion: peerRegion, At: m.cfg.Now().UTC()})
	}
}
