package httpapi

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Refund and exchange rules through the real server (engine/refundrules.go
// holds the rules; README "Refunds and exchanges" the documented
// behaviour). Every exchange is checked against openapi.json by e.do.

// ruleSaleJSON is saleJSON with a performance 72 h after the test clock
// and the given members.
func (e *testEnv) ruleSaleJSON(stock int, members string) string {
	s := e.saleJSON(stock, 10)
	starts := e.clock.Now().Add(72 * time.Hour).Format(time.RFC3339)
	return strings.TrimSuffix(strings.TrimSpace(s), "}") + fmt.Sprintf(`,"starts_at":%q%s}`, starts, members)
}

const (
	autoRules  = `,"refunds":{"self_service":true,"until_before_start":"48h","fee_percent":10,"fee_cents":200,"approval":"auto"},"exchange":{"allowed":true,"until_before_start":"24h","fee_cents":300}`
	adminRules = `,"refunds":{"self_service":true,"until_before_start":"48h","fee_percent":5,"approval":"admin"}`
)

// paidOrder buys and pays for user; returns the order id.
func (e *testEnv) paidRuleOrder(sale, user, key, tier string, qty int) string {
	e.t.Helper()
	r := e.want(e.buy(sale, user, key, tier, qty), 201, "")
	id := r.str("order_id")
	amount := int64(num(e.t, r.json()["amount_cents"]))
	e.want(e.pay("pay-"+key, "payment.succeeded", id, amount, "EUR"), 200, "")
	return id
}

func TestRefundRulesSaleJSON(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.ruleSaleJSON(5, autoRules)), 201, "")
	refunds := r.json()["refunds"].(map[string]any)
	if refunds["until_before_start"] != "48h0m0s" || refunds["approval"] != "auto" || num(t, refunds["fee_percent"]) != 10 {
		t.Fatalf("refunds member %v", refunds)
	}
	if x := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()["exchange"].(map[string]any); x["until_before_start"] != "24h0m0s" {
		t.Fatalf("exchange member %v", x)
	}
	for _, bad := range []string{
		e.saleJSON(5, 10)[:len(strings.TrimSpace(e.saleJSON(5, 10)))-1] + autoRules + "}", // no starts_at
		e.ruleSaleJSON(5, `,"refunds":{"self_service":true,"until_before_start":"2 days","approval":"auto"}`),
		e.ruleSaleJSON(5, `,"refunds":{"self_service":true,"approval":"maybe"}`),
		e.ruleSaleJSON(5, `,"refunds":{"self_service":true,"approval":"auto","fee_percent":120}`),
		e.ruleSaleJSON(5, `,"refunds":{"self_service":true,"approval":"auto","typo":1}`),
		e.ruleSaleJSON(5, `,"exchange":{"allowed":false,"fee_cents":5}`),
	} {
		e.want(e.do("PUT", "/v1/admin/sales/s2", e.admin(), bad), 422, codeInvalidRequest)
	}
	e.want(e.do("GET", "/v1/sales/s2", nil, ""), 404, "unknown_sale")
}

func TestRefundRequestRoute(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.ruleSaleJSON(5, autoRules)), 201, "")
	id := e.paidRuleOrder("s1", "ann", "k1", "floor", 2) // 10000: fee 1000 + 200
	path := "/v1/orders/" + id + "/refund-request"

	e.want(e.do("POST", path, nil, ""), 401, codeUnauthorized)
	e.want(e.do("POST", path, e.admin(), ""), 403, codeForbidden)
	e.want(e.do("POST", path, e.buyer("bob"), ""), 404, "unknown_order")
	e.want(e.do("POST", path, e.buyer("ann"), `{"reason":5}`), 422, codeInvalidRequest)
	e.want(e.do("POST", path, e.buyer("ann"), `{"why":"x"}`), 422, codeInvalidRequest)
	e.want(e.do("POST", path, e.buyer("ann"), `{"reason":"`+strings.Repeat("x", 501)+`"}`), 422, codeInvalidRequest)
	e.want(e.do("POST", "/v1/orders/s1.nope/refund-request", e.buyer("ann"), ""), 404, "unknown_order")

	o := e.want(e.do("POST", path, e.buyer("ann"), `{"reason":"ill"}`), 200, "").json()
	refund := o["refund"].(map[string]any)
	if o["status"] != "refunded" || num(t, refund["amount_cents"]) != 10000 || num(t, refund["fee_cents"]) != 1200 ||
		num(t, refund["refunded_cents"]) != 8800 || refund["source"] != "self_service" {
		t.Fatalf("refunded order %v", o)
	}
	again := e.want(e.do("POST", path, e.buyer("ann"), ""), 200, "").json()
	if fmt.Sprint(again["refund"]) != fmt.Sprint(refund) {
		t.Fatalf("asking again: %v, want %v", again["refund"], refund)
	}
	if a := num(t, e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()["tiers"].([]any)[0].(map[string]any)["available"]); a != 5 {
		t.Fatalf("floor available %d after the refund, want 5", a)
	}

	late := e.paidRuleOrder("s1", "ann", "k2", "floor", 1)
	e.clock.Advance(24*time.Hour + time.Second) // 48 h before the start, and a second
	e.want(e.do("POST", "/v1/orders/"+late+"/refund-request", e.buyer("ann"), ""), 409, "refund_window_closed")
	if !strings.Contains(string(e.do("GET", "/metrics", nil, "").body), `onsale_refund_requests_total{outcome="refund_window_closed"} 1`) {
		t.Error("/metrics does not count the closed window")
	}
}

