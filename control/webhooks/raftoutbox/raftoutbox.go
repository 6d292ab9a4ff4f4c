// Package raftoutbox connects the webhook dispatcher to the replicated
// outbox: it reads pending deliveries from the local FSM (on the leader, so
// they are current after the leadership barrier), records attempt outcomes as
// Raft commands, and unseals per-key signing secrets.
package raftoutbox

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/meridian-video/meridian/control/api"
	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/control/cluster"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/control/webhooks"
)

// Outbox implements webhooks.Outbox over the replicated state.
type Outbox struct {
	node   *cluster.Node
	region string
}

// Pending implements webhooks.Outbox; the cursor is a position in the
// append-only outbox log.
func (o *Outbox) Pending(cursor string, limit int) ([]webhooks.Delivery, string, error) {
	from := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("raftoutbox: bad cursor %q", cursor)
		}
		from = n
	}
	var page []*state.Delivery
	var next int
	o.node.FSM().Read(func(s *state.Store) { page, next = s.PendingPage(from, limit) })
	out := make([]webhooks.Delivery, len(page))
	for i, d := range page {
		out[i] = webhooks.Delivery{ID: d.ID, EventType: d.EventType, RoomID: d.RoomID, URL: d.URL, Body: d.Body, SecretRef: d.APIKey,
			Attempts: d.Attempts, NextAttempt: d.NextAttempt, CreatedAt: d.CreatedAt}
		if d.Redelivered != nil {
			out[i].RedeliveredAt = *d.Redelivered
		}
	}
	nextCursor := ""
	if next > 0 {
		nextCursor = strconv.Itoa(next)
	}
	return out, nextCursor, nil
}

// Record implements webhooks.Outbox: the outcome is replicated before the
// dispatcher moves on, so a new leader resumes from it.
func (o *Outbox) Record(ctx context.Context, r webhooks.AttemptResult) error {
	cmd := state.RecordDelivery{ID: r.ID, Status: string(r.Status), Attempts: r.Attempts, NextAttempt: r.NextAttempt, AttemptedAt: r.AttemptedAt,
		LastStatus: r.LastStatusCode, LastError: r.LastError, LatencyMs: r.LatencyMs, EndpointGone: r.EndpointGone,
		SentFrom: o.node.ID(), SentFromRegion: o.region}
	if !r.DoneAt.IsZero() {
		done := r.DoneAt
		cmd.DoneAt = &done
	}
	_, _, err := o.node.Apply(ctx, state.CmdRecordDelivery, cmd)
	return err
}

// Announce implements webhooks.Announcer: before this node's first attempt
// at one of a session's deliveries, it lists the node among the session's
// webhook origins (the audit), so an attempt cut off by the node's death,
// whose outcome is never recorded, still shows where the payload may have
// left from. Further attempts from the node need no write.
func (o *Outbox) Announce(ctx context.Context, d webhooks.Delivery, at time.Time) error {
	node := o.node.ID()
	var need bool
	o.node.FSM().Read(func(s *state.Store) { need = s.WebhookStartNeeded(d.ID, node) })
	if !need {
		return nil
	}
	_, _, err := o.node.Apply(ctx, state.CmdRecordDelivery, state.RecordDelivery{ID: d.ID, Starting: true, Attempts: d.Attempts,
		AttemptedAt: at, SentFrom: node, SentFromRegion: o.region})
	return err
}

// keySecrets implements webhooks.Secrets by unsealing a key's whsec_ secret.
type keySecrets struct {
	node   *cluster.Node
	sealer *auth.Sealer
}

func (k keySecrets) WebhookSecret(ref string) (string, error) {
	var key *state.APIKey
	k.node.FSM().Read(func(s *state.Store) { key, _ = s.APIKey(ref) })
	if key == nil || key.RevokedAt != nil {
		return "", fmt.Errorf("%w: api key %q", webhooks.ErrUnknownSecret, ref)
	}
	b, err := k.sealer.Open(key.WebhookSecretEnc)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Plugin runs the dispatcher as a leader loop on a control node and makes the
// API validate webhook URLs with the dispatcher's policy.
func Plugin(cfg webhooks.Config) server.Plugin {
	return func(s *server.Server) ([]api.Option, []cluster.LeaderLoop, error) {
		if cfg.Logger == nil {
			cfg.Logger = s.Logger()
		}
		if cfg.Registerer == nil {
			cfg.Registerer = s.Registry()
		}
		if cfg.Now == nil {
			cfg.Now = s.Config().Now
		}
		if err := cfg.Validate(); err != nil {
			return nil, nil, err
		}
		// The operator's endpoints (--webhook) obey the rules the API applies
		// to customers' (a URL no delivery can use, or with a password every
		// project's delivery log would show, is refused at startup).
		for _, g := range s.Config().GlobalWebhooks {
			if err := cfg.CheckNewURL(g.URL); err != nil {
				return nil, nil, fmt.Errorf("--webhook %s: %w", redactURL(g.URL), err)
			}
		}
		outbox := &Outbox{node: s.Node(), region: s.Config().Region}
		var (
			mu sync.Mutex
			d  *webhooks.Dispatcher
		)
		// The dispatcher needs the replicated RSA key, which exists only once
		// a first leader generated it: build it on first leadership, keep it.
		get := func() (*webhooks.Dispatcher, error) {
			mu.Lock()
			defer mu.Unlock()
			if d != nil {
				return d, nil
			}
			sec, err := s.Secrets()
			if err != nil {
				return nil, err
			}
			signer, err := webhooks.NewSigner(sec.WebhookRSA, keySecrets{node: s.Node(), sealer: s.Sealer()})
			if err != nil {
				return nil, err
			}
			d, err = webhooks.New(cfg, outbox, signer)
			return d, err
		}
		loop := cluster.LeaderLoop{Name: "webhook-dispatch", Run: func(ctx context.Context) error {
			disp, err := get()
			if err != nil {
				return err
			}
			// Wake the dispatcher whenever the outbox table changes, so a new
			// event does not wait for the next poll.
			go watchOutbox(ctx, s.Node(), disp)
			return disp.Run(ctx)
		}}
		check := cfg
		return []api.Option{api.WithWebhookURLCheck(check.CheckNewURL)}, []cluster.LeaderLoop{loop}, nil
	}
}

// redactURL hides a password in a URL shown in an error.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}

func watchOutbox(ctx context.Context, node *cluster.Node, d *webhooks.Dispatcher) {
	var last uint64
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var idx uint64
		node.FSM().Read(func(s *state.Store) { idx = s.TableIndex("outbox") })
		if idx != last {
			last = idx
			d.Notify()
		}
	}
}
