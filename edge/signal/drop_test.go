package signal_test

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meridian-video/meridian/edge/signal"
	"github.com/meridian-video/meridian/edge/signal/signaltest"
	"github.com/meridian-video/meridian/shared/metrictest"
)

// TestSlowClientIsDroppedAndCounted: a client that sends but never reads
// fills its socket's buffers, then the edge's queue for it; the edge closes
// that socket (the drop policy) instead of buffering without bound, counts
// it in meridian_signal_sockets_dropped_total{reason="queue-full"} once,
// and goes on serving others.
func TestSlowClientIsDroppedAndCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := signaltest.StartEdge(t, signaltest.EdgeOptions{Signal: func(c *signal.Config) {
		c.SendQueue = 16
		c.Registerer = reg
	}})

	// A small receive buffer, so that the edge's writes stall after a few
	// kilobytes of pongs the client leaves unread.
	dialer := fws.Dialer{HandshakeTimeout: 5 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			}); err != nil {
				return err
			}
			return serr
		}}
		return d.Dial(network, addr)
	}}
	slow, _, err := dialer.Dial(e.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	ping := []byte(`{"type":"ping"}`)
	sent := 0
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_ = slow.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if err := slow.WriteMessage(fws.TextMessage, ping); err != nil {
			break // the edge closed the socket
		}
		sent++
		if sent%500 == 0 {
			if n, _ := metrictest.Sum(t, reg, "meridian_signal_sockets_dropped_total", map[string]string{"reason": "queue-full"}); n > 0 {
				break
			}
		}
	}
	var dropped float64
	for time.Now().Before(deadline) {
		if dropped, _ = metrictest.Sum(t, reg, "meridian_signal_sockets_dropped_total", map[string]string{"reason": "queue-full"}); dropped > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dropped != 1 {
		t.Fatalf("after %d unread pings: meridian_signal_sockets_dropped_total{reason=queue-full} = %v, want 1", sent, dropped)
	}
	t.Logf("dropped after %d unread pings", sent)

	// The socket is closed: what is left to read ends without a close frame.
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := slow.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the dropped socket stayed open")
			}
			break
		}
	}

	// Others are served as before.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := e.Dial(t, signaltest.Config{})
	if _, _, err := c.Join(ctx, e.Ticket(t, "room-1", "alice", nil), "Alice"); err != nil {
		t.Fatalf("a join after the drop: %v", err)
	}
	if n, _ := metrictest.Sum(t, reg, "meridian_signal_sockets_dropped_total", nil); n != 1 {
		t.Fatalf("sockets dropped in all: %v, want 1", n)
	}
}
