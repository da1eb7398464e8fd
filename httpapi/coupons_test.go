package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Coupons through the real server: the admin routes, purchases that name a
// coupon, and the last uses raced over HTTP (engine/coupons.go holds the
// rules; README "Prices, packages and coupons" the documented behaviour).

func (e *testEnv) postCoupon(sale, body string) *resp {
	e.t.Helper()
	return e.do("POST", "/v1/admin/sales/"+sale+"/coupons", e.admin(), body)
}

func (e *testEnv) patchCoupon(sale, code, body string) *resp {
	e.t.Helper()
	return e.do("PATCH", "/v1/admin/sales/"+sale+"/coupons/"+code, e.admin(), body)
}

// coupons lists a sale's coupons by code.
func (e *testEnv) coupons(sale string) map[string]map[string]any {
	e.t.Helper()
	r := e.want(e.do("GET", "/v1/admin/sales/"+sale+"/coupons", e.admin(), ""), 200, "")
	out := map[string]map[string]any{}
	for _, c := range r.json()["coupons"].([]any) {
		m := c.(map[string]any)
		out[m["code"].(string)] = m
	}
	return out
}

// couponUses is the uses of a coupon as GET lists it.
func (e *testEnv) couponUses(sale, code string) int {
	e.t.Helper()
	c, ok := e.coupons(sale)[code]
	if !ok {
		e.t.Fatalf("sale %s lists no coupon %s", sale, code)
	}
	return num(e.t, c["uses"])
}

// buyCoupon purchases with a coupon.
func (e *testEnv) buyCoupon(sale, user, key, tier string, qty int, coupon string) *resp {
	e.t.Helper()
	return e.do("POST", "/v1/sales/"+sale+"/purchase", e.buyer(user).with("Idempotency-Key", key),
		fmt.Sprintf(`{"tier":%q,"quantity":%d,"coupon":%q}`, tier, qty, coupon))
}

// saleAndCoupons is what a refused purchase must leave alone: the tiers'
// counts and every coupon with its uses.
func (e *testEnv) saleAndCoupons(sale string) string {
	e.t.Helper()
	r := e.want(e.do("GET", "/v1/sales/"+sale, nil, ""), 200, "")
	tiers, err := json.Marshal(r.json()["tiers"])
	if err != nil {
		e.t.Fatal(err)
	}
	list := e.want(e.do("GET", "/v1/admin/sales/"+sale+"/coupons", e.admin(), ""), 200, "")
	return string(tiers) + "\n" + string(list.body)
}

func num(t *testing.T, v any) int {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return int(i)
}

