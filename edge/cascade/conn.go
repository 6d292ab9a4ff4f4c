package cascade

import (
	"encoding/json"
	"errors"
	"net"
	"sync"
	"time"

	fws "github.com/fasthttp/websocket"

	wire "github.com/meridian-video/meridian/shared/signal"
)

// frameConn is one leg's WebSocket: the owner's goroutine reads, writeLoop
// writes. send never blocks: a leg whose queue is full is closed (it is set
// up again), because dropping single frames would desynchronise the
// participant list and the PeerConnection's negotiation.
type frameConn struct {
	ws           *fws.Conn
	writeTimeout time.Duration

	mu     sync.Mutex
	queue  [][]byte
	max    int
	dead   bool
	notify chan struct{}
	kill   chan struct{}
	once   sync.Once
	done   chan struct{}
	// flushOnClose makes the writer send what is queued before it closes
	// the socket (set by closeAfterFlush).
	flushOnClose bool
}

var errQueueFull = errors.New("cascade: send queue full")

func newFrameConn(ws *fws.Conn, max int, writeTimeout time.Duration) *frameConn {
	c := &frameConn{ws: ws, writeTimeout: writeTimeout, max: max, notify: make(chan struct{}, 1), kill: make(chan struct{}), done: make(chan struct{})}
	go c.writeLoop()
	return c
}

// send queues a frame; it reports false when the leg is closed or overloaded.
func (c *frameConn) send(typ string, v any) bool {
	b := wire.MustMarshal(typ, v)
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.max {
		c.mu.Unlock()
		c.close()
		return false
	}
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return true
}

func (c *frameConn) writeLoop() {
	defer close(c.done)
	for {
		select {
		case <-c.kill:
			// kill and notify may be ready together (a frame queued just
			// before close): select picks either, so a flushing close
			// writes what is left here.
			c.mu.Lock()
			q, flush := c.queue, c.flushOnClose
			c.queue = nil
			c.mu.Unlock()
			if flush {
				c.write(q)
			}
			c.closeSocket()
			return
		case <-c.notify:
		}
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		if !c.write(q) {
			c.close()
			c.closeSocket()
			return
		}
	}
}

// write sends frames in order; false after a failed write.
func (c *frameConn) write(q [][]byte) bool {
	for _, b := range q {
		_ = c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		if err := c.ws.WriteMessage(fws.TextMessage, b); err != nil {
			return false
		}
	}
	return true
}

// closeSocket really closes the TCP connection: on the serving side
// fasthttp's hijacked connection ignores Close, which would leave the
// reader blocked until its idle timeout.
func (c *frameConn) closeSocket() {
	_ = c.ws.Close()
	if u, ok := c.ws.UnderlyingConn().(interface{ UnsafeConn() net.Conn }); ok {
		_ = u.UnsafeConn().Close()
	}
}

// read returns the next frame; deadline bounds the wait.
func (c *frameConn) read(deadline time.Duration) (wire.Envelope, error) {
	var env wire.Envelope
	_ = c.ws.SetReadDeadline(time.Now().Add(deadline))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return env, err
	}
	if err := json.Unmarshal(data, &env); err != nil || env.Type == "" {
		return env, errors.New("cascade: frame is not a JSON envelope")
	}
	return env, nil
}

// close stops the writer (which closes the socket, ending the reader). Idempotent.
func (c *frameConn) close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
		close(c.kill)
	})
}

// closeAfterFlush closes once the frames already queued are written (a
// refusal's reason reaches the peer), and waits for the writer.
func (c *frameConn) closeAfterFlush() {
	c.mu.Lock()
	c.flushOnClose = true
	c.mu.Unlock()
	c.closeAndWait()
}

// closeAndWait closes and waits for the writer to finish.
func (c *frameConn) closeAndWait() {
	c.close()
	<-c.done
}
