package engine

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestPayoutsFromEveryObligation: an admin refund, a duplicate charge, a
// mismatched payment and a late payment that could not take its tickets
// each leave one payout, with the provider and transaction id the payment
// id names; they survive a restart from the log, a snapshot and a
// repartition exactly, and updates after the restart apply to the same
// records.
func TestPayoutsFromEveryObligation(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 1, 4)); err != nil {
		t.Fatal(err)
	}
	buy := func(user, key string) Order {
		t.Helper()
		o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: user, IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	pay := func(o Order, id string, amount int64, currency string) PaymentOutcome {
		t.Helper()
		_, out, err := e.ApplyPayment(ctx, Payment{EventID: id, OrderID: o.ID, Succeeded: true, AmountCents: amount, Currency: currency})
		if err != nil {
			t.Fatalf("payment %s: %v", id, err)
		}
		return out
	}
	a := buy("u1", "a")
	if out := pay(a, "stripe:pi_bad", 1, "EUR"); out != PaymentMismatch {
		t.Fatalf("a mismatched success: outcome %d", out)
	}
	if out := pay(a, "stripe:pi_bad", 1, "EUR"); out != PaymentMismatchSeen {
		t.Fatalf("the same mismatch again: outcome %d", out)
	}
	if _, _, err := e.ApplyPayment(ctx, Payment{EventID: "stripe:pi_badfail", OrderID: a.ID, AmountCents: 1, Currency: "EUR"}); rejectionCode(err) != CodePaymentMismatch {
		t.Fatalf("a mismatched failure: %v", err)
	}
	pay(a, "stripe:pi_a", a.AmountCents, "EUR")
	if out := pay(a, "alipay:2026120222001", a.AmountCents, "EUR"); out != PaymentDuplicateCharge {
		t.Fatalf("second charge: outcome %d", out)
	}
	if _, err := e.Refund(ctx, a.ID, false); err != nil {
		t.Fatal(err)
	}
	// b expires, its ticket is sold to c, and b's late money must go back.
	b := buy("u2", "b")
	clock.Advance(600_001 * time.Millisecond)
	if err := e.expireDueNow(ctx); err != nil {
		t.Fatal(err)
	}
	c := buy("u3", "c")
	pay(c, "wechatpay:4200001", c.AmountCents, "EUR")
	pay(b, "wechatpay:4200002", b.AmountCents, "EUR")

	all, err := e.Payouts(ctx, PayoutQuery{})
	if err != nil {
		t.Fatal(err)
	}
	type brief struct {
		id, reason, provider, tx, status string
		amount                           int64
		currency                         string
		approved                         bool
	}
	var got []brief
	for _, p := range all {
		got = append(got, brief{p.ID, p.Reason.String(), p.Provider, p.TransactionID, p.Status.String(), p.AmountCents, p.Currency, p.Approved})
	}
	want := []brief{
		{a.ID + ".0", "payment_mismatch", "stripe", "pi_bad", "refund_pending", 1, "EUR", false},
		{a.ID + ".1", "duplicate_charge", "alipay", "2026120222001", "refund_pending", a.AmountCents, "EUR", false},
		{a.ID + ".2", "admin_refund", "stripe", "pi_a", "refund_pending", a.AmountCents, "EUR", true},
		{b.ID + ".0", "late_payment", "wechatpay", "4200002", "refund_pending", b.AmountCents, "EUR", false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("payouts:\n got %+v\nwant %+v", got, want)
	}

	// The worker's first answer: a timeout, try again later.
	p, err := e.UpdatePayout(ctx, PayoutUpdate{PayoutID: b.ID + ".0", Action: PayoutAttempted, Outcome: PayoutPending,
		Detail: "timeout", NextAttemptAtMs: clock.Now().UnixMilli() + 2000})
	if err != nil || p.Attempts != 1 || p.Status != PayoutPending || p.Detail != "timeout" {
		t.Fatalf("after a timeout: %+v %v", p, err)
	}
	// A stale answer (it read 0 attempts) changes nothing.
	if p, err = e.UpdatePayout(ctx, PayoutUpdate{PayoutID: b.ID + ".0", Action: PayoutAttempted, Outcome: PayoutRefunded}); err != nil || p.Status != PayoutPending {
		t.Fatalf("a stale answer: %+v %v", p, err)
	}
	if due, _ := e.Payouts(ctx, PayoutQuery{DueAtMs: clock.Now().UnixMilli()}); len(due) != 3 {
		t.Fatalf("due now: %d payouts, want 3 (the retried one waits)", len(due))
	}
	if _, err := e.UpdatePayout(ctx, PayoutUpdate{PayoutID: a.ID + ".1", Action: PayoutAttempted, Outcome: PayoutFailed,
		Detail: "ACQ.TRADE_HAS_CLOSE"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []PayoutUpdate{{PayoutID: b.ID + ".0", Action: PayoutAttempted, AttemptsSeen: 1, Outcome: PayoutManual}, {PayoutID: b.ID + ".0"}} {
		if _, err := e.UpdatePayout(ctx, u); rejectionCode(err) != CodeInvalidRequest {
			t.Errorf("update %+v: %v, want invalid_request", u, err)
		}
	}
	for _, bad := range []string{a.ID + ".7", a.ID + ".x", a.ID, "s1.nope.0"} {
		if _, err := e.UpdatePayout(ctx, PayoutUpdate{PayoutID: bad, Action: PayoutRetry}); rejectionCode(err) != CodeUnknownRefund {
			t.Errorf("payout %q: %v, want unknown_refund", bad, err)
		}
	}
	if _, err := e.UpdatePayout(ctx, PayoutUpdate{PayoutID: a.ID + ".2", Action: PayoutMarkRefunded, Detail: "by hand"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdatePayout(ctx, PayoutUpdate{PayoutID: a.ID + ".2", Action: PayoutRetry}); rejectionCode(err) != CodeInvalidOrderState {
		t.Fatalf("retry of a refunded payout: %v", err)
	}

	before, _ := e.Payouts(ctx, PayoutQuery{})
	for _, reopen := range reopenings {
		e.Close()
		if reopen.snap {
			snapshotClosed(t, e, j)
		}
		e = openTest(t, j, clock, reopen.shards)
		after, err := e.Payouts(ctx, PayoutQuery{})
		if err != nil || !reflect.DeepEqual(after, before) {
			t.Fatalf("after %s:\n got %+v %v\nwant %+v", reopen.name, after, err, before)
		}
	}
	// Resumed: the failed one is retried by an admin, then refunded.
	if p, err = e.UpdatePayout(ctx, PayoutUpdate{PayoutID: a.ID + ".1", Action: PayoutRetry}); err != nil || p.Status != PayoutPending || !p.Approved {
		t.Fatalf("retry: %+v %v", p, err)
	}
	if p, err = e.UpdatePayout(ctx, PayoutUpdate{PayoutID: a.ID + ".1", AttemptsSeen: 1, Action: PayoutAttempted, Outcome: PayoutRefunded,
		ProviderRefundID: "2026120222001"}); err != nil || p.Status != PayoutRefunded || p.Attempts != 2 || p.ProviderRefundID != "2026120222001" {
		t.Fatalf("refunded: %+v %v", p, err)
	}
	if refunded, _ := e.Payouts(ctx, PayoutQuery{SaleID: "s1", Status: PayoutRefunded}); len(refunded) != 2 {
		t.Fatalf("refunded: %d, want 2", len(refunded))
	}
	o, _ := e.Order(ctx, a.ID)
	if len(o.Payouts) != 3 || o.Payouts[1].Status != PayoutRefunded {
		t.Fatalf("the order's payouts: %+v", o.Payouts)
	}
}

// TestPayoutLateThenRefunded: refunding an order that is paid with
// needs_refund approves its late_payment payout instead of adding a second
// one for the same money; a payment no provider took is manual.
func TestPayoutLateThenRefunded(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 1, 4)); err != nil {
		t.Fatal(err)
	}
	b, _, _ := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u2", IdempotencyKey: "b"})
	clock.Advance(600_001 * time.Millisecond)
	if err := e.expireDueNow(ctx); err != nil {
		t.Fatal(err)
	}
	c, _, _ := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u3", IdempotencyKey: "c"})
	if _, _, err := e.ApplyPayment(ctx, Payment{EventID: "evt-c", OrderID: c.ID, Succeeded: true, AmountCents: c.AmountCents, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.ApplyPayment(ctx, Payment{EventID: "evt-b", OrderID: b.ID, Succeeded: true, AmountCents: b.AmountCents, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	o, err := e.Refund(ctx, b.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Payouts) != 1 || o.Payouts[0].Reason != PayoutLatePayment || !o.Payouts[0].Approved || o.Payouts[0].Status != PayoutManual || o.Payouts[0].Provider != "" {
		t.Fatalf("payouts: %+v", o.Payouts)
	}
}

func TestParsePayoutID(t *testing.T) {
	id := formatOrderID("s1", orderKey{1, 2, 3})
	for _, c := range []struct {
		in string
		n  int
		ok bool
	}{{id + ".0", 0, true}, {id + ".79", 79, true}, {id + ".80", 0, false}, {id + ".01", 0, false}, {id + ".", 0, false},
		{id + ".-1", 0, false}, {id, 0, false}, {"s1.0", 0, false}, {id + ".100", 0, false}} {
		orderID, n, ok := ParsePayoutID(c.in)
		if ok != c.ok || ok && (n != c.n || orderID != id) {
			t.Errorf("%q: %q %d %v", c.in, orderID, n, ok)
		}
	}
}

func rejectionCode(err error) Code {
	var rej *Rejection
	if errors.As(err, &rej) {
		return rej.Code
	}
	return ""
}
