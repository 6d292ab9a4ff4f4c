package signal

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// TestFramesSentBeforeAResetAreRead: a client sends `leave` and closes its
// socket while frames for it are unread, so the close resets the
// connection. A write to it fails; the frames it sent before going must
// still be read (the chaos suite saw such a leave lost: the member waited
// out its 30 s resume grace instead of leaving). The server side here runs
// in a fixed order: the write fails first, then the handler reads.
func TestFramesSentBeforeAResetAreRead(t *testing.T) {
	reset := make(chan struct{})
	got := make(chan string, 1)
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/rtc", websocket.New(func(ws *websocket.Conn) {
		c := newConn(ws, 16, time.Second)
		go c.writeLoop()
		defer func() { c.close(); <-c.done }()
		c.send([]byte(`{"type":"pong"}`)) // unread by the client
		<-reset
		// A write to the reset peer fails.
		deadline := time.Now().Add(5 * time.Second)
		for c.send([]byte(`{"type":"pong"}`)) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- string(data)
	}))
	ws := serveAndDial(t, app)
	time.Sleep(100 * time.Millisecond) // the server's frame is in our receive buffer, unread
	if err := ws.WriteMessage(fws.TextMessage, []byte(`{"type":"leave"}`)); err != nil {
		t.Fatal(err)
	}
	tcp := ws.UnderlyingConn().(*net.TCPConn)
	_ = tcp.SetLinger(0) // close with a reset, as a close with unread data does
	_ = tcp.Close()
	close(reset)
	select {
	case s := <-got:
		if s != `{"type":"leave"}` {
			t.Fatalf("the server got %q, want the leave the client sent before it reset the connection", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server handler did not finish")
	}
}

// TestQueuedFramesArriveAsSeparateMessages: frames queued while nothing was
// written go out together (writeBatch) and must still reach a client as the
// same messages in the same order, whatever their length encoding (7-bit,
// 16-bit, 64-bit), across the batch's size limit, and followed by a normal
// close when the last one was final.
func TestQueuedFramesArriveAsSeparateMessages(t *testing.T) {
	var want [][]byte
	for i, n := range []int{0, 1, 125, 126, 127, 300, 0xffff, 0x10000, maxWriteBatch + 5000, 2, 3} {
		want = append(want, bytes.Repeat([]byte{byte('a' + i)}, n))
	}
	for i := range 500 { // a burst of small ones, as a joiner's quality scores
		want = append(want, fmt.Appendf(nil, `{"type":"connection-quality","data":{"participantId":"p%03d","score":100}}`, i))
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/rtc", websocket.New(func(ws *websocket.Conn) {
		c := newConn(ws, len(want)+1, 5*time.Second)
		for _, f := range want[:len(want)-1] {
			c.send(f)
		}
		c.sendFinal(want[len(want)-1])
		c.writeLoop() // everything is queued before the first write
	}))
	ws := serveAndDial(t, app)
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, w := range want {
		typ, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, len(want), err)
		}
		if typ != fws.TextMessage || !bytes.Equal(got, w) {
			t.Fatalf("message %d: type %d, %d bytes %.40q, want text, %d bytes %.40q", i, typ, len(got), got, len(w), w)
		}
	}
	if _, _, err := ws.ReadMessage(); !fws.IsCloseError(err, fws.CloseNormalClosure) {
		t.Fatalf("after the final frame: %v, want a normal close", err)
	}
}

// serveAndDial serves app on a free loopback port and opens a WebSocket to
// its /rtc.
func serveAndDial(t *testing.T, app *fiber.App) *fws.Conn {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	ws, _, err := fws.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/rtc", nil)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestFramesBeforeJoinedAreKeptOrTheSocketCloses: what the SFU says between a
// member's `join` and its `joined` (subscriber offers, candidates, tracks,
// presence) is held back and sent after `joined`. Up to the conn's queue size
// every frame must arrive, in order; beyond it the socket must close (the
// drop policy) instead of frames going missing while the session carries on
// (a fixed 128-frame buffer used to drop the rest silently).
func TestFramesBeforeJoinedAreKeptOrTheSocketCloses(t *testing.T) {
	const queue = 200
	frame := func(i int) []byte {
		return fmt.Appendf(nil, `{"type":"track-published","data":{"trackId":"t%03d"}}`, i)
	}
	joined := []byte(`{"type":"joined","data":{}}`)
	for _, held := range []int{150, queue - 1, queue} { // joined + held must fit the queue
		t.Run(fmt.Sprint(held), func(t *testing.T) {
			drops := make(chan string, 4)
			defer func() {
				// abort reports before it closes the socket, so by now a
				// report is in the channel.
				var got []string
				for len(drops) > 0 {
					got = append(got, <-drops)
				}
				want := []string(nil)
				if held >= queue {
					want = []string{dropHeldFull}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%d frames held back: the drop policy reported %q, want %q", held, got, want)
				}
			}()
			app := fiber.New(fiber.Config{DisableStartupMessage: true})
			app.Get("/rtc", websocket.New(func(ws *websocket.Conn) {
				c := newConn(ws, queue, 5*time.Second)
				c.onDrop = func(reason string) { drops <- reason }
				m := &member{conn: c}
				for i := range held {
					m.deliver(0, frame(i))
				}
				m.mu.Lock()
				m.sendJoinedLocked(joined, nil)
				m.mu.Unlock()
				c.writeLoop()
			}))
			ws := serveAndDial(t, app)
			defer ws.Close()
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			want := [][]byte{joined}
			for i := range held {
				want = append(want, frame(i))
			}
			for i, w := range want {
				_, got, err := ws.ReadMessage()
				if held >= queue {
					if err == nil {
						t.Fatalf("%d frames held back, with joined more than the queue's %d: message %d arrived, want the socket closed unflushed", held, queue, i)
					}
					if err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							t.Fatalf("%d frames held back: the socket stayed open", held)
						}
						return // closed: the client will join again
					}
					continue
				}
				if err != nil {
					t.Fatalf("%d frames held back: message %d of %d: %v", held, i, len(want), err)
				}
				if !bytes.Equal(got, w) {
					t.Fatalf("message %d: %q, want %q", i, got, w)
				}
			}
			if held >= queue {
				t.Fatalf("%d frames held back, with joined more than the queue's %d: all arrived", held, queue)
			}
		})
	}
}

