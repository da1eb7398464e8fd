package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

func TestHealthReadinessAndDocs(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")
	e.want(e.do("GET", "/readyz", nil, ""), 200, "")
	e.srv.SetReady(false)
	r := e.want(e.do("GET", "/readyz", nil, ""), 503, "unavailable")
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("503 without Retry-After: %v", r.header)
	}
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")
	e.srv.SetReady(true)
	e.want(e.do("HEAD", "/healthz", nil, ""), 200, "")

	r = e.want(e.do("GET", "/openapi.json", nil, ""), 200, "")
	if !bytes.Equal(r.body, openAPIDocument) {
		t.Errorf("/openapi.json is not the embedded document")
	}
}

func TestRoutingErrors(t *testing.T) {
	e := startEnv(t, envOptions{})
	for _, p := range []string{"/", "/v1", "/v1/sale", "/v1/sales/", "/v1/sales/s1/nope", "/v1/orders/x/y",
		"/v1/admin/sales/s1:delete", "/v1/admin/sales/:close", "/v1/admin/orders/x", "/nope"} {
		e.want(e.do("GET", p, nil, ""), 404, "not_found")
	}
	r := e.want(e.do("DELETE", "/v1/sales/s1", nil, ""), 405, "method_not_allowed")
	if r.header.Get("Allow") != "GET" {
		t.Errorf("Allow: %q", r.header.Get("Allow"))
	}
	e.want(e.do("GET", "/v1/sales/s1/purchase", nil, ""), 405, "method_not_allowed")
}

func TestAdminRoutesNeedTheAdminToken(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	routes := []struct{ method, path, body string }{
		{"PUT", "/v1/admin/sales/s2", e.saleJSON(1, 1)},
		{"POST", "/v1/admin/sales/s1:close", ""},
		{"POST", "/v1/admin/sales/s1:reopen", ""},
		{"POST", "/v1/admin/sales:load", `{"sales":[]}`},
		{"GET", "/v1/admin/sales", ""},
		{"GET", "/v1/admin/sales/s1/orders", ""},
		{"POST", "/v1/admin/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/refund", ""},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			e := e.sub(t)
			e.want(e.do(rt.method, rt.path, nil, rt.body), 401, "unauthorized")
			e.want(e.do(rt.method, rt.path, hdr{"Authorization": "Bearer wrong"}, rt.body), 401, "unauthorized")
			e.want(e.do(rt.method, rt.path, hdr{"Authorization": "Basic " + e.adminToken}, rt.body), 401, "unauthorized")
			e.want(e.do(rt.method, rt.path, hdr{"Authorization": "Bearer " + e.adminToken + "x"}, rt.body), 401, "unauthorized")
			e.want(e.do(rt.method, rt.path, e.buyer("u1"), rt.body), 403, "forbidden")
			e.want(e.do(rt.method, rt.path, hdr{"Authorization": "Bearer " + e.doorToken}, rt.body), 403, "forbidden")
		})
	}
	// The scheme is case-insensitive.
	e.want(e.do("GET", "/v1/admin/sales", hdr{"Authorization": "bearer " + e.adminToken}, ""), 200, "")
	r := e.do("GET", "/v1/admin/sales", nil, "")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: %v", r.header)
	}
}

func TestBuyerTokens(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 10)
	purchase := func(h hdr) *resp {
		return e.do("POST", "/v1/sales/s1/purchase", h.with("Idempotency-Key", "k1"), `{"tier":"floor","quantity":1}`)
	}
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) hdr {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return hdr{"Authorization": "Bearer " + tok}
	}
	now := e.clock.Now()
	exp := now.Add(time.Hour).Unix()
	e.want(purchase(hdr{}), 401, "unauthorized")
	e.want(purchase(hdr{"Authorization": "Bearer not.a.jwt"}), 401, "unauthorized")
	e.want(purchase(sign(jwt.SigningMethodHS256, []byte("other secret"), jwt.MapClaims{"sub": "u1", "exp": exp})), 401, "unauthorized")
	e.want(purchase(sign(jwt.SigningMethodHS512, e.userSecret, jwt.MapClaims{"sub": "u1", "exp": exp})), 401, "unauthorized")
	e.want(purchase(sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "u1", "exp": exp})), 401, "unauthorized")
	e.want(purchase(sign(jwt.SigningMethodHS256, e.userSecret, jwt.MapClaims{"sub": "u1"})), 401, "unauthorized")           // no exp
	e.want(purchase(sign(jwt.SigningMethodHS256, e.userSecret, jwt.MapClaims{"exp": exp})), 401, "unauthorized")            // no sub
	e.want(purchase(sign(jwt.SigningMethodHS256, e.userSecret, jwt.MapClaims{"sub": "", "exp": exp})), 401, "unauthorized") // empty sub
	e.want(purchase(sign(jwt.SigningMethodHS256, e.userSecret, jwt.MapClaims{"sub": strings.Repeat("u", 129), "exp": exp})), 401, "unauthorized")
	expired := sign(jwt.SigningMethodHS256, e.userSecret, jwt.MapClaims{"sub": "u1", "exp": now.Add(-time.Minute).Unix()})
	r := e.want(purchase(expired), 401, "unauthorized")
	if !strings.Contains(r.str("detail"), "expired") {
		t.Errorf("detail %q", r.str("detail"))
	}
	e.want(purchase(hdr{"Authorization": "Bearer " + e.adminToken}), 403, "forbidden")
	e.want(purchase(hdr{"Authorization": "Bearer " + e.doorToken}), 403, "forbidden")

	// A valid token works, and keeps working from the cache until it
	// expires, then stops.
	good := sign(jwt.SigningMethodHS256, e.userSecret, jwt.MapClaims{"sub": "u1", "exp": now.Add(time.Minute).Unix()})
	e.want(purchase(good), 201, "")
	e.want(purchase(good), 200, "")
	e.clock.Advance(time.Minute + tokenLeeway)
	e.want(purchase(good), 401, "unauthorized")
}

