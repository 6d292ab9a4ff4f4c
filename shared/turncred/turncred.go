// Package turncred mints and checks TURN REST-style credentials
// (username "expiry:participant", password base64(HMAC-SHA1(secret, username))),
// the format pion/turn's LongTermTURNRESTAuthHandler accepts. The secret is a
// TURN-only secret shared by control and edges, never an API secret.
package turncred

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Generate returns username and password valid until now+ttl.
func Generate(secret, participant string, now time.Time, ttl time.Duration) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + participant
	return username, Password(secret, username)
}

// Password derives the password for a username.
func Password(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Parse splits a username into expiry and participant.
func Parse(username string) (expiry time.Time, participant string, ok bool) {
	ts, p, found := strings.Cut(username, ":")
	if !found {
		return time.Time{}, "", false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return time.Unix(sec, 0), p, true
}