func TestCouponLifecycle(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 10)
	now := e.clock.Now()
	// Times as the server writes them, so that they compare as strings.
	const layout = "2006-01-02T15:04:05.000Z07:00"
	from, until := now.Add(-time.Hour).Format(layout), now.Add(2*time.Hour).Format(layout)

	// Created as sent, the code in upper case; the absent optional members
	// are shown as their "none".
	c := e.want(e.postCoupon("s1", `{"code":"early-10","percent_off":10,"uses_max":100,"uses_per_buyer_max":1}`), 201, "").json()
	want := map[string]any{"code": "EARLY-10", "percent_off": json.Number("10"), "tiers": []any{}, "uses": json.Number("0"),
		"uses_max": json.Number("100"), "uses_per_buyer_max": json.Number("1"), "min_quantity": json.Number("0"), "disabled": false}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("created:\n got %v\nwant %v", c, want)
	}
	c = e.want(e.postCoupon("s1", fmt.Sprintf(`{"code":"SEAT-5","amount_off_cents":500,"tiers":["seat"],"min_quantity":2,
		"valid_from":%q,"valid_until":%q,"disabled":true}`, from, until)), 201, "").json()
	want = map[string]any{"code": "SEAT-5", "amount_off_cents": json.Number("500"), "tiers": []any{"seat"}, "uses": json.Number("0"),
		"uses_max": json.Number("0"), "uses_per_buyer_max": json.Number("0"), "min_quantity": json.Number("2"), "disabled": true,
		"valid_from": from, "valid_until": until}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("created:\n got %v\nwant %v", c, want)
	}

	// The kind not used may be sent as 0.
	c = e.want(e.postCoupon("s1", `{"code":"ZERO-PCT","percent_off":0,"amount_off_cents":100,"uses_max":0}`), 201, "").json()
	if _, ok := c["percent_off"]; ok || c["amount_off_cents"] != json.Number("100") {
		t.Errorf("created: %v", c)
	}

	// A code exists in any case.
	for _, code := range []string{"EARLY-10", "Early-10"} {
		e.want(e.postCoupon("s1", `{"code":"`+code+`","amount_off_cents":100}`), 409, "coupon_exists")
	}
	e.want(e.postCoupon("nope", `{"code":"OTHER","percent_off":10}`), 404, "unknown_sale")
	e.want(e.postCoupon("s1", `{"code":"OTHER","percent_off":10,"tiers":["balcony"]}`), 422, "unknown_tier")

	// Bad bodies: 422 invalid_request, nothing created.
	for _, body := range []string{
		`{"code":"BAD","percent_off":10,"amount_off_cents":100}`, // both
		`{"code":"BAD"}`, // neither
		`{"code":"BAD","percent_off":101}`,
		`{"code":"BAD","percent_off":-1}`,
		`{"code":"BAD","amount_off_cents":-100}`,
		`{"code":"BA","percent_off":10}`,
		`{"code":"BAD_CODE","percent_off":10}`,
		`{"code":"` + strings.Repeat("B", 33) + `","percent_off":10}`,
		`{"percent_off":10}`,
		`{"code":"BAD","percent_off":10,"uses_max":-1}`,
		`{"code":"BAD","percent_off":10,"uses_per_buyer_max":-1}`,
		`{"code":"BAD","percent_off":10,"min_quantity":65}`,
		`{"code":"BAD","percent_off":10,"tiers":["seat","seat"]}`,
		fmt.Sprintf(`{"code":"BAD","percent_off":10,"valid_from":%q,"valid_until":%q}`, until, from),
		fmt.Sprintf(`{"code":"BAD","percent_off":10,"valid_from":%q,"valid_until":%q}`, from, from),
		`{"code":"BAD","percent_off":10,"valid_until":"1969-12-31T00:00:00Z"}`,
		`{"code":"BAD","percent_off":10,"valid_until":"tomorrow"}`,
		`{"code":"BAD","percent_off":10,"uses":3}`,
		`{"code":"BAD","percent_off":"10"}`,
	} {
		r := e.postCoupon("s1", body)
		if r.status != 422 || r.code() != "invalid_request" {
			t.Errorf("%s: got %d %s, want 422 invalid_request", body, r.status, r.body)
		}
	}
	if got := e.coupons("s1"); len(got) != 3 || got["EARLY-10"] == nil || got["SEAT-5"] == nil {
		t.Fatalf("after the refused bodies: %v", got)
	}

	// PATCH changes caps, window and disabled; absent members stay; the
	// path's code is case-insensitive.
	later := now.Add(3 * time.Hour).Format(layout)
	c = e.want(e.patchCoupon("s1", "early-10", fmt.Sprintf(`{"uses_max":150,"uses_per_buyer_max":2,"valid_from":%q,"valid_until":%q,"disabled":true}`,
		from, later)), 200, "").json()
	if c["uses_max"] != json.Number("150") || c["uses_per_buyer_max"] != json.Number("2") || c["valid_from"] != from ||
		c["valid_until"] != later || c["disabled"] != true || c["percent_off"] != json.Number("10") {
		t.Errorf("patched: %v", c)
	}
	e.want(e.patchCoupon("s1", "SEAT-5", `{"disabled":false}`), 200, "")
	got := e.coupons("s1")
	if g := got["EARLY-10"]; fmt.Sprint(g) != fmt.Sprint(c) {
		t.Errorf("GET after PATCH:\n got %v\nwant %v", g, c)
	}
	if g := got["SEAT-5"]; g["disabled"] != false || g["amount_off_cents"] != json.Number("500") || g["min_quantity"] != json.Number("2") {
		t.Errorf("SEAT-5 after PATCH: %v", g)
	}
	e.want(e.patchCoupon("s1", "NOPE", `{"disabled":true}`), 422, "coupon_unknown")
	e.want(e.patchCoupon("nope", "EARLY-10", `{"disabled":true}`), 404, "unknown_sale")
	before := e.saleAndCoupons("s1")
	for _, body := range []string{
		`{"uses_max":-1}`,
		`{"uses_per_buyer_max":-1}`,
		fmt.Sprintf(`{"valid_until":%q}`, from), // not after valid_from
		`{"percent_off":20}`,                    // not a patchable member
		`{"code":"OTHER"}`,
		`{"disabled":"yes"}`,
	} {
		r := e.patchCoupon("s1", "EARLY-10", body)
		if r.status != 422 || r.code() != "invalid_request" {
			t.Errorf("PATCH %s: got %d %s, want 422 invalid_request", body, r.status, r.body)
		}
	}
	if after := e.saleAndCoupons("s1"); after != before {
		t.Errorf("refused PATCHes changed the coupons:\n%s\n%s", before, after)
	}

	// The cap cannot go below the uses taken; 0 is no cap.
	e.want(e.postCoupon("s1", `{"code":"CAP","percent_off":5,"uses_max":5}`), 201, "")
	e.want(e.buyCoupon("s1", "u1", "k1", "floor", 1, "cap"), 201, "")
	e.want(e.buyCoupon("s1", "u2", "k1", "floor", 1, "cap"), 201, "")
	e.want(e.patchCoupon("s1", "CAP", `{"uses_max":1}`), 409, "coupon_cap_below_uses")
	if g := e.coupons("s1")["CAP"]; g["uses_max"] != json.Number("5") || g["uses"] != json.Number("2") {
		t.Errorf("after the refused cap: %v", g)
	}
	e.want(e.patchCoupon("s1", "CAP", `{"uses_max":2}`), 200, "")
	e.want(e.buyCoupon("s1", "u3", "k1", "floor", 1, "cap"), 409, "coupon_exhausted")
	e.want(e.patchCoupon("s1", "CAP", `{"uses_max":0}`), 200, "")
	e.want(e.buyCoupon("s1", "u3", "k1", "floor", 1, "cap"), 201, "")

	// Admin only: a buyer's token and the door's are refused on all three,
	// and change nothing.
	before = e.saleAndCoupons("s1")
	for _, h := range []hdr{e.buyer("u1"), {"Authorization": "Bearer " + e.doorToken}} {
		e.want(e.do("POST", "/v1/admin/sales/s1/coupons", h, `{"code":"MINE","percent_off":100}`), 403, "forbidden")
		e.want(e.do("GET", "/v1/admin/sales/s1/coupons", h, ""), 403, "forbidden")
		e.want(e.do("PATCH", "/v1/admin/sales/s1/coupons/EARLY-10", h, `{"disabled":false}`), 403, "forbidden")
	}
	e.want(e.do("POST", "/v1/admin/sales/s1/coupons", nil, `{"code":"MINE","percent_off":100}`), 401, "unauthorized")
	e.want(e.do("GET", "/v1/admin/sales/s1/coupons", nil, ""), 401, "unauthorized")
	e.want(e.do("PATCH", "/v1/admin/sales/s1/coupons/EARLY-10", nil, `{"disabled":false}`), 401, "unauthorized")
	if after := e.saleAndCoupons("s1"); after != before {
		t.Errorf("refused callers changed the coupons:\n%s\n%s", before, after)
	}
}