func TestSaleAdmin(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.saleJSON(5, 4)), 201, "")
	if r.header.Get("Location") != "/v1/sales/s1" {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	sale := r.json()
	if sale["status"] != "open" || sale["id"] != "s1" {
		t.Errorf("sale %s", r.body)
	}
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.saleJSON(6, 4)), 200, "")
	r = e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "")
	tiers := r.json()["tiers"].([]any)
	if tier := tiers[0].(map[string]any); tier["stock"] != json.Number("6") || tier["available"] != json.Number("6") {
		t.Errorf("tier %v", tier)
	}
	e.want(e.do("GET", "/v1/sales/nope", nil, ""), 404, "unknown_sale")

	// Body checks.
	withID := strings.Replace(e.saleJSON(5, 4), `{"name"`, `{"id":"other","name"`, 1)
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), withID), 422, "invalid_request")
	sameID := strings.Replace(e.saleJSON(6, 4), `{"name"`, `{"id":"s1","name"`, 1)
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), sameID), 200, "")
	e.want(e.do("PUT", "/v1/admin/sales/bad.id", e.admin(), e.saleJSON(5, 4)), 422, "invalid_request")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(e.saleJSON(5, 4), `"EUR"`, `"eur"`, 1)), 422, "invalid_request")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(e.saleJSON(5, 4), `"name":"Concert"`, `"name":"Concert","Name":"x"`, 1)), 422, "invalid_request")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(e.saleJSON(5, 4), `"name":"Concert"`, `"name":"Concert","name":"x"`, 1)), 422, "invalid_request")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(e.saleJSON(5, 4), `"price_cents":5000,`, ``, 1)), 422, "invalid_request")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), ""), 400, "malformed_json")

	// Stock below sold + held, a removed tier, a currency change: 409.
	e.want(e.buy("s1", "u1", "k1", "floor", 3), 201, "")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.saleJSON(2, 4)), 409, "stock_below_committed")
	oneTier := strings.Replace(e.saleJSON(6, 4), `,
		{"id":"seat","name":"Seated","price_cents":8000,"stock":6}`, ``, 1)
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), oneTier), 409, "tier_removed")
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(e.saleJSON(6, 4), `"EUR"`, `"USD"`, 1)), 409, "currency_change")

	// Close and reopen.
	r = e.want(e.do("POST", "/v1/admin/sales/s1:close", e.admin(), ""), 200, "")
	if r.json()["closed"] != true || r.json()["status"] != "closed" {
		t.Errorf("closed sale %s", r.body)
	}
	e.want(e.buy("s1", "u2", "k1", "floor", 1), 409, "sale_closed")
	e.want(e.buy("s1", "u1", "k1", "floor", 3), 200, "") // a retry still answers
	e.want(e.do("POST", "/v1/admin/sales/s1:reopen", e.admin(), ""), 200, "")
	e.want(e.buy("s1", "u2", "k1", "floor", 1), 201, "")
	e.want(e.do("POST", "/v1/admin/sales/nope:close", e.admin(), ""), 404, "unknown_sale")

	// List.
	e.putSale("a0", 1, 1)
	r = e.want(e.do("GET", "/v1/admin/sales", e.admin(), ""), 200, "")
	sales := r.json()["sales"].([]any)
	if len(sales) != 2 || sales[0].(map[string]any)["id"] != "a0" {
		t.Errorf("list %s", r.body)
	}

	// A scheduled sale.
	future := strings.Replace(e.saleJSON(5, 4), e.clock.Now().Add(-time.Hour).Format(time.RFC3339),
		e.clock.Now().Add(time.Hour).Format(time.RFC3339), 1)
	r = e.want(e.do("PUT", "/v1/admin/sales/later", e.admin(), future), 201, "")
	if r.json()["status"] != "scheduled" {
		t.Errorf("status %v", r.json()["status"])
	}
	e.want(e.buy("later", "u1", "k1", "floor", 1), 409, "sale_not_open")
}

