package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// credential creates a staff or seller credential and returns its id and
// an Authorization header with its token.
func (e *testEnv) credential(role string, expiresAt string, sales ...string) (string, hdr) {
	e.t.Helper()
	body := fmt.Sprintf(`{"name":"%s desk","role":%q,"sales":["%s"]`, role, role, strings.Join(sales, `","`))
	if expiresAt != "" {
		body += fmt.Sprintf(`,"expires_at":%q`, expiresAt)
	}
	r := e.want(e.do("POST", "/v1/admin/credentials", e.admin(), body+"}"), 201, "")
	return r.str("id"), hdr{"Authorization": "Bearer " + r.str("token")}
}

// paidOrderOf buys a ticket of sale for user and pays for it.
func (e *testEnv) paidOrderOf(sale, user string) string {
	e.t.Helper()
	id := e.want(e.buy(sale, user, "k-"+user+"-"+sale, "floor", 1), 201, "").str("order_id")
	e.want(e.pay("evt-"+id, "payment.succeeded", id, 5000, "EUR"), 200, "")
	return id
}

// TestCredentialLifecycle: an admin creates a staff credential, whose token
// is answered once and listed never; it checks in tickets of its sales only;
// revoked, it is refused on its next request, and an expired one too, each
// with a sentence that says so.
func TestCredentialLifecycle(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	e.putSale("s2", 10, 4)
	r := e.want(e.do("POST", "/v1/admin/credentials", e.admin(), `{"name":"Door A","role":"staff","sales":["s1","later"]}`), 201, "")
	id, token := r.str("id"), r.str("token")
	if !strings.HasPrefix(token, "stf_") || len(token) != 4+43 || !strings.HasPrefix(id, "cred_") || r.str("status") != "active" {
		t.Fatalf("created %s", r.body)
	}
	if r.header.Get("Location") != "/v1/admin/credentials/"+id {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
	staff := hdr{"Authorization": "Bearer " + token}
	list := e.want(e.do("GET", "/v1/admin/credentials", e.admin(), ""), 200, "")
	if bytes.Contains(list.body, []byte(token)) || bytes.Contains(list.body, []byte(`"token"`)) || !bytes.Contains(list.body, []byte(id)) {
		t.Fatalf("list shows a token or misses the credential: %s", list.body)
	}

	t1, t2 := e.codes(e.paidOrderOf("s1", "u1"))[0], e.codes(e.paidOrderOf("s2", "u2"))[0]
	e.want(e.do("POST", "/v1/checkin", staff, fmt.Sprintf(`{"code":%q,"gate":"g1"}`, t1)), 200, "")
	e.want(e.do("POST", "/v1/checkin", staff, fmt.Sprintf(`{"code":%q,"gate":"g1"}`, t2)), 403, "forbidden")

	for _, c := range []struct{ body, want string }{
		{`{"name":"x","role":"admin","sales":["s1"]}`, "role"},
		{`{"name":"x","role":"staff","sales":[]}`, "sales"},
		{`{"name":"x","role":"staff","sales":["a.b"]}`, "sale id"},
		{`{"name":"x","role":"staff","sales":["s1","s1"]}`, "twice"},
		{`{"name":"","role":"staff","sales":["s1"]}`, "name"},
		{`{"name":"x","role":"staff","sales":["s1"],"expires_at":"2020-01-01T00:00:00Z"}`, "future"},
		{`{"name":"x","role":"staff","sales":["s1"],"token":"mine"}`, "unknown member"},
	} {
		r := e.want(e.do("POST", "/v1/admin/credentials", e.admin(), c.body), 422, "invalid_request")
		if !strings.Contains(r.str("detail"), c.want) {
			t.Errorf("%s: detail %q, want it to say %q", c.body, r.str("detail"), c.want)
		}
	}
	e.want(e.do("DELETE", "/v1/admin/credentials/cred_nope", e.admin(), ""), 404, "unknown_credential")

	e.want(e.do("DELETE", "/v1/admin/credentials/"+id, e.admin(), ""), 200, "")
	r = e.want(e.do("POST", "/v1/checkin", staff, fmt.Sprintf(`{"code":%q,"gate":"g1"}`, t1)), 401, "unauthorized")
	if !strings.Contains(r.str("detail"), "revoked") {
		t.Errorf("revoked: detail %q", r.str("detail"))
	}
	again := e.want(e.do("DELETE", "/v1/admin/credentials/"+id, e.admin(), ""), 200, "")
	if again.str("status") != "revoked" || again.str("revoked_at") == "" {
		t.Errorf("revoked twice: %s", again.body)
	}

	_, temp := e.credential("staff", e.clock.Now().Add(time.Hour).Format(time.RFC3339), "s1")
	e.want(e.do("POST", "/v1/checkin", temp, fmt.Sprintf(`{"code":%q,"gate":"g1"}`, t1)), 409, "already_checked_in")
	e.clock.Advance(time.Hour)
	r = e.want(e.do("POST", "/v1/checkin", temp, fmt.Sprintf(`{"code":%q,"gate":"g1"}`, t1)), 401, "unauthorized")
	if !strings.Contains(r.str("detail"), "expired") {
		t.Errorf("expired: detail %q", r.str("detail"))
	}
	if got := e.want(e.do("GET", "/metrics", nil, ""), 200, "").body; !bytes.Contains(got, []byte("onsale_credentials_active 0\n")) {
		t.Errorf("metrics: no onsale_credentials_active 0")
	}
}

// TestRolesOnEveryRoute: each role on each route class (OWASP API1 and
// API5): admin routes are the admin's alone; staff reach the door routes of
// their sales; sellers the box office of theirs; buyers their own orders
// (another's is 404, as if missing); revoked and expired credentials and
// forged tokens are 401.
func TestRolesOnEveryRoute(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 50, 10)
	e.putSale("s2", 50, 10)
	order := e.paidOrderOf("s1", "u1")
	pending := e.want(e.buy("s1", "u1", "k-pending", "floor", 1), 201, "").str("order_id")
	_, staff1 := e.credential("staff", "", "s1")
	_, staff2 := e.credential("staff", "", "s2")
	_, seller1 := e.credential("seller", "", "s1")
	_, seller2 := e.credential("seller", "", "s2", "s3")
	revokedID, revoked := e.credential("seller", "", "s1")
	e.want(e.do("DELETE", "/v1/admin/credentials/"+revokedID, e.admin(), ""), 200, "")
	_, expired := e.credential("staff", e.clock.Now().Add(time.Minute).Format(time.RFC3339), "s1")
	e.clock.Advance(2 * time.Minute)

	const ok = 0 // authorised: anything but 401 and 403
	type want struct{ admin, door, owner, other, staff1, staff2, seller1, seller2, dead int }
	routes := []struct {
		name               string
		method, path, body string
		want               want
	}{
		{"admin list sales", "GET", "/v1/admin/sales", "", want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"admin close sale", "POST", "/v1/admin/sales/s2:close", "", want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"admin export", "GET", "/v1/admin/sales/s1/orders", "", want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"admin refund", "POST", "/v1/admin/orders/" + pending + "/refund", "", want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"admin credentials", "GET", "/v1/admin/credentials", "", want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"admin create credential", "POST", "/v1/admin/credentials", `{"name":"x","role":"seller","sales":["s1"]}`, want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"admin revoke", "DELETE", "/v1/admin/credentials/cred_x", "", want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"purchase", "POST", "/v1/sales/s1/purchase", `{"tier":"floor","quantity":1,"buyer":{"name":"Ann","email":"ann@example.com"}}`,
			want{403, 403, ok, ok, 403, 403, ok, 403, 401}},
		{"get order", "GET", "/v1/orders/" + order, "", want{ok, 403, ok, 404, 403, 403, ok, 403, 401}},
		{"cancel order", "POST", "/v1/orders/" + pending + "/cancel", "", want{ok, 403, ok, 404, 403, 403, 403, 403, 401}},
		{"my orders", "GET", "/v1/me/orders", "", want{403, 403, ok, ok, 403, 403, 403, 403, 401}},
		{"checkin", "POST", "/v1/checkin", fmt.Sprintf(`{"code":%q,"gate":"g1"}`, e.codes(order)[0]), want{ok, ok, 403, 403, ok, 403, 403, 403, 401}},
		{"checkin by ticket id", "POST", "/v1/checkin", fmt.Sprintf(`{"ticket":"%s.0"}`, order), want{ok, 403, 403, 403, 403, 403, 403, 403, 401}},
		{"tickets", "GET", "/v1/orders/" + order + "/tickets", "", want{ok, 403, ok, 404, 403, 403, ok, 403, 401}},
		{"revocations", "GET", "/v1/sales/s1/revocations", "", want{ok, ok, 403, 403, ok, 403, 403, 403, 401}},
		{"pay at counter", "POST", "/v1/orders/" + pending + "/pay-at-counter", `{"method":"cash"}`, want{403, 403, 403, 403, 403, 403, ok, 403, 401}},
	}
	forged := hdr{"Authorization": "Bearer sel_" + strings.Repeat("A", 43)}
	for _, rt := range routes {
		for _, who := range []struct {
			name string
			h    hdr
			want int
		}{
			{"admin", e.admin(), rt.want.admin},
			{"door token", hdr{"Authorization": "Bearer " + e.doorToken}, rt.want.door},
			{"owner", e.buyer("u1"), rt.want.owner},
			{"other buyer", e.buyer("u2"), rt.want.other},
			{"staff of s1", staff1, rt.want.staff1},
			{"staff of s2", staff2, rt.want.staff2},
			{"seller of s1", seller1, rt.want.seller1},
			{"seller of s2", seller2, rt.want.seller2},
			{"revoked seller", revoked, rt.want.dead},
			{"expired staff", expired, rt.want.dead},
			{"forged seller token", forged, rt.want.dead},
			{"no token", nil, 401},
		} {
			h := hdr{"Idempotency-Key": "k-" + strings.ReplaceAll(who.name, " ", "-")}
			for k, v := range who.h {
				h[k] = v
			}
			r := e.do(rt.method, rt.path, h, rt.body)
			switch {
			case who.want == ok && (r.status == 401 || r.status == 403):
				t.Errorf("%s by %s: %d %s, want it allowed", rt.name, who.name, r.status, r.body)
			case who.want != ok && r.status != who.want:
				t.Errorf("%s by %s: %d %s, want %d", rt.name, who.name, r.status, r.body, who.want)
			}
		}
	}
}

