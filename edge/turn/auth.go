package turn

import (
	"net"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"

	"github.com/meridian-video/meridian/shared/ids"
	"github.com/meridian-video/meridian/shared/turncred"
)

// authenticate is the pion AuthHandler. It accepts shared/turncred usernames
// ("expiry:participant") and returns the participant as pion's user id, so
// quota and allocation ownership are per participant. The key is the same as
// pion's LongTermTURNRESTAuthHandler derives, but with our realm, so a client
// that signs with another realm fails the integrity check.
//
// Expiry is enforced only for Allocate: Refresh, CreatePermission and
// ChannelBind on an existing allocation keep working with the credential it
// was created with, so a long call is not cut when its credential ages out.
// Those requests are refused, though, while AllowParticipant refuses the
// participant (it was removed, denied or left: its allocations are being
// closed, see revoke.go); Allocate asks it in allowAllocation. pion runs
// this before checking MESSAGE-INTEGRITY, so a wrong password is counted in
// onAuth, not here.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	expiry, participant, parsed := turncred.Parse(ra.Username)
	if !parsed {
		s.authFailed(reasonMalformed, ra)
		return "", nil, false
	}
	if _, err := ids.ParseParticipantID(participant); err != nil {
		s.authFailed(reasonMalformed, ra)
		return "", nil, false
	}
	if ra.Method == stun.MethodAllocate && s.now().After(expiry) {
		s.authFailed(reasonExpired, ra)
		return "", nil, false
	}
	if ra.Method != stun.MethodAllocate && !s.allowed(ids.ParticipantID(participant)) {
		s.authFailed(reasonNotAdmitted, ra)
		return "", nil, false
	}
	password := turncred.Password(s.currentSecret(), ra.Username)
	return participant, turn.GenerateAuthKey(ra.Username, s.cfg.Realm, password), true
}

func (s *Server) authFailed(reason string, ra *turn.RequestAttributes) {
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	s.log.Debug("turn: auth refused", "reason", reason, "method", ra.Method.String(),
		"username", truncate(ra.Username), "src", addrString(ra.SrcAddr))
}

// onAuth sees the verdict after pion checked MESSAGE-INTEGRITY with our key.
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		return
	}
	s.metrics.authFailures.WithLabelValues(reasonBadCredential).Inc()
	s.log.Debug("turn: auth refused", "reason", reasonBadCredential, "method", method,
		"username", truncate(username), "src", addrString(src))
}

// allowAllocation is the pion QuotaHandler; pion calls it for Allocate only,
// after authentication, with the user id authenticate returned.
func (s *Server) allowAllocation(userID, _ string, src net.Addr) bool {
	participant := ids.ParticipantID(userID)
	if !s.allowed(participant) {
		s.metrics.allocationsRefused.WithLabelValues(reasonPolicy).Inc()
		s.log.Info("turn: allocation refused by policy", "participant", userID, "src", addrString(src))
		return false
	}
	if !s.quota.reserve(participant, src, time.Now()) {
		s.metrics.allocationsRefused.WithLabelValues(reasonQuota).Inc()
		s.log.Info("turn: allocation quota reached", "participant", userID, "src", addrString(src),
			"max", s.cfg.MaxAllocationsPerUser)
		return false
	}
	return true
}

func (s *Server) onAllocationCreated(src, _ net.Addr, _, userID, _ string, _ net.Addr, _ int) {
	if s.quota.created(ids.ParticipantID(userID), src) {
		s.metrics.allocations.Inc()
		s.metrics.allocationsTotal.Inc()
	}
	if s.cfg.OnRelay != nil && src != nil {
		s.relayMu.Lock()
		if s.relaying == nil {
			s.relaying = map[string]ids.ParticipantID{}
		}
		s.relaying[addrString(src)] = ids.ParticipantID(userID)
		s.relayMu.Unlock()
	}
}

func (s *Server) onAllocationDeleted(src, _ net.Addr, _, userID, _ string) {
	if s.quota.deleted(ids.ParticipantID(userID)) {
		s.metrics.allocations.Dec()
	}
	if src != nil {
		s.relayMu.Lock()
		delete(s.relaying, addrString(src))
		s.relayMu.Unlock()
	}
}

// permit is the pion PermissionHandler for CreatePermission, ChannelBind and
// Connect.
func (s *Server) permit(client net.Addr, peerIP net.IP) bool {
	peer, _ := netipFromIP(peerIP)
	if s.policy.allowed(peer) {
		if s.cfg.OnRelay != nil && client != nil {
			s.relayMu.Lock()
			p, first := s.relaying[addrString(client)]
			delete(s.relaying, addrString(client))
			s.relayMu.Unlock()
			if first {
				s.cfg.OnRelay(p)
			}
		}
		return true
	}
	s.metrics.permissionsDenied.Inc()
	s.log.Debug("turn: peer refused", "peer", peer.String(), "client", addrString(client))
	return false
}

// reservationTTL bounds how long a quota slot taken for an Allocate waits
// for its allocation to be created; if creation fails the slot is freed then.
const reservationTTL = 5 * time.Second

// quota counts allocations per participant. A slot is reserved when pion
// asks (before it creates the allocation) and confirmed by the created
// event, so concurrent Allocates of one participant cannot overshoot the cap.
type quota struct {
	max int

	mu      sync.Mutex
	closed  bool
	active  map[ids.ParticipantID]int
	pending map[string]reservation // key: reservationKey
}

type reservation struct {
	participant ids.ParticipantID
	at          time.Time
}

func newQuota(limit int) *quota {
	return &quota{max: limit, active: map[ids.ParticipantID]int{}, pending: map[string]reservation{}}
}

func reservationKey(p ids.ParticipantID, src net.Addr) string {
	if src == nil {
		return string(p)
	}
	return string(p) + "\x00" + src.Network() + "\x00" + src.String()
}

func (q *quota) reserve(p ids.ParticipantID, src net.Addr, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	n := q.active[p]
	for k, r := range q.pending {
		if now.Sub(r.at) > reservationTTL {
			delete(q.pending, k)
			continue
		}
		if r.participant == p {
			n++
		}
	}
	if n >= q.max {
		return false
	}
	q.pending[reservationKey(p, src)] = reservation{participant: p, at: now}
	return true
}

// created confirms an allocation; false once the quota is closed.
func (q *quota) created(p ids.ParticipantID, src net.Addr) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	delete(q.pending, reservationKey(p, src))
	q.active[p]++
	return true
}

// deleted releases an allocation; false if it was not counted.
func (q *quota) deleted(p ids.ParticipantID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.active[p] == 0 {
		return false
	}
	if q.active[p]--; q.active[p] == 0 {
		delete(q.active, p)
	}
	return true
}

func (q *quota) count(p ids.ParticipantID) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active[p]
}

// close drops all counts; later events are ignored.
func (q *quota) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	clear(q.active)
	clear(q.pending)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func truncate(s string) string {
	if len(s) > 96 {
		return s[:96] + "…"
	}
	return s
}
