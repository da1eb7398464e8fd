package httpapi

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
)

// lotterySaleJSON is saleJSON with a lottery whose registrations close in
// closesIn.
func (e *testEnv) lotterySaleJSON(stock int, closesIn time.Duration) string {
	return strings.TrimSuffix(e.saleJSON(stock, 4), "}") + fmt.Sprintf(`,"queue":{"mode":"lottery","registration_closes_at":%q,"pay_within_seconds":120}}`,
		e.clock.Now().Add(closesIn).Format(time.RFC3339))
}

// waitOffer asks GET path until the registration's state is not want's
// opposite (bounded in count and time): the shard's ticker runs the draw.
func (e *testEnv) waitState(path, user string, states ...string) *resp {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for range 10_000 {
		r := e.want(e.do("GET", path, e.buyer(user), ""), 200, "")
		for _, s := range states {
			if r.str("state") == s {
				return r
			}
		}
		if time.Now().After(deadline) {
			break
		}
	}
	e.t.Fatalf("%s never reached %v at %s", user, states, path)
	return nil
}

func hex32(t *testing.T, s string) (out [32]byte) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("not 32 bytes of hex: %q", s)
	}
	copy(out[:], b)
	return out
}

func joinIDs(t *testing.T, v any) []engine.JoinID {
	var out []engine.JoinID
	for _, x := range v.([]any) {
		b, err := hex.DecodeString(x.(string))
		if err != nil || len(b) != 16 {
			t.Fatalf("join id %v", x)
		}
		out = append(out, engine.JoinID(b))
	}
	return out
}

