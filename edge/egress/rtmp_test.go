package egress

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/egress/egresstest"
	"github.com/meridian-video/meridian/shared/egressapi"
	"github.com/meridian-video/meridian/shared/porttest"
	"github.com/meridian-video/meridian/shared/testneed"
)

// nginxRTMP is a real RTMP server (Debian nginx + libnginx-mod-rtmp) on a
// loopback port, recording every stream it receives to <dir>/<key>.flv.
type nginxRTMP struct {
	port int
	dir  string
}

func rtmpModule() string {
	for _, p := range []string{"/usr/lib/nginx/modules/ngx_rtmp_module.so", "/usr/lib64/nginx/modules/ngx_rtmp_module.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if out, err := exec.Command("dpkg", "-L", "libnginx-mod-rtmp").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasSuffix(l, "ngx_rtmp_module.so") {
				return l
			}
		}
	}
	return ""
}

// needRTMP skips without nginx and its RTMP module, or fails when
// MERIDIAN_REQUIRE_RTMP=1 (CI).
func needRTMP(t *testing.T) string {
	t.Helper()
	msg := ""
	if _, err := exec.LookPath("nginx"); err != nil {
		msg = "nginx not found"
	}
	mod := rtmpModule()
	if msg == "" && mod == "" {
		msg = "libnginx-mod-rtmp not found"
	}
	if msg != "" {
		testneed.Missing(t, "RTMP", msg)
	}
	return mod
}

func startNginxRTMP(t *testing.T) *nginxRTMP {
	t.Helper()
	mod := needRTMP(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "rec")
	if err := os.MkdirAll(rec, 0o777); err != nil {
		t.Fatal(err)
	}
	n := &nginxRTMP{port: porttest.Port(t), dir: rec}
	conf := fmt.Sprintf(`load_module %s;
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log info;
events { worker_connections 64; }
rtmp {
  server {
    listen 127.0.0.1:%d;
    chunk_size 4096;
    application live {
      live on;
      record all;
      record_path %s;
      record_unique off;
    }
  }
}
`, mod, dir, dir, n.port, rec)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nginx", "-p", dir, "-e", filepath.Join(dir, "startup.log"), "-c", cf)
	out := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitFor(t, "nginx-rtmp listening", func() bool {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s %s", out, log)
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return n
}

func (n *nginxRTMP) url() string { return fmt.Sprintf("rtmp://127.0.0.1:%d/live", n.port) }

// Two destinations receive the composed stream at once; a third,
// unreachable one fails on its own without disturbing them.
func TestRTMPToNginx(t *testing.T) {
	srv := startNginxRTMP(t)
	s := startSFU(t)
	tr := newRunner(t, s, nil)
	publish(t, s, "room-r", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
	dead := porttest.Port(t)
	begin := time.Now()
	st, err := tr.Start(egressapi.Spec{ID: "live-1", Kind: egressapi.KindRTMP, RoomID: "room-r", Outputs: []egressapi.RTMPOutput{
		{URL: srv.url(), StreamKey: "one"},
		{URL: srv.url(), StreamKey: "two"},
		{URL: fmt.Sprintf("rtmp://127.0.0.1:%d/live", dead), StreamKey: "three"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Outputs) != 3 {
		t.Fatalf("outputs %+v", st.Outputs)
	}
	waitFor(t, "the unreachable destination to fail", func() bool {
		st, _ := tr.Status("live-1")
		return st.Outputs[2].State == egressapi.StateFailed
	})
	time.Sleep(time.Until(begin.Add(4 * time.Second)))
	elapsed := time.Since(begin).Seconds()
	st = tr.stopAndWait(t, "live-1")
	if st.State != egressapi.StateStopped {
		t.Fatalf("status %+v", st)
	}
	for i, o := range st.Outputs[:2] {
		if o.State != egressapi.StateStopped || o.Error != "" {
			t.Fatalf("output %d: %+v", i, o)
		}
	}
	if o := st.Outputs[2]; o.State != egressapi.StateFailed || !strings.Contains(o.Error, "refused") {
		t.Fatalf("unreachable output: %+v, want failed with the connection refused", o)
	}
	for _, key := range []string{"one", "two"} {
		f := filepath.Join(srv.dir, key+".flv")
		waitFor(t, "nginx to finish "+f, func() bool {
			fi, err := os.Stat(f)
			return err == nil && fi.Size() > 0
		})
		time.Sleep(300 * time.Millisecond) // nginx closes the file when the publisher has left
		p := egresstest.FFprobe(t, f)
		if c := p.Codecs(); c["video"] != "h264" || c["audio"] != "aac" {
			t.Fatalf("%s: codecs %v, want h264 + aac", key, c)
		}
		if w, h := p.VideoSize(); w != 1280 || h != 720 {
			t.Fatalf("%s: %dx%d", key, w, h)
		}
		if d := p.Duration(); !near(d, elapsed, 1) {
			t.Fatalf("%s: nginx received %.2f s, want %.2f ± 1 s", key, d, elapsed)
		}
	}
}

// A job whose only destination cannot be reached ends failed with the
// reason, by itself: refused connections at once, a server that accepts
// and never speaks RTMP after the stall timeout.
func TestRTMPUnreachableFails(t *testing.T) {
	egresstest.NeedFFmpeg(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	for _, tc := range []struct {
		name, url, reason string
	}{
		{"refused", fmt.Sprintf("rtmp://127.0.0.1:%d/live", porttest.Port(t)), "refused"},
		// ffmpeg's own I/O timeout (set to the stall timeout) or the
		// relay monitor, whichever notices first.
		{"silent", fmt.Sprintf("rtmp://%s/live", silent.Addr()), "timed out|no progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSFU(t)
			tr := newRunner(t, s, func(c *Config) { c.RTMPStallTimeout = 2 * time.Second })
			publish(t, s, "room-u", "alice", egresstest.Options{Video: mediaFile(t, "pattern.ivf"), Audio: mediaFile(t, "440.ogg")})
			if _, err := tr.Start(egressapi.Spec{ID: "live-u", Kind: egressapi.KindRTMP, RoomID: "room-u",
				Outputs: []egressapi.RTMPOutput{{URL: tc.url, StreamKey: "k"}}}); err != nil {
				t.Fatal(err)
			}
			st := tr.waitEnd(t, "live-u") // nobody calls Stop: the job must end by itself
			reason := regexp.MustCompile(tc.reason)
			if st.State != egressapi.StateFailed || !reason.MatchString(st.Error) {
				t.Fatalf("status %+v, want failed with %q", st, tc.reason)
			}
			if o := st.Outputs[0]; o.State != egressapi.StateFailed || !reason.MatchString(o.Error) {
				t.Fatalf("output %+v", o)
			}
			if strings.Contains(st.Error, "/k") || strings.Contains(st.Outputs[0].Error, "/k") {
				t.Fatalf("the error leaks the stream key: %q", st.Error)
			}
			// Statuses reach OnStatus from the runner's queue, so the last
			// report may follow Wait's return by a moment.
			waitFor(t, "the failed status reported", func() bool {
				_, ok := tr.log.find("live-u", func(s egressapi.Status) bool { return s.State == egressapi.StateFailed })
				return ok
			})
		})
	}
}
