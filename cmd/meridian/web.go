package main

import (
	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/server"
)

// webPlugin mounts the meeting page and JS SDK (web/) when available.
func webPlugin() server.Plugin {
	return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
		return nil, nil, nil
	}
}
