package engine

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func testCredential(id string, role Role, hash byte, sales ...string) Credential {
	return Credential{ID: id, Name: "Staff " + id, Role: role, Sales: sales, TokenHash: [32]byte{hash}}
}

// TestCredentialsPublishedAndRevoked: a created credential is in the
// published table when CreateCredential returns; a revoked one is marked
// revoked when RevokeCredential returns; both are refused with clear codes
// when they make no sense.
func TestCredentialsPublishedAndRevoked(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 3)
	ctx := context.Background()
	c, err := e.CreateCredential(ctx, testCredential("c1", RoleStaff, 1, "s1", "s2"))
	if err != nil {
		t.Fatal(err)
	}
	if c.CreatedAtMs != clock.Ms() || c.RevokedAtMs != 0 {
		t.Fatalf("created %+v", c)
	}
	got, ok := e.Credentials().ByHash([32]byte{1})
	if !ok || got.ID != "c1" || !got.AllowsSale("s2") || got.AllowsSale("s3") || !got.Active(clock.Ms()) {
		t.Fatalf("published %+v %v", got, ok)
	}
	_, err = e.CreateCredential(ctx, testCredential("c2", RoleSeller, 1, "s1"))
	wantCode(t, err, CodeInvalidRequest) // the same token hash
	_, err = e.CreateCredential(ctx, testCredential("c1", RoleSeller, 2, "s1"))
	wantCode(t, err, CodeInvalidRequest) // the same id
	_, err = e.CreateCredential(ctx, testCredential("c3", RoleSeller, 3))
	wantCode(t, err, CodeInvalidRequest) // no sale
	_, err = e.CreateCredential(ctx, testCredential("c3", RoleSeller, 3, "bad.id"))
	wantCode(t, err, CodeInvalidRequest)
	past := testCredential("c3", RoleSeller, 3, "s1")
	past.ExpiresAtMs = clock.Ms()
	_, err = e.CreateCredential(ctx, past)
	wantCode(t, err, CodeInvalidRequest)
	_, err = e.RevokeCredential(ctx, "nope")
	wantCode(t, err, CodeUnknownCredential)

	before := e.Credentials()
	clock.Advance(time.Second)
	r, err := e.RevokeCredential(ctx, "c1")
	if err != nil || r.RevokedAtMs != clock.Ms() {
		t.Fatalf("revoke: %+v %v", r, err)
	}
	if got, _ := e.Credentials().ByHash([32]byte{1}); got.Active(clock.Ms()) {
		t.Fatal("revoked credential still active in the published table")
	}
	if old, _ := before.ByHash([32]byte{1}); old.RevokedAtMs != 0 {
		t.Fatal("a published table was modified")
	}
	clock.Advance(time.Second)
	if again, err := e.RevokeCredential(ctx, "c1"); err != nil || again.RevokedAtMs != r.RevokedAtMs {
		t.Fatalf("revoke again: %+v %v", again, err)
	}
	if n := e.Credentials().CountActive(clock.Ms()); n != 0 {
		t.Fatalf("%d active", n)
	}
}

