package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/egress"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/webhooks"
	"github.com/meridian-video/meridian/control/webhooks/raftoutbox"
	"github.com/meridian-video/meridian/edge/edgenode"
	"github.com/meridian-video/meridian/edge/gossip"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/edge/turn"
	"github.com/meridian-video/meridian/geo"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/tlsutil"
)

// webhookFlags configure delivery.
type webhookFlags struct {
	allowHTTP    bool
	sourceAddrs  listFlag
	allowPrivate listFlag
}

func (w *webhookFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&w.allowHTTP, "webhook-allow-http", false, "allow plain-http webhook endpoints (https is required otherwise; dev allows http://localhost)")
	fs.Var(&w.sourceAddrs, "webhook-source-addr", "local source address(es) webhook deliveries leave from, so receivers can allow-list them")
	fs.Var(&w.allowPrivate, "webhook-allow-private", "private webhook receivers to allow: CIDRs (10.20.0.0/16) or host names (crm.corp.internal, *.corp.internal), repeatable; others stay refused")
}

func (w *webhookFlags) config(dev bool) (webhooks.Config, error) {
	wc := webhooks.DefaultConfig()
	wc.AllowHTTP = w.allowHTTP
	wc.AllowHTTPLocalhost = dev
	for _, a := range w.allowPrivate {
		if p, err := netip.ParsePrefix(a); err == nil {
			wc.AllowedNets = append(wc.AllowedNets, p.Masked())
		} else if ip, err := netip.ParseAddr(a); err == nil {
			wc.AllowedNets = append(wc.AllowedNets, netip.PrefixFrom(ip, ip.BitLen()))
		} else {
			wc.AllowedHosts = append(wc.AllowedHosts, a)
		}
	}
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
	udpIP                           string
	relayMin, relayMax              int
	origins                         listFlag
	capacity                        int
	loopback                        bool
	pionSendPath                    bool
	eventLinger                     time.Duration
	noTURN                          bool
	gossipBind, gossipAdvertise     string
	gossipKey, gossipKeyFile        string
	gossipSeeds                     listFlag
	lat, lon                        float64
	drainTimeout                    time.Duration
	internalURL                     string
	tls                             tlsFlags // edge only; dev runs without certificates
	storage                         storageFlags
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
		fs.StringVar(&e.publicURL, "public-url", "", "URL clients (and, without --internal-url, the control plane and other edges) use to reach this edge (default http(s)://<http address>)")
		fs.Var(&e.control, "control", "control-plane URL(s) (repeatable; any node works)")
		fs.StringVar(&e.edgeToken, "edge-token", "", "token shared with the control plane (its --edge-token)")
		fs.BoolVar(&e.loopback, "loopback-candidates", false, "offer 127.0.0.1 ICE candidates (single-host testing)")
		fs.BoolVar(&e.pionSendPath, "pion-send-path", false, "send subscribers' media through pion's SRTP session instead of the edge's own direct SRTP (slower; to compare or to rule it out)")
		fs.StringVar(&e.gossipBind, "gossip", "0.0.0.0:7946", "gossip (memberlist) listen address for the region's pool, udp+tcp (empty disables gossip)")
		fs.StringVar(&e.gossipAdvertise, "gossip-advertise", "", "gossip address other edges of the region dial (default: the listen address)")
		fs.StringVar(&e.gossipKey, "gossip-key", "", "hex AES key (32, 48 or 64 hex chars) encrypting gossip; the same on every edge of the region")
		fs.StringVar(&e.gossipKeyFile, "gossip-key-file", "", "file holding the gossip key (hex)")
		fs.Var(&e.gossipSeeds, "gossip-seeds", "gossip addresses of other edges of the region (the control plane also hands them out)")
		fs.Float64Var(&e.lat, "lat", 0, "latitude of this edge (default: its region's)")
		fs.Float64Var(&e.lon, "lon", 0, "longitude of this edge (default: its region's)")
		fs.DurationVar(&e.drainTimeout, "drain-timeout", 2*time.Minute, "on SIGTERM or meridian edge drain: how long participants get to move to another edge")
		fs.StringVar(&e.internalURL, "internal-url", "", "URL the control plane and other edges use to reach this edge (default: --public-url); with --mtls-* its host must be named in --mtls-cert")
		e.tls.register(fs)
	}
	fs.StringVar(&e.turnUDP, "turn-udp", defTURN, "embedded TURN UDP listen address (empty disables UDP)")
	fs.StringVar(&e.turnTCP, "turn-tcp", defTURN, "embedded TURN TCP listen address (empty disables TCP)")
	fs.StringVar(&e.turnPublicIP, "turn-public-ip", defIP, "public IP the TURN server advertises for relayed addresses")
	fs.Var(&e.turnAllowPeers, "turn-allow-peers", "CIDRs of private peers TURN may relay to (restricted ranges are refused otherwise)")
	fs.BoolVar(&e.noTURN, "no-turn", false, "disable the embedded TURN server")
	fs.Var(&e.natIPs, "nat-ip", "public IP(s) to advertise instead of host candidates (1:1 NAT)")
	fs.IntVar(&e.udpMux, "udp-port", 0, "single UDP port for all media (0 = per-connection ports from --udp-port-min/max if set, else shared sockets on ports the system picks)")
	fs.StringVar(&e.udpIP, "udp-ip", "", "the one local IP the shared media socket binds (default: a socket on every local address; each address is a candidate every subscriber gathers)")
	fs.IntVar(&e.udpMin, "udp-port-min", 0, "lowest ephemeral media UDP port (0 = any)")
	fs.IntVar(&e.udpMax, "udp-port-max", 0, "highest ephemeral media UDP port (0 = any)")
	fs.IntVar(&e.relayMin, "relay-port-min", 0, "with --udp-port: lowest UDP port of cascade legs to other edges (0 = any)")
	fs.IntVar(&e.relayMax, "relay-port-max", 0, "with --udp-port: highest UDP port of cascade legs to other edges (0 = any)")
	fs.Var(&e.origins, "allowed-origins", "Origins allowed to open signaling WebSockets (default *)")
	fs.IntVar(&e.capacity, "capacity", 500, "participants this edge accepts")
	fs.DurationVar(&e.eventLinger, "event-linger", 25*time.Millisecond, "how long presence and quality events may wait to share a signaling socket's write with others (0 writes each at once; at most 1s)")
	e.storage.register(fs, dev)
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
	sc.RelayPortMin, sc.RelayPortMax = uint16(e.relayMin), uint16(e.relayMax)
	sc.NAT1To1IPs = e.natIPs
	if e.udpIP != "" {
		ip, err := netip.ParseAddr(e.udpIP)
		if err != nil {
			return edgenode.Config{}, fmt.Errorf("--udp-ip %q: %w", e.udpIP, err)
		}
		if e.udpMin != 0 || e.udpMax != 0 {
			return edgenode.Config{}, errors.New("--udp-ip binds the shared media socket: use it with --udp-port (or alone), not with --udp-port-min/max")
		}
		sc.UDPMuxAddr = ip.String()
	}
	sc.IncludeLoopbackCandidate = dev || e.loopback
	sc.PionSendPath = e.pionSendPath
	origins := []string(e.origins)
	if len(origins) == 0 {
		origins = []string{"*"}
	}
	if e.eventLinger < 0 || e.eventLinger > time.Second {
		return edgenode.Config{}, fmt.Errorf("--event-linger %v: must be between 0 and 1s", e.eventLinger)
	}
	eventLinger := e.eventLinger
	if eventLinger == 0 {
		eventLinger = -1 // none (edgenode's 0 is the default)
	}
	cfg := edgenode.Config{EdgeID: e.id, Region: e.region, ControlURLs: e.control, EdgeToken: e.edgeToken, HTTPListen: e.httpAddr,
		PublicURL: e.publicURL, AllowedOrigins: origins, Capacity: e.capacity, SFU: sc, EnableTURN: !e.noTURN, Logger: logger,
		Latitude: e.lat, Longitude: e.lon, DrainTimeout: e.drainTimeout, InternalURL: e.internalURL, EventLinger: eventLinger}
	var err error
	if cfg.Egress, err = e.storage.config(e.region); err != nil {
		return cfg, err
	}
	if !dev {
		if cfg.TLSCert, cfg.MTLS, err = e.tls.load(logger); err != nil {
			return cfg, err
		}
		if err := e.checkMTLS(cfg.MTLS); err != nil {
			return cfg, err
		}
	}
	if !dev && e.gossipBind != "" {
		gc := gossip.DefaultConfig()
		host, port, err := net.SplitHostPort(e.gossipBind)
		if err != nil {
			return cfg, fmt.Errorf("--gossip %q: %w", e.gossipBind, err)
		}
		gc.BindAddr = host
		if gc.BindPort, err = strconv.Atoi(port); err != nil {
			return cfg, fmt.Errorf("--gossip %q: bad port", e.gossipBind)
		}
		if e.gossipAdvertise != "" {
			ah, ap, err := net.SplitHostPort(e.gossipAdvertise)
			if err != nil {
				return cfg, fmt.Errorf("--gossip-advertise %q: %w", e.gossipAdvertise, err)
			}
			gc.AdvertiseAddr = ah
			if gc.AdvertisePort, err = strconv.Atoi(ap); err != nil {
				return cfg, fmt.Errorf("--gossip-advertise %q: bad port", e.gossipAdvertise)
			}
		}
		keyHex := e.gossipKey
		if keyHex == "" && e.gossipKeyFile != "" {
			b, err := os.ReadFile(e.gossipKeyFile)
			if err != nil {
				return cfg, fmt.Errorf("--gossip-key-file: %w", err)
			}
			keyHex = strings.TrimSpace(string(b))
		}
		if keyHex != "" {
			k, err := hex.DecodeString(keyHex)
			if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
				return cfg, errors.New("--gossip-key must be 32, 48 or 64 hex characters (an AES-128/192/256 key)")
			}
			gc.SecretKey = k
		}
		gc.Seeds = e.gossipSeeds
		cfg.GossipEnabled, cfg.Gossip = true, gc
	}
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

