package engine

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"
)

// Exchanges to a dearer ticket (exchanges.go).

// checkExchanges fails t unless every exchange is whole: an order an
// exchange opened holds valid tickets only if the old order was released
// for it, and an old order is released only for a new order that is paid
// with tickets. The buyer never holds both, nor neither.
func checkExchanges(t *testing.T, st *state) {
	t.Helper()
	for k, l := range st.refunds.attempts {
		to, _ := st.orderByKey(k)
		from, _ := st.orderByKey(l.from)
		done := st.refunds.exchangedTo[l.from]
		valid := to.status == StatusPaid && !to.needsRefund // tickets the buyer can use
		switch {
		case done != nil && done.to == k && to.status != StatusPaid && to.status != StatusRefunded:
			t.Fatalf("exchange %x completed, but its new order is %s", k, to.statusText())
		case done != nil && done.to == k && from.status != StatusRefunded:
			t.Fatalf("exchange %x completed, but its old order is %s", k, from.status)
		case (done == nil || done.to != k) && valid:
			t.Fatalf("new order %x is %s with tickets, but its old order %x was not released for it", k, to.status, l.from)
		}
	}
	for from, l := range st.refunds.exchangedTo {
		to, _ := st.orderByKey(l.to)
		if o, _ := st.orderByKey(from); o.status != StatusRefunded || to.status != StatusPaid && to.status != StatusRefunded || to.needsRefund {
			t.Fatalf("exchange %x → %x: old %s, new %s", from, l.to, o.status, to.statusText())
		}
	}
}

func exchangeSale(t *testing.T, e *Engine, clock *fakeClock) SaleConfig {
	t.Helper()
	cfg := ruleSale("s1", clock, 4, autoRefund, exchange24h) // floor 5000, seat 8000; hold 60 s
	if _, _, err := e.PutSale(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func pay(t *testing.T, e *Engine, orderID, eventID string, cents int64) Order {
	t.Helper()
	o, _, err := e.ApplyPayment(context.Background(), Payment{EventID: eventID, OrderID: orderID, Succeeded: true, AmountCents: cents, Currency: "EUR"})
	if err != nil {
		t.Fatalf("pay %s: %v", orderID, err)
	}
	return o
}

// TestExchangeUpPaid: a dearer exchange opens a pending order of the new
// tier whose payment due is the difference; the old order stays paid. A
// payment of the full price is a mismatch; one of the difference pays the
// new order and releases the old in one decision. A refund afterwards goes
// back through both payments.
func TestExchangeUpPaid(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	exchangeSale(t, e, clock)
	floor := paidOrder(t, e, "s1", "floor", 1, "bob") // 5000

	up, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"})
	if err != nil || up.Status != StatusPending || up.TierID != "seat" || up.AmountCents != 8000 || up.Refunds.AmountDueCents != 3300 {
		t.Fatalf("exchange up: %+v %v", up, err)
	}
	if x := up.Refunds.ExchangedFrom; x == nil || x.Status != ExchangeAwaitingPayment || x.FromOrderID != floor.ID || x.DifferenceCents != 3300 || x.FeeCents != 300 {
		t.Fatalf("exchanged_from %+v", up.Refunds.ExchangedFrom)
	}
	old, _ := e.Order(ctx, floor.ID)
	if old.Status != StatusPaid || old.Refunds.ExchangeAttempt == nil || old.Refunds.ExchangeAttempt.ToOrderID != up.ID || old.Refunds.ExchangedTo != nil {
		t.Fatalf("old order while awaiting: %+v", old)
	}
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, []TierCounts{{Sold: 1, Available: 3}, {Held: 1, Available: 3}}) {
		t.Fatalf("counts while awaiting %+v", got)
	}
	again, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"})
	if err != nil || again.ID != up.ID {
		t.Fatalf("asked again: %+v %v, want %s", again, err, up.ID)
	}
	_, err = e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "floor"})
	wantCode(t, err, CodeInvalidOrderState) // another tier while one awaits payment
	_, err = e.RequestRefund(ctx, floor.ID, "bob", "")
	wantCode(t, err, CodeInvalidOrderState)

	// The full price is not what is due: money to give back, the order
	// does not move.
	got, outcome, err := e.ApplyPayment(ctx, Payment{EventID: "full", OrderID: up.ID, Succeeded: true, AmountCents: 8000, Currency: "EUR"})
	if err != nil || outcome != PaymentMismatch || got.Status != StatusPending {
		t.Fatalf("full price paid: %s %v %v", got.Status, outcome, err)
	}
	paid := pay(t, e, up.ID, "stripe:pi_diff", 3300)
	if paid.Status != StatusPaid || paid.NeedsRefund || paid.Refunds.ExchangedFrom.Status != ExchangeCompleted {
		t.Fatalf("paid: %+v", paid)
	}
	old, _ = e.Order(ctx, floor.ID)
	if old.Status != StatusRefunded || old.Refunds.ExchangedTo == nil || old.Refunds.ExchangedTo.ToOrderID != up.ID || old.Refunds.ExchangeAttempt != nil {
		t.Fatalf("old order after: %+v", old)
	}
	if len(old.Payouts) != 0 {
		t.Fatalf("a dearer exchange paid out %+v", old.Payouts)
	}
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, []TierCounts{{Available: 4}, {Sold: 1, Available: 3}}) {
		t.Fatalf("counts after %+v", got)
	}
	if again := pay(t, e, up.ID, "stripe:pi_diff", 3300); again.Status != StatusPaid || len(again.DuplicateCharges) != 0 {
		t.Fatalf("the same payment again: %+v", again)
	}

	// The buyer paid 5000 + 3300; a refund under the rule returns 8000 less
	// 10 % and 200: 3300 through the difference's payment, 3700 through
	// the first.
	r, err := e.RequestRefund(ctx, up.ID, "bob", "")
	if err != nil || r.Status != StatusRefunded || r.Refunds.Refund.AmountCents-r.Refunds.Refund.FeeCents != 7000 {
		t.Fatalf("refund: %+v %v", r, err)
	}
	var parts [][2]any
	for _, p := range r.Payouts {
		if p.Reason == PayoutRefundRequest {
			parts = append(parts, [2]any{p.PaymentID, p.AmountCents})
		}
	}
	if want := [][2]any{{"stripe:pi_diff", int64(3300)}, {"pay-" + floor.ID, int64(3700)}}; !slices.Equal(parts, want) {
		t.Fatalf("refund payouts %v, want %v", parts, want)
	}
}