// priceSaleJSON has prices whose percentages fall on half cents.
func (e *testEnv) priceSaleJSON() string {
	now := e.clock.Now()
	return fmt.Sprintf(`{"name":"Odd prices","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,
		"per_user_limit":20,"tiers":[{"id":"a","name":"A","price_cents":5050,"stock":100},
		{"id":"b","name":"B","price_cents":5075,"stock":100}]}`,
		now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
}

func TestCouponPurchasePrices(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("PUT", "/v1/admin/sales/p1", e.admin(), e.priceSaleJSON()), 201, "")
	for _, body := range []string{
		`{"code":"ONE","percent_off":1}`,
		`{"code":"THIRD","percent_off":33}`,
		`{"code":"FREE","percent_off":100}`,
		`{"code":"FIX","amount_off_cents":2000}`,
		`{"code":"HUGE","amount_off_cents":1000000}`,
	} {
		e.want(e.postCoupon("p1", body), 201, "")
	}
	for i, tt := range []struct {
		tier     string
		qty      int
		coupon   string
		discount int // cents
	}{
		{"a", 1, "one", 50},     // 50.50: the half cent goes to the seller (README: 1 % of 50.50 is 0.50)
		{"a", 3, "ONE", 151},    // 151.50
		{"b", 1, "One", 51},     // 50.75 is more than half: up
		{"b", 2, "one", 101},    // 101.50
		{"a", 1, "third", 1666}, // 1666.50
		{"b", 1, "third", 1675}, // 1674.75
		{"a", 2, "free", 10100},
		{"a", 2, "fix", 2000},  // off the order, not per ticket
		{"b", 1, "huge", 5075}, // never below 0
	} {
		o := e.want(e.buyCoupon("p1", fmt.Sprintf("u%d", i), "k1", tt.tier, tt.qty, tt.coupon), 201, "").json()
		unit := map[string]int{"a": 5050, "b": 5075}[tt.tier]
		if o["coupon"] != strings.ToUpper(tt.coupon) || num(t, o["discount_cents"]) != tt.discount ||
			num(t, o["unit_price_cents"]) != unit || num(t, o["amount_cents"]) != unit*tt.qty-tt.discount {
			t.Errorf("%d of %s with %s: got coupon %v discount %v unit %v amount %v, want discount %d, amount %d",
				tt.qty, tt.tier, tt.coupon, o["coupon"], o["discount_cents"], o["unit_price_cents"], o["amount_cents"],
				tt.discount, unit*tt.qty-tt.discount)
		}
		// The order read back says the same.
		back := e.want(e.do("GET", "/v1/orders/"+o["order_id"].(string), e.admin(), ""), 200, "").json()
		for _, k := range []string{"coupon", "discount_cents", "unit_price_cents", "amount_cents"} {
			if back[k] != o[k] {
				t.Errorf("GET order %s: %s %v, the purchase said %v", o["order_id"], k, back[k], o[k])
			}
		}
	}
	// Without a coupon the order has neither member.
	o := e.want(e.buy("p1", "plain", "k1", "a", 1), 201, "").json()
	if _, ok := o["coupon"]; ok || o["discount_cents"] != nil || num(t, o["amount_cents"]) != 5050 {
		t.Errorf("no coupon: %v", o)
	}
}

