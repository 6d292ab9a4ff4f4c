package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/cluster"
)

// internalRoutes are node-to-node routes guarded by the cluster token.
func (s *Server) internalRoutes(r fiber.Router) {
	// Guards are per route: a prefix-less Group's middleware would cover the
	// edge routes too, which authenticate with the edge token instead.
	guard := RequireClusterToken(s.cfg.ClusterToken)
	r.Post("/raft/apply", guard, func(c *fiber.Ctx) error {
		var req cluster.ForwardedApply
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		return c.JSON(s.node.HandleForwardedApply(req))
	})
	r.Post("/raft/index", guard, func(c *fiber.Ctx) error {
		idx, err := s.node.LeaderIndex()
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"index": idx})
	})
	r.Post("/cluster/join", guard, func(c *fiber.Ctx) error {
		var req cluster.JoinRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
			return badRequest("join needs id, raftAddr and httpAddr")
		}
		if !s.node.IsLeader() {
			if c.Get(cluster.ForwardedHeader) != "" {
				return cluster.ErrNoLeader
			}
			var out struct{}
			if err := s.node.ForwardHTTP(c.UserContext(), "/internal/v1/cluster/join", req, &out); err != nil {
				return err
			}
			return c.JSON(fiber.Map{})
		}
		if err := s.node.AddVoter(req); err != nil {
			return err
		}
		return c.JSON(fiber.Map{})
	})
	r.Post("/cluster/remove", guard, func(c *fiber.Ctx) error {
		var req struct {
			ID string `json:"id"`
		}
		if err := decodeJSON(c, &req); err != nil || req.ID == "" {
			return badRequest("remove needs id")
		}
		if !s.node.IsLeader() {
			return cluster.ErrNoLeader
		}
		if err := s.node.RemoveServer(req.ID); err != nil {
			return err
		}
		return c.JSON(fiber.Map{})
	})
	s.edgeRoutes(r)
}
