package httpapi

import (
	"strings"
	"testing"
	"time"
)

// TestExchangeAcrossSessionsRoute: POST /v1/orders/{id}/exchange with the
// sale_id of another session of the same event, in another shard (s1 and
// s2 differ in their last byte's low bit: FNV-1a puts them on different
// shards of two), answers the new paid order; the old one is refunded
// and names it; another event's sale is refused.
func TestExchangeAcrossSessionsRoute(t *testing.T) {
	e := startEnv(t, envOptions{shards: 2})
	tour := `,"event":"tour"` + autoRules
	for _, id := range []string{"s1", "s2"} {
		e.want(e.do("PUT", "/v1/admin/sales/"+id, e.admin(), e.ruleSaleJSON(5, tour)), 201, "")
	}
	e.want(e.do("PUT", "/v1/admin/sales/s3", e.admin(), e.ruleSaleJSON(5, `,"event":"other"`+autoRules)), 201, "")
	seat := e.paidRuleOrder("s1", "ann", "k1", "seat", 1) // 8000
	path := "/v1/orders/" + seat + "/exchange"

	e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"floor","sale_id":"s2"}`), 404, "unknown_order")
	e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor","sale_id":"s3"}`), 409, "exchange_not_allowed")

	n := e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor","sale_id":"s2"}`), 200, "").json()
	x := n["exchanged_from"].(map[string]any)
	if n["status"] != "paid" || n["sale_id"] != "s2" || !strings.HasPrefix(n["order_id"].(string), "s2.") || x["from_order_id"] != seat ||
		x["status"] != "completed" || num(t, x["difference_cents"]) != 5000+300-8000 || len(n["tickets"].([]any)) != 1 {
		t.Fatalf("new order %v", n)
	}
	again := e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor","sale_id":"s2"}`), 200, "").json()
	if again["order_id"] != n["order_id"] {
		t.Fatalf("repeat answered %v, want %v", again["order_id"], n["order_id"])
	}
	old := e.want(e.do("GET", "/v1/orders/"+seat, e.buyer("ann"), ""), 200, "").json()
	if old["status"] != "refunded" || old["exchanged_to"].(map[string]any)["to_order_id"] != n["order_id"] {
		t.Fatalf("old order %v", old)
	}
	if a := num(t, e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()["tiers"].([]any)[1].(map[string]any)["available"]); a != 5 {
		t.Fatalf("s1 seat available %d after the exchange, want 5", a)
	}
	if a := num(t, e.want(e.do("GET", "/v1/sales/s2", nil, ""), 200, "").json()["tiers"].([]any)[0].(map[string]any)["available"]); a != 4 {
		t.Fatalf("s2 floor available %d after the exchange, want 4", a)
	}
}

// TestExchangeAcrossSessionsDearerRoute: a dearer ticket of another
// session answers a pending new order with the difference due; the old
// order stays paid; paying the difference on the new order through the
// webhook settles the exchange beside the payment's answer (the old order
// released, the new one completed), and the buyer's refund of the new
// order then goes back through both payments.
func TestExchangeAcrossSessionsDearerRoute(t *testing.T) {
	e := startEnv(t, envOptions{shards: 2})
	tour := `,"event":"tour"` + autoRules
	for _, id := range []string{"s1", "s2"} {
		e.want(e.do("PUT", "/v1/admin/sales/"+id, e.admin(), e.ruleSaleJSON(5, tour)), 201, "")
	}
	floor := e.paidRuleOrder("s1", "bob", "k2", "floor", 1) // 5000
	path := "/v1/orders/" + floor + "/exchange"
	n := e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"seat","sale_id":"s2"}`), 200, "").json()
	x := n["exchanged_from"].(map[string]any)
	if n["status"] != "pending" || n["sale_id"] != "s2" || num(t, n["amount_cents"]) != 8000 || num(t, n["amount_due_cents"]) != 3300 ||
		x["status"] != "awaiting_payment" || x["from_order_id"] != floor || num(t, x["difference_cents"]) != 8000+300-5000 {
		t.Fatalf("new order %v", n)
	}
	id := n["order_id"].(string)
	if again := e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"seat","sale_id":"s2"}`), 200, "").json(); again["order_id"] != id {
		t.Fatalf("repeat answered %v, want %v", again["order_id"], id)
	}
	e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"floor","sale_id":"s2"}`), 409, "invalid_order_state")
	if old := e.want(e.do("GET", "/v1/orders/"+floor, e.buyer("bob"), ""), 200, "").json(); old["status"] != "paid" {
		t.Fatalf("old order while awaiting payment %v", old)
	}

	e.want(e.pay("diff", "payment.succeeded", id, 3300, "EUR"), 200, "")
	deadline := time.Now().Add(10 * time.Second) // the kick runs beside the payment's answer
	for {
		got := e.want(e.do("GET", "/v1/orders/"+id, e.buyer("bob"), ""), 200, "").json()
		if st := got["exchanged_from"].(map[string]any)["status"]; st == "completed" {
			break
		} else if st != "awaiting_release" || time.Now().After(deadline) {
			t.Fatalf("after paying the difference: %v", got)
		}
		time.Sleep(time.Millisecond)
	}
	if old := e.want(e.do("GET", "/v1/orders/"+floor, e.buyer("bob"), ""), 200, "").json(); old["status"] != "refunded" ||
		old["exchanged_to"].(map[string]any)["to_order_id"] != id {
		t.Fatalf("old order after %v", old)
	}
	back := e.want(e.do("POST", "/v1/orders/"+id+"/refund-request", e.buyer("bob"), ""), 200, "").json()
	if back["status"] != "refunded" {
		t.Fatalf("refund of the new order %v", back)
	}
	// 8000 less 10 % + 200 = 7000: the difference's 3300, then 3700 of
	// the old order's payment.
	ps := e.want(e.do("GET", "/v1/admin/refunds?sale_id=s2", e.admin(), ""), 200, "").json()["refunds"].([]any)
	if len(ps) != 2 {
		t.Fatalf("refunds %v", ps)
	}
	for i, want := range []struct {
		payment string
		amount  int
	}{{"diff", 3300}, {"pay-k2", 3700}} {
		p := ps[i].(map[string]any)
		if p["payment_id"] != want.payment || num(t, p["amount_cents"]) != want.amount || p["reason"] != "refund_request" {
			t.Fatalf("refund %d: %v, want %+v", i, p, want)
		}
	}
}