// geoFlags configure where clients are located and how geoFence codes
// map to regions (control nodes).
type geoFlags struct {
	region        string
	geoipPath     string
	defaultRegion string
	fences        string
	regionDefs    repeatFlag
}

func (g *geoFlags) register(fs *flag.FlagSet, dev bool) {
	def := ""
	if dev {
		def = "local"
	}
	fs.StringVar(&g.region, "region", def, "region this control node runs in (the sovereignty audit names it as where webhooks are sent from)")
	fs.StringVar(&g.geoipPath, "geoip", "", "MaxMind-format City database (.mmdb) used to find each client's nearest edge")
	fs.StringVar(&g.defaultRegion, "default-region", "local", "region assumed for clients with no location hint and no GeoIP match")
	fs.StringVar(&g.fences, "geofence", "", "geoFence code overrides, e.g. eu001=jurisdiction:eu,us001=region:us-east+us-west (defaults: see docs/operations.md)")
	fs.Var(&g.regionDefs, "define-region", "extra region name=lat,lon[,jurisdiction+...] (repeatable), e.g. onprem-paris=48.85,2.35,eu+fr")
}

// geoSetup is the geography a control node works with.
type geoSetup struct {
	catalog *geo.Catalog
	locator *geo.Locator
	fences  geo.FenceTable
	region  string
}