// TestBoxOfficeSurvivesRestarts: credentials, a box-office order with its
// contact and a counter payment come back the same after a restart from the
// log, from a snapshot, and after a repartition.
func TestBoxOfficeSurvivesRestarts(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 5, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateCredential(ctx, testCredential("sel1", RoleSeller, 7, "s1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateCredential(ctx, testCredential("stf1", RoleStaff, 8, "s1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RevokeCredential(ctx, "stf1"); err != nil {
		t.Fatal(err)
	}
	req := PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 2, UserID: "box:ann", IdempotencyKey: "k1"}
	o, created, err := e.BoxOfficePurchase(ctx, req, "sel1", []byte("sealed ann"))
	if err != nil || !created || o.BoxOffice.Channel() != "box_office" || o.BoxOffice.SellerID != "sel1" || string(o.BoxOffice.Contact) != "sealed ann" {
		t.Fatalf("box-office purchase: %+v %v %v", o, created, err)
	}
	again, created, err := e.BoxOfficePurchase(ctx, req, "sel1", []byte("sealed ann"))
	if err != nil || created || again.ID != o.ID {
		t.Fatalf("retry: %+v %v %v", again, created, err)
	}
	req.IdempotencyKey = "k2"
	_, _, err = e.BoxOfficePurchase(ctx, req, "sel1", []byte("sealed ann"))
	wantCode(t, err, CodeLimitExceeded) // per named buyer
	online, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u1", IdempotencyKey: "k"})
	if err != nil || online.BoxOffice.Channel() != "online" {
		t.Fatalf("online purchase: %+v %v", online, err)
	}

	cash := CounterPayment{SellerID: "sel1", Method: "cash", Reference: "till 3"}
	paid, err := e.PayAtCounter(ctx, o.ID, "pay-1", cash)
	if err != nil || paid.Status != StatusPaid || paid.PaymentID != "counter:sel1:cash:pay-1" ||
		paid.BoxOffice.Counter == nil || paid.BoxOffice.Counter.Reference != "till 3" || paid.BoxOffice.SellerID != "sel1" {
		t.Fatalf("pay at counter: %+v %v", paid, err)
	}
	clock.Advance(time.Second)
	for _, key := range []string{"pay-1", "pay-2"} { // a retry, and a second payment of a paid order
		same, err := e.PayAtCounter(ctx, o.ID, key, cash)
		if err != nil || !reflect.DeepEqual(same, paid) {
			t.Fatalf("pay again with %s: %+v %v", key, same, err)
		}
	}
	// An online order paid at the counter keeps its channel.
	if p, err := e.PayAtCounter(ctx, online.ID, "pay-3", CounterPayment{SellerID: "sel1", Method: "card"}); err != nil ||
		p.Status != StatusPaid || p.BoxOffice.Channel() != "online" || p.BoxOffice.Counter.Method != "card" {
		t.Fatalf("online order at the counter: %+v %v", p, err)
	}
	if _, err := e.Refund(ctx, online.ID, false); err != nil {
		t.Fatal(err)
	}
	_, err = e.PayAtCounter(ctx, online.ID, "pay-4", cash)
	wantCode(t, err, CodeInvalidOrderState)

	want, err := e.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantCreds := e.Credentials().All()
	for _, reopen := range []struct {
		name   string
		shards int
		snap   bool
	}{{"replay", 2, false}, {"snapshot", 2, true}, {"repartition", 3, false}, {"repartition back", 2, false}} {
		e.Close()
		if reopen.snap {
			snapshotClosed(t, e, j)
		}
		e = openTest(t, j, clock, reopen.shards)
		got, err := e.Order(ctx, o.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s: %+v %v\nwant %+v", reopen.name, got, err, want)
		}
		if creds := e.Credentials().All(); !reflect.DeepEqual(creds, wantCreds) {
			t.Fatalf("after %s: credentials %+v, want %+v", reopen.name, creds, wantCreds)
		}
		if _, err := e.CreateCredential(ctx, testCredential("sel1", RoleSeller, 9, "s1")); err == nil {
			t.Fatalf("after %s: a credential id was reused", reopen.name)
		}
	}
}

// TestCounterPaymentOfExpiredOrder: money at the counter for an expired
// order follows the late-money rule: tickets again if they are there, else
// paid with needs_refund.
func TestCounterPaymentOfExpiredOrder(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 1, 4)); err != nil {
		t.Fatal(err)
	}
	buy := func(user, key string) Order {
		o, _, err := e.BoxOfficePurchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: user, IdempotencyKey: key}, "sel1", []byte("c"))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	first := buy("box:a", "k1")
	clock.Advance(time.Hour)
	if err := e.one(ctx, "s1", command{kind: cmdTick}, func(*result) {}); err != nil {
		t.Fatal(err)
	}
	if o, _ := e.Order(ctx, first.ID); o.Status != StatusExpired {
		t.Fatalf("order %s, want expired", o.Status)
	}
	clock.Advance(-time.Hour + time.Minute) // the sale is still open
	second := buy("box:b", "k2")            // takes the one ticket
	late, err := e.PayAtCounter(ctx, first.ID, "p1", CounterPayment{SellerID: "sel1", Method: "cash"})
	if err != nil || late.Status != StatusPaid || !late.NeedsRefund {
		t.Fatalf("late counter payment: %+v %v", late, err)
	}
	if _, err := e.Cancel(ctx, second.ID, ""); err != nil {
		t.Fatal(err)
	}
	third := buy("box:c", "k3")
	clock.Advance(time.Hour)
	if err := e.one(ctx, "s1", command{kind: cmdTick}, func(*result) {}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(-time.Hour + time.Minute)
	taken, err := e.PayAtCounter(ctx, third.ID, "p2", CounterPayment{SellerID: "sel1", Method: "card"})
	if err != nil || taken.Status != StatusPaid || taken.NeedsRefund {
		t.Fatalf("counter payment with the ticket there: %+v %v", taken, err)
	}
}
