package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/notify"
)

// TestFleetExchangeAcrossPartitions: on a fleet of two partitions, a paid
// order of a sale of partition 0 is exchanged into a session (a sale of
// the same event) of partition 1, through the node that does not own the
// old order: cheaper, the new order is paid at once in partition 1 and
// the old one refunded in partition 0, naming each other; dearer, the new
// order awaits the difference, and paying it through the new order's
// node settles the exchange (its kick asks step (b) of the old order's
// node): the old order refunded, the new one completed.
func TestFleetExchangeAcrossPartitions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and a JetStream server")
	}
	f := startSmallFleet(t, []int{0, 1})
	a, b := f.nodes[0].addr, f.nodes[1].addr
	client := &http.Client{Timeout: 20 * time.Second}
	p0, p1 := salesInBoth("xs", 1)
	from, to := p0[0], p1[0]

	now := time.Now().UTC()
	var items []string
	for _, id := range []string{from, to} {
		items = append(items, fmt.Sprintf(`{"id":%q,"name":"Tour %s","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,`+
			`"per_user_limit":10,"event":"Tour","city":"Lyon","starts_at":%q,"exchange":{"allowed":true,"fee_cents":100},`+
			`"tiers":[{"id":"ga","name":"GA","price_cents":1000,"stock":100},{"id":"vip","name":"VIP","price_cents":5000,"stock":10}]}`,
			id, id, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339),
			now.Add(72*time.Hour).Format(time.RFC3339)))
	}
	status, raw := call(client, "POST", "http://"+a+"/v1/admin/sales:load", fleetTestAdmin, "", `{"sales":[`+strings.Join(items, ",")+`]}`)
	mustJSON(t, status, 200, raw, "sales:load", nil)

	token := buyerToken(t, client, a)
	pay := func(node, order string, cents int, id string) {
		t.Helper()
		body := fmt.Sprintf(`{"id":%q,"type":"payment.succeeded","order_id":%q,"amount_cents":%d,"currency":"EUR"}`, id, order, cents)
		req, _ := http.NewRequest("POST", "http://"+node+"/v1/payments/webhook", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Onsale-Signature", notify.Sign([]byte("fleet-pay"), []byte(body), time.Now()))
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("payment %s of %s: %d", id, order, res.StatusCode)
		}
	}
	type exchange struct {
		FromOrderID     string `json:"from_order_id"`
		ToOrderID       string `json:"to_order_id"`
		DifferenceCents int64  `json:"difference_cents"`
		Status          string
	}
	type order struct {
		OrderID       string `json:"order_id"`
		SaleID        string `json:"sale_id"`
		Status        string
		ExchangedFrom *exchange `json:"exchanged_from"`
		ExchangedTo   *exchange `json:"exchanged_to"`
	}
	get := func(node, id string) order {
		t.Helper()
		var o order
		status, raw := callRetry(client, "GET", "http://"+node+"/v1/orders/"+id, token, "", "")
		mustJSON(t, status, 200, raw, "order "+id, &o)
		return o
	}
	buyPaid := func(key string) string {
		t.Helper()
		status, raw := callRetry(client, "POST", "http://"+b+"/v1/sales/"+from+"/purchase", token, key, `{"tier":"ga","quantity":1}`)
		var o order
		mustJSON(t, purchased(status), 201, raw, "purchase", &o)
		pay(b, o.OrderID, 1000, "evt-"+key)
		return o.OrderID
	}

	// Cheaper: a 5000 VIP given back for a 1000 GA (1000 + fee 100 - 5000).
	status, raw = callRetry(client, "POST", "http://"+b+"/v1/sales/"+from+"/purchase", token, "vip1", `{"tier":"vip","quantity":1}`)
	var vip order
	mustJSON(t, purchased(status), 201, raw, "purchase vip", &vip)
	pay(a, vip.OrderID, 5000, "evt-vip1")
	status, raw = callRetry(client, "POST", "http://"+b+"/v1/orders/"+vip.OrderID+"/exchange", token, "", fmt.Sprintf(`{"tier":"ga","sale_id":%q}`, to))
	var n order
	mustJSON(t, status, 200, raw, "cheaper exchange", &n)
	if n.SaleID != to || n.Status != "paid" || !strings.HasPrefix(n.OrderID, to+".") || n.ExchangedFrom == nil ||
		n.ExchangedFrom.FromOrderID != vip.OrderID || n.ExchangedFrom.Status != "completed" || n.ExchangedFrom.DifferenceCents != 1000+100-5000 {
		t.Fatalf("cheaper exchange answered %s", raw)
	}
	for _, node := range []string{a, b} {
		if got := get(node, n.OrderID); got.Status != "paid" || got.ExchangedFrom == nil || got.ExchangedFrom.Status != "completed" {
			t.Fatalf("new order through %s: %+v", node, got)
		}
		if old := get(node, vip.OrderID); old.Status != "refunded" || old.ExchangedTo == nil || old.ExchangedTo.ToOrderID != n.OrderID {
			t.Fatalf("old order through %s: %+v", node, old)
		}
	}
	status, raw = callRetry(client, "POST", "http://"+a+"/v1/orders/"+vip.OrderID+"/exchange", token, "", fmt.Sprintf(`{"tier":"ga","sale_id":%q}`, to))
	var again order
	if mustJSON(t, status, 200, raw, "cheaper exchange again", &again); again.OrderID != n.OrderID {
		t.Fatalf("the exchange asked again answered %s, want %s", again.OrderID, n.OrderID)
	}

	// Dearer: 5000 + 100 - 1000 due on the new order.
	ga := buyPaid("ga1")
	status, raw = callRetry(client, "POST", "http://"+a+"/v1/orders/"+ga+"/exchange", token, "", fmt.Sprintf(`{"tier":"vip","sale_id":%q}`, to))
	var d order
	mustJSON(t, status, 200, raw, "dearer exchange", &d)
	if d.SaleID != to || d.Status != "pending" || d.ExchangedFrom == nil || d.ExchangedFrom.Status != "awaiting_payment" ||
		d.ExchangedFrom.DifferenceCents != 5000+100-1000 {
		t.Fatalf("dearer exchange answered %s", raw)
	}
	if old := get(a, ga); old.Status != "paid" {
		t.Fatalf("old order awaiting the difference: %+v", old)
	}
	pay(b, d.OrderID, 4100, "evt-diff")
	deadline := time.Now().Add(30 * time.Second) // the kick runs beside the payment's answer
	for {
		old, got := get(b, ga), get(a, d.OrderID)
		if old.Status == "refunded" && got.ExchangedFrom != nil && got.ExchangedFrom.Status == "completed" {
			if got.Status != "paid" || old.ExchangedTo == nil || old.ExchangedTo.ToOrderID != d.OrderID {
				t.Fatalf("after the difference: old %+v, new %+v", old, got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dearer exchange did not settle: old %+v, new %+v", old, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
