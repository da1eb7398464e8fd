package shim

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// The ceiling's fixed answers: the size and shape of onsale's, computed by
// nothing. A purchase gets onsale's most common flash-sale answer, 409
// sold_out, so that the client does the same work per answer as against
// onsale after the sell-out (and starts no payments or cancels).
var (
	ceilingSoldOut = []byte(`{"type":"about:blank","title":"Conflict","status":409,"detail":"0 tickets of tier \"ga\" left","code":"sold_out"}`)
	ceilingOrder   = []byte(`{"order_id":"flash_0123456789abcdef01234567","status":"pending","sale_id":"flash","tier":"ga","quantity":1,"amount_cents":4500,"currency":"EUR","expires_at":"2030-01-01T00:00:00Z","needs_refund":false}`)
	ceilingSale    = []byte(`{"id":"flash","name":"Flash","currency":"EUR","tiers":[{"id":"ga","name":"General admission","price_cents":4500,"stock":10000,"available":0,"held":0,"sold":0}]}`)
	ceilingEmpty   = []byte(`{}`)
)

// ceilingHandler answers every route of the API with a fixed body: what a
// fasthttp server costs before it does any work. It reads no body and
// checks no token.
func ceilingHandler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	ctx.SetContentType("application/json")
	switch {
	case bytes.HasSuffix(path, []byte("/purchase")):
		ctx.SetStatusCode(409)
		ctx.SetContentType("application/problem+json")
		ctx.SetBody(ceilingSoldOut)
	case bytes.HasPrefix(path, []byte("/v1/orders/")), bytes.Equal(path, []byte("/v1/payments/webhook")):
		ctx.SetBody(ceilingOrder)
	case bytes.HasPrefix(path, []byte("/v1/sales/")):
		ctx.SetBody(ceilingSale)
	default:
		ctx.SetBody(ceilingEmpty)
	}
}
