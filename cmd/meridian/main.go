// Command meridian is Meridian's single binary: `dev` (everything in one
// process), `control` (a control-plane node), `edge` (a media edge), and CLI
// helpers (`token`, `keys`, `rooms`, `certs`).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const version = "0.1.0"

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "meridian:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		usage()
		return errors.New("missing command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev", "control", "edge":
		raiseProcs(cmd)
		tuneGC(cmd)
	}
	switch cmd {
	case "dev":
		return runDev(rest)
	case "control":
		return runControl(rest)
	case "edge":
		return runEdge(rest)
	case "token":
		return runToken(rest)
	case "keys":
		return runKeys(rest)
	case "rooms":
		return runRooms(rest)
	case "certs":
		return runCerts(rest)
	case "version", "--version":
		fmt.Println("meridian", version)
		return nil
	case "help", "-h", "--help":
		usage()
		return nil
	}
	usage()
	return fmt.Errorf("unknown command %q", cmd)
}

func usage() {
	fmt.Fprint(os.Stderr, `Meridian — a self-hosted video API.

usage: meridian <command> [flags]

  dev       run everything in one process (control plane + edge) on embedded defaults
  control   run a control-plane node (Raft + REST API)
  edge      run a media edge node (SFU, TURN, signaling)
  token     mint a VideoSDK-compatible JWT
  keys      manage API keys (create, list, revoke)
  rooms     call the rooms API (create, list, get)
  certs     make a cluster CA and node certificates for mutual TLS (ca, node)
  version   print the version

Run "meridian <command> -h" for the flags of a command.
`)
}
