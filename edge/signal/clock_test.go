package signal_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
)

// skewedEdge starts an edge whose clock runs ahead of the test's by what
// the returned value holds (0 at first): a test moves it to play an order
// arriving late, or time passing.
func skewedEdge(t *testing.T) (*signaltest.Edge, *atomic.Int64) {
	var skew atomic.Int64
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	}})
	return e, &skew
}