func TestExchangeRoute(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.ruleSaleJSON(5, autoRules)), 201, "")
	seat := e.paidRuleOrder("s1", "ann", "k1", "seat", 1)   // 8000
	floor := e.paidRuleOrder("s1", "bob", "k2", "floor", 1) // 5000
	path := "/v1/orders/" + seat + "/exchange"

	e.want(e.do("POST", path, nil, `{"tier":"floor"}`), 401, codeUnauthorized)
	e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"floor"}`), 404, "unknown_order")
	e.want(e.do("POST", path, e.buyer("ann"), `{}`), 422, codeInvalidRequest)
	e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor","qty":1}`), 422, codeInvalidRequest)
	e.want(e.do("POST", path, e.buyer("ann"), `not json`), 400, codeMalformedJSON)
	e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"vip"}`), 422, "unknown_tier")
	e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor","sale_id":"s2"}`), 409, "exchange_not_allowed")

	n := e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor","sale_id":"s1"}`), 200, "").json()
	x := n["exchanged_from"].(map[string]any)
	if n["status"] != "paid" || n["tier"] != "floor" || n["order_id"] == seat || x["from_order_id"] != seat ||
		num(t, x["difference_cents"]) != 5000+300-8000 || len(n["tickets"].([]any)) != 1 {
		t.Fatalf("new order %v", n)
	}
	again := e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor"}`), 200, "").json()
	if again["order_id"] != n["order_id"] {
		t.Fatalf("repeat answered %v, want %v", again["order_id"], n["order_id"])
	}
	old := e.want(e.do("GET", "/v1/orders/"+seat, e.buyer("ann"), ""), 200, "").json()
	if old["status"] != "refunded" || old["exchanged_to"].(map[string]any)["to_order_id"] != n["order_id"] {
		t.Fatalf("old order %v", old)
	}
	e.clock.Advance(48*time.Hour + time.Second)
	e.want(e.do("POST", "/v1/orders/"+floor+"/exchange", e.buyer("bob"), `{"tier":"seat"}`), 409, "exchange_window_closed")
}

// TestExchangeUpRoute: an exchange to a dearer tier answers a pending new
// order with the difference due; the old order shows the exchange in
// flight; the payment webhook paying the difference on the new order pays
// it and releases the old one; the full price is not what is due.
func TestExchangeUpRoute(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.ruleSaleJSON(5, autoRules)), 201, "")
	floor := e.paidRuleOrder("s1", "bob", "k2", "floor", 1) // 5000
	path := "/v1/orders/" + floor + "/exchange"

	n := e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"seat"}`), 200, "").json()
	x := n["exchanged_from"].(map[string]any)
	if n["status"] != "pending" || n["tier"] != "seat" || num(t, n["amount_cents"]) != 8000 || num(t, n["amount_due_cents"]) != 3300 ||
		x["status"] != "awaiting_payment" || x["from_order_id"] != floor || num(t, x["difference_cents"]) != 8000+300-5000 {
		t.Fatalf("new order %v", n)
	}
	id := n["order_id"].(string)
	if again := e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"seat"}`), 200, "").json(); again["order_id"] != id {
		t.Fatalf("repeat answered %v, want %v", again["order_id"], id)
	}
	e.want(e.do("POST", "/v1/orders/"+floor+"/refund-request", e.buyer("bob"), ""), 409, "invalid_order_state")
	old := e.want(e.do("GET", "/v1/orders/"+floor, e.admin(), ""), 200, "").json()
	if a, _ := old["exchange_attempt"].(map[string]any); old["status"] != "paid" || a == nil || a["status"] != "awaiting_payment" || a["to_order_id"] != id {
		t.Fatalf("old order while awaiting %v", old)
	}

	e.want(e.pay("full", "payment.succeeded", id, 8000, "EUR"), 200, "")
	if got := e.want(e.do("GET", "/v1/orders/"+id, e.buyer("bob"), ""), 200, "").json(); got["status"] != "pending" {
		t.Fatalf("the full price moved the order: %v", got)
	}
	e.want(e.pay("diff", "payment.succeeded", id, 3300, "EUR"), 200, "")
	paid := e.want(e.do("GET", "/v1/orders/"+id, e.buyer("bob"), ""), 200, "").json()
	if paid["status"] != "paid" || paid["exchanged_from"].(map[string]any)["status"] != "completed" || len(paid["tickets"].([]any)) != 1 {
		t.Fatalf("paid new order %v", paid)
	}
	old = e.want(e.do("GET", "/v1/orders/"+floor, e.buyer("bob"), ""), 200, "").json()
	if old["status"] != "refunded" || old["exchanged_to"].(map[string]any)["to_order_id"] != id || old["exchange_attempt"] != nil {
		t.Fatalf("old order after %v", old)
	}
}

