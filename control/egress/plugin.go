package egress

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
)

// PluginConfig is Config plus the region data pins are resolved with.
type PluginConfig struct {
	Config
	Catalog *geo.Catalog
	Fences  geo.FenceTable
}

// Plugin wires egress into a control node: the recording, RTMP and HLS
// routes of the API and the leader's job loop.
func Plugin(pc PluginConfig) server.Plugin {
	return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
		cfg := pc.Config
		if cfg.TicketKey == nil {
			cfg.TicketKey = func() (ed25519.PrivateKey, error) {
				o, err := s.Secrets()
				if err != nil {
					return nil, err
				}
				return o.TicketKey, nil
			}
		}
		catalog, fences := pc.Catalog, pc.Fences
		if catalog == nil {
			catalog = geo.NewCatalog()
		}
		if fences == nil {
			fences = geo.DefaultFences()
		}
		if cfg.AllowedRegions == nil {
			cfg.AllowedRegions = func(room *state.Room) (out []string, err error) {
				s.Node().FSM().Read(func(st *state.Store) {
					var ok bool
					if out, ok = allowedRegions(st, catalog, fences, room); !ok {
						err = &api.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf("geoFence %q has no region mapping on this deployment", room.GeoFence)}
					} else if out != nil && len(out) == 0 {
						err = &api.Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("room %s is pinned (%s) and no known region satisfies its pins: no storage is allowed for its files", room.RoomID, describePin(room))}
					}
				})
				return out, err
			}
		}
		if cfg.Logger == nil {
			cfg.Logger = s.Logger()
		}
		if cfg.TLSClientConfig == nil {
			cfg.TLSClientConfig = s.ClientTLS()
		}
		if cfg.Rand == nil {
			cfg.Rand = s.Config().Rand
		}
		if cfg.Now == nil {
			cfg.Now = s.Config().Now
		}
		svc, err := New(cfg, s.Node())
		if err != nil {
			return nil, nil, err
		}
		return []api.Option{api.WithEgressService(svc)}, []cluster.LeaderLoop{{Name: "egress-jobs", Run: svc.Loop}}, nil
	}
}

func describePin(r *state.Room) string {
	var parts []string
	if len(r.Pin.Regions) > 0 {
		parts = append(parts, "regions "+strings.Join(r.Pin.Regions, ","))
	}
	if len(r.Pin.Jurisdictions) > 0 {
		parts = append(parts, "jurisdictions "+strings.Join(r.Pin.Jurisdictions, ","))
	}
	if r.GeoFence != "" {
		parts = append(parts, "geoFence "+r.GeoFence)
	}
	if len(parts) == 0 {
		return "by its API key"
	}
	return strings.Join(parts, "; ")
}