func (g *geoFlags) setup() (*geoSetup, error) {
	cat := geo.NewCatalog()
	for _, d := range g.regionDefs {
		name, rest, ok := strings.Cut(d, "=")
		parts := strings.Split(rest, ",")
		if !ok || len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("--define-region %q: want name=lat,lon[,jurisdiction+...]", d)
		}
		lat, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
		lon, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--define-region %q: lat and lon must be numbers", d)
		}
		r := geo.Region{Name: strings.TrimSpace(name), Lat: lat, Lon: lon}
		if len(parts) == 3 {
			r.Jurisdictions = strings.Split(parts[2], "+")
		}
		if err := cat.Add(r); err != nil {
			return nil, fmt.Errorf("--define-region %q: %w", d, err)
		}
	}
	fences := geo.DefaultFences()
	if g.fences != "" {
		f, err := geo.ParseFences(g.fences)
		if err != nil {
			return nil, fmt.Errorf("--geofence: %w", err)
		}
		fences = f
	}
	loc, err := geo.NewLocator(geo.LocatorConfig{Catalog: cat, GeoIPPath: g.geoipPath, DefaultRegion: g.defaultRegion})
	if err != nil {
		return nil, err
	}
	return &geoSetup{catalog: cat, locator: loc, fences: fences, region: g.region}, nil
}

// addControlPlugins adds the plugins every control node runs (placement,
// the webhook outbox, egress), configured by the flags; dev also lets
// webhooks go to http://localhost.
func (f *controlFlags) addControlPlugins(cfg *server.Config, dev bool) error {
	wc, err := f.webhooks.config(dev)
	if err != nil {
		return err
	}
	g, err := f.geo.setup()
	if err != nil {
		return err
	}
	pc, err := f.placement()
	if err != nil {
		return err
	}
	pc.EdgeToken = f.edgeToken
	pc.Catalog, pc.Locator, pc.Fences = g.catalog, g.locator, g.fences
	cfg.API.Catalog, cfg.API.Fences = g.catalog, g.fences
	cfg.Region = g.region
	cfg.Plugins = append(cfg.Plugins, placement.Plugin(pc), raftoutbox.Plugin(wc))
	cfg.Plugins = append(cfg.Plugins, egress.Plugin(egress.PluginConfig{Config: egress.Config{EdgeToken: f.edgeToken}, Catalog: g.catalog, Fences: g.fences}))
	return nil
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
	if len(args) > 0 && args[0] == "drain" {
		return runEdgeDrain(args[1:])
	}
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
	for _, c := range ef.control {
		if u, err := url.Parse(c); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("edge: --control %q: want the http(s)://host:port of a control node", c)
		}
	}
	if err := ef.tls.checkLinks(logger, "edge", "calls to the control plane, its calls back and cascade legs to other edges", true); err != nil {
		return err
	}
	if ef.publicURL == "" {
		ef.publicURL = ef.tls.scheme() + "://" + strings.Replace(ef.httpAddr, "0.0.0.0", "127.0.0.1", 1)
		if strings.Contains(ef.publicURL, "127.0.0.1") {
			logger.Warn("no --public-url: clients, the control plane and other edges will be told this edge is at "+ef.publicURL+
				", which only works on this host; set --public-url", "http", ef.httpAddr)
		}
	}
	lock, err := ef.storage.lockData()
	if err != nil {
		return err
	}
	if lock != nil {
		defer lock.Close()
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
	stop()
	// SIGTERM drains: no new rooms come here, participants move to other
	// edges (a second signal skips the rest of the drain).
	logger.Info("draining before shutdown", "participants", n.Signal().ParticipantCount(), "timeout", ef.drainTimeout)
	dctx, dstop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	took, left := n.Drain(dctx, ef.drainTimeout)
	dstop()
	logger.Info("drain done; shutting down", "took", took.Round(time.Millisecond), "participantsLeft", left)
	return n.Close()
}

