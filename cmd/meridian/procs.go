package main

import (
	"os"
	"runtime"
)

// minServerProcs is the fewest Ps a server runs with. On one CPU (pinned,
// or a container limited to one core) Go picks GOMAXPROCS=1, and then every
// fsync of the Raft leader loop holds the only P until sysmon notices the
// blocking syscall: HTTP handlers, the FSM and the commit path all wait
// behind it, so creates stop batching (about one log write per create) and
// stall at ~2,100/s with the core a third idle. With two Ps another
// goroutine runs while one is in the kernel: ~3,650/s on the same core
// (docs/benchmarks.md, "Control plane").
const minServerProcs = 2

// serverProcs returns the GOMAXPROCS a server should use: the runtime's
// choice, raised to minServerProcs, unless the operator set GOMAXPROCS.
func serverProcs(current int, env string) int {
	if env != "" || current >= minServerProcs {
		return current
	}
	return minServerProcs
}

// raiseProcs applies serverProcs to this process (dev, control, edge).
func raiseProcs() {
	if n := serverProcs(runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")); n != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
	}
}
