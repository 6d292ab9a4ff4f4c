package webhooks_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/control/webhooks"
)

// memOutbox stands in for the Raft-backed store.
type memOutbox struct{}

func (memOutbox) Pending(cursor string, limit int) ([]webhooks.Delivery, string, error) {
	return nil, "", nil
}
func (memOutbox) Record(ctx context.Context, r webhooks.AttemptResult) error { return nil }

// Wiring in cmd/meridian: one Dispatcher per process, Run once per term.
func Example() {
	// Once per deployment (first leader): generate, seal and replicate.
	key, err := webhooks.GenerateRSAKey()
	if err != nil {
		panic(err)
	}
	pubPEM, _ := webhooks.EncodePublicKeyPEM(&key.PublicKey) // served at /v2/public/rsa-public-key
	sealedDER, _ := webhooks.MarshalPrivateKey(key)          // seal, then store in ClusterSecrets
	_ = sealedDER

	// Per API key: a Standard Webhooks secret, shown at GET /webhooks/signing-secret.
	secret, _ := webhooks.GenerateSecret(nil)

	signer, err := webhooks.NewSigner(key, webhooks.StaticSecrets{"api-key-1": secret})
	if err != nil {
		panic(err)
	}
	cfg := webhooks.DefaultConfig()
	cfg.Logger = slog.Default()
	cfg.Registerer = prometheus.NewRegistry()
	cfg.SourceAddrs = []netip.Addr{netip.MustParseAddr("192.0.2.10")} // from the operator's config
	d, err := webhooks.New(cfg, memOutbox{}, signer)
	if err != nil {
		panic(err)
	}
	defer d.Close()

	// API: validate a room's webhook.endPoint before proposing it.
	fmt.Println(d.CheckURL("http://hooks.example.com/x") != nil)

	// Events: render the body on the leader before proposing the enqueue.
	body, _ := webhooks.Envelope(webhooks.EventRecordingStarted, webhooks.Meeting{MeetingID: "abcd-efgh-ijkl", SessionID: "s1"})
	fmt.Println(string(body))

	// Leadership: go d.Run(termCtx) after the barrier; cancel termCtx and
	// wait for Run to return on loss; d.Notify() after each committed enqueue.
	fmt.Println(pubPEM[:26])
	// Output:
	// true
	// {"webhookType":"recording-started","data":{"meetingId":"abcd-efgh-ijkl","sessionId":"s1"}}
	// -----BEGIN PUBLIC KEY-----
}
