package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataDirLock holds a node's exclusive lock on its data directory.
type dataDirLock struct{ f *os.File }

// lockDataDir takes an exclusive lock on dir, through a LOCK file in it
// that names the holder's pid, so that a second process given the same data
// directory fails at once saying so. Without it the second process would
// wait without a word: raft-wal opens its metadata database (bolt) with no
// timeout, and bolt waits for its own file lock for ever. The lock is
// flock(2), so the kernel drops it when the holder dies (kill -9 included)
// and a restart needs no cleanup; the file itself is never removed (removing
// it would let two processes lock two different files).
func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf("process %d", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("cluster: data directory %s is in use by %s (it holds %s): stop it, or give this node a data directory of its own", dir, holder, path)
		}
		return nil, fmt.Errorf("cluster: locking %s: %w", path, err)
	}
	// The pid is for the message above; a stale one (from a process that
	// has exited) is harmless, since only the lock decides.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDirLock{f: f}, nil
}

// Close releases the lock.
func (l *dataDirLock) Close() error { return l.f.Close() }
