package engine

import (
	"context"
	"reflect"
	"testing"
)

// TestPayoutAcceptedThenConfirmed: a refund the provider accepted stays
// refund_pending with the provider's refund id; the provider's
// notification ends it (refunded, or refund_failed with its reason),
// once: a replay changes nothing, an unknown refund id or another
// provider's is unknown_refund. A refund that went through may still fail
// later. The accepted state survives replay, a snapshot and a
// repartition; an admin's retry of a failed refund sends it again (its id
// cleared), of an accepted one queries it now (its id kept).
func TestPayoutAcceptedThenConfirmed(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 1, 4)); err != nil {
		t.Fatal(err)
	}
	var orders []Order
	for i, pay := range []string{"stripe:pi_1", "wechatpay:4200001", "stripe:pi_3"} {
		o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: string(rune('a' + i)), IdempotencyKey: pay})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.ApplyPayment(ctx, Payment{EventID: pay, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Refund(ctx, o.ID, false); err != nil {
			t.Fatal(err)
		}
		orders = append(orders, o)
	}
	a, b, c := orders[0], orders[1], orders[2]
	accept := func(o Order, refundID string) {
		t.Helper()
		p, err := e.UpdatePayout(ctx, PayoutUpdate{PayoutID: o.ID + ".0", Action: PayoutAttempted, Outcome: PayoutPending,
			ProviderRefundID: refundID, Detail: "accepted", NextAttemptAtMs: clock.Now().UnixMilli() + 5000})
		if err != nil || p.Status != PayoutPending || p.ProviderRefundID != refundID || p.Attempts != 1 {
			t.Fatalf("accepted: %+v %v", p, err)
		}
	}
	accept(a, "re_1")
	accept(b, "50300001")
	accept(c, "re_3")

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

	for _, bad := range []struct{ order, provider, id string }{
		{a.ID, "stripe", "re_other"}, {a.ID, "wechatpay", "re_1"}, {b.ID, "stripe", "re_1"}, {a.ID, "stripe", ""},
	} {
		if _, err := e.ConfirmPayout(ctx, bad.order, bad.provider, bad.id, PayoutRefunded, ""); rejectionCode(err) != CodeUnknownRefund {
			t.Errorf("confirm %+v: %v, want unknown_refund", bad, err)
		}
	}
	if _, err := e.ConfirmPayout(ctx, a.ID, "stripe", "re_1", PayoutPending, ""); rejectionCode(err) != CodeInvalidRequest {
		t.Errorf("confirm as pending: %v", err)
	}
	p, err := e.ConfirmPayout(ctx, a.ID, "stripe", "re_1", PayoutRefunded, "stripe: refund.updated succeeded")
	if err != nil || p.Status != PayoutRefunded || p.ID != a.ID+".0" {
		t.Fatalf("confirmed: %+v %v", p, err)
	}
	seq := e.shards[0].seq + e.shards[1].seq + e.shards[2].seq
	if p, err = e.ConfirmPayout(ctx, a.ID, "stripe", "re_1", PayoutRefunded, "again"); err != nil || p.Detail != "stripe: refund.updated succeeded" {
		t.Fatalf("replayed confirmation: %+v %v", p, err)
	}
	if now := e.shards[0].seq + e.shards[1].seq + e.shards[2].seq; now != seq {
		t.Fatalf("a replayed confirmation logged %d entries", now-seq)
	}
	// Stripe: a succeeded refund can still fail.
	if p, err = e.ConfirmPayout(ctx, a.ID, "stripe", "re_1", PayoutFailed, "stripe: refund.failed: expired_or_canceled_card"); err != nil || p.Status != PayoutFailed {
		t.Fatalf("failed after succeeded: %+v %v", p, err)
	}
	if p, err = e.ConfirmPayout(ctx, b.ID, "wechatpay", "50300001", PayoutFailed, "wechatpay: ABNORMAL"); err != nil || p.Status != PayoutFailed || p.Detail != "wechatpay: ABNORMAL" {
		t.Fatalf("failed: %+v %v", p, err)
	}
	// A failed refund retried is sent again: its id is cleared.
	if p, err = e.UpdatePayout(ctx, PayoutUpdate{PayoutID: b.ID + ".0", Action: PayoutRetry}); err != nil || p.Status != PayoutPending || p.ProviderRefundID != "" {
		t.Fatalf("retry of a failed refund: %+v %v", p, err)
	}
	// An accepted one retried is queried now: its id is kept.
	if p, err = e.UpdatePayout(ctx, PayoutUpdate{PayoutID: c.ID + ".0", Action: PayoutRetry}); err != nil || p.ProviderRefundID != "re_3" || p.NextAttemptAtMs != clock.Now().UnixMilli() {
		t.Fatalf("retry of an accepted refund: %+v %v", p, err)
	}
	// The worker's query: still pending keeps the id; "no such refund"
	// clears it so that the refund is sent again.
	if p, err = e.UpdatePayout(ctx, PayoutUpdate{PayoutID: c.ID + ".0", Action: PayoutAttempted, AttemptsSeen: 1, Outcome: PayoutPending}); err != nil || p.ProviderRefundID != "" {
		t.Fatalf("query found nothing: %+v %v", p, err)
	}
}