func TestCouponPurchaseRefusals(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 20, 10)
	now := e.clock.Now()
	for _, body := range []string{
		`{"code":"OFF","percent_off":10,"disabled":true}`,
		fmt.Sprintf(`{"code":"SOON","percent_off":10,"valid_from":%q}`, now.Add(time.Minute).Format(time.RFC3339)),
		fmt.Sprintf(`{"code":"BRIEF","percent_off":10,"valid_until":%q}`, now.Add(2*time.Minute).Format(time.RFC3339)),
		`{"code":"ONCE","percent_off":10,"uses_max":1}`,
		`{"code":"SEATS","percent_off":10,"tiers":["seat"]}`,
		`{"code":"THREE","percent_off":10,"min_quantity":3}`,
		`{"code":"MINE","percent_off":10,"uses_per_buyer_max":1}`,
	} {
		e.want(e.postCoupon("s1", body), 201, "")
	}
	e.want(e.buyCoupon("s1", "first", "k1", "floor", 1, "once"), 201, "")
	e.want(e.buyCoupon("s1", "first", "k2", "floor", 1, "mine"), 201, "")

	// Each refusal answers its code and changes nothing: the tiers' counts,
	// every coupon's uses, and the buyer's key, free for a good purchase.
	refuse := func(user, tier string, qty int, coupon string, status int, code string) {
		t.Helper()
		before := e.saleAndCoupons("s1")
		e.want(e.buyCoupon("s1", user, "k-refused", tier, qty, coupon), status, code)
		if after := e.saleAndCoupons("s1"); after != before {
			t.Errorf("%s refused as %s changed the sale:\n%s\n%s", coupon, code, before, after)
		}
	}
	refuse("u1", "floor", 1, "NOPE", 422, "coupon_unknown")
	refuse("u1", "floor", 1, "no", 422, "coupon_unknown") // not even a code
	refuse("u1", "floor", 1, "off", 409, "coupon_disabled")
	refuse("u1", "floor", 1, "soon", 409, "coupon_not_yet_valid")
	refuse("u1", "floor", 1, "once", 409, "coupon_exhausted")
	refuse("u1", "floor", 1, "seats", 422, "coupon_not_applicable")
	refuse("u1", "seat", 2, "three", 422, "coupon_not_applicable")
	refuse("first", "floor", 1, "mine", 409, "coupon_exhausted") // per buyer
	e.want(e.buyCoupon("s1", "u1", "k-refused", "floor", 1, "brief"), 201, "")

	// Another buyer may still use MINE; SEATS and THREE on what they
	// apply to; OFF once enabled.
	e.want(e.buyCoupon("s1", "u2", "k1", "floor", 1, "mine"), 201, "")
	e.want(e.buyCoupon("s1", "u2", "k2", "seat", 1, "seats"), 201, "")
	e.want(e.buyCoupon("s1", "u3", "k1", "seat", 3, "three"), 201, "")
	e.want(e.patchCoupon("s1", "OFF", `{"disabled":false}`), 200, "")
	e.want(e.buyCoupon("s1", "u4", "k1", "floor", 1, "off"), 201, "")

	// The window: SOON starts at its valid_from, BRIEF ends at its
	// valid_until (exclusive).
	e.clock.Advance(time.Minute)
	e.want(e.buyCoupon("s1", "u4", "k2", "floor", 1, "soon"), 201, "")
	e.clock.Advance(time.Minute - time.Millisecond)
	e.want(e.buyCoupon("s1", "u4", "k3", "floor", 1, "brief"), 201, "")
	e.clock.Advance(time.Millisecond)
	refuse("u5", "floor", 1, "brief", 409, "coupon_expired")

	want := map[string]int{"OFF": 1, "SOON": 1, "BRIEF": 2, "ONCE": 1, "SEATS": 1, "THREE": 1, "MINE": 2}
	for code, c := range e.coupons("s1") {
		if got := num(t, c["uses"]); got != want[code] {
			t.Errorf("%s has %d uses, want %d", code, got, want[code])
		}
	}
}

