package api

import (
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/meridian-video/meridian/control/auth"
)

// msgWrongClusterKey answers requests a node cannot serve because its
// --cluster-key is not the one the cluster's secrets were sealed with: the
// node's configuration is wrong, not the client's credentials (a 401 sent
// customers rotating keys that were fine).
const msgWrongClusterKey = "this control node cannot open the cluster's secrets: its --cluster-key is not the cluster's (every control node needs the same key); retry shortly"

// WithSecrets gives the API the node's opener of the cluster's secrets
// (server.Secrets, which caches them): the cluster-key check asks it.
func WithSecrets(fn func() (*auth.OpenedSecrets, error)) Option {
	return func(s *Server) { s.secrets = fn }
}

// wrongClusterKey reports whether this node's cluster key fails to open
// the cluster's sealed secrets (once they exist). The answer cannot change
// while the process runs (the key is read at start, the secrets are never
// re-sealed in place), so a mismatch, once found, is remembered.
func (s *Server) wrongClusterKey() bool {
	if s.keyMismatch.Load() {
		return true
	}
	if s.keyChecked.Load() {
		return false
	}
	if s.secrets == nil { // an API without a node's secrets (tests): nothing to check
		s.keyChecked.Store(true)
		return false
	}
	_, err := s.secrets()
	switch {
	case errors.Is(err, auth.ErrUnseal):
		if s.keyMismatch.CompareAndSwap(false, true) {
			s.log.Error("this node's --cluster-key does not open the cluster's secrets: it is not the key the cluster was created with; " +
				"every control node needs the same --cluster-key (or <data>/cluster.key); /healthz and the API answer 503 until it is fixed and the node restarted")
		}
		return true
	case err == nil:
		s.keyChecked.Store(true)
	}
	return false // not there yet: nothing to open
}

// keyStates are the cluster-key check's opener and remembered outcomes.
type keyStates struct {
	secrets     func() (*auth.OpenedSecrets, error) // WithSecrets; nil: no check
	keyMismatch atomic.Bool                         // the key does not open the secrets
	keyChecked  atomic.Bool                         // the key opened them
}

// errWrongClusterKey is the API's answer on such a node.
var errWrongClusterKey = &Error{Status: http.StatusServiceUnavailable, Message: msgWrongClusterKey, RetryAfter: 5}
