// Package signal is the edge's WebSocket signaling server (docs/signaling.md):
// it admits participants with join tickets, runs the lobby, moderator actions
// and resume, and drives the SFU. It also serves the control plane's
// internal room routes.
package signal

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/shared/edgeapi"
	wire "github.com/meridian-video/meridian/shared/signal"
	"github.com/meridian-video/meridian/shared/ticket"
)

// Reporter receives participant lifecycle facts for the control plane. Both
// methods must not block (the edge agent queues and batches them).
type Reporter interface {
	ParticipantJoined(ev edgeapi.Event)
	ParticipantLeft(ev edgeapi.Event)
}

// Config configures a Server.
type Config struct {
	EdgeID string
	Region string
	// AllowedOrigins lists accepted Origin headers for GET /rtc ("*" allows
	// any). A request without an Origin header (a non-browser client) is accepted.
	AllowedOrigins []string
	// InternalToken authenticates the control plane on /internal/v1/rooms/*.
	InternalToken string
	// TicketKey returns the control plane's ticket public key (nil until the
	// edge has registered; joins are refused meanwhile).
	TicketKey func() ed25519.PublicKey
	// ICEServers returns the ICE servers (TURN credentials) for a participant; may be nil.
	ICEServers func(participantID string) []wire.ICEServer
	// Reporter receives joins and leaves; may be nil.
	Reporter Reporter
	// Admit, when set, is asked before a ticket is admitted: it adds this
	// edge to the room's placement for a claim ticket (an alternate
	// candidate) and may refuse. It may block briefly (a control-plane call).
	Admit func(roomID string, claims ticket.Claims) error
	// Seat, when set, is asked before a moderator's admit lets a lobby guest
	// into a room with maxParticipants: the control plane holds a place for
	// it in the replicated state, ordered with every other join, so
	// admissions on two edges at once cannot together pass the cap. false:
	// the room is full. An error (the control plane unreachable) leaves it
	// to this edge's own count. It blocks for a control-plane write.
	Seat func(ctx context.Context, roomID, participantID string) (bool, error)
	// RemoteGrace is how long a participant of a room that was relayed from
	// an edge we lost stays listed, so one that reconnects elsewhere is seen
	// to come back rather than to leave and join (5 s).
	RemoteGrace time.Duration

	// ResumeGrace is how long a dropped participant may resume (30 s).
	ResumeGrace time.Duration
	// IdleTimeout drops a socket silent this long (30 s; clients ping every 10 s).
	IdleTimeout time.Duration
	// JoinTimeout bounds the wait for the first message (10 s).
	JoinTimeout time.Duration
	// WriteTimeout bounds one frame write (10 s).
	WriteTimeout time.Duration
	// MaxMessageBytes bounds an incoming frame (256 KiB; SDP with many tracks is large).
	MaxMessageBytes int64
	// SendQueue bounds the frames queued for one client; a client that falls
	// this far behind is disconnected (and may resume).
	SendQueue int
	// EventLinger is how long a presence or quality event (participant
	// joined or left, connection quality) may wait to share a socket write
	// with others (25 ms; 0 writes each at once). While a room fills every
	// member hears of every joiner, one write each without it; any other
	// frame takes the waiting ones along, so the order never changes.
	EventLinger time.Duration

	// Now is the clock for tickets and events. Nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer, when set, gets the signaling metrics
	// (meridian_signal_sockets_dropped_total).
	Registerer prometheus.Registerer
}

// DefaultConfig returns the protocol's timings.
func DefaultConfig() Config {
	return Config{
		ResumeGrace:     30 * time.Second,
		IdleTimeout:     30 * time.Second,
		JoinTimeout:     10 * time.Second,
		WriteTimeout:    10 * time.Second,
		MaxMessageBytes: 256 << 10,
		SendQueue:       512,
		EventLinger:     25 * time.Millisecond,
		RemoteGrace:     5 * time.Second,
	}
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	switch {
	case c.EdgeID == "":
		return errors.New("signal: EdgeID is required")
	case c.TicketKey == nil:
		return errors.New("signal: TicketKey is required")
	case c.InternalToken == "":
		return errors.New("signal: InternalToken is required")
	case len(c.AllowedOrigins) == 0:
		return errors.New("signal: AllowedOrigins is required (use \"*\" to allow any)")
	case c.ResumeGrace <= 0 || c.IdleTimeout <= 0 || c.JoinTimeout <= 0 || c.WriteTimeout <= 0:
		return errors.New("signal: ResumeGrace, IdleTimeout, JoinTimeout and WriteTimeout must be positive")
	case c.MaxMessageBytes < 1024:
		return errors.New("signal: MaxMessageBytes must be at least 1024")
	case c.SendQueue < 16:
		return errors.New("signal: SendQueue must be at least 16")
	case c.EventLinger < 0 || c.EventLinger > time.Second:
		return errors.New("signal: EventLinger must be between 0 and 1s")
	}
	return nil
}
