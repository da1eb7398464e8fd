package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestAuditEveryNonBuyerMutation: every mutation route, asked by the admin,
// the door token, staff or a seller, leaves one entry with who, what, the
// target, the outcome, the address and the request id (the caller's, or
// one generated and answered); buyers' purchases and cancels leave none.
func TestAuditEveryNonBuyerMutation(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) {
		c.Backup = func(dest string) (BackupResult, error) { return BackupResult{Path: dest}, nil }
	}})
	e.putSale("s1", 50, 10)
	staffID, staff := e.credential("staff", "", "s1")
	sellerID, seller := e.credential("seller", "", "s1")
	paid := e.paidOrder("u1", "k1", 2)
	refunded := e.paidOrder("u3", "k3", 1)
	codes := e.codes(paid)
	pending := e.want(e.buy("s1", "u2", "k2", "floor", 1), 201, "").str("order_id")
	e.want(e.do("POST", "/v1/orders/"+pending+"/cancel", e.buyer("u2"), ""), 200, "") // a buyer: not audited
	boxOrder := ""
	door := hdr{"Authorization": "Bearer " + e.doorToken}

	cases := []struct {
		name, method, path, body string
		who                      hdr
		status                   int
		action, actor, role      string
		target                   func() string
	}{
		{"put sale", "PUT", "/v1/admin/sales/s2", e.saleJSON(5, 2), e.admin(), 201, "admin_put_sale", "admin", "admin", func() string { return "s2" }},
		{"close", "POST", "/v1/admin/sales/s2:close", "", e.admin(), 200, "admin_close_sale", "admin", "admin", func() string { return "s2" }},
		{"reopen", "POST", "/v1/admin/sales/s2:reopen", "", e.admin(), 200, "admin_reopen_sale", "admin", "admin", func() string { return "s2" }},
		{"close unknown", "POST", "/v1/admin/sales/nope:close", "", e.admin(), 404, "admin_close_sale", "admin", "admin", func() string { return "nope" }},
		{"load", "POST", "/v1/admin/sales:load", `{"sales":[` + saleWithID(e.saleJSON(5, 2), "s3") + `]}`, e.admin(), 200, "admin_load_sales", "admin", "admin", func() string { return "" }},
		{"refund", "POST", "/v1/admin/orders/" + refunded + "/refund", "", e.admin(), 200, "admin_refund", "admin", "admin", func() string { return refunded }},
		{"check in, staff", "POST", "/v1/checkin", fmt.Sprintf(`{"code":%q,"gate":"north"}`, codes[0]), staff, 200, "checkin", staffID, "staff", func() string { return paid }},
		{"check in, door", "POST", "/v1/checkin:sync", fmt.Sprintf(`{"gate":"east","scans":[{"code":%q,"scanned_at":%q}]}`, codes[1], e.clock.Now().UTC().Format(time.RFC3339)), door, 200, "checkin_sync", "door", "door", func() string { return paid }},
		{"rotate key", "POST", "/v1/admin/sales/s1/checkin-keys:rotate", "", e.admin(), 200, "admin_rotate_checkin_key", "admin", "admin", func() string { return "s1" }},
		{"retire key", "POST", "/v1/admin/sales/s1/checkin-keys/1:retire", "", e.admin(), 200, "admin_retire_checkin_key", "admin", "admin", func() string { return "s1/checkin-keys/1" }},
		{"box office", "POST", "/v1/sales/s1/purchase", `{"tier":"floor","quantity":1,"buyer":{"name":"Ann","email":"ann@example.com"}}`, seller.with("Idempotency-Key", "b1"), 201, "purchase", sellerID, "seller", func() string { return "s1" }},
		{"pay at counter", "POST", "", `{"method":"cash"}`, seller.with("Idempotency-Key", "p1"), 200, "pay_at_counter", sellerID, "seller", func() string { return boxOrder }},
		{"create credential", "POST", "/v1/admin/credentials", `{"name":"x","role":"staff","sales":["s1"]}`, e.admin(), 201, "admin_create_credential", "admin", "admin", nil},
		{"revoke credential", "DELETE", "/v1/admin/credentials/" + staffID, "", e.admin(), 200, "admin_revoke_credential", "admin", "admin", func() string { return staffID }},
		{"cancel, admin", "POST", "", "", e.admin(), 200, "cancel_order", "admin", "admin", func() string { return boxOrder }},
		{"backup", "POST", "/v1/admin/backup", `{"to":"/backups/b1"}`, e.admin(), 201, "admin_backup", "admin", "admin", func() string { return "/backups/b1" }},
	}
	for i, c := range cases {
		path := c.path
		if path == "" { // routes on the box-office order, known only once it exists
			path = "/v1/orders/" + boxOrder + map[string]string{"pay_at_counter": "/pay-at-counter", "cancel_order": "/cancel"}[c.action]
			if c.action == "cancel_order" { // a paid order cannot be cancelled: a fresh one
				boxOrder = e.want(e.do("POST", "/v1/sales/s1/purchase", seller.with("Idempotency-Key", "b2"),
					`{"tier":"floor","quantity":1,"buyer":{"name":"Bo","email":"bo@example.com"}}`), 201, "").str("order_id")
				path = "/v1/orders/" + boxOrder + "/cancel"
			}
		}
		reqID := fmt.Sprintf("req-%d", i)
		h := hdr{"X-Request-Id": reqID}
		if i%2 == 1 {
			h = hdr{"X-Request-Id": "not sane!"} // replaced by a generated one
		}
		for k, v := range c.who {
			h[k] = v
		}
		r := e.do(c.method, path, h, c.body)
		if r.status != c.status {
			t.Fatalf("%s: %d %s", c.name, r.status, r.body)
		}
		got := r.header.Get("X-Request-Id")
		if i%2 == 0 && got != reqID || i%2 == 1 && (len(got) != 24 || got == "not sane!") {
			t.Fatalf("%s: X-Request-Id answered %q", c.name, got)
		}
		if c.action == "purchase" {
			boxOrder = r.str("order_id")
		}
		created := ""
		if c.action == "admin_create_credential" {
			created = r.str("id")
		}
		// The test clock stands still: find the entry by its request id.
		list := e.want(e.do("GET", "/v1/admin/audit?action="+c.action, e.admin(), ""), 200, "").json()
		var a map[string]any
		for _, x := range list["entries"].([]any) {
			if m := x.(map[string]any); m["request_id"] == got {
				if a != nil {
					t.Fatalf("%s: two entries for request %s", c.name, got)
				}
				a = m
			}
		}
		if a == nil {
			t.Fatalf("%s: no entry for request %s: %v", c.name, got, list)
		}
		target := created
		if c.target != nil {
			target = c.target()
		}
		outcome := "ok"
		if c.status >= 400 {
			outcome = r.code()
		}
		if a["actor"] != c.actor || a["role"] != c.role || a["target"] != target || a["outcome"] != outcome ||
			a["remote_addr"] != "127.0.0.1" || a["request_id"] != got || a["at"] != e.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z") {
			t.Fatalf("%s: entry %v (want target %q outcome %q request id %q)", c.name, a, target, outcome, got)
		}
	}
	all := e.want(e.do("GET", "/v1/admin/audit?limit=1000", e.admin(), ""), 200, "").json()["entries"].([]any)
	buyerRoutes := 0
	for _, x := range all {
		if a := x.(map[string]any); a["role"] == "" || a["actor"] == "u1" || a["actor"] == "u2" {
			buyerRoutes++
		}
	}
	// The cases, and the setup's sale, two credentials and second box-office
	// sale; none of the buyers' purchases, cancel or payments.
	if len(all) != len(cases)+4 || buyerRoutes != 0 {
		t.Fatalf("%d entries (%d of buyers), want %d", len(all), buyerRoutes, len(cases)+4)
	}
}