// TestExchangeUpLapses: the new order expiring, or being cancelled, leaves
// the old one as it was; the buyer may ask again (a new attempt). Money
// that comes late completes the exchange while it can, else goes back.
func TestExchangeUpLapses(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := exchangeSale(t, e, clock)
	floor := paidOrder(t, e, "s1", "floor", 1, "bob")

	up, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Duration(cfg.HoldMs+1) * time.Millisecond)
	tick(t, e, "s1")
	if got, _ := e.Order(ctx, up.ID); got.Status != StatusExpired || got.Refunds.ExchangedFrom.Status != ExchangeLapsed {
		t.Fatalf("new order after its hold: %+v", got)
	}
	old, _ := e.Order(ctx, floor.ID)
	if old.Status != StatusPaid || old.Refunds.ExchangeAttempt.Status != ExchangeLapsed {
		t.Fatalf("old order after the lapse: %+v", old)
	}
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, []TierCounts{{Sold: 1, Available: 3}, {Available: 4}}) {
		t.Fatalf("counts after the lapse %+v", got)
	}

	second, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"})
	if err != nil || second.ID == up.ID || second.Status != StatusPending || second.IdempotencyKey != "exchange of "+floor.ID+" #2" {
		t.Fatalf("second attempt: %+v %v", second, err)
	}
	if _, err := e.Cancel(ctx, second.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	// Late money for the first attempt: the old order can still be
	// released and the seat is there, so it completes the exchange.
	late := pay(t, e, up.ID, "late-1", 3300)
	if late.Status != StatusPaid || late.NeedsRefund {
		t.Fatalf("late payment: %+v", late)
	}
	if old, _ = e.Order(ctx, floor.ID); old.Status != StatusRefunded || old.Refunds.ExchangedTo.ToOrderID != up.ID {
		t.Fatalf("old after the late payment: %+v", old)
	}
	// Late money for the second: the old order is gone; it goes back.
	back := pay(t, e, second.ID, "late-2", 3300)
	if back.Status != StatusPaid || !back.NeedsRefund || len(back.Payouts) != 1 || back.Payouts[0].AmountCents != 3300 {
		t.Fatalf("late payment of a lapsed exchange: %+v", back)
	}
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, []TierCounts{{Available: 4}, {Sold: 1, Available: 3}}) {
		t.Fatalf("counts after the late payments %+v", got)
	}
}

