package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
)

func (s *Server) edgeDiscoveryRoutes(r fiber.Router) {
	r.Get("/edges/nearest", s.nearestEdges)
	r.Get("/sessions/:sessionId/audit", s.sessionAudit)
}

// nearestEdges: GET /v2/edges/nearest[?region=|?lat=&lon=][&limit=]. Any
// valid token; the key's pin applies, so a pinned customer only ever sees
// edges it may use.
func (s *Server) nearestEdges(c *fiber.Ctx) error {
	if s.nearest == nil {
		return &Error{Status: fiber.StatusNotImplemented, Message: "no media edges are configured on this control plane"}
	}
	p := principal(c)
	req := NearestRequest{ClientIP: c.IP(), Pin: p.Key.Pin, Limit: 10}
	req.Hint.Region = strings.TrimSpace(c.Query("region"))
	for _, f := range []struct {
		name string
		dst  **float64
	}{{"lat", &req.Hint.Lat}, {"lon", &req.Hint.Lon}} {
		if v := c.Query(f.name); v != "" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
				return invalidField(f.name, "must be a number")
			}
			*f.dst = &x
		}
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return invalidField("limit", "must be an integer from 1 to 100")
		}
		req.Limit = n
	}
	resp, err := s.nearest.Nearest(c.UserContext(), req)
	if err != nil {
		return err
	}
	return c.JSON(resp)
}

// auditHop is one place that carried a session's media, on the wire.
type auditHop struct {
	Kind       string `json:"kind"`
	EdgeID     string `json:"edgeId,omitempty"`
	Region     string `json:"region"`
	PeerEdgeID string `json:"peerEdgeId,omitempty"`
	PeerRegion string `json:"peerRegion,omitempty"`
	NodeID     string `json:"nodeId,omitempty"`
	First      string `json:"first,omitempty"`
	Last       string `json:"last,omitempty"`
	Count      int    `json:"count"`
}

// sessionAudit: GET /v2/sessions/{id}/audit (a Meridian addition): every
// edge, TURN relay, cascade leg and webhook origin that carried the
// session, with regions and first/last times, and whether all of them are
// allowed by the room's pins.
func (s *Server) sessionAudit(c *fiber.Ctx) error {
	ss, err := s.findSession(c, c.Params("sessionId"))
	if err != nil {
		return err
	}
	var (
		a       *state.Audit
		origins []state.WebhookOrigin
		room    *state.Room
		key     *state.APIKey
		known   bool
	)
	s.node.FSM().Read(func(st *state.Store) {
		a, known = st.SessionAudit(ss.ID)
		origins = st.SessionWebhookOrigins(ss.ID)
		room, _ = st.Room(ss.UserID, ss.RoomDocID)
		if room != nil {
			key, _ = st.APIKey(room.APIKey)
		}
	})
	hops := []auditHop{}
	if known {
		for _, h := range a.Hops {
			hops = append(hops, auditHop{Kind: h.Kind, EdgeID: h.EdgeID, Region: h.Region, PeerEdgeID: h.PeerEdgeID, PeerRegion: h.PeerRegion,
				First: auditTime(h.First), Last: auditTime(h.Last), Count: h.Count})
		}
	}
	// Webhooks: one entry per control node that made delivery attempts
	// (every node, including one that died during an attempt; see
	// state.SessionWebhookOrigins for what count means).
	for _, w := range origins {
		hops = append(hops, auditHop{Kind: "webhook", NodeID: w.NodeID, Region: w.Region, First: auditTime(w.First), Last: auditTime(w.Last), Count: w.Attempts})
	}
	var ps []geo.Policy
	var pins []fiber.Map
	addPin := func(source string, p geo.Policy) {
		if !p.Empty() {
			ps = append(ps, p)
			pins = append(pins, fiber.Map{"source": source, "regions": p.Regions, "jurisdictions": p.Jurisdictions})
		}
	}
	if room != nil {
		addPin("room", geo.Policy{Regions: room.Pin.Regions, Jurisdictions: room.Pin.Jurisdictions})
		if room.GeoFence != "" {
			// The same table the room was checked against at creation
			// (the default one when none is configured).
			if p, ok := s.cfg.Fences.Policy(room.GeoFence); ok {
				addPin("geoFence "+room.GeoFence, p)
			}
		}
	}
	if key != nil {
		addPin("apiKey", geo.Policy{Regions: key.Pin.Regions, Jurisdictions: key.Pin.Jurisdictions})
	}
	if pins == nil {
		pins = []fiber.Map{}
	}
	catalog := s.cfg.Catalog
	if catalog == nil {
		catalog = geo.NewCatalog()
	}
	compliant := true
	var violations []string
	for _, h := range hops {
		for _, r := range []string{h.Region, h.PeerRegion} {
			if r != "" && !geo.AllowedByAll(catalog.Lookup(r), ps...) {
				compliant = false
				violations = append(violations, fmt.Sprintf("%s %s%s in region %s", h.Kind, h.EdgeID, h.NodeID, r))
			}
		}
	}
	if violations == nil {
		violations = []string{}
	}
	return c.JSON(fiber.Map{"sessionId": ss.ID, "roomId": ss.RoomID, "pins": pins, "compliant": compliant, "violations": violations, "hops": hops})
}

func auditTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return restTime(t)
}
