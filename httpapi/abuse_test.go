package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Abuse tests in the manner of the OWASP API Security Top 10: another
// buyer's objects (API1), extra members that would set what the server
// decides (API3), admin functions with anything but the admin token
// (API5), and forged or replayed payment notifications. Every case checks
// the status and code, then that nothing changed: the whole state a client
// can see (the export, the sale views, the sales list) is read before and
// after and compared byte for byte. The test clock stands still, so an
// unchanged state reads back identical.

// abuseCase is one request and the answer it must get.
type abuseCase struct {
	name         string
	method, path string
	h            hdr
	body         string
	status       int
	code         string
}

// state is everything observable about the test's sales, as the admin
// and the public see it.
func (e *testEnv) state(sales ...string) string {
	e.t.Helper()
	var b strings.Builder
	b.Write(e.want(e.do("GET", "/v1/admin/sales", e.admin(), ""), 200, "").body)
	for _, s := range sales {
		b.Write(e.want(e.do("GET", "/v1/sales/"+s, nil, ""), 200, "").body)
		b.Write(e.want(e.do("GET", "/v1/admin/sales/"+s+"/orders?limit=1000", e.admin(), ""), 200, "").body)
	}
	return b.String()
}

// runAbuse sends each case and checks its answer and that the state did
// not move.
func (e *testEnv) runAbuse(cases []abuseCase, sales ...string) {
	e.t.Helper()
	before := e.state(sales...)
	for _, c := range cases {
		e.t.Run(c.name, func(t *testing.T) {
			e := e.sub(t)
			r := e.do(c.method, c.path, c.h, c.body)
			if r.status != c.status || r.code() != c.code {
				t.Fatalf("%s %s: got %d %s, want %d %s", c.method, c.path, r.status, r.body, c.status, c.code)
			}
			if after := e.state(sales...); after != before {
				t.Fatalf("the state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// abuseFixture: sale s1 with alice's pending order and alice's paid order.
func abuseFixture(t *testing.T) (e *testEnv, pending, paid string) {
	e = startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	pending = e.want(e.buy("s1", "alice", "k1", "floor", 2), 201, "").str("order_id")
	paid = e.want(e.buy("s1", "alice", "k2", "seat", 1), 201, "").str("order_id")
	e.want(e.pay("evt_paid", "payment.succeeded", paid, 8000, "EUR"), 200, "")
	return e, pending, paid
}

// TestAbuseOtherBuyersOrders: mallory, a buyer with a valid token, tries
// alice's order ids, and ids made up next to them, on every route that
// takes an order id or a ticket. A foreign order is answered exactly like
// a missing one (no oracle for enumeration), and she can neither read nor
// move one.
func TestAbuseOtherBuyersOrders(t *testing.T) {
	e, pending, paid := abuseFixture(t)
	mallory := e.buyer("mallory")
	// Ids next to alice's: the same sale, one letter changed; another
	// sale's prefix; none exist.
	guessed := []string{pending[:len(pending)-1] + "a", pending[:len(pending)-1] + "Z", "s2" + pending[2:], "s1.", "s1"}
	var cases []abuseCase
	for _, id := range append([]string{pending, paid}, guessed...) {
		cases = append(cases,
			abuseCase{"get " + id, "GET", "/v1/orders/" + id, mallory, "", 404, "unknown_order"},
			abuseCase{"cancel " + id, "POST", "/v1/orders/" + id + "/cancel", mallory, "", 404, "unknown_order"},
			abuseCase{"refund " + id, "POST", "/v1/admin/orders/" + id + "/refund", mallory, "", 403, "forbidden"},
			abuseCase{"checkin " + id, "POST", "/v1/checkin", mallory, fmt.Sprintf(`{"ticket":"%s.0"}`, id), 403, "forbidden"},
		)
	}
	// The same ids spelled otherwise reach the same check.
	escaped := "/v1/orders/" + url.PathEscape(pending[:3]) + "%" + strconv.FormatInt(int64(pending[3]), 16) + pending[4:]
	cases = append(cases,
		abuseCase{"get percent-encoded", "GET", escaped, mallory, "", 404, "unknown_order"},
		abuseCase{"get dot-segment", "GET", "/v1/orders/x/../" + pending, mallory, "", 404, "unknown_order"},
		abuseCase{"export", "GET", "/v1/admin/sales/s1/orders", mallory, "", 403, "forbidden"},
	)
	e.runAbuse(cases, "s1")

	// The answer for alice's order is the one for a missing order, word
	// for word but for the id.
	for _, id := range []string{pending, paid, guessed[0]} {
		r := e.want(e.do("GET", "/v1/orders/"+id, mallory, ""), 404, "unknown_order")
		if want := fmt.Sprintf("no order %q", id); r.str("detail") != want {
			t.Errorf("detail %q, want %q", r.str("detail"), want)
		}
	}
	// Her own list shows none of alice's orders, whatever she adds to the
	// query.
	for _, q := range []string{"", "?sale_id=s1", "?user_id=alice", "?sale_id=s1&user_id=alice"} {
		r := e.want(e.do("GET", "/v1/me/orders"+q, mallory, ""), 200, "")
		if n := len(r.json()["orders"].([]any)); n != 0 {
			t.Errorf("/v1/me/orders%s shows mallory %d orders: %s", q, n, r.body)
		}
	}
	// Alice still can do all of it: the refusals above were about who asked.
	e.want(e.do("GET", "/v1/orders/"+pending, e.buyer("alice"), ""), 200, "")
	e.want(e.do("POST", "/v1/orders/"+pending+"/cancel", e.buyer("alice"), ""), 200, "")
}

// TestAbuseExtraMembers: members a client must not set (price, status,
// owner, amount) are refused with 422 invalid_request, never ignored, and
// the refused purchase leaves no trace: no order, no hold, and its
// Idempotency-Key still free.
func TestAbuseExtraMembers(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	mallory := e.buyer("mallory").with("Idempotency-Key", "k-extra")
	purchase := func(name, extra string) abuseCase {
		return abuseCase{"purchase " + name, "POST", "/v1/sales/s1/purchase", mallory,
			`{"tier":"floor","quantity":1,` + extra + `}`, 422, "invalid_request"}
	}
	sale := e.saleJSON(10, 4)
	saleWith := func(name, old, new string) abuseCase {
		if !strings.Contains(sale, old) {
			t.Fatalf("%s: %q not in the sale", name, old)
		}
		return abuseCase{"sale " + name, "PUT", "/v1/admin/sales/s1", e.admin(), strings.Replace(sale, old, new, 1), 422, "invalid_request"}
	}
	e.runAbuse([]abuseCase{
		purchase("price", `"price":1`),
		purchase("price_cents", `"price_cents":1`),
		purchase("amount_cents", `"amount_cents":1`),
		purchase("status", `"status":"paid"`),
		purchase("user_id", `"user_id":"alice"`),
		purchase("order_id", `"order_id":"s1.aaaaaaaaaaaaaaaaaaaaaaaaaa"`),
		purchase("currency", `"currency":"XXX"`),
		purchase("nested price", `"tier_override":{"price_cents":0}`),
		purchase("case variant", `"Price_Cents":1`),
		purchase("duplicate quantity", `"quantity":1000`),
		saleWith("sold", `"hold_seconds"`, `"sold":5,"hold_seconds"`),
		saleWith("status", `"hold_seconds"`, `"status":"closed","hold_seconds"`),
		saleWith("closed", `"hold_seconds"`, `"closed":true,"hold_seconds"`),
		saleWith("tier held", `"stock":10}`, `"stock":10,"held":3}`),
		saleWith("tier available", `"stock":10}`, `"stock":10,"available":100}`),
		saleWith("orders", `"hold_seconds"`, `"orders":[],"hold_seconds"`),
		{"load unknown member", "POST", "/v1/admin/sales:load", e.admin(),
			`{"sales":[` + strings.Replace(sale, `{"name"`, `{"id":"s2","owner":"mallory","name"`, 1) + `]}`, 422, "invalid_request"},
		{"register role", "POST", "/v1/users", nil, `{"username":"mallory","password":"correct horse","role":"admin"}`, 422, "invalid_request"},
		{"register user_id", "POST", "/v1/users", nil, `{"username":"mallory","password":"correct horse","user_id":"admin"}`, 422, "invalid_request"},
	}, "s1")
	// The key of the refused purchases was never used: this is a new order.
	e.want(e.do("POST", "/v1/sales/s1/purchase", mallory, `{"tier":"floor","quantity":1}`), 201, "")
	e.want(e.do("GET", "/v1/sales/s2", nil, ""), 404, "unknown_sale")
	e.want(e.do("POST", "/v1/sessions", nil, `{"username":"mallory","password":"correct horse"}`), 401, "invalid_credentials")
}

// TestAbuseAdminCredentials: every admin route refuses every credential
// but the admin token: none, a buyer's JWT (even one claiming to be the
// admin), the door token, a JWT signed with the admin token as its key, an
// unsigned JWT, the token under another scheme or outside the
// Authorization header.
func TestAbuseAdminCredentials(t *testing.T) {
	e, pending, paid := abuseFixture(t)
	exp := e.clock.Now().Add(time.Hour).Unix()
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) hdr {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return hdr{"Authorization": "Bearer " + tok}
	}
	adminClaims := jwt.MapClaims{"sub": "admin", "role": "admin", "admin": true, "exp": exp}
	credentials := []struct {
		name   string
		h      hdr
		status int
		code   string
	}{
		{"none", nil, 401, "unauthorized"},
		{"buyer", e.buyer("mallory"), 403, "forbidden"},
		{"buyer claiming admin", sign(jwt.SigningMethodHS256, e.userSecret, adminClaims), 403, "forbidden"},
		{"door token", hdr{"Authorization": "Bearer " + e.doorToken}, 403, "forbidden"},
		{"jwt keyed with the admin token", sign(jwt.SigningMethodHS256, []byte(e.adminToken), adminClaims), 401, "unauthorized"},
		{"jwt keyed with the door token", sign(jwt.SigningMethodHS256, []byte(e.doorToken), adminClaims), 401, "unauthorized"},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, adminClaims), 401, "unauthorized"},
		{"basic scheme", hdr{"Authorization": "Basic " + e.adminToken}, 401, "unauthorized"},
		{"token scheme", hdr{"Authorization": "Token " + e.adminToken}, 401, "unauthorized"},
		{"no scheme", hdr{"Authorization": e.adminToken}, 401, "unauthorized"},
		{"scheme only", hdr{"Authorization": "Bearer"}, 401, "unauthorized"},
		{"prefix of the token", hdr{"Authorization": "Bearer " + e.adminToken[:len(e.adminToken)-1]}, 401, "unauthorized"},
		{"token and more", hdr{"Authorization": "Bearer " + e.adminToken + " x"}, 401, "unauthorized"},
		{"other header", hdr{"X-Admin-Token": e.adminToken}, 401, "unauthorized"},
		{"cookie", hdr{"Cookie": "token=" + e.adminToken}, 401, "unauthorized"},
	}
	routes := []struct{ method, path, body string }{
		{"PUT", "/v1/admin/sales/s1", e.saleJSON(1, 1)},
		{"PUT", "/v1/admin/sales/s2", e.saleJSON(1, 1)},
		{"POST", "/v1/admin/sales/s1:close", ""},
		{"POST", "/v1/admin/sales/s1:reopen", ""},
		{"POST", "/v1/admin/sales:load", `{"sales":[` + strings.Replace(e.saleJSON(1, 1), `{"name"`, `{"id":"s3","name"`, 1) + `]}`},
		{"GET", "/v1/admin/sales", ""},
		{"GET", "/v1/admin/sales/s1/orders", ""},
		{"POST", "/v1/admin/orders/" + paid + "/refund", ""},
	}
	var cases []abuseCase
	for _, rt := range routes {
		for _, c := range credentials {
			cases = append(cases, abuseCase{rt.method + " " + rt.path + " " + c.name, rt.method, rt.path, c.h, rt.body, c.status, c.code})
		}
		// The token in the query string is not a credential either.
		cases = append(cases, abuseCase{rt.method + " " + rt.path + " query", rt.method,
			rt.path + "?access_token=" + e.adminToken, nil, rt.body, 401, "unauthorized"})
	}
	e.runAbuse(cases, "s1")
	// The order is still alice's, pending, and the admin token still works.
	if s := e.want(e.do("GET", "/v1/orders/"+pending, e.buyer("alice"), ""), 200, "").str("status"); s != "pending" {
		t.Errorf("pending order is %s", s)
	}
	e.want(e.do("POST", "/v1/admin/orders/"+paid+"/refund", e.admin(), ""), 200, "")
}

// TestAbuseWebhook: payment notifications that are forged, altered,
// replayed out of the tolerance window, or do not match the order are
// refused, and the order stays pending.
func TestAbuseWebhook(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	id := e.want(e.buy("s1", "alice", "k1", "floor", 2), 201, "").str("order_id")
	now := e.clock.Now()
	event := func(amount, currency string) string {
		return fmt.Sprintf(`{"id":"evt_1","type":"payment.succeeded","order_id":%q,"amount_cents":%s,"currency":%q}`, id, amount, currency)
	}
	body := event("10000", "EUR")
	cheaper := event("1", "EUR")
	// mac is v1 as an attacker without the secret might compute it.
	mac := func(key []byte, t time.Time, b string) string {
		ts := strconv.FormatInt(t.Unix(), 10)
		if key == nil {
			sum := sha256.Sum256([]byte(ts + "." + b))
			return "t=" + ts + ",v1=" + hex.EncodeToString(sum[:])
		}
		h := hmac.New(sha256.New, key)
		h.Write([]byte(ts + "." + b))
		return "t=" + ts + ",v1=" + hex.EncodeToString(h.Sum(nil))
	}
	good := SignWebhook(e.paySecret, []byte(body), now)
	goodV1 := good[strings.Index(good, "v1="):]
	post := func(name, sig, b string, status int, code string) abuseCase {
		h := hdr{}
		if sig != "" {
			h["Onsale-Signature"] = sig
		}
		return abuseCase{name, "POST", "/v1/payments/webhook", h, b, status, code}
	}
	manyGarbage := fmt.Sprintf("t=%d", now.Unix()) + strings.Repeat(",v1="+strings.Repeat("ab", 32), 100)
	e.runAbuse([]abuseCase{
		post("unsigned", "", body, 401, "unauthorized"),
		post("forged with a wrong secret", mac([]byte("guessed-secret"), now, body), body, 401, "unauthorized"),
		post("forged with the admin token", mac([]byte(e.adminToken), now, body), body, 401, "unauthorized"),
		post("forged with the user secret", mac(e.userSecret, now, body), body, 401, "unauthorized"),
		post("forged with an empty key", mac([]byte{}, now, body), body, 401, "unauthorized"),
		post("plain sha256, no key", mac(nil, now, body), body, 401, "unauthorized"),
		post("amount changed, signature kept", good, cheaper, 401, "unauthorized"),
		post("amount changed, re-signed without the secret", mac(nil, now, cheaper), cheaper, 401, "unauthorized"),
		post("timestamp changed, v1 kept", fmt.Sprintf("t=%d,%s", now.Unix()+1, goodV1), body, 401, "unauthorized"),
		post("stale by 301 s", SignWebhook(e.paySecret, []byte(body), now.Add(-301*time.Second)), body, 401, "unauthorized"),
		post("future by 301 s", SignWebhook(e.paySecret, []byte(body), now.Add(301*time.Second)), body, 401, "unauthorized"),
		post("100 garbage v1", manyGarbage, body, 401, "unauthorized"),
		post("good v1 as the 9th, past the 8 looked at", fmt.Sprintf("t=%d", now.Unix())+strings.Repeat(",v1="+strings.Repeat("ab", 32), 8)+","+goodV1, body, 401, "unauthorized"),
		post("negative amount", SignWebhook(e.paySecret, []byte(event("-10000", "EUR")), now), event("-10000", "EUR"), 422, "payment_mismatch"),
		post("extra status member", SignWebhook(e.paySecret, []byte(strings.Replace(body, `}`, `,"status":"paid"}`, 1)), now),
			strings.Replace(body, `}`, `,"status":"paid"}`, 1), 422, "invalid_request"),
		post("duplicate amount", SignWebhook(e.paySecret, []byte(strings.Replace(body, `}`, `,"amount_cents":1}`, 1)), now),
			strings.Replace(body, `}`, `,"amount_cents":1}`, 1), 422, "invalid_request"),
	}, "s1")
	// A genuine success of the wrong amount or currency took money: it is
	// recorded on the order as a refund to send back, once, and the order
	// stays pending.
	for _, wrong := range []string{cheaper, event("10000", "USD"), cheaper} {
		r := e.want(e.do("POST", "/v1/payments/webhook", hdr{"Onsale-Signature": SignWebhook(e.paySecret, []byte(wrong), now)}, wrong), 200, "")
		if r.str("status") != "pending" || r.json()["mismatch"] != true {
			t.Fatalf("a mismatched success: %s", r.body)
		}
	}
	if refunds, _ := e.want(e.do("GET", "/v1/orders/"+id, e.admin(), ""), 200, "").json()["refunds"].([]any); len(refunds) != 1 {
		t.Fatalf("refunds after mismatched successes with one event id: %v", refunds)
	}
	// The genuine notification still pays it: the refusals were the
	// notifications', not the order's.
	if s := e.want(e.do("POST", "/v1/payments/webhook", hdr{"Onsale-Signature": good}, body), 200, "").str("status"); s != "paid" {
		t.Errorf("the genuine event left the order %s", s)
	}
}