func TestCouponRetryAndCancel(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 10)
	e.want(e.postCoupon("s1", `{"code":"TWO","percent_off":20,"uses_max":2,"uses_per_buyer_max":1}`), 201, "")
	first := e.want(e.buyCoupon("s1", "u1", "k1", "floor", 2, "two"), 201, "")
	o := first.json()
	if o["coupon"] != "TWO" || o["discount_cents"] != json.Number("2000") || o["amount_cents"] != json.Number("8000") {
		t.Fatalf("order: %s", first.body)
	}

	// The retry answers the same order and takes no second use (the
	// per-buyer cap of 1 would refuse a second purchase).
	again := e.want(e.buyCoupon("s1", "u1", "k1", "floor", 2, "two"), 200, "")
	if string(again.body) != string(first.body) {
		t.Errorf("retry:\n got %s\nwant %s", again.body, first.body)
	}
	if n := e.couponUses("s1", "TWO"); n != 1 {
		t.Errorf("after the retry: %d uses, want 1", n)
	}
	e.want(e.buyCoupon("s1", "u1", "k2", "floor", 1, "two"), 409, "coupon_exhausted")
	// The same key with another coupon, or none, is another purchase.
	e.want(e.postCoupon("s1", `{"code":"OTHER","percent_off":50}`), 201, "")
	e.want(e.buyCoupon("s1", "u1", "k1", "floor", 2, "other"), 422, "idempotency_conflict")
	e.want(e.buy("s1", "u1", "k1", "floor", 2), 422, "idempotency_conflict")
	// A coupon disabled since does not refuse the retry of its order.
	e.want(e.patchCoupon("s1", "TWO", `{"disabled":true}`), 200, "")
	if again := e.want(e.buyCoupon("s1", "u1", "k1", "floor", 2, "two"), 200, ""); string(again.body) != string(first.body) {
		t.Errorf("retry of a disabled coupon's order:\n got %s\nwant %s", again.body, first.body)
	}
	e.want(e.patchCoupon("s1", "TWO", `{"disabled":false}`), 200, "")

	// Cancelling gives the use back, the buyer's too.
	id := o["order_id"].(string)
	second := e.want(e.buyCoupon("s1", "u2", "k1", "floor", 1, "two"), 201, "").str("order_id")
	e.want(e.buyCoupon("s1", "u3", "k1", "floor", 1, "two"), 409, "coupon_exhausted")
	if n := e.couponUses("s1", "TWO"); n != 2 {
		t.Errorf("%d uses, want 2", n)
	}
	e.want(e.do("POST", "/v1/orders/"+id+"/cancel", e.buyer("u1"), ""), 200, "")
	if n := e.couponUses("s1", "TWO"); n != 1 {
		t.Errorf("after a cancel: %d uses, want 1", n)
	}
	e.want(e.do("POST", "/v1/orders/"+id+"/cancel", e.buyer("u1"), ""), 200, "") // twice: once given back
	if n := e.couponUses("s1", "TWO"); n != 1 {
		t.Errorf("after the cancel again: %d uses, want 1", n)
	}
	e.want(e.buyCoupon("s1", "u1", "k3", "floor", 1, "two"), 201, "")
	e.want(e.do("POST", "/v1/orders/"+second+"/cancel", e.admin(), ""), 200, "")
	if n := e.couponUses("s1", "TWO"); n != 1 {
		t.Errorf("after the admin's cancel: %d uses, want 1", n)
	}
	e.want(e.buyCoupon("s1", "u3", "k1", "floor", 1, "two"), 201, "")
	if n := e.couponUses("s1", "TWO"); n != 2 {
		t.Errorf("at the end: %d uses, want 2", n)
	}

	// A hold that expires gives its use back too.
	e.clock.Advance(601 * time.Second)
	n := e.couponUses("s1", "TWO")
	for i := 0; i < 1000 && n != 0; i++ { // the engine's tick is every 5 ms
		n = e.couponUses("s1", "TWO")
	}
	if n != 0 {
		t.Errorf("after the holds expired: %d uses, want 0", n)
	}
	e.want(e.buyCoupon("s1", "u3", "k2", "floor", 1, "two"), 201, "")
}

