package shim

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/bench/api"
)

func TestVerifySignature(t *testing.T) {
	secret := []byte("whsec")
	body := []byte(`{"id":"evt_1"}`)
	const now = 1_700_000_000
	good := api.Sign(secret, now, body)
	if !verifySignature(secret, good, body, now) {
		t.Fatal("good signature refused")
	}
	for name, c := range map[string]struct {
		header string
		body   []byte
		now    int64
	}{
		"other body":       {good, []byte(`{"id":"evt_2"}`), now},
		"other secret":     {api.Sign([]byte("other"), now, body), body, now},
		"too old":          {good, body, now + signatureToleranceSec + 1},
		"from the future":  {good, body, now - signatureToleranceSec - 1},
		"no header":        {"", body, now},
		"no v1":            {"t=1700000000", body, now},
		"not hex":          {"t=1700000000,v1=zz", body, now},
		"bad timestamp":    {"t=abc,v1=00", body, now},
		"truncated digest": {good[:len(good)-2], body, now},
	} {
		if verifySignature(secret, c.header, c.body, c.now) {
			t.Errorf("%s: accepted", name)
		}
	}
	if !verifySignature(secret, good, body, now+signatureToleranceSec) {
		t.Error("signature at the edge of the tolerance refused")
	}
}

// TestCeilingPurchaseAnswers: the ceiling answers sold_out by default and,
// for the sustained scenario, a new order with its own id each time.
func TestCeilingPurchaseAnswers(t *testing.T) {
	purchase := func(c *ceiling) *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/sales/sustained/purchase")
		c.handle(&ctx)
		return &ctx
	}
	def, err := newCeiling("")
	if err != nil {
		t.Fatal(err)
	}
	if ctx := purchase(def); ctx.Response.StatusCode() != 409 || !bytes.Contains(ctx.Response.Body(), []byte(`"sold_out"`)) {
		t.Fatalf("default: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	created, err := newCeiling(CeilingCreated)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for range 3 {
		ctx := purchase(created)
		var o api.Order
		if err := json.Unmarshal(ctx.Response.Body(), &o); err != nil || ctx.Response.StatusCode() != 201 {
			t.Fatalf("created: %d %s (%v)", ctx.Response.StatusCode(), ctx.Response.Body(), err)
		}
		if len(o.OrderID) != len("sustained_")+24 || ids[o.OrderID] || o.AmountCents != 4500 {
			t.Fatalf("order %+v (ids so far %v)", o, ids)
		}
		ids[o.OrderID] = true
	}
	if _, err := newCeiling("maybe"); err == nil {
		t.Fatal("unknown answer accepted")
	}
}