// TestAuditListing: filters, time range, pages that add up to the whole
// list, and bad queries refused.
func TestAuditListing(t *testing.T) {
	e := startEnv(t, envOptions{shards: 3})
	start := e.clock.Now()
	for i := range 7 {
		e.want(e.do("PUT", fmt.Sprintf("/v1/admin/sales/s%d", i), e.admin(), e.saleJSON(5, 2)), 201, "")
		e.clock.Advance(time.Second)
	}
	e.want(e.do("POST", "/v1/admin/sales/s3:close", e.admin(), ""), 200, "")
	get := func(q string) []string {
		t.Helper()
		var out []string
		cursor := ""
		for range 20 {
			m := e.want(e.do("GET", "/v1/admin/audit?limit=2&"+q+"&cursor="+url.QueryEscape(cursor), e.admin(), ""), 200, "").json()
			for _, x := range m["entries"].([]any) {
				a := x.(map[string]any)
				out = append(out, fmt.Sprint(a["action"], ":", a["target"]))
			}
			next, _ := m["next_cursor"].(string)
			if next == "" {
				return out
			}
			cursor = next
		}
		t.Fatal("too many pages")
		return nil
	}
	if got := fmt.Sprint(get("")); got != "[admin_close_sale:s3 admin_put_sale:s6 admin_put_sale:s5 admin_put_sale:s4 admin_put_sale:s3 admin_put_sale:s2 admin_put_sale:s1 admin_put_sale:s0]" {
		t.Fatalf("all: %s", got)
	}
	if got := fmt.Sprint(get("target=s3")); got != "[admin_close_sale:s3 admin_put_sale:s3]" {
		t.Fatalf("target: %s", got)
	}
	if got := fmt.Sprint(get("action=admin_close_sale&actor=admin")); got != "[admin_close_sale:s3]" {
		t.Fatalf("action: %s", got)
	}
	from := url.QueryEscape(start.Add(2 * time.Second).UTC().Format(time.RFC3339))
	to := url.QueryEscape(start.Add(4 * time.Second).UTC().Format(time.RFC3339))
	if got := fmt.Sprint(get("from=" + from + "&to=" + to)); got != "[admin_put_sale:s3 admin_put_sale:s2]" {
		t.Fatalf("time range: %s", got)
	}
	e.want(e.do("GET", "/v1/admin/audit?limit=0", e.admin(), ""), http.StatusBadRequest, codeInvalidQuery)
	e.want(e.do("GET", "/v1/admin/audit?from=yesterday", e.admin(), ""), http.StatusBadRequest, codeInvalidQuery)
	e.want(e.do("GET", "/v1/admin/audit?cursor=bogus", e.admin(), ""), http.StatusUnprocessableEntity, codeInvalidRequest)
	e.want(e.do("GET", "/v1/admin/audit", e.buyer("u1"), ""), http.StatusForbidden, "")
}

// saleWithID puts "id" first in a sale's JSON, for sales:load.
func saleWithID(sale, id string) string { return `{"id":"` + id + `",` + sale[1:] }