// TestCouponLastUsesRaced: 40 buyers at once for 5 uses. The shard decides
// them one by one, so exactly 5 get the coupon.
func TestCouponLastUsesRaced(t *testing.T) {
	const buyers, usesMax = 40, 5
	e := startEnv(t, envOptions{})
	e.putSale("s1", 100, 10)
	e.want(e.postCoupon("s1", fmt.Sprintf(`{"code":"LAST","percent_off":50,"uses_max":%d}`, usesMax)), 201, "")
	heads := make([]hdr, buyers) // tokens minted before the start
	for i := range heads {
		heads[i] = e.buyer(fmt.Sprintf("racer%d", i)).with("Idempotency-Key", "k1")
	}
	start := make(chan struct{})
	results := make(chan *resp, buyers)
	for i := range buyers {
		go func() {
			<-start
			results <- e.do("POST", "/v1/sales/s1/purchase", heads[i], `{"tier":"floor","quantity":1,"coupon":"last"}`)
		}()
	}
	close(start)
	won := 0
	for range buyers {
		r := <-results
		switch {
		case r.status == 201 && r.str("coupon") == "LAST":
			won++
		case r.status == 409 && r.code() == "coupon_exhausted":
		default:
			t.Errorf("got %d %s", r.status, r.body)
		}
	}
	if won != usesMax {
		t.Errorf("%d buyers got the coupon, want %d", won, usesMax)
	}
	if n := e.couponUses("s1", "LAST"); n != usesMax {
		t.Errorf("GET: %d uses, want %d", n, usesMax)
	}
	tier := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()["tiers"].([]any)[0].(map[string]any)
	if tier["held"] != json.Number(fmt.Sprint(usesMax)) {
		t.Errorf("floor: %v, want %d held", tier, usesMax)
	}
}
