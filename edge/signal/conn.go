package signal

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
)

// conn is one WebSocket. The handler goroutine reads; writeLoop (owned by the
// handler, which waits for it) is the only writer. Frames are queued without
// blocking; a full queue disconnects the client (the drop policy: signaling
// frames cannot be dropped one by one without breaking the session, and a
// dropped client can resume).
type conn struct {
	ws           *websocket.Conn
	max          int
	writeTimeout time.Duration

	// linger is how long a frame queued with sendSoon may wait for others
	// to share its write (0: written at once, as with send).
	linger time.Duration

	mu      sync.Mutex
	queue   [][]byte
	closing bool // a final frame is queued or the conn is dead
	dead    bool
	// lingering: lingerTimer will wake writeLoop for frames in the queue.
	lingering   bool
	lingerTimer *time.Timer

	writes atomic.Int64 // write system calls made for data frames

	// writeMu orders data writes with the close frame: once closeSent, no
	// data frame may follow (RFC 6455 section 5.5.1), whether the close
	// answers the client's or ends a final frame.
	writeMu   sync.Mutex
	closeSent bool

	notify chan struct{} // 1-slot
	kill   chan struct{}
	once   sync.Once
	done   chan struct{} // writeLoop exited

	// onDrop, when set, hears once why the drop policy closed the socket.
	onDrop func(reason string)
}

// Why the drop policy closed a socket (meridian_signal_sockets_dropped_total).
const (
	dropQueueFull = "queue-full"
	dropHeldFull  = "held-full"
)

func newConn(ws *websocket.Conn, max int, writeTimeout time.Duration) *conn {
	c := &conn{ws: ws, max: max, writeTimeout: writeTimeout,
		notify: make(chan struct{}, 1), kill: make(chan struct{}), done: make(chan struct{})}
	ws.SetCloseHandler(c.answerClose)
	return c
}

// answerClose answers a client's close frame (the reader calls it, then
// returns an error and the handler ends the conn): nothing more is queued,
// and a batch writeLoop took before is not written after the answer, as the
// library's own answer would have allowed.
func (c *conn) answerClose(code int, _ string) error {
	c.markDead()
	c.sendClose(code)
	return nil
}

// sendClose writes a close frame unless one went out already; no data frame
// is written after it.
func (c *conn) sendClose(code int) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closeSent {
		return
	}
	c.closeSent = true
	_ = c.ws.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
}

func (c *conn) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// send queues a frame to be written at once; it never blocks. It reports
// false if the frame was not queued (closing, or the queue overflowed and
// the conn is being closed).
func (c *conn) send(frame []byte) bool { return c.enqueue(frame, false) }

// sendSoon queues a frame that may wait up to c.linger for others to share
// its write: presence and quality events, which while a room fills come to
// every member once per joiner. Whatever is sent with send meanwhile takes
// the waiting frames along, so the order of frames never changes.
func (c *conn) sendSoon(frame []byte) bool { return c.enqueue(frame, c.linger > 0) }

func (c *conn) enqueue(frame []byte, soon bool) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.max {
		c.mu.Unlock()
		c.abort(dropQueueFull)
		return false
	}
	c.queue = append(c.queue, frame)
	if soon {
		if !c.lingering {
			c.lingering = true
			if c.lingerTimer == nil {
				c.lingerTimer = time.AfterFunc(c.linger, c.wake)
			} else {
				c.lingerTimer.Reset(c.linger)
			}
		}
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	c.wake()
	return true
}

// abort is the drop policy: the client fell too far behind, so nothing more
// is queued or written and the socket closes unflushed.
func (c *conn) abort(reason string) {
	if c.markDead() && c.onDrop != nil {
		c.onDrop(reason) // before the socket closes: whoever sees it closed can see it counted
	}
	c.close()
}

// markDead stops all queueing and writing; it reports whether the conn was
// alive until now.
func (c *conn) markDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := !c.dead
	c.closing, c.dead = true, true
	c.queue = nil
	return first
}

// sendFinal queues a last frame; the socket closes once it is written.
func (c *conn) sendFinal(frame []byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.queue = append(c.queue, frame, nil) // nil marks "close now"
	c.mu.Unlock()
	c.wake()
}

