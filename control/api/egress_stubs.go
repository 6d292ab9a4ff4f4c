package api

import "github.com/gofiber/fiber/v2"

// egressStubs answers every documented recording / RTMP / HLS route with 501
// and a JSON error until egress lands, so clients see "not implemented"
// rather than a misleading 404.
func (s *Server) egressStubs(r fiber.Router) {
	routes := []struct{ method, path string }{
		{"POST", "/recordings/start"}, {"POST", "/recordings/end"}, {"POST", "/recordings/stop"},
		{"GET", "/recordings"}, {"GET", "/recordings/:id"}, {"DELETE", "/recordings/:id"},
		{"POST", "/recordings/participant/start"}, {"POST", "/recordings/participant/stop"},
		{"GET", "/recordings/participant"}, {"GET", "/recordings/participant/:id"}, {"DELETE", "/recordings/participant/:id"},
		{"POST", "/recordings/participant/track/start"}, {"POST", "/recordings/participant/track/stop"},
		{"GET", "/recordings/participant/track"}, {"GET", "/recordings/participant/track/:id"}, {"DELETE", "/recordings/participant/track/:id"},
		{"POST", "/recordings/participant/merge"}, {"GET", "/recordings/participant/merge"}, {"GET", "/recordings/participant/merge/:id"},
		{"POST", "/livestreams/start"}, {"POST", "/livestreams/end"}, {"POST", "/livestreams/stop"},
		{"GET", "/livestreams"}, {"GET", "/livestreams/:id"},
		{"POST", "/hls/start"}, {"POST", "/hls/end"}, {"POST", "/hls/stop"}, {"POST", "/hls/capture"},
		{"GET", "/hls"}, {"GET", "/hls/:roomId/active"}, {"GET", "/hls/:id"}, {"DELETE", "/hls/:id"},
	}
	for _, rt := range routes {
		feature := rt.path
		r.Add(rt.method, rt.path, func(c *fiber.Ctx) error {
			return &Error{Status: fiber.StatusNotImplemented, Message: "recording, RTMP and HLS egress are not available in this Meridian version (" + feature + ")"}
		})
	}
}