// TestLotteryJourney: a lottery over HTTP: register (once per buyer), no
// open sale before the draw, the draw at the registrations' close that the
// published data verifies, the winner's offer in its orders, and a cancel
// that passes the ticket to the next ranked at once.
func TestLotteryJourney(t *testing.T) {
	e := startEnv(t, envOptions{})
	r := e.want(e.do("PUT", "/v1/admin/sales/lot", e.admin(), e.lotterySaleJSON(1, 10*time.Second)), 201, "")
	q, _ := r.json()["queue"].(map[string]any)
	if q["mode"] != "lottery" || len(q["seed_sha256"].(string)) != 64 || q["drawn"] != false {
		t.Fatalf("sale's lottery: %s", r.body)
	}
	e.want(e.buy("lot", "ann", "k1", "floor", 1), 409, "sale_not_open")
	e.want(e.do("GET", "/v1/sales/lot/queue/me", e.buyer("ann"), ""), 404, "not_registered")
	e.want(e.do("POST", "/v1/sales/lot/queue", e.buyer("ann"), `{"quantity":1}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/sales/lot/queue", e.buyer("ann"), `{"tier":"floor","quantity":1,"x":1}`), 422, "invalid_request")
	a := e.want(e.do("POST", "/v1/sales/lot/queue", e.buyer("ann"), `{"tier":"floor","quantity":1}`), 201, "")
	e.want(e.do("POST", "/v1/sales/lot/queue", e.buyer("ann"), `{"tier":"floor","quantity":1}`), 200, "")
	e.want(e.do("POST", "/v1/sales/lot/queue", e.buyer("bob"), `{"tier":"floor","quantity":1}`), 201, "")
	if a.str("state") != "registered" || a.str("book") != "lottery" || a.json()["rank"].(interface{ String() string }).String() != "-1" {
		t.Fatalf("ann registered: %s", a.body)
	}

	e.clock.Advance(11 * time.Second)
	e.want(e.do("POST", "/v1/sales/lot/queue", e.buyer("cat"), `{"tier":"floor","quantity":1}`), 409, "registration_closed")
	won := e.waitState("/v1/sales/lot/queue/me", "ann", "won", "waiting")
	winner, loser := "ann", "bob"
	if won.str("state") != "won" {
		winner, loser = "bob", "ann"
		won = e.want(e.do("GET", "/v1/sales/lot/queue/me", e.buyer("bob"), ""), 200, "")
	}
	if won.str("state") != "won" || won.str("order_id") == "" || won.str("pay_by") == "" {
		t.Fatalf("winner: %s", won.body)
	}
	mine := e.want(e.do("GET", "/v1/me/orders", e.buyer(winner), ""), 200, "")
	if !strings.Contains(string(mine.body), won.str("order_id")) {
		t.Fatalf("the offer is not in the winner's orders: %s", mine.body)
	}
	if l := e.want(e.do("GET", "/v1/sales/lot/queue/me", e.buyer(loser), ""), 200, ""); l.str("state") != "waiting" {
		t.Fatalf("loser: %s", l.body)
	}
	d := e.want(e.do("GET", "/v1/sales/lot/queue/draw", nil, ""), 200, "").json()
	if d["drawn"] != true {
		t.Fatalf("draw: %v", d)
	}
	if err := engine.VerifyDraw(hex32(t, d["seed_sha256"].(string)), hex32(t, d["seed"].(string)), joinIDs(t, d["join_ids"]), joinIDs(t, d["order"])); err != nil {
		t.Fatalf("the published draw does not verify: %v", err)
	}
	// The winner gives up: the ticket goes to the next ranked in the same entry.
	e.want(e.do("POST", "/v1/orders/"+won.str("order_id")+"/cancel", e.buyer(winner), ""), 200, "")
	if l := e.want(e.do("GET", "/v1/sales/lot/queue/me", e.buyer(loser), ""), 200, ""); l.str("state") != "won" {
		t.Fatalf("after the winner's cancel, the next: %s", l.body)
	}
	if w := e.want(e.do("GET", "/v1/sales/lot/queue/me", e.buyer(winner), ""), 200, ""); w.str("state") != "lapsed" {
		t.Fatalf("the winner after cancelling: %s", w.body)
	}
}

// TestWaitlistJourney: a waitlist over HTTP: registrations only once sold
// out, once per buyer, leave; a cancel turns the freed ticket into the
// first registrant's offer.
func TestWaitlistJourney(t *testing.T) {
	e := startEnv(t, envOptions{})
	body := strings.TrimSuffix(e.saleJSON(1, 4), "}") + `,"waitlist":{"enabled":true,"max_quantity":2,"pay_within_seconds":300}}`
	r := e.want(e.do("PUT", "/v1/admin/sales/w", e.admin(), body), 201, "")
	if w, _ := r.json()["waitlist"].(map[string]any); w["enabled"] != true {
		t.Fatalf("sale's waitlist: %s", r.body)
	}
	join := func(user string, qty int) *resp {
		return e.do("POST", "/v1/sales/w/waitlist", e.buyer(user), fmt.Sprintf(`{"tier":"floor","quantity":%d}`, qty))
	}
	e.want(join("zed", 1), 409, "tickets_available")
	o := e.want(e.buy("w", "ann", "k1", "floor", 1), 201, "")
	e.want(join("bob", 3), 422, "invalid_quantity")
	b := e.want(join("bob", 1), 201, "")
	e.want(join("bob", 1), 200, "")
	e.want(join("cat", 1), 201, "")
	if b.str("state") != "waiting" || b.str("book") != "waitlist" {
		t.Fatalf("bob: %s", b.body)
	}
	if c := e.want(e.do("GET", "/v1/sales/w/waitlist/me", e.buyer("cat"), ""), 200, ""); c.json()["ahead"].(interface{ String() string }).String() != "1" {
		t.Fatalf("cat: %s", c.body)
	}
	e.want(e.do("DELETE", "/v1/sales/w/waitlist/me", e.buyer("dan"), ""), 404, "not_registered")
	if c := e.want(e.do("DELETE", "/v1/sales/w/waitlist/me", e.buyer("cat"), ""), 200, ""); c.str("state") != "left" {
		t.Fatalf("cat left: %s", c.body)
	}
	e.want(e.do("POST", "/v1/orders/"+o.str("order_id")+"/cancel", e.buyer("ann"), ""), 200, "")
	b = e.want(e.do("GET", "/v1/sales/w/waitlist/me", e.buyer("bob"), ""), 200, "")
	if b.str("state") != "offered" || b.str("order_id") == "" {
		t.Fatalf("bob after the cancel: %s", b.body)
	}
	if ord := e.want(e.do("GET", "/v1/orders/"+b.str("order_id"), e.buyer("bob"), ""), 200, ""); ord.str("status") != "pending" {
		t.Fatalf("bob's offer: %s", ord.body)
	}
	e.want(e.buy("w", "eve", "k1", "floor", 1), 409, "sold_out")
}

// TestQueueDocumentOnePlace: a real-name sale's queue takes one place per
// document: the same document under another buyer is 409.
func TestQueueDocumentOnePlace(t *testing.T) {
	e := startEnv(t, envOptions{})
	body := strings.TrimSuffix(e.queuedSaleJSON(5, "fifo", -time.Hour), "}") + `,"real_name":{"required":true,"per_document_limit":2}}`
	e.want(e.do("PUT", "/v1/admin/sales/rq", e.admin(), body), 201, "")
	e.want(e.do("POST", "/v1/sales/rq/queue", e.buyer("ann"), ""), 422, "attendees_required")
	doc := `{"document_type":"passport","document_number":"E1234 5678"}`
	e.want(e.do("POST", "/v1/sales/rq/queue", e.buyer("ann"), doc), 201, "")
	e.want(e.do("POST", "/v1/sales/rq/queue", e.buyer("ann"), doc), 200, "")
	r := e.want(e.do("POST", "/v1/sales/rq/queue", e.buyer("bob"), `{"document_type":"passport","document_number":"e12345678"}`), 409, "document_in_queue")
	if strings.Contains(string(r.body), "12345678") {
		t.Fatalf("the problem quotes the number: %s", r.body)
	}
	e.want(e.do("POST", "/v1/sales/rq/queue", e.buyer("bob"), `{"document_type":"passport","document_number":"X"}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/sales/rq/queue", e.buyer("bob"), `{"document_type":"passport","document_number":"E87654321"}`), 201, "")
}
