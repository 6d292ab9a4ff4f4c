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
//
// An edge keeps the runtime's choice: nothing on its forward path blocks
// in the kernel for long (sendmmsg on UDP sockets), and a second P on one
// CPU only makes two threads take turns on it. The scheduler then hands
// goroutines between them (futex wake-ups on every RTCP packet), and the
// kernel's time slices delay a fan-out by milliseconds while the other
// thread runs. With one P per CPU a forwarded packet cost 15–24 % less CPU
// and the p99 forwarding delay at 100 subscribers fell from 2.9–3.2 ms to
// 1.8–1.9 ms (benchmarks/run.sh; docs/benchmarks.md, "One P for the edge").
const minServerProcs = 2

// serverProcs returns the GOMAXPROCS a server command should use: the
// runtime's choice (one P per CPU the process may use), raised to
// minServerProcs for the commands that run the control plane, unless the
// operator set GOMAXPROCS.
func serverProcs(cmd string, current int, env string) int {
	if env != "" || cmd == "edge" || current >= minServerProcs {
		return current
	}
	return minServerProcs
}

// raiseProcs applies serverProcs to this process (dev, control, edge).
func raiseProcs(cmd string) {
	if n := serverProcs(cmd, runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")); n != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
	}
}