// close drops the socket without flushing.
func (c *conn) close() {
	c.once.Do(func() { close(c.kill) })
}

func (c *conn) writeLoop() {
	defer close(c.done)
	defer c.closeSocket()
	defer c.stopLinger()
	raw := c.ws.UnderlyingConn()
	var batch [][]byte
	for {
		select {
		case <-c.kill:
			return
		case <-c.notify:
		}
		// Take everything queued: a burst (a joiner's quality scores, a
		// round's changes to every member) goes out in one write. Frames
		// queued while it is written wake the loop again (send) or wait
		// for their linger (sendSoon).
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.stopLingerLocked() // the frames that waited go now
		c.mu.Unlock()
		if len(batch) > 0 && !c.writeBatch(raw, batch) {
			return
		}
		clear(batch)
	}
}

func (c *conn) stopLinger() {
	c.mu.Lock()
	c.stopLingerLocked()
	c.mu.Unlock()
}

func (c *conn) stopLingerLocked() {
	if c.lingering {
		c.lingering = false
		c.lingerTimer.Stop() // a wake already on its way finds an empty queue
	}
}

// maxWriteBatch bounds the bytes writeBatch gathers into one write.
const maxWriteBatch = 64 << 10

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeBatch writes frames as WebSocket text messages, as many per write
// system call as fit in maxWriteBatch, instead of one call per message (the
// socket's cost at 250 members is the calls, not the bytes). Only writeLoop
// writes data frames; the library's control frames (a pong from the reader)
// are single writes too, and net.Conn serializes whole writes, so frames
// never interleave; nothing is written after a close frame (sendClose). A
// nil frame writes what came before it, then a close frame, and reports
// false (done); so does a failed write, or one after a close frame.
func (c *conn) writeBatch(raw net.Conn, frames [][]byte) bool {
	bp := writeBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 2*maxWriteBatch {
			*bp = (*bp)[:0]
			writeBufs.Put(bp)
		}
	}()
	flush := func() bool {
		if len(*bp) == 0 {
			return true
		}
		c.writeMu.Lock()
		if c.closeSent {
			c.writeMu.Unlock()
			return false
		}
		_ = raw.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		c.writes.Add(1)
		_, err := raw.Write(*bp)
		c.writeMu.Unlock()
		*bp = (*bp)[:0]
		if err != nil {
			c.writeFailed()
			return false
		}
		return true
	}
	for _, frame := range frames {
		if frame == nil {
			if flush() {
				c.sendClose(fws.CloseNormalClosure)
			}
			return false
		}
		*bp = appendTextFrame(*bp, frame)
		if len(*bp) >= maxWriteBatch && !flush() {
			return false
		}
	}
	return flush()
}

// appendTextFrame appends payload as one unmasked, final text frame (RFC
// 6455 section 5.2: a server's frames are not masked).
func appendTextFrame(b, payload []byte) []byte {
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x81, byte(n))
	case n <= 0xffff:
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// readerDrain bounds how long a failed write leaves the socket open for the
// reader (see writeFailed).
const readerDrain = time.Second

// writeFailed: the peer is gone (reset, broken pipe) or stalled. What it
// sent before it went may still wait in the socket, typically `leave`
// followed by a close that reset the connection because frames for it were
// unread; closing the socket now would throw that away and the member would
// wait out its resume grace instead of leaving. So nothing more is queued,
// and the socket stays open until the reader is done with it (it sees the
// reset after the buffered frames), for at most readerDrain.
func (c *conn) writeFailed() {
	c.markDead()
	t := time.NewTimer(readerDrain)
	defer t.Stop()
	select {
	case <-c.kill:
	case <-t.C:
	}
}

// closeSocket really closes the TCP connection. fasthttp's hijacked
// connection ignores Close, so the websocket's Close alone would leave the
// reader blocked until the peer gives up (seconds at shutdown, forever for a
// client that keeps pinging).
func (c *conn) closeSocket() {
	_ = c.ws.Close()
	if u, ok := c.ws.UnderlyingConn().(interface{ UnsafeConn() net.Conn }); ok {
		_ = u.UnsafeConn().Close()
	}
}
