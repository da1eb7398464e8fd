package engine

import (
	"context"
	"reflect"
	"testing"
)

// TestDuplicateChargesSurviveRestarts: a second charge is on the order after
// a restart from the log, from a snapshot, and after a repartition.
func TestDuplicateChargesSurviveRestarts(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 5, 4)); err != nil {
		t.Fatal(err)
	}
	o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u1", IdempotencyKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	pay := func(id string) PaymentOutcome {
		t.Helper()
		_, out, err := e.ApplyPayment(ctx, Payment{EventID: id, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		id   string
		want PaymentOutcome
	}{{"p1", PaymentApplied}, {"p1", PaymentUnchanged}, {"p2", PaymentDuplicateCharge}, {"p2", PaymentDuplicateChargeSeen}, {"p3", PaymentDuplicateCharge}} {
		if got := pay(c.id); got != c.want {
			t.Fatalf("payment %s: outcome %d, want %d", c.id, got, c.want)
		}
	}
	want, err := e.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.DuplicateCharges) != 2 || want.DuplicateCharges[0].EventID != "p2" || want.DuplicateCharges[1].AmountCents != o.AmountCents {
		t.Fatalf("duplicate charges: %+v", want.DuplicateCharges)
	}
	for _, reopen := range reopenings {
		e.Close()
		if reopen.snap {
			snapshotClosed(t, e, j)
		}
		e = openTest(t, j, clock, reopen.shards)
		got, err := e.Order(ctx, o.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("after %s: %+v %v\nwant %+v", reopen.name, got, err, want)
		}
		if out := pay("p2"); out != PaymentDuplicateChargeSeen {
			t.Fatalf("after %s: p2 again gave outcome %d", reopen.name, out)
		}
	}
}

// TestSnapshotVersion1Restores: a snapshot written before duplicate charges
// existed (version 1: no charges in chunk 0) restores to the same state.
func TestSnapshotVersion1Restores(t *testing.T) {
	sc := newScript()
	st := sc.st
	cfg := testSale("s1", newFakeClock(), 5, 4)
	var res result
	st.execute(&command{kind: cmdPutSale, saleID: "s1", sale: &cfg}, 0, &res, nil)
	for i := range 3 {
		st.execute(&command{kind: cmdPurchase, saleID: "s1", tierID: "floor", qty: 1, userID: "u", key: string(rune('a' + i)),
			newOrder: orderKey{byte(i + 1)}}, cfg.OpensAtMs, &res, nil)
	}
	chunks := legacySnapshotEncoding(st, 2)
	if chunks[0][len(chunks[0])-1] != 0 { // ncharges, the last field of chunk 0
		t.Fatal("expected no charges")
	}
	chunks[0] = append([]byte{1}, chunks[0][1:len(chunks[0])-1]...)
	got := newState()
	r := restorer{st: got}
	for _, c := range chunks {
		if err := r.add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.finish(); err != nil {
		t.Fatal(err)
	}
	forgetDoor(st) // version 1 holds no ticket keys
	if a, b := dumpState(st), dumpState(got); a != b {
		t.Fatalf("version 1 restore differs:\n%s\n---\n%s", b, a)
	}
}
