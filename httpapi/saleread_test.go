package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// TestGetSaleETag: a sale's answer carries an ETag of its body and
// Cache-Control: no-cache; an If-None-Match naming it is answered 304
// without a body; a purchase, or the clock closing the sale, makes a new
// answer with a new tag, which the old tag does not name.
func TestGetSaleETag(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	get := func(h hdr) *resp {
		t.Helper()
		return e.do("GET", "/v1/sales/s1", h, "")
	}
	first := e.want(get(nil), 200, "")
	tag := first.header.Get("ETag")
	if len(tag) != 18 || tag[0] != '"' || tag[17] != '"' {
		t.Fatalf("ETag %q, want 16 hex digits, quoted", tag)
	}
	if cc := first.header.Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("Cache-Control %q", cc)
	}
	if ct := first.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if want := etagOf(first.body); tag != string(want[:]) {
		t.Fatalf("ETag %s is not the body's (%s)", tag, want)
	}
	if again := e.want(get(nil), 200, ""); again.header.Get("ETag") != tag || !bytes.Equal(again.body, first.body) {
		t.Fatalf("an unchanged sale answered %s %q, then %s %q", tag, first.body, again.header.Get("ETag"), again.body)
	}

	for _, inm := range []string{tag, "W/" + tag, `"0000000000000000", ` + tag, `"x",W/` + tag, "*"} {
		r := get(hdr{"If-None-Match": inm})
		if r.status != 304 || len(r.body) != 0 || r.header.Get("ETag") != tag || r.header.Get("Cache-Control") != "no-cache" {
			t.Fatalf("If-None-Match %s: %d %q, ETag %q, Cache-Control %q", inm, r.status, r.body, r.header.Get("ETag"), r.header.Get("Cache-Control"))
		}
	}
	if r := e.do("HEAD", "/v1/sales/s1", hdr{"If-None-Match": tag}, ""); r.status != 304 {
		t.Fatalf("HEAD with the current tag: %d", r.status)
	}
	if n := e.metric(`onsale_http_requests_total{route="get_sale",status="304"}`); n != "6" {
		t.Fatalf("304s counted: %s, want 6", n)
	}
	for _, inm := range []string{`"0000000000000000"`, tag[:17], tag[1:], "", ","} {
		if r := get(hdr{"If-None-Match": inm}); r.status != 200 || !bytes.Equal(r.body, first.body) {
			t.Fatalf("If-None-Match %q: %d %q", inm, r.status, r.body)
		}
	}

	// A buyer answered for a purchase reads it back, old tag or not.
	e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "")
	bought := e.want(get(hdr{"If-None-Match": tag}), 200, "")
	if bought.header.Get("ETag") == tag {
		t.Fatal("the purchase kept the ETag")
	}
	var sale struct {
		Status string `json:"status"`
		Tiers  []struct {
			ID        string `json:"id"`
			Held      int    `json:"held"`
			Available int    `json:"available"`
		} `json:"tiers"`
	}
	if err := json.Unmarshal(bought.body, &sale); err != nil || sale.Tiers[0].Held != 2 || sale.Tiers[0].Available != 8 || sale.Status != "open" {
		t.Fatalf("after the purchase: %+v %v", sale, err)
	}

	// The clock closes a sale without a new view: a new answer all the same.
	e.putSale("s2", 10, 4)
	open := e.want(e.do("GET", "/v1/sales/s2", nil, ""), 200, "")
	e.clock.Advance(25 * time.Hour)
	closed := e.want(e.do("GET", "/v1/sales/s2", hdr{"If-None-Match": open.header.Get("ETag")}, ""), 200, "")
	if view, _ := e.eng.SaleView("s2"); view.Version != 1 {
		t.Fatalf("s2 has view %d: the test wants the clock alone to close it", view.Version)
	}
	if closed.str("status") != "closed" || open.str("status") != "open" || closed.header.Get("ETag") == open.header.Get("ETag") {
		t.Fatalf("%s ETag %s, then after closes_at %s ETag %s", open.body, open.header.Get("ETag"), closed.body, closed.header.Get("ETag"))
	}
	e.want(e.do("GET", "/v1/sales/nope", hdr{"If-None-Match": "*"}, ""), 404, "unknown_sale")
}

