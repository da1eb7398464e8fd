package httpapi

import (
	"strings"
	"testing"
)

// TestBadInputStatus: a body that is not JSON at all, and a purchase
// without an Idempotency-Key, are 400 (RFC 9110; the IETF Idempotency-Key
// draft says 400 for a missing key); JSON that is well-formed but does not
// fit the route is 422, as is a key that is present but malformed. Nothing
// changes either way.
func TestBadInputStatus(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	before := e.state("s1")
	buyer := e.buyer("u1").with("Idempotency-Key", "k1")
	webhook := func(body string) hdr {
		return hdr{"Onsale-Signature": SignWebhook(e.paySecret, []byte(body), e.clock.Now())}
	}
	type route struct {
		name, method, path string
		h                  func(body string) hdr
		valid              string // a well-formed body with a member the route does not know
	}
	fixed := func(h hdr) func(string) hdr { return func(string) hdr { return h } }
	for _, r := range []route{
		{"purchase", "POST", "/v1/sales/s1/purchase", fixed(buyer), `{"tier":"floor","quantity":1,"price":1}`},
		{"put sale", "PUT", "/v1/admin/sales/s1", fixed(e.admin()), `{"name":"x"}`},
		{"load sales", "POST", "/v1/admin/sales:load", fixed(e.admin()), `{"sales":[],"x":1}`},
		{"register", "POST", "/v1/users", fixed(nil), `{"username":"bob","password":"correct horse","admin":true}`},
		{"login", "POST", "/v1/sessions", fixed(nil), `{"username":"bob","pw":"x"}`},
		{"checkin", "POST", "/v1/checkin", fixed(e.admin()), `{"ticket":1}`},
		{"webhook", "POST", "/v1/payments/webhook", webhook, `{"id":"e1","type":"payment.succeeded","order_id":"s1.x","amount_cents":"1","currency":"EUR"}`},
	} {
		t.Run(r.name, func(t *testing.T) {
			e := e.sub(t)
			for _, body := range []string{
				"tier=floor&quantity=1", // a form, as curl -d sends without -H
				`{"tier":"floor",`,      // cut short
				`{"tier":"floor"} {}`,   // two values
				"\xef\xbb\xbf{}",        // a byte order mark
				"{\"tier\":\"fl\xffoor\"}",
			} {
				r := e.want(e.do(r.method, r.path, r.h(body), body), 400, "malformed_json")
				if d := r.str("detail"); !strings.Contains(d, "not JSON") {
					t.Errorf("%q: detail %q", body, d)
				}
			}
			e.want(e.do(r.method, r.path, r.h(""), ""), 400, "malformed_json")
			e.want(e.do(r.method, r.path, r.h(r.valid), r.valid), 422, "invalid_request")
		})
	}

	purchase := `{"tier":"floor","quantity":1}`
	r := e.want(e.do("POST", "/v1/sales/s1/purchase", e.buyer("u1"), purchase), 400, "idempotency_key_missing")
	if d := r.str("detail"); !strings.Contains(d, "Idempotency-Key") {
		t.Errorf("missing key: detail %q", d)
	}
	e.want(e.do("POST", "/v1/sales/s1/purchase", e.buyer("u1").with("Idempotency-Key", strings.Repeat("k", 256)), purchase), 422, "invalid_request")
	e.want(e.do("POST", "/v1/sales/s1/purchase", e.buyer("u1").with("Idempotency-Key", "a b"), purchase), 422, "invalid_request")
	// Still 422: JSON that breaks a rule of ours rather than JSON's.
	e.want(e.do("POST", "/v1/sales/s1/purchase", buyer, `{"tier":"floor","tier":"seat","quantity":1}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/sales/s1/purchase", buyer, `[1]`), 422, "invalid_request")

	if after := e.state("s1"); after != before {
		t.Errorf("the state changed:\n%s\n%s", before, after)
	}
}
