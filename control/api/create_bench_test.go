package api_test

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
	"github.com/meridian-video/meridian/control/state"
)

// handlerBench calls the API's handler of a one-node cluster (rate limits
// off) the way fasthttp would for one request, without a socket.
type handlerBench struct {
	c       *clustertest.Cluster
	handler fasthttp.RequestHandler
	authz   []byte
	req     fasthttp.Request
	ctx     fasthttp.RequestCtx
	body    bytes.Reader
}

func newHandlerBench(b *testing.B) *handlerBench {
	c := clustertest.New(b, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.API.RateLimitPerKey, cfg.API.RateLimitPerIP = 0, 0
	}})
	return &handlerBench{c: c, handler: c.Node(0).App().Handler(), authz: []byte(c.Token())}
}

var benchRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}

// do runs one request with the cluster's token and fails the benchmark on
// any status but 200.
func (h *handlerBench) do(b *testing.B, method, uri string, body []byte) {
	h.req.Reset()
	h.req.Header.SetMethod(method)
	h.req.SetRequestURI(uri)
	h.req.Header.SetBytesV(fasthttp.HeaderAuthorization, h.authz)
	if body != nil {
		h.req.Header.SetContentType("application/json")
	}
	h.ctx.Init(&h.req, benchRemote, nil) // copies the request, but not a body stream
	if body != nil {
		// As the server hands it over (StreamRequestBody): a stream of
		// known length, which limitBody reads.
		h.body.Reset(body)
		h.ctx.Request.SetBodyStream(&h.body, len(body))
	}
	h.handler(&h.ctx)
	if h.ctx.Response.StatusCode() != fasthttp.StatusOK {
		b.Fatalf("%s %s: status %d: %s", method, uri, h.ctx.Response.StatusCode(), h.ctx.Response.Body())
	}
}

// BenchmarkCreateRoomHandler is one POST /v2/rooms through the API's
// handler on a one-node cluster: the request's whole path on the node a
// client calls (authentication, decoding, the Raft proposal, the FSM, the
// response), without a socket. B/op counts every goroutine's allocations,
// Raft's and the FSM's included — what the collector has to catch up with
// per create on a leader (docs/benchmarks.md, "Less allocation on the leader's HTTP path").
//
// new: every request a new customRoomId, so every one creates a room (as
// a customer creating a room per meeting). repeat: the same customRoomId
// every time, which after the first is answered with the existing room
// (the idempotent create: a lookup and a request record, no insert). Until
// 2026-12-05 this benchmark was repeat alone, under this one name.
//
//	go test -run '^$' -bench CreateRoomHandler -benchmem ./control/api/
func BenchmarkCreateRoomHandler(b *testing.B) {
	const tmpl = `{"customRoomId":"meeting-84663aeb-00000000","webhook":{"endPoint":"https://hooks.example.com/meridian/events","events":["session-started","session-ended","participant-joined","participant-left"]}}`
	counter := strings.Index(tmpl, "00000000")
	for _, fresh := range []bool{true, false} {
		name := "repeat"
		if fresh {
			name = "new"
		}
		b.Run(name, func(b *testing.B) {
			h := newHandlerBench(b)
			body := []byte(tmpl)
			n := 0
			create := func() {
				if fresh { // the next id, written over the digits in place
					n++
					for i, v := counter+7, n; i >= counter; i, v = i-1, v/10 {
						body[i] = byte('0' + v%10)
					}
				}
				h.do(b, fasthttp.MethodPost, "/v2/rooms", body)
			}
			for range 100 { // the token cache, the log, the indexes' first nodes
				create()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				create()
			}
			b.StopTimer()
			rooms := 0
			h.c.Node(0).Node().FSM().Read(func(s *state.Store) { rooms = s.RoomCount() })
			want := 1 // one customRoomId
			if fresh {
				want = 100 + b.N
			}
			if rooms != want {
				b.Fatalf("%d rooms after %d creates, want %d", rooms, 100+b.N, want)
			}
		})
	}
}

// BenchmarkGetRoomHandler is one GET /v2/rooms/{roomId} the same way: the
// token check, the read and the response (docs/benchmarks.md, "Where the
// three-node p99 goes").
//
//	go test -run '^$' -bench GetRoomHandler -benchmem ./control/api/
func BenchmarkGetRoomHandler(b *testing.B) {
	h := newHandlerBench(b)
	var room struct{ RoomID string }
	r := h.c.Do(0, "POST", "/v2/rooms", h.c.Token(), map[string]any{"customRoomId": "meeting-84663aeb-0"})
	if r.Status != fasthttp.StatusOK {
		b.Fatalf("create: %d %s", r.Status, r.Body)
	}
	r.JSON(b, &room)
	uri := "/v2/rooms/" + room.RoomID
	for range 100 { // the token cache
		h.do(b, fasthttp.MethodGet, uri, nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.do(b, fasthttp.MethodGet, uri, nil)
	}
}
