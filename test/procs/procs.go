// Package procs runs the meridian binary as real processes for tests: it
// builds ./cmd/meridian once per test binary, starts `meridian control` and
// `meridian edge` on free ports with their own temporary data directories,
// keeps each process's output in memory (the tail is printed when the test
// fails), and stops every process (and deletes its directories) in
// t.Cleanup, whatever happened.
//
// A process can be killed (SIGKILL), stopped (SIGTERM, then wait), paused
// (SIGSTOP) and resumed (SIGCONT). NetNS optionally gives processes a
// network namespace of their own (root only), so that an edge's wildcard
// media socket does not cover the host's addresses.
//
// Environment: MERIDIAN_BIN (use this binary), MERIDIAN_PROCS_VERBOSE=1
// (mirror all output to stderr), MERIDIAN_PROCS_LOGDIR (write each
// process's whole output there at the end), MERIDIAN_PROCS_LOG_LEVEL
// (--log-level of every process).
//
// Use it from tests only:
//
//	func TestMain(m *testing.M) { os.Exit(procs.Main(m)) } // removes the build
//	...
//	cl := procs.StartCluster(t, procs.ClusterOptions{Nodes: 3})
//	e := procs.StartEdge(t, procs.EdgeOptions{ID: "paris-1", Region: "eu-west", Controls: cl.URLs(), EdgeToken: cl.EdgeToken})
//	e.WaitHealthy(t, 20*time.Second)
//	e.Kill(t)
package procs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// Bin returns the meridian binary: $MERIDIAN_BIN when set (CI builds it
// first with `make build`), otherwise ./cmd/meridian built once per test
// binary into a temporary directory (Main removes it).
func Bin(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("MERIDIAN_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, err = os.MkdirTemp("", "meridian-procs-bin-"); err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(buildDir, "meridian")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/meridian")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/meridian: %v\n%s", err, b)
			return
		}
		buildPath = out
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

// Main runs the tests and removes the binary Bin built. Use it as
// os.Exit(procs.Main(m)) in TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	return code
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("procs: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Proc is one running child process.
type Proc struct {
	Name string // for logs, e.g. "control c1" or "edge paris-1"

	cmd     *exec.Cmd
	out     *LogBuffer
	started time.Time
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, set before done closes
	endedAt time.Time     // set before done closes

	mu       sync.Mutex
	expected bool // Kill or Stop asked for the exit
}

// Options adjust Start.
type Options struct {
	// Env is added to the parent's environment.
	Env []string
	// Prefix runs the binary through another command, e.g.
	// {"ip", "netns", "exec", "ns1"} (which execs, so the pid stays the same).
	Prefix []string
}

// Start starts bin with args. The process gets SIGKILL when the test ends
// (and if the test binary dies: Pdeathsig), and its output is printed
// (tail) when the test has failed.
func Start(tb testing.TB, name, bin string, args []string, o Options) *Proc {
	tb.Helper()
	argv := append(append(append([]string(nil), o.Prefix...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	out := NewLogBuffer(4 << 20)
	if os.Getenv("MERIDIAN_PROCS_VERBOSE") != "" {
		cmd.Stdout = io.MultiWriter(out, prefixWriter{name: name, w: os.Stderr})
	} else {
		cmd.Stdout = out
	}
	cmd.Stderr = cmd.Stdout
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, out: out, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.endedAt = time.Now()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.mu.Lock()
		p.expected = true
		p.mu.Unlock()
		_ = p.signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			tb.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.PID())
		}
		if tb.Failed() {
			tb.Logf("---- last lines of %s (pid %d) ----\n%s", name, p.PID(), p.Tail(60))
		}
		if dir := os.Getenv("MERIDIAN_PROCS_LOGDIR"); dir != "" {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log"), []byte(p.Log()), 0o644)
		}
	})
	return p
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// EndedAt is when the process exit was seen (zero while it runs).
func (p *Proc) EndedAt() time.Time {
	select {
	case <-p.done:
		return p.endedAt
	default:
		return time.Time{}
	}
}

// Unexpected reports an exit nobody asked for (a crash), or nil.
func (p *Proc) Unexpected() error {
	p.mu.Lock()
	exp := p.expected
	p.mu.Unlock()
	if done, err := p.Exited(); done && !exp {
		return fmt.Errorf("%s exited on its own: %v", p.Name, err)
	}
	return nil
}

func (p *Proc) signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL (kill -9) and waits for the exit.
func (p *Proc) Kill(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	p.expected = true
	p.mu.Unlock()
	_ = p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s did not die after SIGKILL", p.Name)
	}
}

