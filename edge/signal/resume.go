package signal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

var errBadResume = errors.New("signal: bad resume token")

// Resume tokens are base64url(room "\n" participant "\n" nonce) "."
// base64url(HMAC-SHA256). The key is random per edge process, so a token is
// only good on the edge that issued it; the nonce is per member, so a token
// cannot resume a later incarnation of the same participant id.
func (s *Server) resumeToken(roomID, pid, nonce string) string {
	body := base64.RawURLEncoding.EncodeToString([]byte(roomID + "\n" + pid + "\n" + nonce))
	mac := hmac.New(sha256.New, s.resumeKey)
	mac.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Server) parseResumeToken(tok string) (roomID, pid, nonce string, err error) {
	body, sigPart, ok := strings.Cut(tok, ".")
	if !ok || len(tok) > 1024 {
		return "", "", "", errBadResume
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigPart)
	if err != nil {
		return "", "", "", errBadResume
	}
	mac := hmac.New(sha256.New, s.resumeKey)
	mac.Write([]byte(body))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return "", "", "", errBadResume
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", "", "", errBadResume
	}
	parts := strings.Split(string(raw), "\n")
	if len(parts) != 3 {
		return "", "", "", errBadResume
	}
	return parts[0], parts[1], parts[2], nil
}