func TestLoadSalesAllOrNothing(t *testing.T) {
	e := startEnv(t, envOptions{})
	sale := func(id string, stock int) string {
		return strings.Replace(e.saleJSON(stock, 2), `{"name"`, fmt.Sprintf(`{"id":%q,"name"`, id), 1)
	}
	e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[`+sale("a", 1)+`,`+sale("b", -1)+`]}`), 422, "invalid_request")
	e.want(e.do("GET", "/v1/sales/a", nil, ""), 404, "unknown_sale")
	e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[`+sale("a", 1)+`,`+strings.Replace(sale("", 1), `"id":"",`, ``, 1)+`]}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[]}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[`+sale("a", 1)+`,`+sale("a", 2)+`]}`), 422, "invalid_request")

	var many []string
	for i := range 40 {
		many = append(many, sale(fmt.Sprintf("s%02d", i), 3))
	}
	r := e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[`+strings.Join(many, ",")+`]}`), 200, "")
	if n := len(r.json()["sales"].([]any)); n != 40 {
		t.Errorf("loaded %d sales", n)
	}
	// All or nothing across shards: one sale refused (stock below held), none changed.
	e.want(e.buy("s07", "u1", "k", "floor", 2), 201, "")
	many[0] = sale("s00", 9)
	many[7] = sale("s07", 1)
	e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[`+strings.Join(many, ",")+`]}`), 409, "stock_below_committed")
	r = e.want(e.do("GET", "/v1/sales/s00", nil, ""), 200, "")
	if tier := r.json()["tiers"].([]any)[0].(map[string]any); tier["stock"] != json.Number("3") {
		t.Errorf("s00 changed by a refused load: %v", tier)
	}
}

