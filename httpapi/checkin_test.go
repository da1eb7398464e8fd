package httpapi

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// paidOrder buys qty floor tickets for user and pays for them.
func (e *testEnv) paidOrder(user, key string, qty int) string {
	e.t.Helper()
	r := e.want(e.buy("s1", user, key, "floor", qty), 201, "")
	id := r.str("order_id")
	e.want(e.pay("evt_"+key, "payment.succeeded", id, int64(5000*qty), "EUR"), 200, "")
	return id
}

// codes returns the codes of an order's tickets ("" for a revoked one).
func (e *testEnv) codes(orderID string) []string {
	e.t.Helper()
	r := e.want(e.do("GET", "/v1/orders/"+orderID+"/tickets", e.admin(), ""), 200, "")
	var out []string
	for _, t := range r.json()["tickets"].([]any) {
		c, _ := t.(map[string]any)["code"].(string)
		out = append(out, c)
	}
	return out
}

func (e *testEnv) scan(code, gate string) *resp {
	return e.do("POST", "/v1/checkin", hdr{"Authorization": "Bearer " + e.doorToken}, fmt.Sprintf(`{"code":%q,"gate":%q}`, code, gate))
}

func TestCheckInSignedCodes(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 20, 10)
	id := e.paidOrder("u1", "k1", 2)

	// The buyer sees the codes; another buyer sees no such order.
	r := e.want(e.do("GET", "/v1/orders/"+id+"/tickets", e.buyer("u1"), ""), 200, "")
	if r.str("holder") != "u1" || r.str("sale_name") == "" || len(r.json()["tickets"].([]any)) != 2 {
		t.Fatalf("tickets: %s", r.body)
	}
	e.want(e.do("GET", "/v1/orders/"+id+"/tickets", e.buyer("u2"), ""), 404, "unknown_order")
	codes := e.codes(id)

	// A scanner verifies offline with the published key.
	r = e.want(e.do("GET", "/v1/sales/s1/checkin-key", nil, ""), 200, "")
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Fatalf("Cache-Control %q", cc)
	}
	key := r.json()["keys"].([]any)[0].(map[string]any)
	raw, err := base64.RawURLEncoding.DecodeString(key["public_key"].(string))
	if err != nil || key["kid"].(interface{ String() string }).String() != "1" || key["current"] != true {
		t.Fatalf("key %v %v", key, err)
	}
	if _, err := engine.VerifyTicketCode(codes[0], func(string, uint8) ed25519.PublicKey { return raw }); err != nil {
		t.Fatalf("offline verification with the published key: %v", err)
	}

	r = e.want(e.scan(codes[0], "north-3"), 200, "")
	if r.str("gate") != "north-3" || r.str("holder") != "u1" || r.str("ticket_id") != id+".0" || r.str("tier") != "floor" {
		t.Fatalf("admitted: %s", r.body)
	}
	firstAt := r.str("checked_in_at")
	r = e.want(e.scan(codes[0], "south-1"), 409, "already_checked_in")
	if r.str("first_gate") != "north-3" || r.str("first_checked_in_at") != firstAt {
		t.Fatalf("second scan: %s", r.body)
	}

	// Forged, malformed, no gate, plain ids from the door.
	sig := []byte(codes[1])
	sig[len(sig)-5] = map[bool]byte{true: 'B', false: 'A'}[sig[len(sig)-5] == 'A']
	e.want(e.scan(string(sig), "north-3"), 422, "invalid_ticket")
	for _, bad := range []string{"hello", strings.ToLower(codes[1]), codes[1][:100], codes[1] + "AA", strings.Repeat("Z", 5000)} {
		e.want(e.scan(bad, "north-3"), 422, "invalid_ticket")
	}
	e.want(e.scan(codes[1], ""), 422, "invalid_request")
	e.want(e.scan(codes[1], strings.Repeat("g", 65)), 422, "invalid_request")
	e.want(e.do("POST", "/v1/checkin", e.buyer("u1"), fmt.Sprintf(`{"code":%q,"gate":"g"}`, codes[1])), 403, "forbidden")

	// A code signed with a key that never signed this order: revoked.
	rot := e.want(e.do("POST", "/v1/admin/sales/s1/checkin-keys:rotate", e.admin(), ""), 200, "")
	if n := len(rot.json()["keys"].([]any)); n != 2 {
		t.Fatalf("after rotate: %s", rot.body)
	}
	p, _, _, _ := engine.ParseTicketCode(codes[1])
	p.Kid = 2
	e.want(e.scan(engine.SignTicketCode(p, engine.DeriveTicketKey(testDataKey, "s1", 2)), "north-3"), 409, "ticket_revoked")

	// Retiring key 1 re-issues: the old code is refused, the new admits.
	e.want(e.do("POST", "/v1/admin/sales/s1/checkin-keys/2:retire", e.admin(), ""), 409, "current_ticket_key")
	e.want(e.do("POST", "/v1/admin/sales/s1/checkin-keys/7:retire", e.admin(), ""), 404, "unknown_ticket_key")
	e.want(e.do("POST", "/v1/admin/sales/s1/checkin-keys/x:retire", e.admin(), ""), 422, "invalid_request")
	e.want(e.do("POST", "/v1/admin/sales/s1/checkin-keys/1:retire", e.admin(), ""), 200, "")
	fresh := e.codes(id)
	if fresh[1] == codes[1] {
		t.Fatal("retiring the key did not re-issue the ticket")
	}
	e.want(e.scan(codes[1], "north-3"), 409, "ticket_revoked")
	e.want(e.scan(fresh[1], "north-3"), 200, "")

	// A refund revokes: no code, refused at the door, in the feed.
	other := e.paidOrder("u2", "k2", 2)
	otherCodes := e.codes(other)
	e.want(e.do("POST", "/v1/admin/orders/"+other+"/refund", e.admin(), ""), 200, "")
	if got := e.codes(other); got[0] != "" || got[1] != "" {
		t.Fatalf("revoked tickets carry codes %q", got)
	}
	e.want(e.scan(otherCodes[0], "north-3"), 409, "ticket_revoked")
	door := hdr{"Authorization": "Bearer " + e.doorToken}
	var ids []string
	since := ""
	for range 3 {
		r := e.want(e.do("GET", "/v1/sales/s1/revocations?limit=1&since="+since, door, ""), 200, "")
		for _, v := range r.json()["revocations"].([]any) {
			ids = append(ids, v.(map[string]any)["ticket_id"].(string))
		}
		since = r.str("next")
	}
	if strings.Join(ids, " ") != other+".0 "+other+".1" || since != "2" {
		t.Fatalf("revocations %v next %q", ids, since)
	}
	e.want(e.do("GET", "/v1/sales/s1/revocations?since=9", door, ""), 422, "invalid_request")
	e.want(e.do("GET", "/v1/sales/s1/revocations", e.buyer("u1"), ""), 403, "forbidden")
	e.want(e.do("GET", "/v1/sales/nope/revocations", door, ""), 404, "unknown_sale")
}

