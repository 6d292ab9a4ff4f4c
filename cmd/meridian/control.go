package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/placement"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/shared/datadir"
)

// controlFlags are shared by `control` and `dev`.
type controlFlags struct {
	id, httpAddr, publicURL, raftBind, raftAdvertise, dataDir string
	httpAdvertise                                             string
	bootstrap                                                 bool
	peers                                                     listFlag
	join                                                      string
	clusterKey, clusterKeyFile, clusterToken, adminToken      string
	globalWebhooks                                            listFlag
	rateKey, rateIP                                           float64
	logLevel                                                  string
	edgeToken                                                 string
	webhooks                                                  webhookFlags
	frameAncestors                                            listFlag
	corsOrigins                                               listFlag
	trustedProxies                                            listFlag
	geo                                                       geoFlags
	tls                                                       tlsFlags // control only; dev runs without certificates
	raft                                                      raftFlags
	retention                                                 retentionFlags
	console                                                   consoleFlags
	rejoinGrace                                               time.Duration
	// dataLock is --data's lock, taken before anything in it is read
	// (lockData); the process holds it until it exits.
	dataLock *datadir.Lock
}

// lockData takes --data's lock first, before the credentials, keys and
// tokens kept there are read or generated: a second process on the same
// directory stops before it touches any of them.
func (f *controlFlags) lockData() error {
	l, err := datadir.Acquire(f.dataDir)
	if err != nil {
		return err
	}
	f.dataLock = l
	return nil
}

func (f *controlFlags) register(fs *flag.FlagSet, devDefaults bool) {
	host, _ := os.Hostname()
	defHTTP, defData, defRaft := "0.0.0.0:8080", "./meridian-control", "0.0.0.0:7000"
	if devDefaults {
		defHTTP, defData, defRaft = "127.0.0.1:8080", "./meridian-data", "127.0.0.1:0"
		host = "dev"
	}
	fs.StringVar(&f.id, "id", host, "node id (unique in the cluster)")
	fs.StringVar(&f.httpAddr, "http", defHTTP, "HTTP listen address for the API")
	fs.StringVar(&f.publicURL, "public-url", "", "public base URL used in links and meeting URLs (default http(s)://<http address>)")
	fs.StringVar(&f.httpAdvertise, "http-advertise", "", "host:port other control nodes use to reach this node's API (default: the --http address, or the --raft-advertise host when --http listens on all interfaces)")
	fs.StringVar(&f.raftBind, "raft", defRaft, "Raft listen address")
	fs.StringVar(&f.raftAdvertise, "raft-advertise", "", "Raft address other nodes dial (default: the listen address)")
	fs.StringVar(&f.dataDir, "data", defData, "data directory (Raft log, snapshots, keys)")
	fs.StringVar(&f.clusterKey, "cluster-key", "", "64 hex chars: key sealing secrets in the Raft log; identical on all control nodes (default: generated into <data>/cluster.key)")
	fs.StringVar(&f.clusterKeyFile, "cluster-key-file", "", "file holding the cluster key (hex)")
	fs.StringVar(&f.clusterToken, "cluster-token", "", "shared token for node-to-node calls (default: derived from the cluster key)")
	fs.StringVar(&f.adminToken, "admin-token", "", "token for the /admin API (default: generated into <data>/admin.token)")
	fs.Var(&f.globalWebhooks, "webhook", "operator webhook URL receiving every room's events (repeatable)")
	fs.Float64Var(&f.rateKey, "rate-limit-key", 50, "requests per second per API key (0 = unlimited)")
	fs.Float64Var(&f.rateIP, "rate-limit-ip", 100, "requests per second per client IP (0 = unlimited)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.edgeToken, "edge-token", "", "token edges authenticate with (default: derived from the cluster key)")
	f.webhooks.register(fs)
	f.geo.register(fs, devDefaults)
	f.raft.register(fs)
	f.retention.register(fs)
	fs.DurationVar(&f.rejoinGrace, "rejoin-grace", placement.DefaultConfig().RejoinGrace, "how long the participants of an edge declared dead stay in their sessions, for them to move to another edge, before they are recorded as left at the time it died (0: at once; at most "+maxRejoinGrace.String()+")")
	f.console.register(fs, devDefaults)
	fs.Var(&f.corsOrigins, "cors-origins", "browser origins allowed to call the API (default: any; tokens are never cookies)")
	fs.Var(&f.trustedProxies, "trusted-proxies", "load balancers (IP addresses or CIDR ranges, comma-separated) whose X-Forwarded-For gives the client's address for the audit log, per-address limits and GeoIP (default: none; the TCP peer is the client)")
	fs.Var(&f.frameAncestors, "frame-ancestors", "origins allowed to embed the meeting page in an iframe (default: any)")
	if !devDefaults {
		fs.BoolVar(&f.bootstrap, "bootstrap", false, "bootstrap a new cluster (with --peers, or alone) if this node has no state")
		fs.Var(&f.peers, "peers", "bootstrap voters as id=raftaddr (comma-separated or repeated), this node included")
		fs.StringVar(&f.join, "join", "", "HTTP URL of an existing member to join")
		f.tls.register(fs)
	}
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// loadOrCreateSecret reads a hex secret from path or generates one (0600).
func loadOrCreateSecret(path string, nbytes int) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, nbytes)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	s := hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return s, os.WriteFile(path, []byte(s+"\n"), 0o600)
}