// TestExchangeUpOldOrderChanged: a payment of the difference after the old
// order was checked in gives no second ticket: it is kept for a refund and
// the new order's hold goes back. A sold-out tier opens nothing.
func TestExchangeUpOldOrderChanged(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	exchangeSale(t, e, clock)
	floor := paidOrder(t, e, "s1", "floor", 1, "bob")
	up, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.CheckIn(ctx, floor.ID+".0"); err != nil {
		t.Fatal(err)
	}
	got := pay(t, e, up.ID, "diff", 3300)
	if got.Status != StatusPaid || !got.NeedsRefund || got.Refunds.ExchangedFrom.Status != ExchangeLapsed {
		t.Fatalf("payment after check-in: %+v", got)
	}
	if old, _ := e.Order(ctx, floor.ID); old.Status != StatusPaid {
		t.Fatalf("old order: %+v", old)
	}
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, []TierCounts{{Sold: 1, Available: 3}, {Available: 4}}) {
		t.Fatalf("counts %+v", got)
	}

	// An admin's refund of the old order cancels the exchange awaiting
	// payment in the same decision: its seat goes back at once.
	third := paidOrder(t, e, "s1", "floor", 1, "eve")
	opened, err := e.Exchange(ctx, third.ID, "eve", ExchangeRequest{TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := e.Refund(ctx, third.ID, false); err != nil || r.Status != StatusRefunded {
		t.Fatalf("admin refund: %+v %v", r, err)
	}
	if got, _ := e.Order(ctx, opened.ID); got.Status != StatusCancelled || got.Refunds.ExchangedFrom.Status != ExchangeLapsed {
		t.Fatalf("exchange after the old order's refund: %+v", got)
	}
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, []TierCounts{{Sold: 1, Available: 3}, {Available: 4}}) {
		t.Fatalf("counts after the admin refund %+v", got)
	}

	// Seat sold out: nothing is opened.
	paidOrder(t, e, "s1", "seat", 4, "cat")
	floor2 := paidOrder(t, e, "s1", "floor", 1, "dan")
	before := tierCounts(t, e, "s1")
	_, err = e.Exchange(ctx, floor2.ID, "dan", ExchangeRequest{TierID: "seat"})
	wantCode(t, err, CodeSoldOut)
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, before) {
		t.Fatalf("sold-out exchange changed %+v to %+v", before, got)
	}
	if got, _ := e.Order(ctx, floor2.ID); got.Refunds != nil {
		t.Fatalf("sold-out exchange left a record: %+v", got.Refunds)
	}
}

// TestExchangeUpSurvivesRestart: an exchange awaiting payment survives a
// restart from the log, from a snapshot and into more shards: the same
// views after, asking again answers the same order, and paying the
// difference then completes it.
func TestExchangeUpSurvivesRestart(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	exchangeSale(t, e, clock)
	floor := paidOrder(t, e, "s1", "floor", 1, "bob")
	up, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	views := func() [2]Order {
		a, _ := e.Order(ctx, floor.ID)
		b, _ := e.Order(ctx, up.ID)
		return [2]Order{a, b}
	}
	before := views()
	for _, reopen := range reopenings {
		e.Close()
		if reopen.snap {
			snapshotClosed(t, e, j)
		}
		e = openTest(t, j, clock, reopen.shards)
		if after := views(); !reflect.DeepEqual(after, before) {
			t.Fatalf("after %s:\n got %+v\nwant %+v", reopen.name, after, before)
		}
	}
	if again, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"}); err != nil || again.ID != up.ID {
		t.Fatalf("asked again after the restarts: %+v %v", again, err)
	}
	if paid := pay(t, e, up.ID, "diff", 3300); paid.Status != StatusPaid || paid.Refunds.ExchangedFrom.Status != ExchangeCompleted {
		t.Fatalf("paid after the restarts: %+v", paid)
	}
	if old, _ := e.Order(ctx, floor.ID); old.Status != StatusRefunded {
		t.Fatalf("old order: %+v", old)
	}
}

// TestExchangeBackDownPaysThroughTheDifference: an order that came from a
// dearer exchange, exchanged down again, pays the difference back through
// the newest payment first (the one that paid the difference).
func TestExchangeBackDownPaysThroughTheDifference(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	exchangeSale(t, e, clock)
	floor := paidOrder(t, e, "s1", "floor", 1, "bob") // 5000
	up, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	pay(t, e, up.ID, "stripe:pi_diff", 3300)
	down, err := e.Exchange(ctx, up.ID, "bob", ExchangeRequest{TierID: "floor"}) // 5000 + 300 - 8000
	if err != nil || down.Status != StatusPaid {
		t.Fatalf("down: %+v %v", down, err)
	}
	seat, _ := e.Order(ctx, up.ID)
	if len(seat.Payouts) != 1 || seat.Payouts[0].PaymentID != "stripe:pi_diff" || seat.Payouts[0].AmountCents != 2700 || seat.Payouts[0].Reason != PayoutExchangeDifference {
		t.Fatalf("payouts of the exchange down: %+v", seat.Payouts)
	}
}
