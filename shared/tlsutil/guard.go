package tlsutil

import (
	"bytes"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
)

// InternalPrefix is where node-to-node routes live on every listener.
const InternalPrefix = "/internal"

// RequireClientCert wraps a fasthttp handler (a fiber app's server) so
// that requests under InternalPrefix are answered 403 unless the connection
// presented a client certificate that verified against the listener's
// ClientCAs (ListenerConfig). The path is compared the way fiber routes it
// (case-insensitively, trailing slashes ignored) and also after
// percent-decoding and collapsing repeated slashes, so no spelling of an
// internal route slips past.
func RequireClientCert(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if isInternal(ctx.URI().PathOriginal()) || isInternal(ctx.Path()) {
			if cs := ctx.TLSConnectionState(); cs == nil || len(cs.VerifiedChains) == 0 {
				ctx.Response.Header.SetContentType("application/json")
				ctx.SetStatusCode(fasthttp.StatusForbidden)
				ctx.SetBodyString(`{"statusCode":403,"error":"Forbidden","message":"node-to-node routes require a client certificate from the cluster CA"}`)
				return
			}
		}
		next(ctx)
	}
}

// isInternal reports whether a request path addresses an internal route;
// a path that cannot be decoded counts as internal (fail closed).
func isInternal(raw []byte) bool {
	p := string(bytes.ToLower(raw))
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if dec, err := url.PathUnescape(p); err != nil {
		return true
	} else if dec != p {
		p = strings.ToLower(dec)
	}
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p == InternalPrefix || strings.HasPrefix(p, InternalPrefix+"/")
}
