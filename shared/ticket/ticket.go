// Package ticket defines the short-lived join ticket the control plane signs
// (Ed25519) and an edge verifies with the control plane's public key alone.
//
// Wire form: base64url(JSON claims) "." base64url(signature over the first part).
// A ticket binds room, participant, edge and permissions, and lives at most
// MaxTTL, so a leaked ticket is worth little.
package ticket

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxTTL bounds a ticket's lifetime.
const MaxTTL = 60 * time.Second

var (
	ErrMalformed = errors.New("ticket: malformed")
	ErrSignature = errors.New("ticket: bad signature")
	ErrExpired   = errors.New("ticket: expired")
	ErrWrongEdge = errors.New("ticket: issued for another edge")
)

// Permissions are the media-plane rights carried by a ticket.
type Permissions struct {
	Publish   bool `json:"pub"`
	Subscribe bool `json:"sub"`
	Moderate  bool `json:"mod"`
	// AskJoin participants wait in the lobby until a moderator admits them.
	AskJoin bool `json:"ask,omitempty"`
}

// Claims is what a ticket asserts.
type Claims struct {
	RoomID          string      `json:"room"`
	SessionHint     string      `json:"sess,omitempty"`
	ParticipantID   string      `json:"pid"`
	ParticipantName string      `json:"name,omitempty"`
	EdgeID          string      `json:"edge"`
	Permissions     Permissions `json:"perm"`
	// MaxParticipants is the room's cap (0 = unlimited); the edge enforces it too.
	MaxParticipants int `json:"max,omitempty"`
	// AllowedRegions is the room's pin policy (empty = anywhere); the edge
	// checks its own region against it and TURN refuses relays outside it.
	AllowedRegions []string `json:"regions,omitempty"`
	// Epoch is the room placement's epoch when the ticket was signed; an
	// edge whose peer list is older fetches the current one.
	Epoch uint64 `json:"epoch,omitempty"`
	// Claim marks an alternate candidate: the room is not recorded on this
	// edge yet, so the edge must add itself to the placement (through the
	// control plane) before admitting anyone.
	Claim bool `json:"claim,omitempty"`
	// Admitted: the participant may only ask to join, but is in the room's
	// ongoing session already (a moderator admitted it, and it is moving
	// between edges: its edge failed or drains): it skips the lobby.
	Admitted  bool  `json:"admitted,omitempty"`
	IssuedAt  int64 `json:"iat"`
	ExpiresAt int64 `json:"exp"`
	// IssuedAtMs is IssuedAt to the millisecond: an edge compares it with
	// the moment a room was closed, and a join right after a close (the
	// same second) is in the room's next session, not refused.
	IssuedAtMs int64 `json:"iatMs,omitempty"`
}

// Issued is when the ticket was issued, by the control plane's clock: to
// the millisecond, or the start of its second for a ticket without
// IssuedAtMs (so a close in that second still refuses it).
func (c Claims) Issued() time.Time {
	if c.IssuedAtMs/1000 == c.IssuedAt && c.IssuedAtMs != 0 {
		return time.UnixMilli(c.IssuedAtMs)
	}
	return time.Unix(c.IssuedAt, 0)
}

// Sign encodes and signs claims.
func Sign(key ed25519.PrivateKey, c Claims) (string, error) {
	if c.ExpiresAt-c.IssuedAt > int64(MaxTTL/time.Second) {
		return "", fmt.Errorf("ticket: lifetime %ds exceeds %s", c.ExpiresAt-c.IssuedAt, MaxTTL)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	head := base64.RawURLEncoding.EncodeToString(body)
	sig := ed25519.Sign(key, []byte(head))
	return head + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Verify checks signature, expiry and (when edgeID is non-empty) the bound edge.
func Verify(pub ed25519.PublicKey, token string, edgeID string, now time.Time) (Claims, error) {
	var c Claims
	head, sigPart, ok := strings.Cut(token, ".")
	if !ok || head == "" || sigPart == "" || len(token) > 8192 {
		return c, ErrMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigPart)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, ErrMalformed
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(head), sig) {
		return c, ErrSignature
	}
	body, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return c, ErrMalformed
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, ErrMalformed
	}
	if now.Unix() >= c.ExpiresAt {
		return c, ErrExpired
	}
	if edgeID != "" && c.EdgeID != edgeID {
		return c, ErrWrongEdge
	}
	return c, nil
}
