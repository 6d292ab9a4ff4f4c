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