// TestEtagListMatches: If-None-Match lists, compared weakly.
func TestEtagListMatches(t *testing.T) {
	tag := []byte(`"00000000000000ab"`)
	for _, c := range []struct {
		list string
		want bool
	}{
		{`"00000000000000ab"`, true},
		{`W/"00000000000000ab"`, true},
		{` "a" , "00000000000000ab" `, true},
		{`"a",W/"00000000000000ab"`, true},
		{`*`, true},
		{`"00000000000000ac"`, false},
		{`"00000000000000ab`, false},
		{`00000000000000ab`, false},
		{`W/`, false},
		{`"a" junk "00000000000000ab"`, false},
		{``, false},
	} {
		if got := etagListMatches([]byte(c.list), tag); got != c.want {
			t.Errorf("%q: %v, want %v", c.list, got, c.want)
		}
	}
}

// TestGetSaleAnswerIsShared: polls of one view get the same stored bytes,
// encoded once; the body fasthttp writes is that answer's.
func TestGetSaleAnswerIsShared(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	h := e.srv.Handler()
	poll := func() []byte {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.SetRequestURI("/v1/sales/s1")
		h(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		return ctx.Response.Body()
	}
	a, b := poll(), poll()
	if &a[0] != &b[0] {
		t.Fatal("two polls of one view encoded it twice")
	}
	view, err := e.eng.SaleView("s1")
	if err != nil {
		t.Fatal(err)
	}
	want := append(appendSale(nil, view, e.clock.Now().UnixMilli()), '\n')
	if !bytes.Equal(a, want) {
		t.Fatalf("stored answer %q, encoded now %q", a, want)
	}
}

// TestSaleStatusSpan: at every time inside the span saleStatusSpan gives,
// saleStatus gives the same status, and the span holds the time it was
// asked at.
func TestSaleStatusSpan(t *testing.T) {
	const opens, closes = 1000, 2000
	times := []int64{math.MinInt64, -1, 0, 999, 1000, 1001, 1999, 2000, 2001, math.MaxInt64 - 1}
	for _, sl := range []engine.Sale{
		{SaleConfig: engine.SaleConfig{OpensAtMs: opens, ClosesAtMs: closes}},
		{SaleConfig: engine.SaleConfig{OpensAtMs: opens, ClosesAtMs: closes}, Closed: true},
		{SaleConfig: engine.SaleConfig{OpensAtMs: opens, ClosesAtMs: closes}, Archived: true},
		{SaleConfig: engine.SaleConfig{OpensAtMs: closes, ClosesAtMs: opens}}, // not a valid sale; still consistent
	} {
		for _, at := range times {
			status, from, until := saleStatusSpan(&sl, at)
			if status != saleStatus(&sl, at) || at < from || at >= until {
				t.Fatalf("%+v at %d: %s [%d, %d)", sl, at, status, from, until)
			}
			for _, other := range times {
				if from <= other && other < until && saleStatus(&sl, other) != status {
					t.Fatalf("%+v: %s at %d, span [%d, %d), but %s at %d", sl, status, at, from, until, saleStatus(&sl, other), other)
				}
			}
		}
	}
}

// TestGetSaleOnTheRealClock: with Config.Now left to time.Now, a poll
// takes its time from fasthttp's (requestTime), which is the clock's.
func TestGetSaleOnTheRealClock(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.Now = nil }})
	if !e.srv.realClock {
		t.Fatal("Config.Now nil is not the real clock")
	}
	now := time.Now()
	body := fmt.Sprintf(`{"name":"Now","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,"per_user_limit":4,
		"tiers":[{"id":"floor","name":"Floor","price_cents":5000,"stock":5}]}`,
		now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	e.want(e.do("PUT", "/v1/admin/sales/rt", e.admin(), body), 201, "")
	if got := e.want(e.do("GET", "/v1/sales/rt", nil, ""), 200, "").str("status"); got != "open" {
		t.Fatalf("status %q on the real clock, want open", got)
	}
}
