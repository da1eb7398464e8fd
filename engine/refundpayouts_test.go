package engine

import (
	"context"
	"testing"
	"time"
)

// payWith pays the order through a provider's event id.
func payWith(t *testing.T, e *Engine, o Order, eventID string) Order {
	t.Helper()
	o, _, err := e.ApplyPayment(context.Background(), Payment{EventID: eventID, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"})
	if err != nil {
		t.Fatalf("pay %s: %v", o.ID, err)
	}
	return o
}

func onlyPayout(t *testing.T, o Order, reason PayoutReason) Payout {
	t.Helper()
	var found []Payout
	for _, p := range o.Payouts {
		if p.Reason == reason {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("order %s: %d %s refunds in %+v, want 1", o.ID, len(found), reason, o.Payouts)
	}
	return found[0]
}

// TestRefundRulesOweMoneyThroughTheProvider: a refund under the sale's
// rules and an exchange down owe money that goes back through the
// provider (amount less fee, out of the payment's total); a needs_refund
// order and a duplicate charge settled by hand close their refunds, so the
// worker never sends them; a refund the provider made leaves the queue.
func TestRefundRulesOweMoneyThroughTheProvider(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, ruleSale("s1", clock, 10, autoRefund, exchange24h)); err != nil {
		t.Fatal(err)
	}
	o, err := buy(t, e, "s1", "seat", 1, "ann", "")
	if err != nil {
		t.Fatal(err)
	}
	o = payWith(t, e, o, "stripe:pi_ann")
	r, err := e.RequestRefund(ctx, o.ID, "ann", "ill")
	if err != nil || r.Status != StatusRefunded {
		t.Fatalf("refund request: %+v %v", r, err)
	}
	p := onlyPayout(t, r, PayoutRefundRequest)
	fee := r.Refunds.Refund.FeeCents
	if fee <= 0 || p.AmountCents != o.AmountCents-fee || p.TotalCents != o.AmountCents || p.Provider != "stripe" ||
		p.TransactionID != "pi_ann" || p.Status != PayoutPending || !p.Approved {
		t.Fatalf("refund under the rules: %+v (order %d, fee %d)", p, o.AmountCents, fee)
	}

	// Late money and a duplicate charge, both through a provider, on a
	// sale of one ticket.
	cfg := testSale("s2", clock, 1, 10)
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	late, err := buy(t, e, "s2", "floor", 1, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Duration(cfg.HoldMs) * time.Millisecond)
	tick(t, e, "s2")
	taken := paidOrder(t, e, "s2", "floor", 1, "cat") // the last ticket
	if late = payWith(t, e, late, "alipay:2026late"); !late.NeedsRefund {
		t.Fatalf("late money: %+v", late)
	}
	if _, pr, err := e.ApplyPayment(ctx, Payment{EventID: "wechatpay:twice", OrderID: taken.ID, Succeeded: true, AmountCents: taken.AmountCents, Currency: "EUR"}); err != nil || !pr.DuplicateCharge() {
		t.Fatalf("duplicate charge: %v %v", pr, err)
	}
	q, err := e.RefundQueue(ctx, "s2", 0, 100)
	if err != nil || len(q) != 2 {
		t.Fatalf("queue: %+v %v", q, err)
	}
	for _, it := range q {
		settled, err := e.SettleRefundQueueItem(ctx, it.ID, SettleRefunded, "by bank transfer")
		if err != nil {
			t.Fatal(err)
		}
		reason := PayoutLatePayment
		if it.Kind == QueueDuplicateCharge {
			reason = PayoutDuplicateCharge
		}
		if p := onlyPayout(t, settled, reason); p.Status != PayoutRefunded {
			t.Fatalf("%s refund after a settle by hand: %+v", reason, p)
		}
	}

	// A duplicate charge the provider refunded leaves the queue.
	if _, pr, err := e.ApplyPayment(ctx, Payment{EventID: "stripe:pi_third", OrderID: taken.ID, Succeeded: true, AmountCents: taken.AmountCents, Currency: "EUR"}); err != nil || !pr.DuplicateCharge() {
		t.Fatalf("second duplicate charge: %v %v", pr, err)
	}
	if q, _ := e.RefundQueue(ctx, "s2", 0, 100); len(q) != 1 {
		t.Fatalf("queue before the provider refunded: %+v", q)
	}
	o2, err := e.Order(ctx, taken.ID)
	if err != nil {
		t.Fatal(err)
	}
	third := o2.Payouts[len(o2.Payouts)-1]
	if third.PaymentID != "stripe:pi_third" || third.Status != PayoutPending {
		t.Fatalf("third charge's refund: %+v", third)
	}
	if _, err := e.UpdatePayout(ctx, PayoutUpdate{PayoutID: third.ID, Action: PayoutAttempted, AttemptsSeen: 0, Outcome: PayoutRefunded, ProviderRefundID: "re_1"}); err != nil {
		t.Fatal(err)
	}
	if q, _ := e.RefundQueue(ctx, "s2", 0, 100); len(q) != 0 {
		t.Fatalf("a charge the provider refunded is still queued: %+v", q)
	}

	// The worker's guard against refunds replayed from before payouts
	// existed: only those created or changed since a time.
	clock.Advance(time.Second)
	if ps, err := e.Payouts(ctx, PayoutQuery{UpdatedSinceMs: clock.Ms(), Limit: 100}); err != nil || len(ps) != 0 {
		t.Fatalf("payouts changed since now: %+v %v", ps, err)
	}
	if ps, err := e.Payouts(ctx, PayoutQuery{UpdatedSinceMs: clock.Ms() - 2000, Limit: 100}); err != nil || len(ps) == 0 {
		t.Fatalf("payouts changed in the last two seconds: %+v %v", ps, err)
	}
}
