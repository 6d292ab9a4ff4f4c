// Package chaos runs the control plane as real processes (three `meridian
// control` nodes, and `meridian edge` processes where a scenario needs
// them) and breaks them while concurrent clients use the API, then checks
// what the clients saw.
//
// TestChaosRooms: 8 clients send a mix of room operations to all three
// nodes (create with a customRoomId, consistent get and list lookups,
// local gets, deactivate, re-enable, creates carrying an Idempotency-Key
// retried after errors) while the leader and a follower are killed with
// SIGKILL and restarted on the same data directory (the leader is killed
// with writes it appended but could not commit, so it comes back with a log
// tail the new leader truncates; the follower killed next is that node),
// paused with SIGSTOP
// and resumed (writes about a room created meanwhile wait in the paused
// node's socket), and cut off from the other nodes. Every request and
// answer is recorded with its start and end time; the history is checked
// with porcupine against a per-customRoomId register model (absent →
// active(roomId) ↔ deactivated(roomId)); 503s, timeouts and connection
// errors are writes of unknown outcome (they may take effect at any time
// after they were sent). After the faults every node must list every
// acknowledged room with its acknowledged roomId, no customRoomId or
// Idempotency-Key may map to two rooms, and all nodes must list the same
// rooms. Recovery times (fault → first acknowledged write through each
// node) and the error mix are logged. Through the same faults, 3 more
// clients start sessions (an edge's participant-joined report), end them
// (POST /v2/sessions/end) and read them (GET
// /v2/sessions?status=ongoing&consistent=true) in rooms of their own, 4 at
// a time, a new one every 5 s replacing the oldest; that history is
// checked per room against a session model (no session ↔
// ongoing(sessionId), an ended session never ongoing again).
//
// TestChaosWebhooks: rooms with a webhook endpoint served by the test; an
// edge reporter (the test plays an edge: POST /internal/v1/edges/events
// with the edge token, retrying each batch until it is acknowledged, as
// edges do) makes participants join and leave, which enqueues
// session-started, participant-joined, participant-left and session-ended
// events, while the leader is killed (SIGKILL) or paused (SIGSTOP) over and
// over. Every event must arrive at least once with valid Standard Webhooks
// and videosdk-signature signatures, identical bytes on every attempt, in
// enqueue order per room (no event is sent before all earlier events of
// its room were acknowledged), exactly the events the reports imply, and
// the delivery log must show each as delivered.
//
// TestChaosEdgeKilled: three edges, pion participants (signaltest.Session)
// in two rooms with webhooks; the edge carrying them is killed with
// SIGKILL, then the edge they moved to is paused with SIGSTOP. Participants
// must come back on another edge, the control plane must keep them in
// their sessions (no participant-left for a move within its rejoin grace), those that then leave cleanly must leave their sessions
// at once, and the webhooks must form a valid lifecycle per room,
// signed, in order, each delivered.
//
// Raft partitions: each node names every peer at a TCP proxy of its own
// (one per ordered pair of nodes, --peers), and other nodes forward writes
// to a node through an HTTP proxy (--http-advertise) that knows the sender
// (X-Meridian-Forwarded), so cutting a node's proxies isolates it from the
// other nodes in both directions while clients still reach it. No root or
// namespaces are needed.
//
// Short (default: `go test ./...`, so `make test` and CI; the three
// tests run in parallel, about a minute on two cores) or long
// (MERIDIAN_CHAOS_LONG=1, `make chaos`: ten minutes of faults and 10,000
// webhook events with the leader faulted every 30 s).
//
// Every check fails the test (docs/chaos.md lists the server bugs it found
// and their fixes).
// MERIDIAN_CHAOS_OUT=dir keeps porcupine visualisations of failed checks
// there (default: a new temporary directory, named in the failure).
// MERIDIAN_CHAOS_BREAK=<what> sabotages one check on purpose to show that
// it can fail (see sabotage in chaos_test.go). Process logs: see package
// procs (MERIDIAN_PROCS_LOGDIR, MERIDIAN_PROCS_LOG_LEVEL, MERIDIAN_BIN).
package chaos
