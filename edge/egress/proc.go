package egress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one ffmpeg (or ffprobe) child process. Its inputs are pipes
// handed over as fds 3, 4, …; stderr is kept (the tail) to explain
// failures. The child gets SIGKILL if the edge dies (Pdeathsig), so a
// crashed edge leaves no encoder behind.
type proc struct {
	name   string
	role   string // for CPU accounting
	cmd    *exec.Cmd
	inputs []*os.File // parent's write ends, in fd order from 3
	stdout *os.File   // read end of stdout when procSpec.stdoutPipe
	stderr *tailBuffer
	done   chan struct{}
	err    error // valid after done
	usage  time.Duration
}

// procSpec describes a process to start.
type procSpec struct {
	name   string
	bin    string
	args   []string
	inputs int       // number of input pipes (fd 3, 4, …)
	stdout io.Writer // nil: discarded
	// stdoutPipe makes proc.stdout the read end of the child's stdout.
	stdoutPipe bool
	// bigPipes enlarges the input pipes (raw video frames).
	bigPipes bool
}

func startProc(s procSpec) (*proc, error) {
	cmd := exec.Command(s.bin, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	role := s.name
	if i := strings.IndexAny(role, "/"); i > 0 {
		role = role[:strings.LastIndex(role[:i], " ")]
	}
	p := &proc{name: s.name, role: role, cmd: cmd, stderr: &tailBuffer{max: 4096}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	cmd.Stdout = s.stdout
	var childEnds []*os.File
	closeAll := func() {
		for _, f := range childEnds {
			f.Close()
		}
		for _, f := range p.inputs {
			f.Close()
		}
	}
	for i := 0; i < s.inputs; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		if s.bigPipes {
			// 1 MiB instead of 64 KiB: fewer wake-ups per raw frame.
			_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
		}
		childEnds = append(childEnds, r)
		p.inputs = append(p.inputs, w)
	}
	cmd.ExtraFiles = childEnds
	var outW *os.File
	if s.stdoutPipe {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		_, _ = unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
		p.stdout, outW = r, w
		cmd.Stdout = w
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		if outW != nil {
			outW.Close()
			p.stdout.Close()
		}
		return nil, fmt.Errorf("egress: start %s: %w", s.name, err)
	}
	for _, f := range childEnds {
		f.Close()
	}
	if outW != nil {
		outW.Close()
	}
	go func() {
		err := cmd.Wait()
		if ps := cmd.ProcessState; ps != nil {
			p.usage = ps.UserTime() + ps.SystemTime()
		}
		if err != nil {
			if msg := p.stderr.complaint(); msg != "" {
				err = fmt.Errorf("%s: %s (%v)", s.name, msg, err)
			} else {
				err = fmt.Errorf("%s: %w", s.name, err)
			}
		}
		p.err = err
		close(p.done)
	}()
	return p, nil
}

// closeInputs ends the inputs: ffmpeg drains, finishes its outputs and exits.
func (p *proc) closeInputs() {
	for _, f := range p.inputs {
		f.Close()
	}
}

// wait waits up to d for the process to exit, then kills it.
func (p *proc) wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s: did not finish within %s", p.name, d)
	}
}

// kill stops the process at once and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// complaint returns the line of ffmpeg's output that says why it failed:
// the last one that ends in an operating system's error ("Could not write
// header for output file #0 (…): No space left on device"), else the last
// non-empty one. ffmpeg often ends with a line that names no cause
// ("Error initializing output stream 0:1 --"), after the one that does.
func (t *tailBuffer) complaint() string {
	lines := strings.Split(strings.TrimSpace(t.String()), "\n")
	last := ""
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if last == "" {
			last = l
		}
		if endsInOSError(l) {
			return l
		}
	}
	return last
}

// osErrors are the operating system's error texts, lower-cased, as
// ffmpeg prints them after a colon (strerror); built on first use, when a
// process has failed, not at every start.
var osErrors = sync.OnceValue(func() []string {
	var out []string
	for n := syscall.Errno(1); n < 256; n++ {
		if s := n.Error(); !strings.HasPrefix(s, "errno ") {
			out = append(out, ": "+strings.ToLower(s))
		}
	}
	return out
})

func endsInOSError(line string) bool {
	l := strings.ToLower(line)
	for _, e := range osErrors() {
		if strings.HasSuffix(l, e) {
			return true
		}
	}
	return false
}

// errPipeClosed reports writes to an input the process no longer reads.
func errPipeClosed(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe)
}
