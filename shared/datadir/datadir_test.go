package datadir_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meridian-video/meridian/shared/datadir"
)

// A second Acquire of a held directory fails at once naming the holder's
// pid and the lock file, even inside the same process; Close frees it.
func TestAcquireIsExclusiveUntilClosed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	l, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v %v, want created 0700", st, err)
	}
	_, err = datadir.Acquire(dir)
	want := fmt.Sprintf("data directory %s is in use by process %d (it holds %s)", dir, os.Getpid(), filepath.Join(dir, datadir.LockFile))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Acquire: %v, want %q", err, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Close: %v", err)
	}
	again.Close()
}

// Covers: the same directory under another spelling (a trailing "/.", a
// symlink) is covered, another directory is not.
func TestCovers(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "node")
	l, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	link := filepath.Join(root, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, same := range []string{dir, dir + "/.", link} {
		if !l.Covers(same) {
			t.Errorf("Covers(%s) = false, want true", same)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "other"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{root, filepath.Join(root, "other"), filepath.Join(root, "missing")} {
		if l.Covers(other) {
			t.Errorf("Covers(%s) = true, want false", other)
		}
	}
	var none *datadir.Lock
	if none.Covers(dir) {
		t.Error("a nil lock covers nothing")
	}
}

// The kernel drops the lock of a process that dies without closing it
// (kill -9): the next Acquire needs no cleanup.
func TestLockDiesWithItsProcess(t *testing.T) {
	if dir := os.Getenv("DATADIR_TEST_HOLD"); dir != "" {
		if _, err := datadir.Acquire(dir); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("held")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockDiesWithItsProcess$")
	cmd.Env = append(os.Environ(), "DATADIR_TEST_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "held") {
		t.Fatalf("holder: %q", buf[:n])
	}
	_, err = datadir.Acquire(dir)
	want := fmt.Sprintf("in use by process %d", cmd.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Acquire while another process holds it: %v, want %q", err, want)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	l, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	l.Close()
}
