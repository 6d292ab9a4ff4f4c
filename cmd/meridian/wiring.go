package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/control/webhooks/raftoutbox"
	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/turn"
)

// webhookFlags configure delivery.
type webhookFlags struct {
	allowHTTP   bool
	sourceAddrs listFlag
}

func (w *webhookFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&w.allowHTTP, "webhook-allow-http", false, "allow plain-http webhook endpoints (https is required otherwise; dev allows http://localhost)")
	fs.Var(&w.sourceAddrs, "webhook-source-addr", "local source address(es) webhook deliveries leave from, so receivers can allow-list them")
}

func (w *webhookFlags) config(dev bool) (webhooks.Config, error) {
	wc := webhooks.DefaultConfig()
	wc.AllowHTTP = w.allowHTTP
	wc.AllowHTTPLocalhost = dev
	for _, a := range w.sourceAddrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return wc, fmt.Errorf("--webhook-source-addr %q: %w", a, err)
		}
		wc.SourceAddrs = append(wc.SourceAddrs, ip)
	}
	return wc, wc.Validate()
}

// edgeFlags configure an edge (standalone, or in-process in dev).
type edgeFlags struct {
	id, region, httpAddr, publicURL string
	control                         listFlag
	edgeToken                       string
	turnUDP, turnTCP, turnPublicIP  string
	turnAllowPeers                  listFlag
	natIPs                          listFlag
	udpMin, udpMax, udpMux          int
	origins                         listFlag
	capacity                        int
	loopback                        bool
	noTURN                          bool
}

func (e *edgeFlags) register(fs *flag.FlagSet, dev bool) {
	host, _ := os.Hostname()
	defTURN, defIP := "0.0.0.0:3478", ""
	if dev {
		defTURN, defIP = "127.0.0.1:3478", "127.0.0.1"
	}
	if !dev {
		fs.StringVar(&e.id, "id", host, "edge id (unique)")
		fs.StringVar(&e.region, "region", "local", "region this edge serves (see geo regions, e.g. eu-west, ca-east)")
		fs.StringVar(&e.httpAddr, "http", "0.0.0.0:7880", "HTTP/WebSocket listen address")
		fs.StringVar(&e.publicURL, "public-url", "", "URL clients and the control plane use to reach this edge (default http://<http address>)")
		fs.Var(&e.control, "control", "control-plane URL(s) (repeatable; any node works)")
		fs.StringVar(&e.edgeToken, "edge-token", "", "token shared with the control plane (its --edge-token)")
		fs.BoolVar(&e.loopback, "loopback-candidates", false, "offer 127.0.0.1 ICE candidates (single-host testing)")
	}
	fs.StringVar(&e.turnUDP, "turn-udp", defTURN, "embedded TURN UDP listen address (empty disables UDP)")
	fs.StringVar(&e.turnTCP, "turn-tcp", defTURN, "embedded TURN TCP listen address (empty disables TCP)")
	fs.StringVar(&e.turnPublicIP, "turn-public-ip", defIP, "public IP the TURN server advertises for relayed addresses")
	fs.Var(&e.turnAllowPeers, "turn-allow-peers", "CIDRs of private peers TURN may relay to (restricted ranges are refused otherwise)")
	fs.BoolVar(&e.noTURN, "no-turn", false, "disable the embedded TURN server")
	fs.Var(&e.natIPs, "nat-ip", "public IP(s) to advertise instead of host candidates (1:1 NAT)")
	fs.IntVar(&e.udpMux, "udp-port", 0, "single UDP port for all media (0 = use the port range)")
	fs.IntVar(&e.udpMin, "udp-port-min", 0, "lowest ephemeral media UDP port (0 = any)")
	fs.IntVar(&e.udpMax, "udp-port-max", 0, "highest ephemeral media UDP port (0 = any)")
	fs.Var(&e.origins, "allowed-origins", "Origins allowed to open signaling WebSockets (default *)")
	fs.IntVar(&e.capacity, "capacity", 500, "participants this edge accepts")
}

func parseAddrPort(flagName, v string) (netip.AddrPort, error) {
	if v == "" {
		return netip.AddrPort{}, nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return ap, fmt.Errorf("--%s %q: %w", flagName, v, err)
	}
	return ap, nil
}

