package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
)

// JoinService places a participant on an edge and signs its join ticket.
type JoinService interface {
	Join(ctx context.Context, req JoinRequest) (*JoinResponse, error)
}

// EdgeService talks to edges: registration, heartbeats, lifecycle reports and commands.
type EdgeService interface {
	RemoveParticipant(ctx context.Context, edgeID, roomID, participantID, reason string) error
	CloseRoom(ctx context.Context, roomID, reason string) error
	Routes(r fiber.Router)
}

// JoinRequest is a participant asking to join a room.
type JoinRequest struct {
	Room          *state.Room
	ParticipantID string
	Name          string
	Publish       bool
	Subscribe     bool
	Moderate      bool
	AskJoin       bool
	ClientIP      string
	// Hint is where the client says it is (region, or lat+lon).
	Hint geo.Hint
	// AvoidEdges are edges the client just lost (failover): not used for it.
	AvoidEdges []string
}

// JoinCandidate is one edge the client may connect to.
type JoinCandidate struct {
	EdgeID          string      `json:"edgeId"`
	Region          string      `json:"region"`
	SignalURL       string      `json:"signalingUrl"`
	ICEServers      []ICEServer `json:"iceServers"`
	Ticket          string      `json:"ticket"`
	TicketExpiresAt string      `json:"ticketExpiresAt"`
	DistanceKm      *float64    `json:"distanceKm,omitempty"`
}

// NearestService ranks the edges a caller may use by distance.
type NearestService interface {
	Nearest(ctx context.Context, req NearestRequest) (*NearestResponse, error)
}

// NearestRequest is GET /v2/edges/nearest.
type NearestRequest struct {
	Hint     geo.Hint
	ClientIP string
	Pin      state.PinPolicy // the caller's API key pin
	Limit    int
}

// NearestEdge is one edge in a NearestResponse.
type NearestEdge struct {
	EdgeID     string   `json:"edgeId"`
	Region     string   `json:"region"`
	DistanceKm *float64 `json:"distanceKm"` // null when unknown
	SignalURL  string   `json:"signalingUrl"`
	Load       float64  `json:"load"` // participants / capacity
}

// NearestResponse lists usable edges, nearest first.
type NearestResponse struct {
	Location geo.Location  `json:"location"`
	Edges    []NearestEdge `json:"edges"`
}

// WithNearestService plugs the nearest-edge lookup in.
func WithNearestService(n NearestService) Option { return func(s *Server) { s.nearest = n } }

// ICEServer mirrors RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// JoinResponse is returned by POST /v2/rooms/{roomId}/join.
type JoinResponse struct {
	RoomID        string          `json:"roomId"`
	ParticipantID string          `json:"participantId"`
	Name          string          `json:"name"`
	Edges         []JoinCandidate `json:"edges"`
}

// WithJoinService plugs placement in.
func WithJoinService(j JoinService) Option { return func(s *Server) { s.joins = j } }

// WithEdgeService plugs the edge registry in.
func WithEdgeService(e EdgeService) Option { return func(s *Server) { s.edges = e } }

func (s *Server) edgeRoutes(r fiber.Router) {
	if s.edges != nil {
		s.edges.Routes(r)
	}
}

func (s *Server) closeRoomOnEdges(c *fiber.Ctx, room *state.Room) {
	if s.edges == nil {
		return
	}
	if err := s.edges.CloseRoom(c.UserContext(), room.RoomID, "room-closed"); err != nil {
		s.log.Warn("closing room on edges failed", "room", room.RoomID, "err", err)
	}
}

func (s *Server) joinRoom(c *fiber.Ctx) error {
	return s.handleJoin(c)
}

func (s *Server) meetingLink(c *fiber.Ctx) error {
	return s.handleMeetingLink(c)
}
