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
// base64url(HMAC-SHA256). An edge hands one out in `joined`, that is only to
// a participant it admitted, and only on that participant's socket. The
// nonce is per member, so a token resumes only the member it was issued
// for, on the edge that holds it (another edge, or this one after a
// restart, has no member with that nonce).
//
// The key is derived from the internal token, which every edge of the
// cluster shares and clients never see, so every edge can check a token
// another edge issued: a token is also the proof that its holder is the
// participant an edge admitted. A guest who may only ask to join and moves
// to another edge (its edge failed or drains) presents it with its new
// ticket, `join {ticket, resumeToken}`, and is not put in the lobby again
// (see provesAdmission). Without it, an `ask_join` token that does not name
// a participant could claim the id of anyone in the room.
func resumeKey(internalToken string) []byte {
	mac := hmac.New(sha256.New, []byte(internalToken))
	mac.Write([]byte("meridian resume token v1"))
	return mac.Sum(nil)
}

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

// provesAdmission reports whether tok is a resume token that an edge of
// this cluster issued to participant pid of roomID when it admitted it: the
// proof an `ask_join` participant gives that it is the one already in the
// room, not someone naming its id.
func (s *Server) provesAdmission(tok, roomID, pid string) bool {
	if tok == "" {
		return false
	}
	r, p, _, err := s.parseResumeToken(tok)
	return err == nil && r == roomID && p == pid
}
