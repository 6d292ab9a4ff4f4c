// Package webhooks turns the replicated webhook outbox into signed HTTP
// deliveries.
//
// The package has four parts, each usable on its own:
//
//   - Payloads: [Envelope] and the typed data structs of the VideoSDK event
//     catalogue serialise an event to the exact compact bytes that are stored
//     in the outbox and signed. The bytes equal what JavaScript's
//     JSON.stringify(JSON.parse(body)) produces, so receivers that verify a
//     re-serialised body still match.
//   - Subscriptions: [Match] implements the `events` pattern list.
//   - Signing: [Signer] adds the Standard Webhooks headers (webhook-id,
//     webhook-timestamp, webhook-signature) and the VideoSDK-compatible
//     videosdk-signature (RSA PKCS#1 v1.5, SHA-256, over the body bytes).
//   - Delivery: [Dispatcher] is a leader-only loop that reads pending
//     deliveries from an [Outbox], sends them with an SSRF-guarded HTTP
//     client, and writes each attempt's outcome back through the Outbox so a
//     new leader resumes from replicated state.
//
// The package does not import control/state: the Raft-backed store implements
// [Outbox] and [Secrets].
package webhooks