func (f *controlFlags) serverConfig(logger *slog.Logger) (server.Config, error) {
	var cfg server.Config
	if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
		return cfg, err
	}
	keyHex := f.clusterKey
	var err error
	switch {
	case keyHex != "":
	case f.clusterKeyFile != "":
		b, rerr := os.ReadFile(f.clusterKeyFile)
		if rerr != nil {
			return cfg, fmt.Errorf("--cluster-key-file: %w", rerr)
		}
		keyHex = strings.TrimSpace(string(b))
	default:
		if keyHex, err = loadOrCreateSecret(filepath.Join(f.dataDir, "cluster.key"), 32); err != nil {
			return cfg, err
		}
	}
	key, err := hex.DecodeString(keyHex)
	if err != nil || len(key) != 32 {
		return cfg, errors.New("cluster key must be 64 hex characters")
	}
	clusterToken := f.clusterToken
	if clusterToken == "" {
		clusterToken = derive(key, "cluster-token")
	}
	adminToken := f.adminToken
	if adminToken == "" {
		if adminToken, err = loadOrCreateSecret(filepath.Join(f.dataDir, "admin.token"), 24); err != nil {
			return cfg, err
		}
	}
	pub, mtls, err := f.tls.load(logger)
	if err != nil {
		return cfg, err
	}
	cc := cluster.DefaultConfig()
	cc.NodeID, cc.RaftBind, cc.RaftAdvertise, cc.DataDir, cc.ClusterToken, cc.Bootstrap = f.id, f.raftBind, f.raftAdvertise, f.dataDir, clusterToken, f.bootstrap
	cc.DataDirLock = f.dataLock
	if err := f.raft.apply(&cc); err != nil {
		return cfg, err
	}
	if cc.HTTPAddr, err = f.advertisedHTTP(); err != nil {
		return cfg, err
	}
	if mtls != nil {
		// Peers verify this node's certificate against the address they dial.
		httpAddr := cc.HTTPAddr
		if httpAddr == "" {
			httpAddr = f.httpAddr
		}
		raftAddr := f.raftAdvertise
		if raftAddr == "" {
			raftAddr = f.raftBind
		}
		for _, e := range []error{needNamed(mtls, "--http/--http-advertise", httpAddr), needNamed(mtls, "--raft/--raft-advertise", raftAddr)} {
			if e != nil {
				return cfg, e
			}
		}
		if f.join != "" {
			if err := needHTTPS("--join", f.join); err != nil {
				return cfg, err
			}
		}
	}
	for _, p := range f.peers {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			return cfg, fmt.Errorf("--peers entry %q must be id=raftaddr", p)
		}
		cc.Peers = append(cc.Peers, cluster.Peer{ID: id, RaftAddr: addr})
	}
	if err := checkPeers(cc.Peers, f.id); err != nil {
		return cfg, err
	}
	ac := api.DefaultConfig()
	ac.AdminToken, ac.ClusterToken = adminToken, clusterToken
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--rate-limit-key", f.rateKey}, {"--rate-limit-ip", f.rateIP}} {
		if !(r.v >= 0) || math.IsInf(r.v, 0) {
			return cfg, fmt.Errorf("%s %v: want requests per second, 0 (unlimited) or more", r.flag, r.v)
		}
	}
	ac.RateLimitPerKey, ac.RateLimitPerIP = f.rateKey, f.rateIP
	ac.CORSOrigins = f.corsOrigins
	ac.TrustedProxies = f.trustedProxies
	if _, err := api.ParseTrustedProxies(f.trustedProxies); err != nil {
		return cfg, fmt.Errorf("--trusted-proxies: %w", err)
	}
	var hooks []state.GlobalEndpoint
	for _, u := range f.globalWebhooks {
		hooks = append(hooks, state.GlobalEndpoint{URL: u})
	}
	if f.edgeToken == "" {
		f.edgeToken = derive(key, "edge-token")
	}
	retention, err := f.retention.config()
	if err != nil {
		return cfg, err
	}
	f.retention.warn(logger)
	return server.Config{HTTPListen: f.httpAddr, PublicURL: f.publicURL, ClusterKey: key, Cluster: cc, API: ac, GlobalWebhooks: hooks, Logger: logger,
		TLSCert: pub, MTLS: mtls, Retention: retention}, nil
}

