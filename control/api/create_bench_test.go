package api_test

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/meridian-video/meridian/control/cluster/clustertest"
	"github.com/meridian-video/meridian/control/server"
)

// BenchmarkCreateRoomHandler is one POST /v2/rooms through the API's
// handler on a one-node cluster: the request's whole path on the node a
// client calls (authentication, decoding, the Raft proposal, the FSM, the
// response), without a socket. B/op counts every goroutine's allocations,
// Raft's and the FSM's included — what the collector has to catch up with
// per create on a leader (docs/benchmarks.md, "Less allocation on the leader's HTTP path").
//
//	go test -run '^$' -bench CreateRoomHandler -benchmem ./control/api/
func BenchmarkCreateRoomHandler(b *testing.B) {
	c := clustertest.New(b, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.API.RateLimitPerKey, cfg.API.RateLimitPerIP = 0, 0
	}})
	handler := c.Node(0).App().Handler()
	authz := []byte(c.Token())
	body := []byte(`{"customRoomId":"meeting-84663aeb-0","webhook":{"endPoint":"https://hooks.example.com/meridian/events","events":["session-started","session-ended","participant-joined","participant-left"]}}`)
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	var req fasthttp.Request
	var ctx fasthttp.RequestCtx
	create := func() {
		req.Reset()
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("/v2/rooms")
		req.Header.SetContentType("application/json")
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, authz)
		req.SetBody(body)
		ctx.Init(&req, remote, nil)
		handler(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	for range 100 { // the token cache, the log, the indexes' first nodes
		create()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		create()
	}
}

// BenchmarkGetRoomHandler is one GET /v2/rooms/{roomId} through the API's
// handler on a one-node cluster, as BenchmarkCreateRoomHandler: the token
// check, the read and the response, without a socket.
//
//	go test -run '^$' -bench GetRoomHandler -benchmem ./control/api/
func BenchmarkGetRoomHandler(b *testing.B) {
	c := clustertest.New(b, 1, clustertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.API.RateLimitPerKey, cfg.API.RateLimitPerIP = 0, 0
	}})
	var room struct{ RoomID string }
	if r := c.Do(0, "POST", "/v2/rooms", c.Token(), map[string]any{"customRoomId": "meeting-84663aeb-0"}); r.Status != fasthttp.StatusOK {
		b.Fatalf("create: %d %s", r.Status, r.Body)
	} else {
		r.JSON(b, &room)
	}
	handler := c.Node(0).App().Handler()
	authz := []byte(c.Token())
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	var req fasthttp.Request
	var ctx fasthttp.RequestCtx
	get := func() {
		req.Reset()
		req.Header.SetMethod(fasthttp.MethodGet)
		req.SetRequestURI("/v2/rooms/" + room.RoomID)
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, authz)
		ctx.Init(&req, remote, nil)
		handler(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	for range 100 { // the token cache
		get()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		get()
	}
}