func TestPurchase(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 5, 4)
	r := e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "")
	o := r.json()
	id := o["order_id"].(string)
	if o["status"] != "pending" || o["amount_cents"] != json.Number("10000") || o["currency"] != "EUR" || o["sale_id"] != "s1" ||
		o["tier"] != "floor" || o["quantity"] != json.Number("2") || o["needs_refund"] != false {
		t.Errorf("order %s", r.body)
	}
	if _, ok := o["tickets"]; ok {
		t.Errorf("a pending order shows tickets: %s", r.body)
	}
	if r.header.Get("Location") != "/v1/orders/"+id {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	if exp, _ := time.Parse(time.RFC3339, o["expires_at"].(string)); !exp.Equal(e.clock.Now().Add(600 * time.Second)) {
		t.Errorf("expires_at %v", o["expires_at"])
	}

	// Replay and conflict.
	r2 := e.want(e.buy("s1", "u1", "k1", "floor", 2), 200, "")
	if r2.str("order_id") != id {
		t.Errorf("replay made another order: %s", r2.body)
	}
	e.want(e.buy("s1", "u1", "k1", "floor", 1), 422, "idempotency_conflict")
	e.want(e.buy("s1", "u1", "k1", "seat", 2), 422, "idempotency_conflict")
	// The same key of another user is another purchase.
	e.want(e.buy("s1", "u2", "k1", "floor", 1), 201, "")

	// Outcomes.
	e.want(e.buy("s1", "u1", "k2", "floor", 3), 409, "limit_exceeded")
	r = e.want(e.buy("s1", "u3", "k1", "floor", 3), 409, "sold_out")
	if r.json()["available"] != json.Number("2") {
		t.Errorf("sold_out without available: %s", r.body)
	}
	e.want(e.buy("nope", "u1", "k1", "floor", 1), 404, "unknown_sale")
	e.want(e.buy("s1", "u1", "k3", "balcony", 1), 422, "unknown_tier")
	e.want(e.buy("s1", "u1", "k4", "floor", 0), 422, "invalid_quantity")
	e.want(e.buy("s1", "u1", "k4", "floor", 65), 422, "invalid_quantity")

	// The request itself.
	h := e.buyer("u1")
	e.want(e.do("POST", "/v1/sales/s1/purchase", h, `{"tier":"floor","quantity":1}`), 400, "idempotency_key_missing")
	e.want(e.do("POST", "/v1/sales/s1/purchase", h.with("Idempotency-Key", strings.Repeat("k", 256)), `{"tier":"floor","quantity":1}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/sales/s1/purchase", h.with("Idempotency-Key", strings.Repeat("k", 255)), `{"tier":"floor","quantity":1}`), 201, "")
	e.want(e.do("POST", "/v1/sales/s1/purchase", h.with("Idempotency-Key", "a b"), `{"tier":"floor","quantity":1}`), 422, "invalid_request")
	for _, tt := range []struct {
		status int
		code   string
		bodies []string
	}{
		{422, "invalid_request", []string{`{}`, `{"quantity":1}`, `{"tier":"floor","quantity":1,"x":1}`,
			`{"tier":"floor","quantity":1,"quantity":1}`, `{"Tier":"floor","quantity":1}`, `{"tier":"floor","Quantity":1}`,
			`{"tier":"floor","quantity":"1"}`, `[{"tier":"floor","quantity":1}]`}},
		{400, "malformed_json", []string{``, `{"tier":"floor","quantity":1} {}`, `{"tier":"floor","quantity":1`}},
	} {
		for _, body := range tt.bodies {
			r := e.want(e.do("POST", "/v1/sales/s1/purchase", h.with("Idempotency-Key", "kx"), body), tt.status, tt.code)
			if strings.Contains(r.str("detail"), "httpapi.") {
				t.Errorf("detail names a Go type: %s", r.str("detail"))
			}
		}
	}
}

func TestOrdersOfBuyers(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 10)
	e.putSale("s2", 10, 10)
	id := e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "").str("order_id")
	e.want(e.buy("s2", "u1", "k1", "seat", 1), 201, "")
	other := e.want(e.buy("s1", "u2", "k1", "floor", 1), 201, "").str("order_id")

	e.want(e.do("GET", "/v1/orders/"+id, e.buyer("u1"), ""), 200, "")
	e.want(e.do("GET", "/v1/orders/"+id, e.buyer("u2"), ""), 404, "unknown_order")
	e.want(e.do("GET", "/v1/orders/"+id, e.admin(), ""), 200, "")
	e.want(e.do("GET", "/v1/orders/"+id, nil, ""), 401, "unauthorized")
	e.want(e.do("GET", "/v1/orders/"+id, hdr{"Authorization": "Bearer " + e.doorToken}, ""), 403, "forbidden")
	e.want(e.do("GET", "/v1/orders/s1.nope", e.buyer("u1"), ""), 404, "unknown_order")
	e.want(e.do("GET", "/v1/orders/nope", e.admin(), ""), 404, "unknown_order")

	r := e.want(e.do("GET", "/v1/me/orders", e.buyer("u1"), ""), 200, "")
	if n := len(r.json()["orders"].([]any)); n != 2 {
		t.Errorf("u1 has %d orders: %s", n, r.body)
	}
	r = e.want(e.do("GET", "/v1/me/orders?sale_id=s2", e.buyer("u1"), ""), 200, "")
	if n := len(r.json()["orders"].([]any)); n != 1 {
		t.Errorf("u1 has %d orders in s2", n)
	}
	e.want(e.do("GET", "/v1/me/orders?sale_id=nope", e.buyer("u1"), ""), 404, "unknown_sale")
	e.want(e.do("GET", "/v1/me/orders", e.admin(), ""), 403, "forbidden")

	// Cancel: another user's is unknown; the owner's releases the stock; twice is fine.
	e.want(e.do("POST", "/v1/orders/"+id+"/cancel", e.buyer("u2"), ""), 404, "unknown_order")
	r = e.want(e.do("POST", "/v1/orders/"+id+"/cancel", e.buyer("u1"), ""), 200, "")
	if r.str("status") != "cancelled" {
		t.Errorf("cancelled: %s", r.body)
	}
	e.want(e.do("POST", "/v1/orders/"+id+"/cancel", e.buyer("u1"), ""), 200, "")
	r = e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "")
	if tier := r.json()["tiers"].([]any)[0].(map[string]any); tier["held"] != json.Number("1") || tier["available"] != json.Number("9") {
		t.Errorf("after cancel: %v", tier)
	}
	// The admin cancels anyone's; a paid order cannot be cancelled.
	e.want(e.do("POST", "/v1/orders/"+other+"/cancel", e.admin(), ""), 200, "")
	paid := e.want(e.buy("s1", "u3", "k1", "floor", 1), 201, "").str("order_id")
	e.want(e.pay("evt_1", "payment.succeeded", paid, 5000, "EUR"), 200, "")
	e.want(e.do("POST", "/v1/orders/"+paid+"/cancel", e.buyer("u3"), ""), 409, "invalid_order_state")
}

func TestHoldExpires(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 2, 2)
	id := e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "").str("order_id")
	e.want(e.buy("s1", "u2", "k1", "floor", 1), 409, "sold_out")
	e.clock.Advance(601 * time.Second)
	status := ""
	for i := 0; i < 1000 && status != "expired"; i++ { // the engine's tick is every 5 ms
		status = e.want(e.do("GET", "/v1/orders/"+id, e.buyer("u1"), ""), 200, "").str("status")
	}
	if status != "expired" {
		t.Fatalf("order still %s", status)
	}
	e.want(e.buy("s1", "u2", "k1", "floor", 1), 201, "")
}

func TestPaymentWebhook(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 3, 3)
	id := e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "").str("order_id")

	body := fmt.Sprintf(`{"id":"evt_1","type":"payment.succeeded","order_id":%q,"amount_cents":10000,"currency":"EUR"}`, id)
	post := func(sig, body string) *resp {
		h := hdr{}
		if sig != "" {
			h["Onsale-Signature"] = sig
		}
		return e.do("POST", "/v1/payments/webhook", h, body)
	}
	now := e.clock.Now()
	good := SignWebhook(e.paySecret, []byte(body), now)
	v1 := good[strings.Index(good, "v1="):]

	// Bad signatures change nothing.
	e.want(post("", body), 401, "unauthorized")
	e.want(post("garbage", body), 401, "unauthorized")
	e.want(post(SignWebhook([]byte("wrong"), []byte(body), now), body), 401, "unauthorized")
	e.want(post(good, body+" "), 401, "unauthorized")                                                          // body changed
	e.want(post(SignWebhook(e.paySecret, []byte(body), now.Add(-301*time.Second)), body), 401, "unauthorized") // stale
	e.want(post(SignWebhook(e.paySecret, []byte(body), now.Add(301*time.Second)), body), 401, "unauthorized")  // future
	e.want(post(fmt.Sprintf("t=%d,v0=%s", now.Unix(), v1[3:]), body), 401, "unauthorized")                     // another scheme only
	if s := e.want(e.do("GET", "/v1/orders/"+id, e.admin(), ""), 200, "").str("status"); s != "pending" {
		t.Fatalf("a rejected webhook changed the order: %s", s)
	}

	// A failure of the wrong amount took no money: 422, nothing changes.
	wrong := strings.Replace(strings.Replace(body, "10000", "9999", 1), "succeeded", "failed", 1)
	e.want(post(SignWebhook(e.paySecret, []byte(wrong), now), wrong), 422, "payment_mismatch")
	// A success of the wrong amount or currency took money that is not the
	// order's: recorded as a refund to send back; the order stays pending.
	for i, wrong := range []string{strings.Replace(body, "10000", "9999", 1), strings.Replace(body, "EUR", "USD", 1)} {
		wrong = strings.Replace(wrong, "evt_1", fmt.Sprintf("evt_wrong%d", i), 1)
		r := e.want(post(SignWebhook(e.paySecret, []byte(wrong), now), wrong), 200, "")
		if r.str("status") != "pending" || r.json()["mismatch"] != true {
			t.Fatalf("mismatched success: %s", r.body)
		}
	}
	if refunds, _ := e.want(e.do("GET", "/v1/orders/"+id, e.admin(), ""), 200, "").json()["refunds"].([]any); len(refunds) != 2 {
		t.Fatalf("refunds: %v", refunds)
	}
	// An id that names a provider is that provider's route's own.
	named := strings.Replace(body, "evt_1", "stripe:pi_1", 1)
	e.want(post(SignWebhook(e.paySecret, []byte(named), now), named), 422, "invalid_request")

	// Several v1 entries (provider rotating its secret), within tolerance.
	rotating := fmt.Sprintf("t=%d, v1=%s, %s", now.Add(-299*time.Second).Unix(),
		strings.Repeat("ab", 32), SignWebhook(e.paySecret, []byte(body), now.Add(-299*time.Second))[strings.Index(good, "v1="):])
	r := e.want(post(rotating, body), 200, "")
	if r.str("status") != "paid" {
		t.Fatalf("paid: %s", r.body)
	}
	if _, ok := r.json()["tickets"]; ok {
		t.Errorf("the provider sees ticket codes: %s", r.body)
	}
	// Replay: 200, applied once.
	r = e.want(post(good, body), 200, "")
	if r.str("status") != "paid" {
		t.Errorf("replay: %s", r.body)
	}
	// The buyer now sees ticket codes.
	r = e.want(e.do("GET", "/v1/orders/"+id, e.buyer("u1"), ""), 200, "")
	tickets := r.json()["tickets"].([]any)
	if len(tickets) != 2 || tickets[1] != id+".1" {
		t.Errorf("tickets %v", tickets)
	}

	// Our own rotated secret (the old one) still verifies; payment.failed
	// cancels a pending order and releases its stock.
	id2 := e.want(e.buy("s1", "u2", "k1", "floor", 1), 201, "").str("order_id")
	failed := fmt.Sprintf(`{"id":"evt_2","type":"payment.failed","order_id":%q,"amount_cents":5000,"currency":"EUR"}`, id2)
	r = e.want(post(SignWebhook([]byte("old-payment-secret"), []byte(failed), now), failed), 200, "")
	if r.str("status") != "cancelled" {
		t.Errorf("payment.failed: %s", r.body)
	}
	r = e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "")
	if tier := r.json()["tiers"].([]any)[0].(map[string]any); tier["sold"] != json.Number("2") || tier["held"] != json.Number("0") {
		t.Errorf("after payments: %v", tier)
	}

	// Bodies that verify but are not acceptable.
	for _, b := range []string{
		strings.Replace(body, `"type":"payment.succeeded"`, `"type":"payment.refunded"`, 1),
		strings.Replace(body, `"currency":"EUR"`, `"currency":"EUR","extra":1`, 1),
		strings.Replace(body, `"id":"evt_1",`, ``, 1),
		strings.Replace(body, `,"amount_cents":10000`, ``, 1),
	} {
		e.want(post(SignWebhook(e.paySecret, []byte(b), now), b), 422, "invalid_request")
	}
	e.want(post(SignWebhook(e.paySecret, []byte(`not json`), now), `not json`), 400, "malformed_json")
	unknown := strings.Replace(body, id, "s1.aaaaaaaaaaaaaaaaaaaaaaaaaa", 1)
	unknown = strings.Replace(unknown, "evt_1", "evt_9", 1)
	e.want(post(SignWebhook(e.paySecret, []byte(unknown), now), unknown), 404, "unknown_order")
}

func TestCheckInAndRefund(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 5, 5)
	id := e.want(e.buy("s1", "u1", "k1", "floor", 2), 201, "").str("order_id")
	door := e.admin() // plain ticket ids are the admin's (checkin_test.go scans signed codes)
	e.want(e.do("POST", "/v1/checkin", hdr{"Authorization": "Bearer " + e.doorToken}, fmt.Sprintf(`{"ticket":%q}`, id+".0")), 403, "forbidden")
	checkin := func(h hdr, code string) *resp {
		return e.do("POST", "/v1/checkin", h, fmt.Sprintf(`{"ticket":%q}`, code))
	}
	e.want(checkin(door, id+".0"), 409, "ticket_not_valid") // pending
	e.want(e.do("POST", "/v1/admin/orders/"+id+"/refund", e.admin(), ""), 409, "invalid_order_state")
	e.want(e.pay("evt_1", "payment.succeeded", id, 10000, "EUR"), 200, "")

	e.want(checkin(nil, id+".0"), 401, "unauthorized")
	e.want(checkin(e.buyer("u1"), id+".0"), 403, "forbidden")
	r := e.want(checkin(door, id+".1"), 200, "")
	if r.json()["ticket_index"] != json.Number("1") {
		t.Errorf("check-in: %s", r.body)
	}
	e.want(checkin(door, id+".1"), 409, "already_checked_in")
	e.want(checkin(e.admin(), id+".0"), 200, "")
	e.want(checkin(door, id+".2"), 404, "unknown_ticket")
	e.want(checkin(door, "nope"), 404, "unknown_ticket")
	e.want(checkin(door, id), 404, "unknown_ticket")
	e.want(e.do("POST", "/v1/checkin", door, `{}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/checkin", door, `{"ticket":"x","Ticket":"y"}`), 422, "invalid_request")
	r = e.want(e.do("GET", "/v1/orders/"+id, e.buyer("u1"), ""), 200, "")
	if got := fmt.Sprint(r.json()["checked_in"]); got != "[0 1]" {
		t.Errorf("checked_in %s", got)
	}

	// Both tickets were used: a plain refund would put their seats on sale
	// again. Only a forced one goes through, and they stay sold.
	refund := func(body string) *resp { return e.do("POST", "/v1/admin/orders/"+id+"/refund", e.admin(), body) }
	e.want(refund(""), 409, "ticket_used")
	e.want(refund(`{"force":false}`), 409, "ticket_used")
	e.want(refund(`{"force":"yes"}`), 422, "invalid_request")
	e.want(refund(`{"forse":true}`), 422, "invalid_request")
	r = e.want(refund(`{"force":true}`), 200, "")
	if r.str("status") != "refunded" {
		t.Errorf("refund: %s", r.body)
	}
	sale := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").body
	if !strings.Contains(string(sale), `"sold":2`) {
		t.Errorf("used tickets went back on sale: %s", sale)
	}
	e.want(refund(`{"force":true}`), 409, "invalid_order_state")
	e.want(e.do("POST", "/v1/admin/orders/s1.aaaaaaaaaaaaaaaaaaaaaaaaaa/refund", e.admin(), ""), 404, "unknown_order")
	e.want(checkin(door, id+".0"), 409, "ticket_not_valid")
}

// TestDuplicateChargeIsRecorded: a second successful payment for a paid
// order, and one for a refunded order, are money to give back: 200 to the
// provider with applied false, on the order, in the export and counted.
func TestDuplicateChargeIsRecorded(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 5, 5)
	id := e.want(e.buy("s1", "u1", "k1", "floor", 1), 201, "").str("order_id")
	r := e.want(e.pay("evt_1", "payment.succeeded", id, 5000, "EUR"), 200, "")
	if r.json()["applied"] != true || r.json()["duplicate_charge"] != false {
		t.Fatalf("first payment: %s", r.body)
	}
	for i, want := range []bool{true, true} { // a new duplicate, then the same again
		r = e.want(e.pay("evt_2", "payment.succeeded", id, 5000, "EUR"), 200, "")
		if r.json()["applied"] != false || r.json()["duplicate_charge"] != want || r.str("status") != "paid" {
			t.Fatalf("second charge, delivery %d: %s", i, r.body)
		}
	}
	r = e.want(e.pay("evt_3", "payment.failed", id, 5000, "EUR"), 200, "")
	if r.json()["applied"] != false || r.json()["duplicate_charge"] != false || r.str("status") != "paid" {
		t.Fatalf("failure after success: %s", r.body)
	}
	e.want(e.do("POST", "/v1/admin/orders/"+id+"/refund", e.admin(), ""), 200, "")
	e.want(e.pay("evt_4", "payment.succeeded", id, 5000, "EUR"), 200, "")

	r = e.want(e.do("GET", "/v1/orders/"+id, e.buyer("u1"), ""), 200, "")
	charges, _ := r.json()["duplicate_charges"].([]any)
	if len(charges) != 2 || charges[0].(map[string]any)["event_id"] != "evt_2" ||
		charges[1].(map[string]any)["event_id"] != "evt_4" || charges[0].(map[string]any)["amount_cents"] != json.Number("5000") {
		t.Fatalf("duplicate_charges: %s", r.body)
	}
	csv := e.want(e.do("GET", "/v1/admin/sales/s1/orders?format=csv", e.admin(), ""), 200, "").body
	if !strings.Contains(string(csv), ",evt_2=5000@") || !strings.Contains(string(csv), " evt_4=5000@") {
		t.Fatalf("export lacks the duplicate charges:\n%s", csv)
	}
	metrics := e.want(e.do("GET", "/metrics", nil, ""), 200, "").body
	if !strings.Contains(string(metrics), "onsale_duplicate_charges_total 2\n") {
		t.Fatalf("metric: %s", metrics)
	}
}

func TestExportOrders(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 100, 100)
	var ids []string
	for i := range 7 {
		ids = append(ids, e.want(e.buy("s1", fmt.Sprintf("u%d", i), "k", "floor", 1), 201, "").str("order_id"))
	}
	var got []string
	cursor := ""
	for pages := 0; pages < 10; pages++ {
		r := e.want(e.do("GET", "/v1/admin/sales/s1/orders?limit=3&cursor="+cursor, e.admin(), ""), 200, "")
		for _, o := range r.json()["orders"].([]any) {
			got = append(got, o.(map[string]any)["order_id"].(string))
		}
		if cursor = r.str("next_cursor"); cursor == "" {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("export %v, want %v", got, ids)
	}
	r := e.want(e.do("GET", "/v1/admin/sales/s1/orders?format=csv&limit=5", e.admin(), ""), 200, "")
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "order_id,status,") || !strings.HasPrefix(lines[1], ids[0]+",pending,") {
		t.Errorf("csv:\n%s", r.body)
	}
	if r.header.Get("Next-Cursor") == "" {
		t.Errorf("csv page without Next-Cursor")
	}
	e.want(e.do("GET", "/v1/admin/sales/s1/orders?limit=0", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/admin/sales/s1/orders?format=xml", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/admin/sales/s1/orders?cursor=zz", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/admin/sales/nope/orders", e.admin(), ""), 404, "unknown_sale")
}

func TestUsersAndSessions(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 5, 5)
	r := e.want(e.do("POST", "/v1/users", nil, `{"username":"alice","password":"correct horse"}`), 201, "")
	if r.str("user_id") != "user:alice" {
		t.Errorf("register: %s", r.body)
	}
	e.want(e.do("POST", "/v1/users", nil, `{"username":"alice","password":"another password"}`), 409, "username_taken")
	for _, b := range []string{
		`{"username":"al","password":"correct horse"}`,
		`{"username":"Alice","password":"correct horse"}`,
		`{"username":"-alice","password":"correct horse"}`,
		`{"username":"bob","password":"short"}`,
		`{"username":"bob","password":"` + strings.Repeat("p", 73) + `"}`,
		`{"username":"bob","password":"correct horse","admin":true}`,
		`{"username":"bob","Password":"correct horse"}`,
	} {
		e.want(e.do("POST", "/v1/users", nil, b), 422, "invalid_request")
	}
	e.want(e.do("POST", "/v1/sessions", nil, `{"username":"alice","password":"wrong password"}`), 401, "invalid_credentials")
	e.want(e.do("POST", "/v1/sessions", nil, `{"username":"nobody","password":"correct horse"}`), 401, "invalid_credentials")
	e.want(e.do("POST", "/v1/sessions", nil, `{"username":"alice"}`), 401, "invalid_credentials")
	r = e.want(e.do("POST", "/v1/sessions", nil, `{"username":"alice","password":"correct horse"}`), 200, "")
	token := r.str("token")
	if exp, _ := time.Parse(time.RFC3339, r.str("expires_at")); !exp.Equal(e.clock.Now().Add(time.Hour)) {
		t.Errorf("expires_at %s", r.str("expires_at"))
	}
	h := hdr{"Authorization": "Bearer " + token, "Idempotency-Key": "k1"}
	r = e.want(e.do("POST", "/v1/sales/s1/purchase", h, `{"tier":"floor","quantity":1}`), 201, "")
	if r.str("user_id") != "user:alice" {
		t.Errorf("order of %s", r.str("user_id"))
	}
}

func TestLimits(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 5, 5)
	// Announced over the limit: 413 before the body is read. Sent by raw
	// bytes: a client still writing the body when the server answers and
	// closes gets a broken pipe instead of the answer (hostile_test.go
	// covers bodies that cross the limit while streaming).
	bodyConn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer bodyConn.Close()
	fmt.Fprintf(bodyConn, "POST /v1/sales/s1/purchase HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nIdempotency-Key: k\r\nContent-Length: %d\r\n\r\n",
		e.buyer("u1")["Authorization"], 64<<10+1)
	answer, _ := io.ReadAll(io.LimitReader(bodyConn, 4096))
	if !bytes.HasPrefix(answer, []byte("HTTP/1.1 413")) || !bytes.Contains(answer, []byte("body_too_large")) {
		t.Errorf("oversized body answered:\n%s", answer)
	}
	// Still serving.
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")

	// The load route takes larger documents.
	var sales []string
	for i := 0; len(strings.Join(sales, ",")) < 70<<10; i++ {
		sales = append(sales, strings.Replace(e.saleJSON(1, 1), `{"name"`, fmt.Sprintf(`{"id":"bulk%d","name"`, i), 1))
	}
	e.want(e.do("POST", "/v1/admin/sales:load", e.admin(), `{"sales":[`+strings.Join(sales, ",")+`]}`), 200, "")

	// A header beyond the read buffer: 431, sent by raw bytes since
	// net/http would refuse to send it.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", 9<<10))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 431")) || !bytes.Contains(buf[:n], []byte("header_too_large")) {
		t.Errorf("big header answered:\n%s", buf[:n])
	}
}

