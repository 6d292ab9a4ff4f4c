// Package multiregion runs a whole Meridian deployment as separate
// processes and checks a meeting across two regions through failures.
//
// TestMultiRegion starts three `meridian control` nodes bootstrapped
// together and four `meridian edge` processes: paris-1 and paris-2
// (eu-west), montreal-1 and montreal-2 (ca-east). Participants are pion
// clients (signaltest.Session) joining through the join API with a region
// hint. Subtests, in order: media (everyone hears everyone, the cascade
// crosses the WAN relay; join to media per pair of clients on two edges,
// joinmedia_test.go), latency (one-way media latency with and without
// the simulated WAN delay), edge-kill (kill -9 of the eu-west edge in use),
// leader-kill (kill -9 of the Raft leader), partition (one ca-east edge
// loses the control plane only) and drain (SIGTERM of the ca-east edge in
// use). Each logs what it measured.
//
// The WAN: edges run in a network namespace (procs.NetNS) and advertise
// the host side of its veth (--nat-ip) in their ICE candidates. A UDP
// relay in the test (relay_test.go) listens there on every media port and
// forwards to the edge through one upstream socket per remote source, so
// every media packet to or from an edge crosses it; packets between edges
// of different regions wait oneWay (40 ms) each way. The namespace is
// needed because an edge's media sockets bind the wildcard address: in the
// host's namespace they would receive packets sent to any local address,
// bypassing any relay. So the test needs root and iproute2; without them it
// skips, unless MERIDIAN_REQUIRE_NETNS=1 (then it fails).
//
// Edges run as in production with one media port for clients
// (--udp-port) and a small port range for their cascade legs
// (--relay-port-min/max, since 75d916b: two legs between the same two edges
// on the one mux socket shared a 5-tuple and one never connected); the
// relay fronts all of them.
//
// Debugging: MERIDIAN_PROCS_LOGDIR=dir keeps every process's output,
// MERIDIAN_PROCS_LOG_LEVEL=debug raises their log level, MERIDIAN_BIN
// uses a prebuilt binary (see package procs).
package multiregion