// TestEventsShareAWriteAndKeepTheirOrder: frames sent with sendSoon (the
// presence and quality events a filling room sends every member once per
// joiner) wait for the conn's linger and then go out in one write; a frame
// sent with send takes the waiting ones along at once, in their order.
func TestEventsShareAWriteAndKeepTheirOrder(t *testing.T) {
	event := func(i int) []byte {
		return fmt.Appendf(nil, `{"type":"participant-joined","data":{"participantId":"p%03d"}}`, i)
	}
	urgent := []byte(`{"type":"offer","data":{}}`)
	for _, tc := range []struct {
		name   string
		linger time.Duration
		events int
		urgent bool // a send after the events
	}{
		{name: "events alone wait for the linger", linger: 500 * time.Millisecond, events: 20},
		{name: "a frame sent at once takes them along", linger: time.Minute, events: 5, urgent: true},
		{name: "no linger writes each at once", linger: 0, events: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conns := make(chan *conn, 1)
			app := fiber.New(fiber.Config{DisableStartupMessage: true})
			app.Get("/rtc", websocket.New(func(ws *websocket.Conn) {
				c := newConn(ws, 64, 5*time.Second)
				c.linger = tc.linger
				conns <- c
				c.writeLoop()
			}))
			// Read as a TCP stream: a websocket read that timed out cannot
			// be resumed, and the stream shows the frames' exact bytes.
			raw := serveAndDial(t, app).UnderlyingConn()
			defer raw.Close()
			c := <-conns
			defer c.close()
			read := func(frames [][]byte, deadline time.Time) ([]byte, error) {
				var want []byte
				for _, f := range frames {
					want = appendTextFrame(want, f)
				}
				got := make([]byte, 0, len(want))
				buf := make([]byte, 4096)
				_ = raw.SetReadDeadline(deadline)
				for len(got) < len(want) {
					n, err := raw.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						return got, err
					}
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("the socket carried %q, want these frames in order: %q", got, want)
				}
				return got, nil
			}
			if tc.linger == 0 {
				for i := range tc.events {
					c.sendSoon(event(i))
					if _, err := read([][]byte{event(i)}, time.Now().Add(10*time.Second)); err != nil {
						t.Fatalf("event %d without a linger: %v", i, err)
					}
				}
				if n := c.writes.Load(); n != int64(tc.events) {
					t.Fatalf("%d events without a linger took %d writes, want one each", tc.events, n)
				}
				return
			}
			// Two rounds: the second must wait and be written like the first.
			for round := 1; round <= 2; round++ {
				var want [][]byte
				start := time.Now()
				for i := range tc.events {
					c.sendSoon(event(round*100 + i))
					want = append(want, event(round*100+i))
				}
				if tc.urgent {
					c.send(urgent)
					want = append(want, urgent)
				} else if got, err := read(want, start.Add(tc.linger/2)); err == nil || len(got) > 0 {
					t.Fatalf("round %d: %q arrived %v after it was sent, before the %v linger", round, got, time.Since(start), tc.linger)
				}
				if _, err := read(want, time.Now().Add(10*time.Second)); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if n := c.writes.Load(); n != int64(round) {
					t.Fatalf("after round %d (%d frames each) the conn made %d writes, want %d", round, len(want), n, round)
				}
			}
		})
	}
}

// TestNothingIsWrittenAfterTheCloseAnswer: once the edge has answered a
// client's close frame, no data frame may follow (RFC 6455 section 5.5.1),
// not even a batch writeLoop had taken before the close arrived. Here the
// close is answered first and such a batch is written after it.
func TestNothingIsWrittenAfterTheCloseAnswer(t *testing.T) {
	conns := make(chan *conn, 1)
	written := make(chan bool, 1)
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/rtc", websocket.New(func(ws *websocket.Conn) {
		c := newConn(ws, 16, 5*time.Second)
		conns <- c
		_, _, err := ws.ReadMessage() // the client's close, answered by the handler
		if !fws.IsCloseError(err, fws.CloseNormalClosure) {
			t.Errorf("the server read %v, want the client's close", err)
		}
		written <- c.writeBatch(ws.UnderlyingConn(), [][]byte{[]byte(`{"type":"participant-joined","data":{}}`)})
		if c.send([]byte(`{"type":"pong"}`)) {
			t.Error("a frame was queued after the close was answered")
		}
		c.closeSocket()
	}))
	ws := serveAndDial(t, app)
	<-conns
	if err := ws.WriteMessage(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	if <-written {
		t.Error("writeBatch reported a batch written after the close answer")
	}
	raw := ws.UnderlyingConn()
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 1024)
	for {
		n, err := raw.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break // the server closed the socket
		}
	}
	want := []byte{0x88, 2, 0x03, 0xe8} // one close frame, code 1000, and nothing after it
	if !bytes.Equal(got, want) {
		t.Fatalf("after the client's close the socket carried % x, want only the close answer % x", got, want)
	}
}
