// Package datadir gives a process exclusive use of its data directory.
//
// A node's data directory holds state that two processes must never share:
// a control node's Raft log, snapshots and the secrets generated on its
// first start (credentials.json, cluster.key, admin.token), an edge's egress
// work files. The process takes the lock before it reads or writes anything
// in the directory, so that a second process given the same directory
// stops at once, saying which process holds it, instead of racing the
// first one's writes or waiting on a store's own file lock without a word
// (raft-wal opens its bolt metadata database with no timeout).
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock file inside a data directory.
const LockFile = "LOCK"

// Lock is a held lock on a data directory.
type Lock struct {
	dir string
	f   *os.File
}

// Acquire creates dir (0700) if needed and takes an exclusive lock on it,
// through a LOCK file in it that names the holder's pid. The lock is
// flock(2): the kernel drops it when the holder dies (kill -9 included), so
// a restart needs no cleanup, and it is held per open file, so a second
// Acquire fails even inside the same process. The file itself is never
// removed (removing it would let two processes lock two different files).
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
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
			return nil, fmt.Errorf("data directory %s is in use by %s (it holds %s): stop it, or give this node a data directory of its own", dir, holder, path)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// The pid is for the message above; a stale one (from a process that
	// has exited) is harmless, since only the lock decides.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{dir: dir, f: f}, nil
}

// Covers reports whether the lock is the one on dir (the same directory
// under any spelling of its path).
func (l *Lock) Covers(dir string) bool {
	if l == nil {
		return false
	}
	a, errA := os.Stat(l.dir)
	b, errB := os.Stat(dir)
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// Dir is the locked directory, as given to Acquire.
func (l *Lock) Dir() string { return l.dir }

// Close releases the lock.
func (l *Lock) Close() error { return l.f.Close() }
