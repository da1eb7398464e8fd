package httpapi

import (
	"strings"
	"testing"
)

// TestExchangeAcrossSessionsRoute: POST /v1/orders/{id}/exchange with the
// sale_id of another session of the same event, in another shard (s1 and
// s2 differ in their last byte's low bit: FNV-1a puts them on different
// shards of two), answers the new paid order; the old one is refunded
// and names it; a dearer one and another event's sale are refused.
func TestExchangeAcrossSessionsRoute(t *testing.T) {
	e := startEnv(t, envOptions{shards: 2})
	tour := `,"event":"tour"` + autoRules
	for _, id := range []string{"s1", "s2"} {
		e.want(e.do("PUT", "/v1/admin/sales/"+id, e.admin(), e.ruleSaleJSON(5, tour)), 201, "")
	}
	e.want(e.do("PUT", "/v1/admin/sales/s3", e.admin(), e.ruleSaleJSON(5, `,"event":"other"`+autoRules)), 201, "")
	seat := e.paidRuleOrder("s1", "ann", "k1", "seat", 1)   // 8000
	floor := e.paidRuleOrder("s1", "bob", "k2", "floor", 1) // 5000
	path := "/v1/orders/" + seat + "/exchange"

	e.want(e.do("POST", path, e.buyer("bob"), `{"tier":"floor","sale_id":"s2"}`), 404, "unknown_order")
	e.want(e.do("POST", path, e.buyer("ann"), `{"tier":"floor","sale_id":"s3"}`), 409, "exchange_not_allowed")
	e.want(e.do("POST", "/v1/orders/"+floor+"/exchange", e.buyer("bob"), `{"tier":"seat","sale_id":"s2"}`), 409, "exchange_not_allowed")

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
