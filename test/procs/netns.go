package procs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// NetNS is a network namespace joined to the host by one veth pair:
// HostIP (on the host side) and NSIP (inside) share a /30. Processes
// started with its Prefix run inside: they reach the host at HostIP and
// are reached at NSIP. Loopback inside is the namespace's own.
type NetNS struct {
	Name   string
	HostIP string
	NSIP   string
	hostIf string
}

const nsPrefix = "mrdproc"

// NetNSAvailable says why namespaces cannot be used here (nil: they can):
// they need root (with CAP_SYS_ADMIN: it creates and deletes a probe
// namespace) and iproute2's `ip`.
func NetNSAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("network namespaces need iproute2 (`ip`)")
	}
	probe := fmt.Sprintf("%sprobe%d", nsPrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("cannot create a network namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	return nil
}

// NewNetNS creates a namespace and its veth pair, and deletes both at
// cleanup. Namespaces left behind by a killed test binary are removed
// first.
func NewNetNS(tb testing.TB) *NetNS {
	tb.Helper()
	if err := NetNSAvailable(); err != nil {
		tb.Fatal(err)
	}
	removeStaleNetNS()
	pid := os.Getpid()
	n := &NetNS{Name: fmt.Sprintf("%s%d", nsPrefix, pid), hostIf: fmt.Sprintf("mrdh%d", pid)}
	// A free /30 in 10.213.0.0/16.
	used := hostAddrs()
	for i := 0; i < 16384; i++ {
		k := (pid + i) % 16384
		host := fmt.Sprintf("10.213.%d.%d", k/64, (k%64)*4+1)
		if !used[host] {
			n.HostIP, n.NSIP = host, fmt.Sprintf("10.213.%d.%d", k/64, (k%64)*4+2)
			break
		}
	}
	if n.HostIP == "" {
		tb.Fatal("procs: no free /30 in 10.213.0.0/16")
	}
	nsIf := fmt.Sprintf("mrdn%d", pid)
	steps := [][]string{
		{"netns", "add", n.Name},
		{"link", "add", n.hostIf, "type", "veth", "peer", "name", nsIf, "netns", n.Name},
		{"addr", "add", n.HostIP + "/30", "dev", n.hostIf},
		{"link", "set", n.hostIf, "up"},
		{"-n", n.Name, "addr", "add", n.NSIP + "/30", "dev", nsIf},
		{"-n", n.Name, "link", "set", nsIf, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
	}
	tb.Cleanup(n.remove)
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			tb.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	// Media sockets inside stay IPv4: no IPv6 candidates that bypass HostIP.
	_ = exec.Command("ip", "netns", "exec", n.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1").Run()
	return n
}

// Prefix is the command prefix that runs a program inside the namespace
// (`ip netns exec` execs the program: the pid is the program's).
func (n *NetNS) Prefix() []string { return []string{"ip", "netns", "exec", n.Name} }

func (n *NetNS) remove() {
	_ = exec.Command("ip", "netns", "del", n.Name).Run()
	_ = exec.Command("ip", "link", "del", n.hostIf).Run() // gone with the namespace, normally
}

// removeStaleNetNS deletes namespaces of test binaries that no longer run.
func removeStaleNetNS() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(f[0], nsPrefix), "probe"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // still running
		}
		_ = exec.Command("ip", "netns", "del", f[0]).Run()
		_ = exec.Command("ip", "link", "del", fmt.Sprintf("mrdh%d", pid)).Run()
	}
}

func hostAddrs() map[string]bool {
	out := map[string]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			out[ipn.IP.String()] = true
		}
	}
	return out
}