func TestRefundQueueRoutes(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.want(e.do("PUT", "/v1/admin/sales/s1", e.admin(), e.ruleSaleJSON(5, adminRules)), 201, "")
	id := e.paidRuleOrder("s1", "ann", "k1", "seat", 1) // 8000: fee 400
	req := e.want(e.do("POST", "/v1/orders/"+id+"/refund-request", e.buyer("ann"), `{"reason":"ill"}`), 200, "").json()
	if req["status"] != "paid" || req["refund_request"].(map[string]any)["status"] != "pending" {
		t.Fatalf("request %v", req)
	}
	e.clock.Advance(time.Second)
	e.want(e.pay("pay-k1-again", "payment.succeeded", id, 8000, "EUR"), 200, "") // a duplicate charge

	e.want(e.do("GET", "/v1/admin/refund-queue", e.buyer("ann"), ""), 403, codeForbidden)
	e.want(e.do("GET", "/v1/admin/refund-queue?kind=other", e.admin(), ""), 400, codeInvalidQuery)
	e.want(e.do("GET", "/v1/admin/refund-queue?limit=0", e.admin(), ""), 400, codeInvalidQuery)
	e.want(e.do("GET", "/v1/admin/refund-queue?sale_id=nope", e.admin(), ""), 404, "unknown_sale")
	e.clock.Advance(time.Minute)
	items := e.want(e.do("GET", "/v1/admin/refund-queue?sale_id=s1", e.admin(), ""), 200, "").json()["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("queue %v", items)
	}
	first, second := items[0].(map[string]any), items[1].(map[string]any)
	if first["kind"] != "refund_request" || first["user_id"] != "ann" || num(t, first["fee_cents"]) != 400 || num(t, first["age_seconds"]) != 61 ||
		second["kind"] != "duplicate_charge" || second["event_id"] != "pay-k1-again" {
		t.Fatalf("queue %v", items)
	}
	settle := func(item, body string) *resp {
		return e.do("POST", "/v1/admin/refund-queue/"+item+":settle", e.admin().with("X-Request-Id", "settle-"+item[:8]), body)
	}
	e.want(e.do("POST", "/v1/admin/refund-queue/"+first["item_id"].(string)+":settle", e.buyer("ann"), `{"action":"approve"}`), 403, codeForbidden)
	e.want(settle(first["item_id"].(string), `{"action":"maybe"}`), 422, codeInvalidRequest)
	e.want(settle(first["item_id"].(string), `{"action":"refunded"}`), 422, codeInvalidRequest)
	e.want(settle("nothing.here", `{"action":"approve"}`), 404, "unknown_queue_item")
	o := e.want(settle(first["item_id"].(string), `{"action":"approve","note":"ok"}`), 200, "").json()
	if o["status"] != "refunded" || o["refund"].(map[string]any)["source"] != "approved" || num(t, o["refund"].(map[string]any)["refunded_cents"]) != 7600 {
		t.Fatalf("approved %v", o)
	}
	o = e.want(settle(second["item_id"].(string), `{"action":"refunded","note":"cash"}`), 200, "").json()
	if c := o["duplicate_charges"].([]any)[0].(map[string]any); c["note"] != "cash" || c["refunded_at"] == nil {
		t.Fatalf("charge %v", c)
	}
	if items := e.want(e.do("GET", "/v1/admin/refund-queue", e.admin(), ""), 200, "").json()["items"].([]any); len(items) != 0 {
		t.Fatalf("queue after settling %v", items)
	}
	// Every settlement, refused or not, is in the audit trail.
	entries := e.want(e.do("GET", "/v1/admin/audit?action=admin_settle_refund", e.admin(), ""), 200, "").json()["entries"].([]any)
	outcomes := map[string]int{}
	for _, x := range entries {
		m := x.(map[string]any)
		outcomes[fmt.Sprint(m["outcome"])]++
		if m["actor"] != "admin" || !strings.HasPrefix(fmt.Sprint(m["request_id"]), "settle-") {
			t.Errorf("audit entry %v", m)
		}
	}
	if outcomes["ok"] != 2 || outcomes["invalid_request"] != 1 || len(entries) < 3 {
		t.Fatalf("audit outcomes %v of %d entries", outcomes, len(entries))
	}
}