func (e *edgeFlags) nodeConfig(dev bool, logger *slog.Logger) (edgenode.Config, error) {
	sc := sfu.DefaultConfig()
	sc.UDPMuxPort, sc.UDPPortMin, sc.UDPPortMax = e.udpMux, uint16(e.udpMin), uint16(e.udpMax)
	sc.NAT1To1IPs = e.natIPs
	sc.IncludeLoopbackCandidate = dev || e.loopback
	origins := []string(e.origins)
	if len(origins) == 0 {
		origins = []string{"*"}
	}
	cfg := edgenode.Config{EdgeID: e.id, Region: e.region, ControlURLs: e.control, EdgeToken: e.edgeToken, HTTPListen: e.httpAddr,
		PublicURL: e.publicURL, AllowedOrigins: origins, Capacity: e.capacity, SFU: sc, EnableTURN: !e.noTURN, Logger: logger}
	if cfg.EnableTURN {
		tc := turn.DefaultConfig()
		var err error
		if tc.UDPListen, err = parseAddrPort("turn-udp", e.turnUDP); err != nil {
			return cfg, err
		}
		if tc.TCPListen, err = parseAddrPort("turn-tcp", e.turnTCP); err != nil {
			return cfg, err
		}
		if e.turnPublicIP == "" {
			return cfg, errors.New("--turn-public-ip is required with the embedded TURN server (or pass --no-turn)")
		}
		if tc.RelayAddress, err = netip.ParseAddr(e.turnPublicIP); err != nil {
			return cfg, fmt.Errorf("--turn-public-ip: %w", err)
		}
		tc.AllowPeers = e.turnAllowPeers
		if dev {
			// Dev runs browsers and the SFU on this machine: relaying to
			// loopback is the point. Production keeps refusing it.
			tc.AllowPeers = append(tc.AllowPeers, "127.0.0.0/8")
			// Relay from the advertised address, so browsers see relayed
			// candidates where the TURN server says they are.
			tc.RelayBindAddress = tc.RelayAddress
		}
		cfg.TURN = tc
	}
	return cfg, nil
}

// controlPlugins are the plugins every control node runs.
func controlPlugins(cfg *server.Config, edgeToken string, wc webhooks.Config) {
	pc := placement.DefaultConfig()
	pc.EdgeToken = edgeToken
	cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), raftoutbox.Plugin(wc))
}

// devEdgePlugin creates the in-process edge once the control listener
// exists (so its URL is known) and mounts its routes on the same port.
func devEdgePlugin(ef *edgeFlags, edgeToken string, logger *slog.Logger, out **edgenode.Node) server.Plugin {
	return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
		ef.id, ef.region, ef.publicURL, ef.edgeToken, ef.httpAddr = "dev-edge", "local", s.URL(), edgeToken, ""
		ef.control = listFlag{s.URL()}
		ec, err := ef.nodeConfig(true, logger)
		if err != nil {
			return nil, nil, err
		}
		ec.Registry = s.Registry()
		n, err := edgenode.New(ec)
		if err != nil {
			return nil, nil, err
		}
		*out = n
		return []api.Option{api.WithRoutes(func(r fiber.Router) { n.Mount(r) })}, nil, nil
	}
}

func runEdge(args []string) error {
	fs := newFlagSet("edge", "Run a media edge: SFU, signaling and TURN. It registers with the control plane\n(--control URL --edge-token T) and serves clients in --region.")
	var ef edgeFlags
	ef.register(fs, false)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	if len(ef.control) == 0 || ef.edgeToken == "" {
		return errors.New("edge: --control and --edge-token are required")
	}
	if ef.publicURL == "" {
		ef.publicURL = "http://" + strings.Replace(ef.httpAddr, "0.0.0.0", "127.0.0.1", 1)
	}
	cfg, err := ef.nodeConfig(false, logger)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Registry, cfg.Gatherer = reg, reg
	n, err := edgenode.New(cfg)
	if err != nil {
		return err
	}
	if err := n.Start(); err != nil {
		n.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-n.Registered():
		logger.Info("edge registered", "id", ef.id, "region", ef.region, "url", ef.publicURL)
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		logger.Warn("edge not registered yet; still trying", "control", ef.control.String())
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return n.Close()
}
