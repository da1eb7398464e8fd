package shim

import (
	"bytes"
	"fmt"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// The ceiling's answers to a purchase.
const (
	// CeilingSoldOut answers every purchase 409 sold_out: onsale's most
	// common answer in a flash sale after the sell-out. The client then
	// starts no payments or cancels.
	CeilingSoldOut = "sold_out"
	// CeilingCreated answers every purchase 201 with a new order (a unique
	// id from a counter): onsale's answer while stock lasts, so that the
	// client decodes orders and sends their payments and cancels as it
	// does against onsale.
	CeilingCreated = "created"
)

// The ceiling's fixed answers: the size and shape of onsale's, computed by
// nothing.
var (
	ceilingSoldOut   = []byte(`{"type":"about:blank","title":"Conflict","status":409,"detail":"0 tickets of tier \"ga\" left","code":"sold_out"}`)
	ceilingOrder     = []byte(`{"order_id":"flash_0123456789abcdef01234567","status":"pending","sale_id":"flash","tier":"ga","quantity":1,"amount_cents":4500,"currency":"EUR","expires_at":"2030-01-01T00:00:00Z","needs_refund":false}`)
	ceilingOrderHead = []byte(`{"order_id":"sustained_00000000`) // + 16 hex digits: onsale's id length
	ceilingOrderTail = []byte(`","status":"pending","sale_id":"sustained","tier":"ga","quantity":1,"amount_cents":4500,"currency":"EUR","expires_at":"2030-01-01T00:00:00Z","needs_refund":false}`)
	ceilingSale      = []byte(`{"id":"flash","name":"Flash","currency":"EUR","tiers":[{"id":"ga","name":"General admission","price_cents":4500,"stock":10000,"available":0,"held":0,"sold":0}]}`)
	ceilingEmpty     = []byte(`{}`)
)

// ceiling answers every route of the API with a fixed body: what a
// fasthttp server costs before it does any work. It reads no body and
// checks no token.
type ceiling struct {
	created bool
	orders  atomic.Uint64
}

func newCeiling(purchase string) (*ceiling, error) {
	switch purchase {
	case "", CeilingSoldOut:
		return &ceiling{}, nil
	case CeilingCreated:
		return &ceiling{created: true}, nil
	}
	return nil, fmt.Errorf("shim: unknown ceiling purchase answer %q", purchase)
}

func (c *ceiling) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	ctx.SetContentType("application/json")
	switch {
	case bytes.HasSuffix(path, []byte("/purchase")) && c.created:
		var buf [256]byte
		b := append(buf[:0], ceilingOrderHead...)
		b = appendHex16(b, c.orders.Add(1))
		b = append(b, ceilingOrderTail...)
		ctx.SetStatusCode(201)
		ctx.SetBody(b)
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

// appendHex16 appends n as 16 hex digits.
func appendHex16(b []byte, n uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(n>>uint(shift))&0xf])
	}
	return b
}