// TestCheckInDoubleScanFromManyClients: one code scanned by many gates at
// once is admitted exactly once.
func TestCheckInDoubleScanFromManyClients(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 20, 10)
	code := e.codes(e.paidOrder("u1", "k1", 1))[0]
	const clients = 32
	status := make([]int, clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			<-start
			status[i] = e.scan(code, fmt.Sprint("gate-", i)).status
		})
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range status {
		count[s]++
	}
	if count[200] != 1 || count[409] != clients-1 {
		t.Fatalf("statuses %v, want one 200 and %d 409", count, clients-1)
	}
}

// TestCheckInSync: an offline gate's upload, with a ticket admitted online
// in the meantime, one scanned twice, a forged one; sent twice.
func TestCheckInSync(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 20, 10)
	codes := e.codes(e.paidOrder("u1", "k1", 2))
	e.want(e.scan(codes[0], "north-1"), 200, "")
	at := func(s int) string {
		return e.clock.Now().Add(time.Duration(s-100) * time.Second).UTC().Format(time.RFC3339Nano)
	}
	body := fmt.Sprintf(`{"gate":"east-offline","scans":[{"code":%q,"scanned_at":%q},{"code":%q,"scanned_at":%q},{"code":%q,"scanned_at":%q},{"code":"FORGED","scanned_at":%q}]}`,
		codes[1], at(1), codes[0], at(2), codes[1], at(3), at(4))
	door := hdr{"Authorization": "Bearer " + e.doorToken}
	for round := range 2 {
		r := e.want(e.do("POST", "/v1/checkin:sync", door, body), 200, "")
		res := r.json()["results"].([]any)
		get := func(i int, k string) any { return res[i].(map[string]any)[k] }
		if get(0, "admitted") != true || get(1, "code") != "already_checked_in" || get(1, "first_gate") != "north-1" ||
			get(2, "code") != "already_checked_in" || get(2, "first_gate") != "east-offline" || get(3, "code") != "invalid_ticket" {
			t.Fatalf("round %d: %s", round, r.body)
		}
		if round == 1 && get(0, "repeated") != true {
			t.Fatalf("the repeated upload's admission is not marked: %s", r.body)
		}
	}
	e.want(e.do("POST", "/v1/checkin:sync", door, `{"gate":"g","scans":[{"code":"A","scanned_at":"yesterday"}]}`), 422, "invalid_request")
	e.want(e.do("POST", "/v1/checkin:sync", door, `{"gate":"","scans":[]}`), 422, "invalid_request")
}

// BenchmarkCheckIn measures POST /v1/checkin of a signed code through the
// handler (no sockets): JSON, signature verification, the shard's
// decision, the durable answer (in-memory journal). Every ticket is
// scanned once.
func BenchmarkCheckIn(b *testing.B) {
	s, _ := benchServer(b, 0)
	eng := s.eng
	ctx := context.Background()
	var codes []string
	for len(codes) < b.N {
		o, _, err := eng.Purchase(ctx, engine.PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 64, UserID: "u", IdempotencyKey: fmt.Sprint(len(codes))})
		if err == nil {
			_, _, err = eng.ApplyPayment(ctx, engine.Payment{EventID: o.ID, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"})
		}
		if err != nil {
			b.Fatal(err)
		}
		ot, err := eng.Tickets(ctx, o.ID)
		if err != nil {
			b.Fatal(err)
		}
		for i := range ot.Tickets {
			p := ot.Payload(i)
			codes = append(codes, engine.SignTicketCode(p, s.ticketKeys.private(p.SaleID, p.Kid)))
		}
	}
	h := s.Handler()
	rc := &fasthttp.RequestCtx{}
	rc.Request.Header.SetMethod("POST")
	rc.Request.SetRequestURI("/v1/checkin")
	rc.Request.Header.Set("Authorization", "Bearer door")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rc.Request.SetBodyString(`{"code":"` + codes[i] + `","gate":"north-3"}`)
		rc.Response.Reset()
		h(rc)
		if rc.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", rc.Response.StatusCode(), rc.Response.Body())
		}
	}
}
