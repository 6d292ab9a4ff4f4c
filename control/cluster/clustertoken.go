package cluster

import "time"

// TokenRefusedError says that another control node refused this node's
// cluster token: the nodes were given different --cluster-token values
// (or different cluster keys, from which the default is derived). Writes
// this node forwards to the leader fail until it is fixed; Raft, which
// does not use the token, goes on, so nothing else shows it.
type TokenRefusedError struct {
	At     time.Time
	Answer string // the other node's answer
}

func (e *TokenRefusedError) Error() string {
	return "another control node refused this node's cluster token: every control node needs the same --cluster-token (by default derived from --cluster-key); it answered: " + e.Answer
}

// tokenRefusalMemory is how long a refusal counts without a new one. It
// must end by itself: /healthz reports it, so a load balancer stops
// sending this node the writes whose forwarding would clear it after the
// tokens were fixed.
const tokenRefusalMemory = time.Minute

// ClusterTokenRefused is the refusal of the last node-to-node call this
// node made, if that was within tokenRefusalMemory; nil if that call's
// token was accepted or the refusal is older.
func (n *Node) ClusterTokenRefused() *TokenRefusedError {
	e := n.tokenRefused.Load()
	if e == nil || time.Since(e.At) > tokenRefusalMemory {
		return nil
	}
	return e
}
