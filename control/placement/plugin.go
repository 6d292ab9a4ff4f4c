package placement

import (
	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/server"
)

// Plugin wires placement into a control node: join + edge routes on the API
// and the edge liveness loop on the leader.
func Plugin(cfg Config) server.Plugin {
	return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
		if cfg.Secrets == nil {
			cfg.Secrets = func() (*Secrets, error) {
				o, err := s.Secrets()
				if err != nil {
					return nil, err
				}
				return &Secrets{TicketKey: o.TicketKey, TicketPub: o.TicketPub, TURNSecret: o.TURNSecret}, nil
			}
		}
		if cfg.ClusterToken == "" {
			cfg.ClusterToken = s.Config().Cluster.ClusterToken
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
		s.AddCloser(svc.Close)
		s.Logger().Info("placement", "locating", svc.Describe())
		return []api.Option{api.WithJoinService(svc), api.WithEdgeService(svc), api.WithNearestService(svc), api.WithEdgeStatus(svc)},
			[]cluster.LeaderLoop{{Name: "edge-liveness", Run: svc.LivenessLoop}, {Name: "placement-repair", Run: svc.RepairLoop}}, nil
	}
}
