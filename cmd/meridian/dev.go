package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/edge/edgenode"
)

// devCredentials is persisted in the data dir so a restart keeps the same key.
type devCredentials struct {
	APIKey    string `json:"apiKey"`
	APISecret string `json:"apiSecret"`
	// ConsolePassword is the console's local admin password (bcrypt-hashed
	// in the Raft log; kept here in clear so dev can print it).
	ConsolePassword string `json:"consolePassword,omitempty"`
}

func derive(key []byte, label string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return hex.EncodeToString(m.Sum(nil))
}

func loadOrCreateDevCredentials(dir, key, secret string) (devCredentials, error) {
	path := filepath.Join(dir, "credentials.json")
	var c devCredentials
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &c); err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, err
	}
	if key != "" {
		c.APIKey = key
	}
	if secret != "" {
		c.APISecret = secret
	}
	if c.APIKey == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return c, err
		}
		h := hex.EncodeToString(b[:])
		c.APIKey = h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32]
	}
	if c.APISecret == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return c, err
		}
		c.APISecret = hex.EncodeToString(b[:])
	}
	if c.ConsolePassword == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return c, err
		}
		c.ConsolePassword = hex.EncodeToString(b[:])
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	return c, os.WriteFile(path, append(b, '\n'), 0o600)
}

func runDev(args []string) error {
	fs := newFlagSet("dev", "Run everything in one process: a one-node Raft control plane and one edge\n(SFU, TURN, signaling) in region \"local\", data in ./meridian-data. No external services.")
	var f controlFlags
	f.register(fs, true)
	apiKey := fs.String("api-key", "", "API key to create (default: generated on first start and kept in <data>/credentials.json)")
	apiSecret := fs.String("api-secret", "", "API secret for --api-key (default: generated)")
	var ef edgeFlags
	ef.register(fs, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	logger, err := newLogger(f.logLevel)
	if err != nil {
		return err
	}
	if err := f.lockData(); err != nil {
		return err
	}
	defer f.dataLock.Close()
	creds, err := loadOrCreateDevCredentials(f.dataDir, *apiKey, *apiSecret)
	if err != nil {
		return err
	}
	f.bootstrap = true
	cfg, err := f.serverConfig(logger)
	if err != nil {
		return err
	}
	cfg.Cluster.Bootstrap = true
	// One node: elections can be quick.
	cfg.Cluster.HeartbeatTimeout, cfg.Cluster.ElectionTimeout, cfg.Cluster.LeaderLease = 300*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	cfg.BootstrapKeys = []auth.NewKeySpec{{Key: creds.APIKey, Secret: creds.APISecret, Name: "dev"}}
	if err := f.addControlPlugins(&cfg, true); err != nil {
		return err
	}
	var edge *edgenode.Node
	cfg.Plugins = append(cfg.Plugins, devEdgePlugin(&ef, f.edgeToken, logger, &edge), webPlugin(f.frameAncestors))
	if f.console.adminPassword == "" {
		f.console.adminPassword = creds.ConsolePassword
	}
	if err := addConsole(&cfg, &f.console); err != nil {
		return err
	}
	srv, err := server.New(cfg)
	if err != nil {
		if edge != nil {
			edge.Close()
		}
		return err
	}
	srv.Start()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A restart applies the log written since the newest snapshot before it
	// is ready: wait as long as that makes progress (a large store takes
	// minutes), saying where it is.
	err = srv.WaitReadyProgressing(ctx, 5*time.Minute, func(applied, target uint64) {
		logger.Info("starting: applying the Raft log", "applied", applied, "of", target)
	})
	if err != nil {
		srv.Close()
		return err
	}
	if _, err := srv.Secrets(); errors.Is(err, auth.ErrUnseal) {
		srv.Close()
		return fmt.Errorf("--cluster-key is not the key %s was created with (it is kept in %s): %w",
			f.dataDir, filepath.Join(f.dataDir, "cluster.key"), err)
	}
	if err := edge.Start(); err != nil {
		edge.Close()
		srv.Close()
		return fmt.Errorf("start edge: %w", err)
	}
	select {
	case <-edge.Registered():
	case <-time.After(15 * time.Second):
		edge.Close()
		srv.Close()
		return errors.New("the in-process edge did not register with the control plane")
	}
	adminToken := cfg.API.AdminToken
	consoleLine := "disabled (--console-disabled)"
	if !f.console.disabled {
		consoleLine = fmt.Sprintf("%s/console/   (user %s, password %s)", srv.URL(), f.console.adminUser, f.console.adminPassword)
	}
	fmt.Printf(`
Meridian dev is running.

  API          %[1]s/v2          (VideoSDK v2 compatible)
  Health       %[1]s/healthz
  Meeting page %[1]s/meet/<roomId>?token=<JWT>
  API key      %[2]s
  API secret   %[3]s
  Admin token  %[4]s
  Console      %[6]s
  Data         %[5]s

Try:
  TOKEN=$(meridian token --api-key %[2]s --api-secret %[3]s)
  curl -s -X POST -H "Authorization: $TOKEN" %[1]s/v2/rooms

`, srv.URL(), creds.APIKey, creds.APISecret, adminToken, f.dataDir, consoleLine)
	select {
	case <-ctx.Done():
	case err := <-srv.ServeErr():
		if err != nil {
			logger.Error("http server failed", "err", err)
		}
	}
	logger.Info("shutting down")
	// The edge goes first so its final leave reports reach the control plane.
	return errors.Join(edge.Close(), srv.Close())
}