// checkMTLS: with a cluster identity, the control plane must be called
// over https, and the address others reach this edge at must be https and
// named by its certificate (they verify it against the cluster CA).
func (e *edgeFlags) checkMTLS(cl *tlsutil.Cluster) error {
	if cl == nil {
		return nil
	}
	for _, c := range e.control {
		if err := needHTTPS("--control", c); err != nil {
			return err
		}
	}
	internal, name := e.internalURL, "--internal-url"
	if internal == "" {
		internal, name = e.publicURL, "--public-url (the default --internal-url)"
	}
	if err := needHTTPS(name, internal); err != nil {
		return err
	}
	if err := needNamed(cl, name, internal); err != nil {
		if e.internalURL == "" {
			return fmt.Errorf("%w\n(or, when browsers use --public-url with a public certificate, set --internal-url https://<an internal address the node certificate names>)", err)
		}
		return err
	}
	return nil
}

// runEdgeDrain: `meridian edge drain --edge URL --edge-token T`: ask a
// running edge to drain (or, with --cancel, to take new rooms again).
func runEdgeDrain(args []string) error {
	fs := newFlagSet("edge drain", "Drain a running edge: no new rooms go there and its participants move to other\nedges of their region. --wait blocks until it is empty; --cancel stops a drain.")
	edgeURL := fs.String("edge", "http://127.0.0.1:7880", "the edge's HTTP URL")
	token := fs.String("edge-token", "", "the edge token (as given to the edge)")
	deadline := fs.Duration("deadline", 0, "how long participants get to move (default: the edge's --drain-timeout)")
	cancel := fs.Bool("cancel", false, "stop draining: the edge takes new rooms again")
	wait := fs.Bool("wait", false, "wait until the edge is empty and print how long it took")
	mtlsCert := fs.String("mtls-cert", "", "a certificate from the cluster CA (e.g. the edge's own): needed when the edge runs with --mtls-*")
	mtlsKey := fs.String("mtls-key", "", "PEM key for --mtls-cert")
	mtlsCA := fs.String("mtls-ca", "", "the cluster CA certificate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *token == "" {
		return errors.New("edge drain: --edge-token is required")
	}
	hc, err := cliClient(*mtlsCert, *mtlsKey, *mtlsCA)
	if err != nil {
		return fmt.Errorf("edge drain: %w", err)
	}
	body := edgeapi.Drain{Draining: !*cancel, DeadlineSeconds: int(deadline.Seconds())}
	start := time.Now()
	var out struct {
		Draining     bool   `json:"draining"`
		Participants int    `json:"participants"`
		Deadline     string `json:"deadline"`
	}
	if err := postEdge(hc, *edgeURL, *token, "/internal/v1/drain", body, &out); err != nil {
		return err
	}
	fmt.Printf("draining=%v participants=%d deadline=%s\n", out.Draining, out.Participants, out.Deadline)
	if !*wait || *cancel {
		return nil
	}
	for {
		time.Sleep(500 * time.Millisecond)
		if err := postEdge(hc, *edgeURL, *token, "/internal/v1/drain", body, &out); err != nil {
			return err
		}
		if out.Participants == 0 {
			fmt.Printf("drained in %s\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
	}
}

func postEdge(hc *http.Client, base, token, path string, in, out any) error {
	req, err := edgeapi.NewRequest(context.Background(), strings.TrimRight(base, "/")+path, token, in)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %d %s", base, path, resp.StatusCode, bytes.TrimSpace(rb))
	}
	return json.Unmarshal(rb, out)
}