// advertisedHTTP is the API address other control nodes forward writes to.
// A node listening on all interfaces must say which address is its own:
// advertising 0.0.0.0 would make followers forward to themselves.
func (f *controlFlags) advertisedHTTP() (string, error) {
	if f.httpAdvertise != "" {
		if _, _, err := net.SplitHostPort(f.httpAdvertise); err != nil {
			return "", fmt.Errorf("--http-advertise %q: want host:port", f.httpAdvertise)
		}
		return f.tls.scheme() + "://" + f.httpAdvertise, nil
	}
	host, port, err := net.SplitHostPort(f.httpAddr)
	if err != nil {
		return "", fmt.Errorf("--http %q: %w", f.httpAddr, err)
	}
	if ip, perr := netip.ParseAddr(host); host != "" && (perr != nil || !ip.IsUnspecified()) {
		return "", nil // a specific address: the server advertises what it bound
	}
	rhost, _, rerr := net.SplitHostPort(f.raftAdvertise)
	if f.raftAdvertise == "" {
		rhost, _, rerr = net.SplitHostPort(f.raftBind)
	}
	if ip, perr := netip.ParseAddr(rhost); rerr == nil && rhost != "" && (perr != nil || !ip.IsUnspecified()) {
		return f.tls.scheme() + "://" + net.JoinHostPort(rhost, port), nil
	}
	return "", fmt.Errorf("--http %s listens on all interfaces: set --http-advertise host:port (the address other control nodes reach this one at)", f.httpAddr)
}

// maxRejoinGrace bounds --rejoin-grace: past a few minutes a participant
// who is gone would count as in the meeting for longer than anyone waits.
const maxRejoinGrace = 10 * time.Minute

// placement is the placement configuration the control flags set.
func (f *controlFlags) placement() (placement.Config, error) {
	pc := placement.DefaultConfig()
	if f.rejoinGrace < 0 || f.rejoinGrace > maxRejoinGrace {
		return pc, fmt.Errorf("--rejoin-grace %v: want 0 to %v", f.rejoinGrace, maxRejoinGrace)
	}
	pc.RejoinGrace = f.rejoinGrace
	return pc, nil
}

// checkPeers refuses a --peers list that would bootstrap a configuration
// the other voters do not share: each voter's list must name every voter,
// this one included (Raft would add a missing self on its own, so this
// node would count on a cluster the others know nothing of), each id and
// address once.
func checkPeers(peers []cluster.Peer, self string) error {
	if len(peers) == 0 {
		return nil
	}
	ids, addrs := map[string]bool{}, map[string]string{}
	for _, p := range peers {
		if ids[p.ID] {
			return fmt.Errorf("--peers names %q twice", p.ID)
		}
		if other, ok := addrs[p.RaftAddr]; ok {
			return fmt.Errorf("--peers gives %q and %q the same Raft address %s", other, p.ID, p.RaftAddr)
		}
		ids[p.ID], addrs[p.RaftAddr] = true, p.ID
	}
	if !ids[self] {
		return fmt.Errorf("--peers does not name this node (--id %s): list every voter, this one included, the same on each of them", self)
	}
	return nil
}

func runControl(args []string) error {
	fs := newFlagSet("control", "Run a control-plane node. Three or five voters form a cluster: start one with\n--bootstrap --peers a=host1:7000,b=host2:7000,c=host3:7000 on each, or --join http://member:8080.")
	var f controlFlags
	f.register(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	linked := f.join != ""
	for _, p := range f.peers {
		if id, _, _ := strings.Cut(p, "="); id != f.id {
			linked = true
		}
	}
	if err := f.tls.checkLinks(logger, "control", "--peers/--join: Raft and forwarded writes between control nodes", linked); err != nil {
		return err
	}
	if err := f.lockData(); err != nil {
		return err
	}
	defer f.dataLock.Close()
	cfg, err := f.serverConfig(logger)
	if err != nil {
		return err
	}
	if err := f.addControlPlugins(&cfg, false); err != nil {
		return err
	}
	cfg.Plugins = append(cfg.Plugins, webPlugin(f.frameAncestors))
	if err := addConsole(&cfg, &f.console); err != nil {
		return err
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	srv.Start()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.join != "" {
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := retry(jctx, func() error { return srv.Node().JoinCluster(jctx, strings.TrimRight(f.join, "/")) })
		cancel()
		if err != nil {
			srv.Close()
			return fmt.Errorf("join %s: %w", f.join, err)
		}
	}
	if f.join == "" && srv.Node().Outside() {
		// Raft itself only says "no known peers, aborting election".
		logger.Warn("this node has no Raft state in its data directory and was started without --bootstrap or --join: "+
			"it waits until a leader that lists it as a voter contacts it (the others bootstrapped with --peers naming it); "+
			"to start a new cluster restart it with --bootstrap (alone, or with --peers on every voter), to join one with --join URL",
			"id", f.id, "data", f.dataDir)
	}
	logger.Info("control node running", "id", f.id, "http", srv.URL(), "raft", srv.Node().RaftAddr())
	select {
	case <-ctx.Done():
	case err := <-srv.ServeErr():
		if err != nil {
			logger.Error("http server failed", "err", err)
		}
	}
	logger.Info("shutting down")
	return srv.Close()
}

func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
