package httpapi

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// queuedSaleJSON is saleJSON with a waiting room.
func (e *testEnv) queuedSaleJSON(stock int, mode string, opensIn time.Duration) string {
	now := e.clock.Now()
	return fmt.Sprintf(`{"name":"Concert","currency":"EUR","opens_at":%q,"closes_at":%q,"hold_seconds":600,
		"per_user_limit":4,"tiers":[{"id":"floor","name":"Floor","price_cents":5000,"stock":%d}],
		"queue":{"mode":%q,"admit_rate":1000,"admission_ttl_seconds":60}}`,
		now.Add(opensIn).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339), stock, mode)
}

// waitAdmitted asks /queue/me until the shard's tick admits the buyer
// (bounded in count and time).
func (e *testEnv) waitAdmitted(sale, user string) *resp {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for range 10_000 {
		r := e.want(e.do("GET", "/v1/sales/"+sale+"/queue/me", e.buyer(user), ""), 200, "")
		if r.str("state") == "admitted" || time.Now().After(deadline) {
			return r
		}
	}
	e.t.Fatalf("%s was not admitted", user)
	return nil
}

func admissionToken(r *resp) string {
	a, _ := r.json()["admission"].(map[string]any)
	tok, _ := a["token"].(string)
	return tok
}

// TestQueueJourney: the buyer's journey through a queued sale over HTTP:
// join (twice: one place), a purchase refused without an admission, with
// another buyer's or a forged token, accepted with the buyer's own, and
// refused when the admission is used again.
func TestQueueJourney(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := e.do("PUT", "/v1/admin/sales/q", e.admin(), e.queuedSaleJSON(1, "fifo", -time.Hour))
	e.want(r, 201, "")
	q, _ := r.json()["queue"].(map[string]any)
	if q["mode"] != "fifo" || len(q["seed_sha256"].(string)) != 64 || q["seed_sha256"] == strings.Repeat("0", 64) {
		t.Fatalf("sale's queue: %s", r.body)
	}
	e.want(e.do("POST", "/v1/sales/q/purchase", e.buyer("ann").with("Idempotency-Key", "k1"), `{"tier":"floor","quantity":1}`), 403, "admission_required")
	e.want(e.do("GET", "/v1/sales/q/queue/me", e.buyer("ann"), ""), 404, "not_queued")
	j1 := e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("ann"), ""), 201, "")
	j2 := e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("ann"), ""), 200, "")
	if j1.str("join_id") != j2.str("join_id") || j1.json()["place"] != j2.json()["place"] {
		t.Fatalf("joined twice: %s then %s", j1.body, j2.body)
	}
	e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("bob"), ""), 201, "")
	ann := e.waitAdmitted("q", "ann")
	bob := e.want(e.do("GET", "/v1/sales/q/queue/me", e.buyer("bob"), ""), 200, "") // one ticket: bob waits until ann's hold goes
	if ann.str("state") != "admitted" || bob.str("state") != "waiting" || bob.header.Get("Retry-After") == "" {
		t.Fatalf("ann %s, bob %s", ann.body, bob.body)
	}
	tok := admissionToken(ann)
	buy := func(user, key, token string) *resp {
		return e.do("POST", "/v1/sales/q/purchase", e.buyer(user).with("Idempotency-Key", key).with("Onsale-Admission", token), `{"tier":"floor","quantity":1}`)
	}
	e.want(buy("bob", "k2", tok), 403, "admission_invalid")                   // ann's token
	e.want(buy("ann", "k1", tok[:len(tok)-2]+"AA"), 403, "admission_invalid") // forged
	o := e.want(buy("ann", "k1", tok), 201, "")
	e.want(buy("ann", "k1", tok), 200, "") // a retry
	e.want(buy("ann", "k3", tok), 409, "admission_used")
	// Ann cancels: her ticket goes back, and the next tick admits bob.
	e.want(e.do("POST", "/v1/orders/"+o.str("order_id")+"/cancel", e.buyer("ann"), ""), 200, "")
	e.clock.Advance(time.Second) // admissions are paced by the clock (admit_rate)
	bob = e.waitAdmitted("q", "bob")
	e.want(buy("bob", "k4", admissionToken(bob)), 201, "")
	me := e.want(e.do("GET", "/v1/sales/q/queue/me", e.buyer("ann"), ""), 200, "")
	if me.str("state") != "used" || me.json()["sold_out"] != false {
		t.Fatalf("ann after buying: %s", me.body)
	}
	d := e.want(e.do("GET", "/v1/sales/q/queue/draw", nil, ""), 200, "")
	if d.json()["drawn"] != false || d.str("seed_sha256") != q["seed_sha256"] {
		t.Fatalf("a fifo sale's draw: %s", d.body)
	}
	e.want(e.do("POST", "/v1/sales/nope/queue", e.buyer("ann"), ""), 404, "unknown_sale")
}

// TestQueueJoinFlood: a buyer who floods the join route is limited by
// their own bucket without hurting another buyer's join; an address that
// floods is limited without hurting another address.
func TestQueueJoinFlood(t *testing.T) {
	e := startEnv(t, envOptions{cfg: func(c *Config) {
		c.UserRatePerSec, c.UserBurst = 1, 2
		c.QueueJoinAddrRatePerSec = 1.5 // bursts of 3; the test clock stands still: no refill
	}})
	e.want(e.do("PUT", "/v1/admin/sales/q", e.admin(), e.queuedSaleJSON(10, "fifo", -time.Hour)), 201, "")
	e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("bot"), ""), 201, "")
	e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("bot"), ""), 200, "")
	e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("bot"), ""), 429, "rate_limited")
	e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("human"), ""), 201, "") // the address's 3rd
	r := e.want(e.do("POST", "/v1/sales/q/queue", e.buyer("fresh"), ""), 429, "rate_limited")
	if r.header.Get("Retry-After") == "" || !strings.Contains(r.str("detail"), "address") {
		t.Fatalf("address limit: %v %s", r.header, r.body)
	}
	// From another loopback address the same buyer joins.
	other := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	defer other.CloseIdleConnections()
	req, _ := http.NewRequest("POST", e.base+"/v1/sales/q/queue", nil)
	for k, v := range e.buyer("fresh") {
		req.Header.Set(k, v)
	}
	res, err := other.Do(req)
	if err != nil {
		t.Skipf("cannot send from 127.0.0.2: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("from another address: %d %s", res.StatusCode, body)
	}
}
