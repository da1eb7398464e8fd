package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPIDocument checks the document itself: kin-openapi finds it
// valid (every $ref resolves, every schema is well-formed), every route of
// the server is in it under the path that routes to it, and the Problem
// code enum is exactly the set of codes the server sends.
func TestOpenAPIDocument(t *testing.T) {
	c := loadSpec(t)
	if c.doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi version %v", c.doc.OpenAPI)
	}
	examples := map[route]string{
		routeAdminPutSale: "/v1/admin/sales/{sale_id}", routeAdminCloseSale: "/v1/admin/sales/{sale_id}:close",
		routeAdminReopenSale: "/v1/admin/sales/{sale_id}:reopen", routeAdminSaleOrders: "/v1/admin/sales/{sale_id}/orders",
		routeAdminRefund: "/v1/admin/orders/{order_id}/refund", routeGetSale: "/v1/sales/{sale_id}",
		routePurchase: "/v1/sales/{sale_id}/purchase", routeGetOrder: "/v1/orders/{order_id}",
		routeCancelOrder: "/v1/orders/{order_id}/cancel", routeAdminListCredentials: "/v1/admin/credentials",
		routeAdminListCoupons:  "/v1/admin/sales/{sale_id}/coupons",
		routeUpdateMe:          "/v1/me",
		routeAdminListWebhooks: "/v1/admin/webhooks",
		routeListFollows:       "/v1/me/follows",
		routeWaitlistLeave:     "/v1/sales/{sale_id}/waitlist/me",
	}
	for r := routeNone + 1; r < routeCount; r++ {
		tmpl, ok := examples[r]
		if !ok {
			for p := range c.doc.Paths.Map() {
				if got, _ := matchRoute([]byte(p)); got == r {
					tmpl = p
				}
			}
		}
		item := c.doc.Paths.Value(tmpl)
		if item == nil || item.GetOperation(routes[r].method) == nil {
			t.Errorf("route %s (%s %s) not in openapi.json", routes[r].name, routes[r].method, tmpl)
		}
		r2, _ := matchRoute([]byte(strings.NewReplacer("{sale_id}", "s1", "{order_id}", "s1.x", "{credential_id}", "cred_x", "{code}", "EARLY-10").Replace(tmpl)))
		if r2 = offerRoute(followRoute(webhookRoute(meRoute(couponRoute(credentialRoute(r2, []byte(routes[r].method)), []byte(routes[r].method)), []byte(routes[r].method)), []byte(routes[r].method)), []byte(routes[r].method)), []byte(routes[r].method)); r2 != r {
			t.Errorf("documented path %s routes to %s, want %s", tmpl, routes[r2].name, routes[r].name)
		}
	}
	enum := map[string]bool{}
	for _, v := range c.doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum {
		enum[v.(string)] = true
	}
	for code := range problemTable {
		if !enum[code] {
			t.Errorf("problem code %s not in the Problem.code enum", code)
		}
	}
	for code := range enum {
		if _, ok := problemTable[code]; !ok {
			t.Errorf("Problem.code enum lists %s, which the server never sends", code)
		}
	}
}

// TestOpenAPICheckerCatches makes sure the checker can fail: on answers
// that break the document, and on requests it forbids that were answered
// 2xx.
func TestOpenAPICheckerCatches(t *testing.T) {
	c := loadSpec(t)
	order := `{"order_id":"s.x","status":"pending","sale_id":"s","tier":"a","quantity":1,"amount_cents":1,"currency":"EUR",
		"needs_refund":false,"user_id":"u","created_at":"2026-01-01T00:00:00.000Z","expires_at":"2026-01-01T00:00:00.000Z",
		"updated_at":"2026-01-01T00:00:00.000Z","checked_in":[],"duplicate_charges":[]}`
	get := func(path string, h http.Header) *http.Request {
		req, err := http.NewRequest("GET", "http://127.0.0.1:1"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h
		return req
	}
	buyer := http.Header{"Authorization": {"Bearer t"}}
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	ok := exchange{req: get("/v1/orders/s.x", buyer), status: 200, header: jsonHeader, body: []byte(order)}
	if err := c.check(ok); err != nil {
		t.Fatalf("a valid order: %v", err)
	}
	for name, bad := range map[string]string{
		"missing member": strings.Replace(order, `"tier":"a",`, ``, 1),
		"extra member":   strings.Replace(order, `"tier":"a",`, `"tier":"a","x":1,`, 1),
		"bad enum":       strings.Replace(order, `"pending"`, `"waiting"`, 1),
		"bad type":       strings.Replace(order, `"quantity":1`, `"quantity":"1"`, 1),
		"bad time":       strings.Replace(order, `"2026-01-01T00:00:00.000Z","expires_at"`, `"yesterday","expires_at"`, 1),
		"not integer":    strings.Replace(order, `"quantity":1`, `"quantity":1.5`, 1),
		"not JSON":       order[:40],
	} {
		x := ok
		x.body = []byte(bad)
		if err := c.check(x); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	x := ok
	x.status = 418
	if err := c.check(x); err == nil {
		t.Errorf("an undocumented status was accepted")
	}
	x = ok
	x.header = http.Header{"Content-Type": {"text/html"}}
	if err := c.check(x); err == nil {
		t.Errorf("an undocumented content type was accepted")
	}
	x = ok
	x.req = get("/v1/orders/s.x", http.Header{})
	if err := c.check(x); err == nil {
		t.Errorf("200 to a request without the credentials the document requires was accepted")
	}
	x = ok
	x.req = get("/v1/orders/s.x/nowhere", buyer)
	if err := c.check(x); err == nil {
		t.Errorf("200 on a path the document does not have was accepted")
	}
	x.status, x.header = 404, http.Header{"Content-Type": {"application/problem+json"}}
	x.body = []byte(`{"type":"https://onsale.dev/problems/not_found","title":"t","status":404,"detail":"d","code":"no_such_code"}`)
	if err := c.check(x); err == nil {
		t.Errorf("a problem with an undocumented code was accepted")
	}
}
