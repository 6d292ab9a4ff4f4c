package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// writeBytes is write_bytes of /proc/PID/io: bytes the process caused to
// be sent to the storage layer (page cache writeback included, so it is
// what reaches the disk, not what write(2) was asked for).
func writeBytes(pid int) (int64, error) {
	return procField(fmt.Sprintf("/proc/%d/io", pid), "write_bytes:", 1)
}

// deviceOf names the block device that holds path, as the "major minor"
// of /proc/diskstats (a partition's own line when it is one).
func deviceOf(path string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %d", unix.Major(st.Dev), unix.Minor(st.Dev)), nil
}

// deviceWrites is the bytes written to a block device so far (sectors
// written in /proc/diskstats, 512 bytes each), by everything on the
// machine. Next to write_bytes it shows what reached the device: on some
// file systems the per-process counter charges far more than is ever
// written (fsyncs into preallocated WAL segments here).
func deviceWrites(dev string) (int64, error) {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0, err
	}
	return diskstatsWritten(string(b), dev)
}

// diskstatsWritten reads the sectors-written field of one device's line.
func diskstatsWritten(diskstats, dev string) (int64, error) {
	for _, line := range strings.Split(diskstats, "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[0]+" "+f[1] != dev {
			continue
		}
		sectors, err := strconv.ParseInt(f[9], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/diskstats: %q: %w", line, err)
		}
		return sectors * 512, nil
	}
	return 0, fmt.Errorf("/proc/diskstats: no device %s", dev)
}

// wcharBytes is wchar of /proc/PID/io: bytes passed to write(2) and
// friends, to files and sockets alike.
func wcharBytes(pid int) (int64, error) {
	return procField(fmt.Sprintf("/proc/%d/io", pid), "wchar:", 1)
}

// rss is VmRSS of a process in bytes.
func rss(pid int) (int64, error) {
	return procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:", 1024)
}

func procField(path, name string, unit int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
			fs := strings.Fields(rest)
			if len(fs) == 0 {
				break
			}
			v, err := strconv.ParseInt(fs[0], 10, 64)
			return v * unit, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", path, name)
}

// dirBytes is the apparent size of every regular file under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

// Snapshot describes the newest Raft snapshot found on disk.
type Snapshot struct {
	Dir   string `json:"dir"`
	Index uint64 `json:"index"`
	Bytes int64  `json:"bytes"` // every file of the snapshot's directory
	// PersistSeconds: from the snapshot's creation (the millisecond stamp
	// in hashicorp/raft's FileSnapshotStore directory name, taken after the
	// FSM captured its state) to its meta.json being written. The capture
	// itself (FSM.Snapshot) is not included.
	PersistSeconds float64 `json:"persistSeconds,omitempty"`
}

// newestSnapshot looks for hashicorp/raft FileSnapshotStore snapshots
// (<anything>/snapshots/<term>-<index>-<unix ms>/meta.json) under dataDir
// and returns the one with the highest index. ok is false when there is
// none (a store that keeps snapshots elsewhere, or none taken yet).
func newestSnapshot(dataDir string) (Snapshot, bool) {
	var best Snapshot
	found := false
	_ = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "meta.json" || filepath.Base(filepath.Dir(filepath.Dir(path))) != "snapshots" ||
			strings.HasSuffix(filepath.Dir(path), ".tmp") { // still being written
			return nil
		}
		s, ok := readSnapshotMeta(path)
		if ok && (!found || s.Index > best.Index) {
			best, found = s, true
		}
		return nil
	})
	return best, found
}

func readSnapshotMeta(metaPath string) (Snapshot, bool) {
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return Snapshot{}, false
	}
	var meta struct {
		Index uint64
		Size  int64
	}
	if json.Unmarshal(b, &meta) != nil {
		return Snapshot{}, false
	}
	dir := filepath.Dir(metaPath)
	s := Snapshot{Dir: dir, Index: meta.Index, Bytes: dirBytes(dir)}
	if p, ok := snapshotCreated(filepath.Base(dir)); ok {
		if info, err := os.Stat(metaPath); err == nil {
			s.PersistSeconds = info.ModTime().Sub(p).Seconds()
		}
	}
	return s, true
}

// snapshotCreated parses FileSnapshotStore's directory name
// "<term>-<index>-<unix milliseconds>".
func snapshotCreated(name string) (time.Time, bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	msec, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || msec <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(msec), true
}
