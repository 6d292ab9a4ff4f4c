package main

import (
	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/web"
)

// webPlugin mounts the meeting page (/meet/{roomId}) and the JS SDK
// (/sdk/meridian.js) on a control node's HTTP listener.
func webPlugin(frameAncestors []string) server.Plugin {
	return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
		cfg := web.DefaultConfig()
		cfg.FrameAncestors = frameAncestors
		if err := cfg.Validate(); err != nil {
			return nil, nil, err
		}
		return []api.Option{api.WithRoutes(func(r fiber.Router) { web.Register(r, cfg) })}, nil, nil
	}
}
