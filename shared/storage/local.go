package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LocalConfig configures a directory target.
type LocalConfig struct {
	Name   string // default "local"
	Region string // required: the region of the node holding the disk
	Dir    string // required; created if missing
}

// Local stores files under a directory of the node's disk. Files are
// served back by Handler with signed, expiring URLs (see url.go).
type Local struct {
	cfg LocalConfig
}

var _ Target = (*Local)(nil)

// NewLocal checks cfg and creates the directory.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Name == "" {
		cfg.Name = "local"
	}
	if cfg.Region == "" {
		return nil, errors.New("storage: local target needs a region")
	}
	if cfg.Dir == "" {
		return nil, errors.New("storage: local target needs a directory")
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = abs
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return &Local{cfg: cfg}, nil
}

func (l *Local) Name() string   { return l.cfg.Name }
func (l *Local) Region() string { return l.cfg.Region }

// Dir is the root directory.
func (l *Local) Dir() string { return l.cfg.Dir }

// Path maps a key to its file (after CleanKey, so it never leaves Dir).
func (l *Local) Path(key string) (string, error) {
	k, err := CleanKey(key)
	if err != nil {
		return "", err
	}
	return filepath.Join(l.cfg.Dir, filepath.FromSlash(k)), nil
}

// Put moves (or, across file systems, copies) the file into place. The
// source is consumed either way: it is a finished output in a job's work
// directory.
func (l *Local) Put(ctx context.Context, key, localPath, _ string) (int64, error) {
	dst, err := l.Path(key)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return 0, err
	}
	if err := os.Rename(localPath, dst); err != nil {
		if err := copyFile(ctx, localPath, dst); err != nil {
			return 0, err
		}
		_ = os.Remove(localPath)
	}
	st, err := os.Stat(dst)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Get copies key to dst.
func (l *Local) Get(ctx context.Context, key, dst string) error {
	src, err := l.Path(key)
	if err != nil {
		return err
	}
	if err := copyFile(ctx, src, dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return err
	}
	return nil
}

// Delete removes key and the directories it leaves empty.
func (l *Local) Delete(_ context.Context, key string) error {
	p, err := l.Path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for d := filepath.Dir(p); d != l.cfg.Dir && len(d) > len(l.cfg.Dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// Size reports key's size.
func (l *Local) Size(_ context.Context, key string) (int64, error) {
	p, err := l.Path(key)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return 0, err
	}
	return st.Size(), nil
}

func copyFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".part"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := copyCtx(ctx, out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
