package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func realNameSale(id string, clock *fakeClock, stock, perDoc int) SaleConfig {
	cfg := testSale(id, clock, stock, 10)
	cfg.RealName = RealNameRule{Required: true, PerDocumentLimit: perDoc}
	return cfg
}

func attendee(doc byte) Attendee {
	return Attendee{DocumentHash: [32]byte{doc}, DocumentLast4: fmt.Sprintf("%04d", doc), SealedName: []byte{'n', doc}}
}

func attendees(docs ...byte) []Attendee {
	as := make([]Attendee, len(docs))
	for i, d := range docs {
		as[i] = attendee(d)
	}
	return as
}

// TestRealNameRules: one attendee per ticket, no document twice in an
// order, at most the limit per document across users; cancel, expiry and
// refund give the slots back; late money takes them again only if free.
func TestRealNameRules(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, realNameSale("rn", clock, 100, 2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.PutSale(ctx, testSale("plain", clock, 100, 10)); err != nil {
		t.Fatal(err)
	}
	n := 0
	buy := func(user string, qty int, as []Attendee) (Order, error) {
		n++
		o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: qty, UserID: user,
			IdempotencyKey: fmt.Sprint("k", n), Attendees: as})
		return o, err
	}
	_, err := buy("u1", 2, attendees(1))
	wantCode(t, err, CodeAttendeesRequired)
	_, err = buy("u1", 2, attendees(1, 1))
	wantCode(t, err, CodeDuplicateDocument)
	_, _, err = e.Purchase(ctx, PurchaseRequest{SaleID: "plain", TierID: "floor", Quantity: 1, UserID: "u1", IdempotencyKey: "p", Attendees: attendees(1)})
	wantCode(t, err, CodeAttendeesRequired)
	_, _, err = e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: 1, UserID: "u1", IdempotencyKey: "x",
		Attendees: []Attendee{{DocumentLast4: "12345", SealedName: []byte("n")}}})
	wantCode(t, err, CodeInvalidRequest)

	a, err := buy("u1", 2, attendees(1, 2))
	if err != nil || !reflect.DeepEqual(a.Attendees, attendees(1, 2)) {
		t.Fatalf("purchase: %+v %v", a, err)
	}
	// A retry names the same documents (its names sealed anew) or is
	// another purchase under a used key.
	resealed := attendees(1, 2)
	for i := range resealed {
		resealed[i].SealedName = []byte("sealed again")
	}
	again, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: 2, UserID: "u1",
		IdempotencyKey: fmt.Sprint("k", n), Attendees: resealed})
	if err != nil || again.ID != a.ID {
		t.Fatalf("retry with the same documents: %+v %v", again, err)
	}
	_, _, err = e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: 2, UserID: "u1",
		IdempotencyKey: fmt.Sprint("k", n), Attendees: attendees(1, 3)})
	wantCode(t, err, CodeIdempotencyConflict)
	b, err := buy("u2", 1, attendees(1)) // another account, the same document: its second ticket
	if err != nil {
		t.Fatal(err)
	}
	_, err = buy("u3", 2, attendees(3, 1))
	wantCode(t, err, CodeDocumentLimitExceeded)
	if err.Error() != "document_limit_exceeded: attendees[1]: this document holds 2 tickets of the sale already; at most 2 per document" {
		t.Fatalf("message %q", err)
	}

	if _, err := e.Cancel(ctx, b.ID, "u2"); err != nil { // a cancel gives the slot back
		t.Fatal(err)
	}
	c, err := buy("u3", 2, attendees(3, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Late money for the cancelled order: document 1 is full again, so it
	// is paid but needs a refund.
	late, _, err := e.ApplyPayment(ctx, Payment{EventID: "evt1", OrderID: b.ID, Succeeded: true, AmountCents: b.AmountCents, Currency: "EUR"})
	if err != nil || late.Status != StatusPaid || !late.NeedsRefund {
		t.Fatalf("late payment: %+v %v", late, err)
	}
	// A refund gives the slots back.
	if _, _, err := e.ApplyPayment(ctx, Payment{EventID: "evt2", OrderID: a.ID, Succeeded: true, AmountCents: a.AmountCents, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Refund(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := buy("u4", 1, attendees(1)); err != nil {
		t.Fatalf("after the refund: %v", err)
	}
	// Expiry gives them back too.
	clock.Advance(11 * time.Minute)
	if err := e.one(ctx, "rn", command{kind: cmdTick}, func(*result) {}); err != nil {
		t.Fatal(err)
	}
	if o, err := e.Order(ctx, c.ID); err != nil || o.Status != StatusExpired {
		t.Fatalf("not expired: %+v %v", o, err)
	}
	if _, err := buy("u5", 2, attendees(3, 1)); err != nil {
		t.Fatalf("after the expiry: %v", err)
	}
}

// TestRealNameRace: many accounts race for one document: exactly the limit
// is sold, and the counts come back exactly after restarts from the log,
// from a snapshot and after a repartition.
func TestRealNameRace(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	const limit = 3
	if _, _, err := e.PutSale(ctx, realNameSale("rn", clock, 1000, limit)); err != nil {
		t.Fatal(err)
	}
	var won, refused atomic.Int32
	var wg sync.WaitGroup
	for u := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: 1,
				UserID: fmt.Sprint("user-", u), IdempotencyKey: "k", Attendees: attendees(7)})
			var rej *Rejection
			switch {
			case err == nil:
				won.Add(1)
			case errors.As(err, &rej) && rej.Code == CodeDocumentLimitExceeded:
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != limit || refused.Load() != 64-limit {
		t.Fatalf("%d sold, %d refused; want %d sold", won.Load(), refused.Load(), limit)
	}
	for _, reopen := range reopenings {
		e.Close()
		if reopen.snap {
			snapshotClosed(t, e, j)
		}
		e = openTest(t, j, clock, reopen.shards)
		_, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: 1,
			UserID: "late-" + reopen.name, IdempotencyKey: "k", Attendees: attendees(7)})
		wantCode(t, err, CodeDocumentLimitExceeded)
		sl, err := e.Sale(ctx, "rn")
		if err != nil || sl.RealName != (RealNameRule{Required: true, PerDocumentLimit: limit}) || sl.TierCounts[0].Held != limit {
			t.Fatalf("after %s: %+v %v", reopen.name, sl, err)
		}
	}
}

// TestRealNameRuleChanges: a sale put again without the rule has none; a
// rule that is not required has no limit.
func TestRealNameRuleChanges(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := realNameSale("rn", clock, 10, 1)
	if s, _, err := e.PutSale(ctx, cfg); err != nil || !s.RealName.Required {
		t.Fatalf("%+v %v", s, err)
	}
	cfg.RealName = RealNameRule{PerDocumentLimit: 2}
	_, _, err := e.PutSale(ctx, cfg)
	wantCode(t, err, CodeInvalidRequest)
	cfg.RealName = RealNameRule{}
	if s, _, err := e.PutSale(ctx, cfg); err != nil || s.RealName != (RealNameRule{}) {
		t.Fatalf("%+v %v", s, err)
	}
	if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: 1, UserID: "u", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
}

// randomRealNameCommand makes sale s3 a real-name sale (now and then
// without the rule again) or buys on it with attendees from a few
// documents: randomFeatureCommand's share of real-name commands.
func randomRealNameCommand(rng *rand.Rand, k orderKey) command {
	if rng.IntN(8) == 0 {
		now := int64(1_800_000_000_000)
		cfg := SaleConfig{ID: "rn1", Name: "Sale rn1", Currency: "EUR", OpensAtMs: now - 1, ClosesAtMs: now + 86_400_000,
			HoldMs: 60_000, PerUserLimit: 6, Tiers: []TierConfig{
				{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 300},
				{ID: "seat", Name: "Seat", PriceCents: 8000, Stock: 200},
			}}
		if rng.IntN(4) != 0 {
			cfg.RealName = RealNameRule{Required: true, PerDocumentLimit: 1 + rng.IntN(3)}
		}
		return command{kind: cmdPutSale, saleID: "rn1", sale: &cfg}
	}
	qty := 1 + rng.IntN(3)
	as := make([]Attendee, qty)
	for i := range as {
		as[i] = attendee(byte(rng.IntN(12)))
	}
	return command{kind: cmdPurchase, saleID: "rn1", tierID: "floor", qty: qty, userID: fmt.Sprint("user-", rng.IntN(40)),
		key: fmt.Sprint("rn", rng.IntN(30)), newOrder: k, attendees: as}
}

// dumpRealName lists the real-name rules, every order's attendees and what
// each document holds, sorted.
func dumpRealName(st *state) []string {
	var lines []string
	for _, sl := range st.sales {
		lines = append(lines, fmt.Sprintf("sale %s real name %+v", sl.cfg.ID, sl.cfg.RealName))
	}
	var recs []string
	for k, as := range st.realName.attendees {
		recs = append(recs, fmt.Sprintf("attendees %x %+v", k, as))
	}
	for dk, ks := range st.realName.docs {
		recs = append(recs, fmt.Sprintf("document %d/%x: %d orders, %d tickets", dk.sale, dk.hash[:2], len(ks), st.documentTickets(dk.sale, dk.hash)))
	}
	slices.Sort(recs)
	return append(lines, recs...)
}
