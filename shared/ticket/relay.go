package ticket

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RelayMaxTTL bounds a relay ticket: it authorises setting a relay leg up
// (an established leg outlives it), and edges get fresh ones with every
// peer update, so it can be longer than a join ticket.
const RelayMaxTTL = 15 * time.Minute

// relayDomain is signed in front of a relay ticket's claims, so a relay
// ticket never verifies as a join ticket and the reverse.
const relayDomain = "meridian-relay-v1."

var (
	ErrNotInPair      = errors.New("ticket: this edge is not named by the relay ticket")
	ErrRegionRefused  = errors.New("ticket: region not allowed for this room")
	ErrBadProof       = errors.New("ticket: peer did not prove its identity")
	ErrWrongRoom      = errors.New("ticket: issued for another room")
	errRelayEdgeCount = errors.New("ticket: a relay ticket names exactly two distinct edges")
)

// RelayEdge is one end of a relay leg.
type RelayEdge struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	// Key is the edge's Ed25519 identity key: the edge proves it holds the
	// private half when it opens (or answers) a leg.
	Key []byte `json:"key"`
}

// RelayClaims authorise two edges to relay one room's media between them.
type RelayClaims struct {
	RoomID string      `json:"room"`
	Epoch  uint64      `json:"epoch"`
	Edges  []RelayEdge `json:"edges"`
	// AllowedRegions is the room's combined pin (empty = anywhere); both
	// ends check their own and the peer's region against it.
	AllowedRegions []string `json:"regions,omitempty"`
	IssuedAt       int64    `json:"iat"`
	ExpiresAt      int64    `json:"exp"`
}

// Peer returns the edge of the pair that is not self.
func (c RelayClaims) Peer(self string) (RelayEdge, bool) {
	if len(c.Edges) != 2 {
		return RelayEdge{}, false
	}
	switch self {
	case c.Edges[0].ID:
		return c.Edges[1], true
	case c.Edges[1].ID:
		return c.Edges[0], true
	}
	return RelayEdge{}, false
}

func (c RelayClaims) regionAllowed(r string) bool {
	return len(c.AllowedRegions) == 0 || slices.Contains(c.AllowedRegions, r)
}

// SignRelay encodes and signs relay claims.
func SignRelay(key ed25519.PrivateKey, c RelayClaims) (string, error) {
	if c.ExpiresAt-c.IssuedAt > int64(RelayMaxTTL/time.Second) {
		return "", fmt.Errorf("ticket: relay lifetime %ds exceeds %s", c.ExpiresAt-c.IssuedAt, RelayMaxTTL)
	}
	if len(c.Edges) != 2 || c.Edges[0].ID == c.Edges[1].ID || c.Edges[0].ID == "" || c.Edges[1].ID == "" {
		return "", errRelayEdgeCount
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	head := base64.RawURLEncoding.EncodeToString(body)
	sig := ed25519.Sign(key, []byte(relayDomain+head))
	return head + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// VerifyRelay checks a relay ticket as edge self (in region selfRegion)
// would: signature, expiry, that self is one of the pair, and that both
// ends' regions are allowed for the room. It returns the claims and the
// peer's end.
func VerifyRelay(pub ed25519.PublicKey, token, self, selfRegion string, now time.Time) (RelayClaims, RelayEdge, error) {
	var c RelayClaims
	head, sigPart, ok := strings.Cut(token, ".")
	if !ok || head == "" || sigPart == "" || len(token) > 8192 {
		return c, RelayEdge{}, ErrMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigPart)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, RelayEdge{}, ErrMalformed
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(relayDomain+head), sig) {
		return c, RelayEdge{}, ErrSignature
	}
	body, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return c, RelayEdge{}, ErrMalformed
	}
	if err := json.Unmarshal(body, &c); err != nil || c.RoomID == "" {
		return c, RelayEdge{}, ErrMalformed
	}
	if now.Unix() >= c.ExpiresAt || c.ExpiresAt-c.IssuedAt > int64(RelayMaxTTL/time.Second) {
		return c, RelayEdge{}, ErrExpired
	}
	peer, ok := c.Peer(self)
	if !ok || peer.ID == self {
		return c, RelayEdge{}, ErrNotInPair
	}
	var me RelayEdge
	for _, e := range c.Edges {
		if e.ID == self {
			me = e
		}
	}
	// Both ends must be in allowed regions, and this edge must really be in
	// the region the ticket says (a ticket for a relocated edge is refused).
	if me.Region != selfRegion || !c.regionAllowed(selfRegion) || !c.regionAllowed(peer.Region) {
		return c, RelayEdge{}, ErrRegionRefused
	}
	if len(peer.Key) != ed25519.PublicKeySize {
		return c, RelayEdge{}, ErrMalformed
	}
	return c, peer, nil
}

// ProofMessage is what an edge signs with its identity key to prove, on a
// relay leg, that it is the edge the ticket names: bound to the room, both
// edge ids and the other side's fresh nonce, so it cannot be replayed.
func ProofMessage(roomID, signer, verifier, nonce string) []byte {
	return []byte("meridian-cascade-proof-v1\x00" + roomID + "\x00" + signer + "\x00" + verifier + "\x00" + nonce)
}

// VerifyProof checks a peer's identity proof.
func VerifyProof(peer RelayEdge, roomID, verifier, nonce string, sig []byte) error {
	if len(peer.Key) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || nonce == "" ||
		!ed25519.Verify(ed25519.PublicKey(peer.Key), ProofMessage(roomID, peer.ID, verifier, nonce), sig) {
		return ErrBadProof
	}
	return nil
}
