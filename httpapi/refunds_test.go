package httpapi

import (
	"fmt"
	"testing"
)

// TestAdminRefundRoutes: an admin refund of an order paid through the
// generic webhook is a manual refund, listed with its status; an admin
// marks it refunded; what cannot be retried or does not exist is refused
// with a clear code.
func TestAdminRefundRoutes(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 10, 4)
	id := e.want(e.buy("s1", "alice", "k1", "floor", 2), 201, "").str("order_id")
	e.want(e.pay("evt_1", "payment.succeeded", id, 10000, "EUR"), 200, "")
	e.want(e.do("POST", "/v1/admin/orders/"+id+"/refund", e.admin(), ""), 200, "")

	list := e.want(e.do("GET", "/v1/admin/refunds?sale_id=s1", e.admin(), ""), 200, "")
	refunds, _ := list.json()["refunds"].([]any)
	if len(refunds) != 1 {
		t.Fatalf("refunds: %s", list.body)
	}
	r := refunds[0].(map[string]any)
	if r["refund_id"] != id+".0" || r["status"] != "manual" || r["reason"] != "admin_refund" || fmt.Sprint(r["amount_cents"]) != "10000" || r["provider"] != "" {
		t.Fatalf("refund: %v", r)
	}
	if got := e.want(e.do("GET", "/v1/admin/refunds?status=refunded", e.admin(), ""), 200, "").json()["refunds"].([]any); len(got) != 0 {
		t.Fatalf("refunded ones before marking: %v", got)
	}
	e.want(e.do("POST", "/v1/admin/refunds/"+id+".0:retry", e.admin(), ""), 409, "invalid_order_state")
	if s := e.want(e.do("POST", "/v1/admin/refunds/"+id+".0:mark-refunded", e.admin(), ""), 200, "").str("status"); s != "refunded" {
		t.Fatalf("marked: %s", s)
	}
	e.want(e.do("POST", "/v1/admin/refunds/"+id+".0:mark-refunded", e.admin(), ""), 200, "") // again: unchanged
	e.want(e.do("POST", "/v1/admin/refunds/"+id+".0:retry", e.admin(), ""), 409, "invalid_order_state")
	if got := e.want(e.do("GET", "/v1/admin/refunds?status=refunded", e.admin(), ""), 200, "").json()["refunds"].([]any); len(got) != 1 {
		t.Fatalf("refunded ones after marking: %v", got)
	}
	order := e.want(e.do("GET", "/v1/orders/"+id, e.admin(), ""), 200, "").json()
	if rs, _ := order["refunds"].([]any); len(rs) != 1 || rs[0].(map[string]any)["status"] != "refunded" {
		t.Fatalf("the order's refunds: %v", order["refunds"])
	}
	for _, bad := range []string{id + ".1", id + ".x", id, "nope"} {
		e.want(e.do("POST", "/v1/admin/refunds/"+bad+":retry", e.admin(), ""), 404, "unknown_refund")
	}
	e.want(e.do("GET", "/v1/admin/refunds?status=paid", e.admin(), ""), 400, "invalid_query")
	e.want(e.do("GET", "/v1/admin/refunds", e.buyer("alice"), ""), 403, "forbidden")
}
