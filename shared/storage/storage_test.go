package storage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCleanKey(t *testing.T) {
	for _, k := range []string{"a", "a/b.mp4", "rec/s-1/p_1/file.webm"} {
		if _, err := CleanKey(k); err != nil {
			t.Errorf("CleanKey(%q) = %v, want ok", k, err)
		}
	}
	for _, k := range []string{"", "/a", "a/", "../a", "a/../b", "a//b", "./a", "a/./b", "a\\b", "a b", "é"} {
		if _, err := CleanKey(k); !errors.Is(err, ErrBadKey) {
			t.Errorf("CleanKey(%q) = %v, want ErrBadKey", k, err)
		}
	}
	if got := JoinKey("/customer/../dir/", "f.mp4"); got != "customer/dir/f.mp4" {
		t.Errorf("JoinKey = %q", got)
	}
}

func TestSelectHonoursRegions(t *testing.T) {
	a, _ := NewLocal(LocalConfig{Name: "local", Region: "us-east", Dir: t.TempDir()})
	b, _ := NewLocal(LocalConfig{Name: "eu", Region: "eu-west", Dir: t.TempDir()})
	targets := []Target{a, b}
	if got, err := Select(targets, nil); err != nil || got != a {
		t.Fatalf("unpinned: %v %v, want the first target", got, err)
	}
	if got, err := Select(targets, []string{"eu-west", "eu-central"}); err != nil || got != b {
		t.Fatalf("pinned to eu: %v %v, want eu", got, err)
	}
	_, err := Select(targets, []string{"ap-south"})
	if !errors.Is(err, ErrNoStorageForRegion) {
		t.Fatalf("pinned to ap-south: %v, want ErrNoStorageForRegion", err)
	}
	for _, want := range []string{"ap-south", "local (region us-east)", "eu (region eu-west)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLocalPutGetDelete(t *testing.T) {
	ctx := context.Background()
	l, err := NewLocal(LocalConfig{Region: "r", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("meridian"), 1000)
	n, err := l.Put(ctx, "a/b/c.mp4", writeTemp(t, data), "video/mp4")
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put = %d, %v", n, err)
	}
	if sz, err := l.Size(ctx, "a/b/c.mp4"); err != nil || sz != int64(len(data)) {
		t.Fatalf("Size = %d, %v", sz, err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := l.Get(ctx, "a/b/c.mp4", dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("Get returned different bytes")
	}
	if _, err := l.Put(ctx, "../escape", writeTemp(t, data), ""); !errors.Is(err, ErrBadKey) {
		t.Fatalf("Put outside the directory: %v", err)
	}
	if err := l.Delete(ctx, "a/b/c.mp4"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Size(ctx, "a/b/c.mp4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Size after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), "a")); !os.IsNotExist(err) {
		t.Fatalf("empty directories left behind: %v", err)
	}
	if err := l.Delete(ctx, "a/b/c.mp4"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
}

func TestSignedDownloadURL(t *testing.T) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	l, _ := NewLocal(LocalConfig{Region: "r", Dir: t.TempDir()})
	data := []byte("0123456789abcdefghij")
	if _, err := l.Put(ctx, "rec/s1/file.mp4", writeTemp(t, data), ""); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	srv := httptest.NewServer(http.StripPrefix("/files", l.Handler(func() ed25519.PublicKey { return pub }, clock)))
	defer srv.Close()
	base := srv.URL + "/files"

	get := func(u string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good, err := SignURL(priv, base, "local", "rec/s1/file.mp4", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(good, nil); code != 200 || body != string(data) {
		t.Fatalf("valid URL: %d %q", code, body)
	}
	if code, body := get(good, map[string]string{"Range": "bytes=10-14"}); code != http.StatusPartialContent || body != "abcde" {
		t.Fatalf("range: %d %q", code, body)
	}
	expired, _ := SignURL(priv, base, "local", "rec/s1/file.mp4", now.Add(-time.Second))
	if code, body := get(expired, nil); code != http.StatusForbidden || !strings.Contains(body, "expired") {
		t.Fatalf("expired URL: %d %q", code, body)
	}
	forged, _ := SignURL(otherPriv, base, "local", "rec/s1/file.mp4", now.Add(time.Hour))
	if code, _ := get(forged, nil); code != http.StatusForbidden {
		t.Fatalf("URL signed by another key: %d", code)
	}
	otherTarget, _ := SignURL(priv, base, "s3", "rec/s1/file.mp4", now.Add(time.Hour))
	if code, _ := get(otherTarget, nil); code != http.StatusForbidden {
		t.Fatalf("URL signed for another target: %d", code)
	}
	// The signature of one key does not open another.
	u, _ := url.Parse(good)
	u.Path = "/files/rec/s1/other.mp4"
	if code, _ := get(u.String(), nil); code != http.StatusForbidden {
		t.Fatalf("signature moved to another key: %d", code)
	}
	// Extending the expiry breaks the signature.
	q := u.Query()
	u.Path = "/files/rec/s1/file.mp4"
	q.Set("exp", "9999999999")
	u.RawQuery = q.Encode()
	if code, _ := get(u.String(), nil); code != http.StatusForbidden {
		t.Fatalf("extended expiry: %d", code)
	}
	if code, body := get(base+"/rec/s1/file.mp4", nil); code != http.StatusUnauthorized || !strings.Contains(body, "signed") {
		t.Fatalf("unsigned: %d %q", code, body)
	}
	missing, _ := SignURL(priv, base, "local", "rec/s1/missing.mp4", now.Add(time.Hour))
	if code, _ := get(missing, nil); code != http.StatusNotFound {
		t.Fatalf("missing file: %d", code)
	}
	resp, err := http.Post(good, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

// startS3 runs an in-process S3 server (gofakes3) with one bucket.
func startS3(t *testing.T, region string) *S3 {
	t.Helper()
	faker := gofakes3.New(s3mem.New())
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	s, err := NewS3(S3Config{Name: "s3-" + region, Region: region, Endpoint: u.Host, Bucket: "recordings",
		AccessKey: "AKIAEXAMPLE", SecretKey: "secret", BucketRegion: "us-east-1", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3AgainstFakeServer(t *testing.T) {
	ctx := context.Background()
	s := startS3(t, "eu-west")
	data := bytes.Repeat([]byte{1, 2, 3, 4}, 300_000) // 1.2 MB
	src := writeTemp(t, data)
	n, err := s.Put(ctx, "dir/rec/file.mp4", src, "video/mp4")
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put = %d, %v", n, err)
	}
	if sz, err := s.Size(ctx, "dir/rec/file.mp4"); err != nil || sz != int64(len(data)) {
		t.Fatalf("Size = %d, %v", sz, err)
	}
	dst := filepath.Join(t.TempDir(), "back")
	if err := s.Get(ctx, "dir/rec/file.mp4", dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("downloaded bytes differ")
	}
	u, err := s.PresignGet(ctx, "dir/rec/file.mp4", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("presigned GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	if err := s.Delete(ctx, "dir/rec/file.mp4"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Size(ctx, "dir/rec/file.mp4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Size after delete: %v", err)
	}
	if err := s.Get(ctx, "dir/rec/file.mp4", dst); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
}

// A file stored in S3 is downloaded through the same kind of signed URL as
// a local one (the control plane signs it without S3 credentials); the
// edge checks it and redirects to a presigned S3 URL that expires with it.
func TestS3SignedDownloadRedirect(t *testing.T) {
	ctx := context.Background()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	s := startS3(t, "eu-west")
	data := bytes.Repeat([]byte("meridian"), 1000)
	if _, err := s.Put(ctx, "rec/s1/file.mp4", writeTemp(t, data), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second) // signed expiries are whole seconds
	// urlPath and query of a fileUrl signed for this target.
	signed := func(p ed25519.PrivateKey, target, key string, exp time.Time) (string, string, string) {
		t.Helper()
		raw, err := SignURL(p, "https://edge.example/egress/files/"+target, target, key, exp)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(raw)
		return strings.TrimPrefix(u.Path, "/egress/files/"+target), u.Query().Get("exp"), u.Query().Get("sig")
	}

	path, exp, sig := signed(priv, s.Name(), "rec/s1/file.mp4", now.Add(time.Hour))
	u, err := s.AuthorizeRedirect(ctx, pub, path, exp, sig, now)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET the presigned URL: %d, %d bytes", resp.StatusCode, len(body))
	}
	if got := u.Query().Get("X-Amz-Expires"); got != "3600" {
		t.Errorf("presigned for %s s, want the signed URL's remaining 3600 s", got)
	}

	refused := []struct {
		name           string
		path, exp, sig string
		status         int
	}{
		{"no signature", path, "", "", http.StatusUnauthorized},
		{"signed by another key", func() string { p, _, _ := signed(otherPriv, s.Name(), "rec/s1/file.mp4", now.Add(time.Hour)); return p }(), exp,
			func() string { _, _, g := signed(otherPriv, s.Name(), "rec/s1/file.mp4", now.Add(time.Hour)); return g }(), http.StatusForbidden},
		{"signed for another key", "rec/s1/other.mp4", exp, sig, http.StatusForbidden},
		{"signed for another target", func() string { p, _, _ := signed(priv, "local", "rec/s1/file.mp4", now.Add(time.Hour)); return p }(), exp,
			func() string { _, _, g := signed(priv, "local", "rec/s1/file.mp4", now.Add(time.Hour)); return g }(), http.StatusForbidden},
		{"expired", path, exp, sig, http.StatusForbidden},
		{"missing object", func() string { p, _, _ := signed(priv, s.Name(), "rec/s1/gone.mp4", now.Add(time.Hour)); return p }(),
			func() string { _, e, _ := signed(priv, s.Name(), "rec/s1/gone.mp4", now.Add(time.Hour)); return e }(),
			func() string { _, _, g := signed(priv, s.Name(), "rec/s1/gone.mp4", now.Add(time.Hour)); return g }(), http.StatusNotFound},
		{"key escaping the bucket prefix", "../x", exp, sig, http.StatusNotFound},
	}
	for _, c := range refused {
		at := now
		if c.name == "expired" {
			at = now.Add(2 * time.Hour)
		}
		_, err := s.AuthorizeRedirect(ctx, pub, c.path, c.exp, c.sig, at)
		var de *DownloadError
		if !errors.As(err, &de) || de.Status != c.status {
			t.Errorf("%s: %v, want a %d DownloadError", c.name, err, c.status)
		}
	}
}
