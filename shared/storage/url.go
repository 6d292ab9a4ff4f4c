package storage

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// Download URLs of local files are signed, expiring capability URLs:
//
//	<base>/<key>?exp=<unix seconds>&sig=<base64url Ed25519 signature>
//
// The control plane signs them with its ticket key when it answers an API
// read (fileUrl) or sends a webhook; the edge holding the file checks them
// with the public key alone, as it checks join tickets. Players, browsers
// and webhook receivers fetch fileUrl without an Authorization header (and
// players issue Range requests), so the URL itself must carry the right to
// read one file for a while, like an S3 presigned URL; the edge never holds
// API secrets, so it could not check an API token anyway.

// Errors of VerifyURL.
var (
	ErrURLSignature = errors.New("storage: bad download signature")
	ErrURLExpired   = errors.New("storage: download link expired")
)

// urlDomain separates download signatures from every other use of the key
// (join tickets, relay tickets).
const urlDomain = "meridian-download-v1\n"

func urlMessage(target, key string, exp int64) []byte {
	return []byte(urlDomain + target + "\n" + key + "\n" + strconv.FormatInt(exp, 10))
}

// SignURL returns the download URL of key in the local target named target,
// served under base (e.g. "https://edge-1.example.com/egress/files").
func SignURL(priv ed25519.PrivateKey, base, target, key string, exp time.Time) (string, error) {
	k, err := CleanKey(key)
	if err != nil {
		return "", err
	}
	if len(priv) != ed25519.PrivateKeySize {
		return "", errors.New("storage: no signing key")
	}
	e := exp.Unix()
	sig := ed25519.Sign(priv, urlMessage(target, k, e))
	segs := strings.Split(k, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	q := url.Values{"exp": {strconv.FormatInt(e, 10)}, "sig": {base64.RawURLEncoding.EncodeToString(sig)}}
	return strings.TrimRight(base, "/") + "/" + strings.Join(segs, "/") + "?" + q.Encode(), nil
}

// VerifyURL checks the exp and sig query values of a download request for key.
func VerifyURL(pub ed25519.PublicKey, target, key, exp, sig string, now time.Time) error {
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return ErrURLSignature
	}
	s, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(s) != ed25519.SignatureSize || len(pub) != ed25519.PublicKeySize {
		return ErrURLSignature
	}
	if !ed25519.Verify(pub, urlMessage(target, key, e), s) {
		return ErrURLSignature
	}
	if now.Unix() >= e {
		return ErrURLExpired
	}
	return nil
}

// DownloadError is why Authorize refused a download: the HTTP status to
// answer and a message for the JSON body.
type DownloadError struct {
	Status  int
	Message string
}

func (e *DownloadError) Error() string { return e.Message }

// Authorize checks a download request for urlPath ("<key>", as under the
// base URL given to SignURL) with its exp and sig query values, and
// returns the file to send. Errors are *DownloadError: 404 for a bad key
// or a missing file, 401 without a signature, 403 for a bad or expired
// one. Handler and servers that stream files themselves (the edge's
// fasthttp listener) share it.
func (l *Local) Authorize(pub ed25519.PublicKey, urlPath, exp, sig string, now time.Time) (string, error) {
	key, err := authorizeDownload(pub, l.Name(), urlPath, exp, sig, now)
	if err != nil {
		return "", err
	}
	p, err := l.Path(key)
	if err != nil {
		return "", &DownloadError{http.StatusNotFound, "not found"}
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) || (err == nil && st.IsDir()):
		return "", &DownloadError{http.StatusNotFound, "not found"}
	case err != nil:
		return "", &DownloadError{http.StatusInternalServerError, "cannot read file"}
	}
	return p, nil
}

// authorizeDownload checks a download request for urlPath in target and
// returns the clean key; errors are *DownloadError.
func authorizeDownload(pub ed25519.PublicKey, target, urlPath, exp, sig string, now time.Time) (string, error) {
	key, err := CleanKey(strings.TrimPrefix(urlPath, "/"))
	if err != nil {
		return "", &DownloadError{http.StatusNotFound, "not found"}
	}
	if sig == "" || exp == "" {
		return "", &DownloadError{http.StatusUnauthorized, "a signed download URL is required (exp and sig)"}
	}
	switch err := VerifyURL(pub, target, key, exp, sig, now); {
	case errors.Is(err, ErrURLExpired):
		return "", &DownloadError{http.StatusForbidden, "download link expired"}
	case err != nil:
		return "", &DownloadError{http.StatusForbidden, "invalid download signature"}
	}
	return key, nil
}

// Handler serves the target's files at "/<key>?exp=…&sig=…" (mount it
// under the base URL given to SignURL with http.StripPrefix). pub returns
// the control plane's current public key; now is the clock (nil: time.Now).
// GET and HEAD with Range support; anything else is refused with a JSON
// error.
func (l *Local) Handler(pub func() ed25519.PublicKey, now func() time.Time) http.Handler {
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			jsonError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		q := r.URL.Query()
		p, err := l.Authorize(pub(), r.URL.Path, q.Get("exp"), q.Get("sig"), now())
		if err != nil {
			de := err.(*DownloadError)
			jsonError(w, de.Status, de.Message)
			return
		}
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				jsonError(w, http.StatusNotFound, "not found")
			} else {
				jsonError(w, http.StatusInternalServerError, "cannot read file")
			}
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.IsDir() {
			jsonError(w, http.StatusNotFound, "not found")
			return
		}
		if ct := mime.TypeByExtension(path.Ext(p)); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Cache-Control", "private, no-transform")
		http.ServeContent(w, r, path.Base(p), st.ModTime(), f)
	})
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "message": msg})
}

// String renders a target for logs.
func String(t Target) string { return fmt.Sprintf("%s@%s", t.Name(), t.Region()) }