// Term sends SIGTERM without waiting (watch Done and Exited).
func (p *Proc) Term() error {
	p.mu.Lock()
	p.expected = true
	p.mu.Unlock()
	return p.signal(syscall.SIGTERM)
}

// Stop sends SIGTERM and waits up to timeout for the exit; it returns how
// long the process took and its exit error (nil for status 0). It fails
// the test if the process is still running at the timeout (then kills it).
func (p *Proc) Stop(tb testing.TB, timeout time.Duration) (time.Duration, error) {
	tb.Helper()
	p.mu.Lock()
	p.expected = true
	p.mu.Unlock()
	start := time.Now()
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(timeout):
		_ = p.signal(syscall.SIGKILL)
		<-p.done
		tb.Fatalf("%s still running %v after SIGTERM (killed)", p.Name, timeout)
		return 0, nil
	}
}

// Pause sends SIGSTOP: the process keeps its sockets but answers nothing.
//
// It returns once every thread of the process is stopped: kill(2) only
// queues the signal, and a thread running on another CPU can still
// answer a request sent right after it (a paused edge answering /healthz
// in a CI run).
func (p *Proc) Pause(tb testing.TB) {
	tb.Helper()
	if err := p.signal(syscall.SIGSTOP); err != nil {
		tb.Fatalf("pause %s: %v", p.Name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !allThreadsStopped(p.PID()) {
		if time.Now().After(deadline) {
			tb.Fatalf("pause %s: threads still running 10 s after SIGSTOP", p.Name)
		}
		time.Sleep(time.Millisecond)
	}
}

// allThreadsStopped reports whether every thread of pid is in the
// stopped state ('T' in /proc/PID/task/TID/stat).
func allThreadsStopped(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses
		// and may itself contain ") ".
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

// Resume sends SIGCONT.
func (p *Proc) Resume(tb testing.TB) {
	tb.Helper()
	if err := p.signal(syscall.SIGCONT); err != nil {
		tb.Fatalf("resume %s: %v", p.Name, err)
	}
}

// Log returns everything the process wrote so far (the oldest part may
// have been dropped past 4 MiB).
func (p *Proc) Log() string { return p.out.String() }

// Tail returns the last n lines of the output.
func (p *Proc) Tail(n int) string {
	s := strings.TrimRight(p.out.String(), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogBuffer keeps the last max bytes written (roughly), safe for
// concurrent use: a process's output, or a logger's a test reads while
// goroutines write it.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

// NewLogBuffer returns a LogBuffer that keeps about max bytes.
func NewLogBuffer(max int) *LogBuffer { return &LogBuffer{max: max} }

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > b.max {
		keep := b.buf.Bytes()[b.buf.Len()-b.max/2:]
		if i := bytes.IndexByte(keep, '\n'); i >= 0 {
			keep = keep[i+1:]
		}
		rest := append([]byte("[... earlier output dropped ...]\n"), keep...)
		b.buf.Reset()
		b.buf.Write(rest)
	}
	return len(p), nil
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// prefixWriter mirrors output to w with a name prefix per write
// (MERIDIAN_PROCS_VERBOSE=1).
type prefixWriter struct {
	name string
	w    io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprintf(p.w, "[%s] %s", p.name, line)
		}
	}
	return len(b), nil
}
