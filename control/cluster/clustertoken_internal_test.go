package cluster

import (
	"testing"
	"time"
)

// A refusal of this node's cluster token counts for tokenRefusalMemory
// only: /healthz reports it, which keeps away the writes whose forwarding
// would show that the tokens were fixed.
func TestClusterTokenRefusalExpires(t *testing.T) {
	var n Node
	if n.ClusterTokenRefused() != nil {
		t.Fatal("a refusal before any call")
	}
	n.tokenRefused.Store(&TokenRefusedError{At: time.Now().Add(-tokenRefusalMemory + time.Second)})
	if n.ClusterTokenRefused() == nil {
		t.Fatal("a refusal within the memory does not count")
	}
	n.tokenRefused.Store(&TokenRefusedError{At: time.Now().Add(-tokenRefusalMemory - time.Second)})
	if e := n.ClusterTokenRefused(); e != nil {
		t.Fatalf("a refusal older than %v still counts: %+v", tokenRefusalMemory, e)
	}
}