func TestPanicIsRecovered(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.srv.beforeHandle = func(r route) {
		if r == routeGetSale {
			panic("boom")
		}
	}
	e.want(e.do("GET", "/v1/sales/s1", nil, ""), 500, "internal")
	e.want(e.do("GET", "/healthz", nil, ""), 200, "")
	if !strings.Contains(e.logs.text(), "handler panicked") {
		t.Errorf("panic not logged")
	}
	r := e.want(e.do("GET", "/metrics", nil, ""), 200, "")
	if !strings.Contains(string(r.body), "onsale_http_panics_total 1") {
		t.Errorf("panic not counted")
	}
}

func TestEngineStoppedIsUnavailable(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 5, 5)
	e.eng.Close()
	r := e.want(e.buy("s1", "u1", "k1", "floor", 1), 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
}

func TestMetricsPage(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 1, 1)
	e.want(e.buy("s1", "u1", "k1", "floor", 1), 201, "")
	e.want(e.buy("s1", "u1", "k1", "floor", 1), 200, "")
	e.want(e.buy("s1", "u2", "k1", "floor", 1), 409, "sold_out")
	r := e.want(e.do("GET", "/metrics", nil, ""), 200, "")
	page := string(r.body)
	for _, want := range []string{
		`onsale_http_requests_total{route="purchase",status="201"} 1`,
		`onsale_http_requests_total{route="purchase",status="409"} 1`,
		`onsale_http_request_duration_seconds_bucket{route="purchase",le="+Inf"} 3`,
		`onsale_http_request_duration_seconds_count{route="admin_put_sale"} 1`,
		`onsale_purchases_total{outcome="created"} 1`,
		`onsale_purchases_total{outcome="replayed"} 1`,
		`onsale_purchases_total{outcome="sold_out"} 1`,
		`onsale_engine_inbox_depth{shard="0"}`,
		`go_goroutines`,
		`process_cpu_seconds_total`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestEveryEngineCodeHasAStatus(t *testing.T) {
	for _, c := range []engine.Code{
		engine.CodeUnknownSale, engine.CodeUnknownTier, engine.CodeUnknownOrder, engine.CodeUnknownTicket,
		engine.CodeSaleNotOpen, engine.CodeSaleClosed, engine.CodeSoldOut, engine.CodeLimitExceeded,
		engine.CodeInvalidQuantity, engine.CodeIdempotencyConflict, engine.CodeInvalidRequest,
		engine.CodeStockBelowCommitted, engine.CodeTierRemoved, engine.CodeCurrencyChange,
		engine.CodePaymentMismatch, engine.CodeInvalidOrderState, engine.CodeTicketNotValid,
		engine.CodeTicketAlreadyCheckIn,
	} {
		if _, ok := problemTable[string(c)]; !ok {
			t.Errorf("engine code %s has no HTTP status", c)
		}
	}
}

// TestOverloadedShardAnswers429: a full shard inbox is 429 overloaded with
// Retry-After, and once the load stops the process's goroutines come back
// to their count before it: nothing (a handler waiting on the engine, a
// connection, a timer) is left behind.
func TestOverloadedShardAnswers429(t *testing.T) {
	// fasthttp keeps an idle worker goroutine 10 s by default; 20 ms
	// lets the count settle within the test.
	e := startEnv(t, envOptions{shards: 1, inboxMax: 1,
		fasthttp: func(s *fasthttp.Server) { s.MaxIdleWorkerDuration = 20 * time.Millisecond }})
	e.putSale("s1", 1_000_000, 1_000_000)
	h := e.buyer("u1")
	e.client.CloseIdleConnections()
	baseline := settledGoroutines(t)
	saw := false
	for round := 0; round < 50 && !saw; round++ {
		results := make(chan *resp, 64)
		for i := range 64 {
			go func() {
				r := e.do("POST", "/v1/sales/s1/purchase", h.with("Idempotency-Key", fmt.Sprintf("r%d-%d", round, i)), `{"tier":"floor","quantity":1}`)
				results <- r
			}()
		}
		for range 64 {
			r := <-results
			switch {
			case r.status == 429:
				saw = true
				if r.code() != "overloaded" || r.header.Get("Retry-After") != "1" {
					t.Errorf("429: %s %v", r.body, r.header)
				}
			case r.status != 201:
				t.Errorf("unexpected %d %s", r.status, r.body)
			}
		}
	}
	if !saw {
		t.Fatal("64 concurrent purchases never overflowed an inbox of 1")
	}

	e.client.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for n > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > baseline {
		var dump bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Fatalf("%d goroutines 10 s after the load, %d before it:\n%s", n, baseline, dump.String())
	}
	t.Logf("goroutines: %d before the load, %d after it", baseline, n)
}

// settledGoroutines returns the goroutine count once it has stayed the
// same for 100 ms (polled every 10 ms, for at most 5 s).
func settledGoroutines(t *testing.T) int {
	t.Helper()
	n, same := runtime.NumGoroutine(), 0
	for deadline := time.Now().Add(5 * time.Second); same < 10 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

func TestWriteErrorMapping(t *testing.T) {
	e := startEnv(t, envOptions{})
	for _, tt := range []struct {
		err    error
		status int
		code   string
	}{
		{engine.ErrOverloaded, 429, "overloaded"},
		{engine.ErrStopped, 503, "unavailable"},
		{context.DeadlineExceeded, 503, "unavailable"},
		{fmt.Errorf("wrapped: %w", engine.ErrOverloaded), 429, "overloaded"},
		{errors.New("disk on fire"), 500, "internal"},
		{&engine.Rejection{Code: "brand_new_code", Message: "x"}, 500, "internal"},
		{&engine.Rejection{Code: engine.CodeSoldOut, Message: "x", Available: 0}, 409, "sold_out"},
	} {
		var ctx fasthttp.RequestCtx
		if code := e.srv.writeError(&ctx, tt.err); code != tt.code {
			t.Errorf("%v: code %s, want %s", tt.err, code, tt.code)
		}
		if ctx.Response.StatusCode() != tt.status {
			t.Errorf("%v: status %d, want %d", tt.err, ctx.Response.StatusCode(), tt.status)
		}
		if err := loadSpec(t).checkProblemBody(ctx.Response.Body()); err != nil {
			t.Errorf("%v: %v", tt.err, err)
		}
	}
}
