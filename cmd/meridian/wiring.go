package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/meridian-video/meridian/control/server"
)

// webhookWiring connects the webhook dispatcher to a control node.
type webhookWiring struct {
	logger         *slog.Logger
	allowLocalHTTP bool
}

func newWebhookWiring(cfg server.Config, logger *slog.Logger) (*webhookWiring, error) {
	return &webhookWiring{logger: logger}, nil
}

func (w *webhookWiring) apply(cfg *server.Config) {}
func (w *webhookWiring) bind(srv *server.Server)  {}

// edgeWiring connects the edge registry and placement to a control node.
type edgeWiring struct{ logger *slog.Logger }

func newEdgeWiring(logger *slog.Logger) *edgeWiring { return &edgeWiring{logger: logger} }
func (e *edgeWiring) apply(cfg *server.Config)      {}
func (e *edgeWiring) bind(srv *server.Server)       {}

type edgeFlags struct{}

func (e *edgeFlags) register(fs *flag.FlagSet, dev bool) {}

func startDevEdge(ctx context.Context, ef edgeFlags, srv *server.Server, logger *slog.Logger) (io.Closer, error) {
	return nil, nil
}

func runEdge(args []string) error {
	return errNotYet("edge")
}
