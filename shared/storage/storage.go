// Package storage stores egress outputs (recordings, merged audio,
// thumbnails): a local directory by default, or an S3-compatible bucket.
// Every target carries the region it keeps data in, so a room pinned to
// regions only ever stores files in storage tagged for one of them
// (Select). It lives in shared because both sides use it: the edge writes
// files, the control plane deletes them and hands out download URLs.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// Errors.
var (
	// ErrNoStorageForRegion: no configured target is in an allowed region.
	ErrNoStorageForRegion = errors.New("storage: no storage configured for the room's allowed regions")
	ErrNotFound           = errors.New("storage: object not found")
	ErrBadKey             = errors.New("storage: invalid key")
)

// Target is one place files are stored.
type Target interface {
	// Name identifies the target in configuration and in stored file
	// records ("local", "s3-eu", ...).
	Name() string
	// Region is where the target keeps its data (a Meridian region id).
	Region() string
	// Put stores the local file at key (replacing it) and returns its size.
	Put(ctx context.Context, key, localPath, contentType string) (int64, error)
	// Get copies key into the local file dst.
	Get(ctx context.Context, key, dst string) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Size reports the stored size of key (ErrNotFound if missing).
	Size(ctx context.Context, key string) (int64, error)
}

// Select returns the first target whose region is allowed (every target
// when allowed is empty). The order of targets is the operator's
// preference.
func Select(targets []Target, allowed []string) (Target, error) {
	for _, t := range targets {
		if len(allowed) == 0 || slices.Contains(allowed, t.Region()) {
			return t, nil
		}
	}
	have := make([]string, 0, len(targets))
	for _, t := range targets {
		have = append(have, fmt.Sprintf("%s (region %s)", t.Name(), t.Region()))
	}
	if len(have) == 0 {
		have = append(have, "none")
	}
	return nil, fmt.Errorf("%w: allowed regions %s; configured: %s", ErrNoStorageForRegion,
		strings.Join(allowed, ", "), strings.Join(have, ", "))
}

// Find returns the target called name.
func Find(targets []Target, name string) (Target, error) {
	for _, t := range targets {
		if t.Name() == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("storage: no target named %q", name)
}

// CleanKey validates an object key: relative, slash-separated, no "." or
// ".." elements, no empty elements, printable ASCII without backslashes.
func CleanKey(key string) (string, error) {
	if key == "" || len(key) > 1024 || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	for _, r := range key {
		if r < 0x21 || r > 0x7e || r == '\\' {
			return "", fmt.Errorf("%w: %q", ErrBadKey, key)
		}
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el == "." || el == ".." {
			return "", fmt.Errorf("%w: %q", ErrBadKey, key)
		}
	}
	if path.Clean(key) != key {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return key, nil
}

// JoinKey joins a caller's directory prefix and a key, dropping empty and
// unsafe elements of the prefix.
func JoinKey(dir, key string) string {
	var parts []string
	for _, el := range strings.Split(dir, "/") {
		if el != "" && el != "." && el != ".." && !strings.ContainsAny(el, "\\") {
			parts = append(parts, el)
		}
	}
	return strings.Join(append(parts, key), "/")
}

// copyCtx copies with cancellation between chunks.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := src.Read(buf)
		if m > 0 {
			w, werr := dst.Write(buf[:m])
			n += int64(w)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// DefaultURLTTL is how long a download URL handed out by the API stays valid.
const DefaultURLTTL = time.Hour