// TestBoxOffice: a seller sells for a named buyer (the order says so, its
// user id names nobody, the contact is sealed), limits count per buyer
// email, bad buyers are refused, and the seller takes the money at the
// counter once.
func TestBoxOffice(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 50, 2)
	sellerID, seller := e.credential("seller", "", "s1")
	_, other := e.credential("seller", "", "s2")
	sell := func(key, name, email string, qty int) *resp {
		return e.do("POST", "/v1/sales/s1/purchase", seller.with("Idempotency-Key", key),
			fmt.Sprintf(`{"tier":"floor","quantity":%d,"buyer":{"name":%q,"email":%q}}`, qty, name, email))
	}
	r := e.want(sell("k1", "Ann Lee", " Ann@Example.com ", 2), 201, "")
	id := r.str("order_id")
	m := r.json()
	buyer, _ := m["buyer"].(map[string]any)
	if m["channel"] != "box_office" || m["seller_id"] != sellerID || buyer["name"] != "Ann Lee" || buyer["email"] != "ann@example.com" {
		t.Fatalf("box-office order %s", r.body)
	}
	if uid := r.str("user_id"); !strings.HasPrefix(uid, "box:") || len(uid) != 24 || strings.Contains(uid, "ann") {
		t.Fatalf("user id %q", uid)
	}
	stored, err := e.eng.Order(context.Background(), id)
	if err != nil || bytes.Contains(stored.BoxOffice.Contact, []byte("ann@")) || bytes.Contains(stored.BoxOffice.Contact, []byte("Ann Lee")) {
		t.Fatalf("stored contact is not sealed: %q %v", stored.BoxOffice.Contact, err)
	}
	if again := e.want(sell("k1", "Ann Lee", "ann@example.com", 2), 200, ""); again.str("order_id") != id {
		t.Fatalf("retry made another order: %s", again.body)
	}
	e.want(sell("k2", "Ann", "ANN@example.COM", 1), 409, "limit_exceeded")
	e.want(sell("k3", "Bob", "bob@example.com", 1), 201, "")
	for _, c := range []struct{ body, want string }{
		{`{"tier":"floor","quantity":1}`, "buyer"},
		{`{"tier":"floor","quantity":1,"buyer":{"name":"Ann","email":"not-an-email"}}`, "email"},
		{`{"tier":"floor","quantity":1,"buyer":{"name":"Ann","email":"a@b"}}`, "email"},
		{`{"tier":"floor","quantity":1,"buyer":{"name":"Ann","email":"a b@c.de"}}`, "email"},
		{`{"tier":"floor","quantity":1,"buyer":{"name":"","email":"a@c.de"}}`, "name"},
		{fmt.Sprintf(`{"tier":"floor","quantity":1,"buyer":{"name":%q,"email":"a@c.de"}}`, strings.Repeat("é", 201)), "name"},
		{`{"tier":"floor","quantity":1,"buyer":{"name":"Ann","email":"a@c.de","phone":"1"}}`, "unknown member"},
	} {
		r := e.want(e.do("POST", "/v1/sales/s1/purchase", seller.with("Idempotency-Key", "bad"), c.body), 422, "invalid_request")
		if !strings.Contains(r.str("detail"), c.want) {
			t.Errorf("%s: detail %q, want it to say %q", c.body, r.str("detail"), c.want)
		}
	}
	// A buyer may not name another buyer.
	e.want(e.do("POST", "/v1/sales/s1/purchase", e.buyer("u1").with("Idempotency-Key", "kb"),
		`{"tier":"floor","quantity":1,"buyer":{"name":"Ann","email":"a@c.de"}}`), 422, "invalid_request")

	got := e.want(e.do("GET", "/v1/orders/"+id, e.admin(), ""), 200, "").json()
	if b, _ := got["buyer"].(map[string]any); b["email"] != "ann@example.com" {
		t.Fatalf("admin sees %v", got)
	}
	e.want(e.do("GET", "/v1/orders/"+id, other, ""), 403, "forbidden")

	counter := func(h hdr, key, body string) *resp {
		if key != "" {
			h = h.with("Idempotency-Key", key)
		}
		return e.do("POST", "/v1/orders/"+id+"/pay-at-counter", h, body)
	}
	e.want(counter(seller, "", `{"method":"cash"}`), 400, "idempotency_key_missing")
	e.want(counter(seller, "p1", `{"method":"cheque"}`), 422, "invalid_request")
	e.want(counter(seller, strings.Repeat("k", 129), `{"method":"cash"}`), 422, "invalid_request")
	e.want(counter(other, "p1", `{"method":"cash"}`), 403, "forbidden")
	paid := e.want(counter(seller, "p1", `{"method":"cash","reference":"till 2"}`), 200, "")
	pm := paid.json()
	cp, _ := pm["counter_payment"].(map[string]any)
	if pm["status"] != "paid" || cp["seller_id"] != sellerID || cp["method"] != "cash" || cp["reference"] != "till 2" {
		t.Fatalf("paid at the counter: %s", paid.body)
	}
	if tickets, _ := pm["tickets"].([]any); len(tickets) != 2 {
		t.Fatalf("tickets of the paid order: %v", pm["tickets"])
	}
	e.clock.Advance(time.Second)
	for _, key := range []string{"p1", "p2"} {
		if r := e.want(counter(seller, key, `{"method":"card"}`), 200, ""); !bytes.Equal(r.body, paid.body) {
			t.Fatalf("paying again with %s changed the answer:\n%s\n%s", key, r.body, paid.body)
		}
	}
	e.want(e.do("POST", "/v1/orders/s1.nothing/pay-at-counter", seller.with("Idempotency-Key", "p"), `{"method":"cash"}`), 404, "unknown_order")
	if body := e.want(e.do("GET", "/metrics", nil, ""), 200, "").body; !bytes.Contains(body, []byte("onsale_box_office_sales_total 2\n")) ||
		!bytes.Contains(body, []byte("onsale_credentials_active 2\n")) {
		t.Errorf("metrics lack the box-office sales or the active credentials")
	}
}
