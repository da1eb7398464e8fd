package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestArchiveRoutesAnswerAsBefore archives a sale over HTTP and asks every
// read route about it: the same bodies as before archiving (the sale's
// status aside), then purchases are refused, a late refund brings it back,
// and unarchive is idempotent.
func TestArchiveRoutesAnswerAsBefore(t *testing.T) {
	e := startEnv(t, envOptions{shards: 1, snapshotEvents: 5})
	e.putSale("s1", 50, 10)
	var orders []string
	for i, user := range []string{"ann", "bob", "cat", "dan"} {
		o := e.want(e.buy("s1", user, "k1", []string{"floor", "seat"}[i%2], 1+i%2), 201, "")
		id := o.str("order_id")
		orders = append(orders, id)
		if i < 3 {
			e.want(e.pay("ev-"+id, "payment.succeeded", id, amountOf(t, o), "EUR"), 200, "")
		} else {
			e.want(e.do("POST", "/v1/orders/"+id+"/cancel", e.buyer(user), ""), 200, "")
		}
	}
	if _, err := e.eng.CheckInTicket(context.Background(), orders[0]+".0", "north"); err != nil {
		t.Fatal(err)
	}
	type read struct {
		path string
		h    hdr
	}
	reads := []read{
		{"/v1/admin/sales/s1/orders", e.admin()},
		{"/v1/admin/sales/s1/orders?limit=2", e.admin()},
		{"/v1/admin/sales/s1/orders.csv", e.admin()},
		{"/v1/admin/sales/s1/attendees.csv", e.admin()},
		{"/v1/admin/sales/s1/report", e.admin()},
		{"/v1/me/orders?sale_id=s1", e.buyer("ann")},
	}
	for i, id := range orders {
		user := []string{"ann", "bob", "cat", "dan"}[i]
		reads = append(reads, read{"/v1/orders/" + id, e.buyer(user)}, read{"/v1/orders/" + id, e.admin()})
		if i < 3 {
			reads = append(reads, read{"/v1/orders/" + id + "/tickets", e.buyer(user)})
		}
	}
	answers := func() map[string]string {
		out := map[string]string{}
		for _, r := range reads {
			body := e.want(e.do("GET", r.path, r.h, ""), 200, "").body
			var v any
			if json.Unmarshal(body, &v) == nil { // members in one order: the report's notes are a map
				body = mustJSON(t, v)
			}
			out[r.path+" "+r.h["Authorization"]] = string(body)
		}
		sale := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()
		delete(sale, "status")
		out["sale"] = strings.TrimSpace(string(mustJSON(t, sale)))
		return out
	}
	before := answers()
	r := e.want(e.do("POST", "/v1/admin/sales/s1:archive", e.admin(), ""), 200, "")
	if r.str("status") != "archived" {
		t.Fatalf("archive answered %s", r.body)
	}
	e.want(e.do("POST", "/v1/admin/sales/s1:archive", e.admin(), ""), 200, "")
	if got := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").str("status"); got != "archived" {
		t.Fatalf("status %q", got)
	}
	after := answers()
	for k, want := range before {
		if after[k] != want {
			t.Errorf("%s after archiving:\n got %s\nwant %s", k, after[k], want)
		}
	}
	e.want(e.buy("s1", "eve", "k1", "floor", 1), 409, "sale_archived")
	e.want(e.do("POST", "/v1/admin/sales/nope:archive", e.admin(), ""), 404, "unknown_sale")
	e.want(e.do("POST", "/v1/admin/sales/s1:archive", e.buyer("ann"), ""), 403, "forbidden")
	// A refund on the archived sale: it comes back, the refund applies.
	rf := e.want(e.do("POST", "/v1/admin/orders/"+orders[1]+"/refund", e.admin(), ""), 200, "")
	if rf.str("status") != "refunded" {
		t.Fatalf("refund: %s", rf.body)
	}
	if got := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").str("status"); got == "archived" {
		t.Fatal("still archived after a refund")
	}
	e.want(e.do("POST", "/v1/admin/sales/s1:unarchive", e.admin(), ""), 200, "")
	// One audit entry per admin request, however many steps it took.
	for action, want := range map[string]int{"admin_archive_sale": 3, "admin_unarchive_sale": 1, "admin_refund": 1} {
		entries := e.want(e.do("GET", "/v1/admin/audit?action="+action, e.admin(), ""), 200, "").json()["entries"].([]any)
		if len(entries) != want {
			t.Errorf("%d audit entries of %s, want %d: %v", len(entries), action, want, entries)
		}
	}
	e.want(e.do("POST", "/v1/admin/sales/s1:archive", e.admin(), ""), 200, "")
	e.want(e.do("POST", "/v1/admin/sales/s1:unarchive", e.admin(), ""), 200, "")
	entries := e.want(e.do("GET", "/v1/admin/audit?action=admin_unarchive_sale", e.admin(), ""), 200, "").json()["entries"].([]any)
	if len(entries) != 2 {
		t.Errorf("%d audit entries of unarchive after a second one, want 2", len(entries))
	}
	// Held tickets keep it live.
	e.want(e.buy("s1", "eve", "k2", "floor", 1), 201, "")
	e.want(e.do("POST", "/v1/admin/sales/s1:archive", e.admin(), ""), 409, "orders_pending")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func amountOf(t *testing.T, r *resp) int64 {
	t.Helper()
	n, err := r.json()["amount_cents"].(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
