package egress

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/edge/sfu"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/storage"
	"github.com/meridian-video/meridian/shared/wait"
)

// Test media (egresstest.Generate names them), generated once per test
// binary.
var (
	mediaOnce sync.Once
	mediaDir  string
	mediaErr  error
)

func mediaFile(t testing.TB, name string) string {
	t.Helper()
	egresstest.NeedFFmpeg(t)
	mediaOnce.Do(func() {
		mediaDir, mediaErr = os.MkdirTemp("", "egress-media-")
	})
	if mediaErr != nil {
		t.Fatal(mediaErr)
	}
	p := filepath.Join(mediaDir, name)
	if _, err := os.Stat(p); err != nil {
		egresstest.Generate(t, p)
	}
	return p
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mediaDir != "" {
		os.RemoveAll(mediaDir)
	}
	os.Exit(code)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startSFU(t testing.TB) *sfu.SFU {
	t.Helper()
	c := sfu.DefaultConfig()
	c.IncludeLoopbackCandidate = true
	c.DisableMDNS = true
	c.Logger = quietLogger()
	s, err := sfu.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// statusLog records what OnStatus reports.
type statusLog struct {
	mu  sync.Mutex
	evs []egressapi.Status
}

func (l *statusLog) add(s egressapi.Status) {
	l.mu.Lock()
	l.evs = append(l.evs, s)
	l.mu.Unlock()
}

func (l *statusLog) states(id string) []egressapi.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []egressapi.State
	for _, s := range l.evs {
		if s.ID == id && (len(out) == 0 || out[len(out)-1] != s.State) {
			out = append(out, s.State)
		}
	}
	return out
}

func (l *statusLog) find(id string, pred func(egressapi.Status) bool) (egressapi.Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.evs {
		if s.ID == id && pred(s) {
			return s, true
		}
	}
	return egressapi.Status{}, false
}

type testRunner struct {
	*Runner
	local *storage.Local
	log   *statusLog
}

func newRunner(t testing.TB, s *sfu.SFU, mod func(*Config)) *testRunner {
	t.Helper()
	egresstest.NeedFFmpeg(t)
	local, err := storage.NewLocal(storage.LocalConfig{Region: "local", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	log := &statusLog{}
	cfg := DefaultConfig()
	cfg.Media = FromSFU(s)
	cfg.Storage = []storage.Target{local}
	cfg.WorkDir = t.TempDir()
	cfg.Logger = quietLogger()
	cfg.OnStatus = log.add
	cfg.StopTimeout = 30 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &testRunner{Runner: r, local: local, log: log}
}

// waitEnd waits for a job to end; a job that never ends fails the test
// (the bound is generous: it catches hangs, it does not measure speed).
func (tr *testRunner) waitEnd(t testing.TB, id string) egressapi.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := tr.Wait(ctx, id)
	if err != nil {
		t.Fatalf("job %s did not end: %v (status %+v)", id, err, st)
	}
	return st
}

// stopAndWait stops a job and waits for its final status.
func (tr *testRunner) stopAndWait(t testing.TB, id string) egressapi.Status {
	t.Helper()
	if _, err := tr.Stop(id); err != nil {
		t.Fatalf("stop %s: %v", id, err)
	}
	return tr.waitEnd(t, id)
}

// publish joins room as id and publishes; it returns once the SFU has the
// tracks. Audio carries the RFC 6464 level (silent unless o.Level says
// otherwise): the composite's speaker layout reads it.
func publish(t testing.TB, s *sfu.SFU, room, id string, o egresstest.Options) *egresstest.Publisher {
	t.Helper()
	o.AudioLevel = true
	return egresstest.PublishWith(t, s, room, id, o)
}

// waitFor polls cond (a state, never a speed: the bound only catches hangs).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wait.Until(t, 30*time.Second, func() string {
		if cond() {
			return ""
		}
		return "waiting for " + what
	})
}

// streamSpan reads a stream's packets (typ "v" or "a") and returns the
// time from its first to its last packet: works for containers that do
// not state stream durations (WebM).
func streamSpan(t testing.TB, file, typ string) float64 {
	t.Helper()
	first, last := streamTimes(t, file, typ)
	return last - first
}

// streamTimes returns the times of a stream's first and last packet (0, 0
// without packets).
func streamTimes(t testing.TB, file, typ string) (first, last float64) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", typ+":0", "-show_entries", "packet=pts_time",
		"-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v", file, err)
	}
	n := 0
	for _, l := range bytes.Fields(out) {
		v, err := strconv.ParseFloat(strings.TrimRight(string(l), ","), 64)
		if err != nil {
			continue
		}
		if n == 0 || v < first {
			first = v
		}
		last = max(last, v)
		n++
	}
	return first, last
}

// near reports |a-b| <= tol.
func near(a, b, tol float64) bool { return a-b <= tol && b-a <= tol }

func storedPath(t testing.TB, l *storage.Local, key string) string {
	t.Helper()
	p, err := l.Path(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("stored file %s: %v", key, err)
	}
	if keep := os.Getenv("EGRESS_TEST_KEEP"); keep != "" {
		// Debugging aid: keep a copy of every output to look at.
		if b, err := os.ReadFile(p); err == nil {
			_ = os.WriteFile(filepath.Join(keep, t.Name()+"-"+filepath.Base(p)), b, 0o644)
		}
	}
	return p
}
