package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// Dearer exchanges into another session (xsession.go): the new order
// waits for the difference, then the old order goes.

// xsPay pays the difference due on a new order, as a provider would.
func xsPay(t *testing.T, e *Engine, id string) Order {
	t.Helper()
	o, err := e.Order(context.Background(), id)
	if err != nil || o.Refunds == nil || o.Refunds.AmountDueCents <= 0 {
		t.Fatalf("no difference due on %s: %+v %v", id, o, err)
	}
	o, _, err = e.ApplyPayment(context.Background(), Payment{EventID: "pay-" + id, OrderID: id, Succeeded: true,
		AmountCents: o.Refunds.AmountDueCents, Currency: "EUR"})
	if err != nil {
		t.Fatalf("pay the difference: %v", err)
	}
	return o
}

// xsDearerPaid exchanges bob's paid floor order of src (5000) for a seat
// of dst (8000 + 300 fee: 3300 more) and pays the difference; the
// exchange is left to settle.
func xsDearerPaid(t *testing.T, e *Engine, src, dst string) (old, nw Order) {
	t.Helper()
	old = paidOrder(t, e, src, "floor", 1, "bob")
	nw, err := e.Exchange(context.Background(), old.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	return old, xsPay(t, e, nw.ID)
}

func xsStatusOf(t *testing.T, e *Engine, id string) string {
	t.Helper()
	o, err := e.Order(context.Background(), id)
	if err != nil || o.Refunds == nil || o.Refunds.ExchangedFrom == nil {
		t.Fatalf("order %s has no exchanged_from: %+v %v", id, o, err)
	}
	return o.Refunds.ExchangedFrom.Status
}

// TestXSessionDearer: a dearer ticket of another session opens a pending
// order whose payment due is the difference; the old order stays valid
// until the difference is paid and the exchange settles; the door
// refuses the new order's tickets meanwhile. A refund of the new order
// then goes back through the difference's payment first, then the old
// order's.
func TestXSessionDearer(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	e.xsNoKick = true // SettleExchanges below stands for the kick
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)

	old := paidOrder(t, e, src, "floor", 1, "bob") // 5000; seat of dst: 8000 + 300 - 5000 = 3300 more
	nw, err := e.Exchange(ctx, old.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "seat"})
	if err != nil || nw.SaleID != dst || nw.Status != StatusPending || nw.AmountCents != 8000 || nw.Refunds.AmountDueCents != 3300 {
		t.Fatalf("dearer exchange: %+v %v", nw, err)
	}
	if x := nw.Refunds.ExchangedFrom; x.Status != ExchangeAwaitingPayment || x.DifferenceCents != 3300 || x.FromOrderID != old.ID {
		t.Fatalf("exchanged_from %+v", x)
	}
	if got := tierCounts(t, e, dst); !slices.Equal(got, []TierCounts{{Available: 4}, {Held: 1, Available: 3}}) {
		t.Fatalf("target counts while pending %+v", got)
	}
	if again, err := e.Exchange(ctx, old.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "seat"}); err != nil || again.ID != nw.ID {
		t.Fatalf("asked again: %+v %v", again, err)
	}
	_, err = e.Exchange(ctx, old.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "floor"})
	wantCode(t, err, CodeInvalidOrderState) // another tier while one awaits payment
	if o, _ := e.Order(ctx, old.ID); o.Status != StatusPaid {
		t.Fatalf("old order while pending: %+v", o)
	}

	// The full price is not the payment due: kept to go back, nothing moves.
	mis, outcome, err := e.ApplyPayment(ctx, Payment{EventID: "full", OrderID: nw.ID, Succeeded: true, AmountCents: 8000, Currency: "EUR"})
	if err != nil || outcome != PaymentMismatch || mis.Status != StatusPending {
		t.Fatalf("full price: %+v %v %v", mis, outcome, err)
	}

	paid := xsPay(t, e, nw.ID)
	if paid.Status != StatusPaid || paid.Refunds.ExchangedFrom.Status != ExchangeAwaitingRelease {
		t.Fatalf("paid: %+v", paid)
	}
	// Between the payment and the settlement both orders are valid: the
	// door takes the old one only.
	_, err = e.CheckInTicket(ctx, nw.ID+".0", "north")
	wantCode(t, err, CodeExchangeInProgress)
	_, sk, _ := parseOrderID(nw.ID)
	_, err = e.CheckInCode(ctx, "north", Scan{Code: TicketPayload{Kid: 1, SaleID: dst, Order: sk, Tier: 1}})
	wantCode(t, err, CodeExchangeInProgress)

	if n, err := e.SettleExchanges(ctx); err != nil || n != 1 {
		t.Fatalf("settle: %d %v", n, err)
	}
	if s := xsStatusOf(t, e, nw.ID); s != ExchangeCompleted {
		t.Fatalf("after settling: %s", s)
	}
	if o, _ := e.Order(ctx, old.ID); o.Status != StatusRefunded || o.Refunds.ExchangedTo.ToOrderID != nw.ID || len(o.Payouts) != 0 {
		t.Fatalf("old order after settling: %+v", o)
	}
	if got := tierCounts(t, e, src); !slices.Equal(got, []TierCounts{{Available: 4}, {Available: 4}}) {
		t.Fatalf("source counts %+v", got)
	}
	if got := tierCounts(t, e, dst); !slices.Equal(got, []TierCounts{{Available: 4}, {Sold: 1, Available: 3}}) {
		t.Fatalf("target counts %+v", got)
	}
	if _, err := e.CheckInTicket(ctx, nw.ID+".0", "north"); err != nil {
		t.Fatalf("check-in once settled: %v", err)
	}

	// The buyer's own refund, under the target's rule: 8000 less 10 % +
	// 200 = 7000 back, 3300 through the difference's payment, 3700
	// through the old order's. (Its ticket was used: force it as admin.)
	back, err := e.Refund(ctx, nw.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		payment     string
		amount, tot int64
	}{{"mismatch", 8000, 8000}, {"pay-" + nw.ID, 3300, 3300}, {old.PaymentID, 4700, 5000}}
	if len(back.Payouts) != len(want) {
		t.Fatalf("payouts %+v", back.Payouts)
	}
	for i, w := range want[1:] {
		p := back.Payouts[i+1]
		if p.PaymentID != w.payment || p.AmountCents != w.amount || p.TotalCents != w.tot || p.Reason != PayoutAdminRefund {
			t.Fatalf("payout %d: %+v, want %+v", i+1, p, w)
		}
	}
}

// TestXSessionDearerRefundRequest: the buyer's refund of a settled dearer
// exchange is allowed and splits over the two payments, newest first.
func TestXSessionDearerRefundRequest(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	e.xsNoKick = true
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)
	old, nw := xsDearerPaid(t, e, src, dst)
	_, err := e.RequestRefund(ctx, nw.ID, "bob", "")
	wantCode(t, err, CodeInvalidOrderState) // not settled yet
	if _, err := e.SettleExchanges(ctx); err != nil {
		t.Fatal(err)
	}
	back, err := e.RequestRefund(ctx, nw.ID, "bob", "")
	if err != nil || back.Status != StatusRefunded || len(back.Payouts) != 2 {
		t.Fatalf("refund: %+v %v", back, err)
	}
	// 8000 - (800 + 200) = 7000: 3300 + 3700.
	if p := back.Payouts; p[0].PaymentID != "pay-"+nw.ID || p[0].AmountCents != 3300 || p[1].PaymentID != old.PaymentID || p[1].AmountCents != 3700 {
		t.Fatalf("payouts %+v", p)
	}
}

// TestXSessionDearerUndone: the old order is checked in after the
// difference was paid: the settlement revokes the new order and sends the
// difference back through its payment (exchange_undone); the old order
// stays as it was.
func TestXSessionDearerUndone(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	e.xsNoKick = true
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)
	old, nw := xsDearerPaid(t, e, src, dst)
	if _, err := e.CheckInTicket(ctx, old.ID+".0", "north"); err != nil {
		t.Fatalf("the old ticket admits until the exchange settles: %v", err)
	}
	if n, err := e.SettleExchanges(ctx); err != nil || n != 1 {
		t.Fatalf("settle: %d %v", n, err)
	}
	o, _ := e.Order(ctx, nw.ID)
	if o.Status != StatusRefunded || o.Refunds.ExchangedFrom.Status != ExchangeLapsed || len(o.Payouts) != 1 {
		t.Fatalf("new order undone: %+v", o)
	}
	if p := o.Payouts[0]; p.Reason != PayoutExchangeUndone || p.AmountCents != 3300 || p.PaymentID != "pay-"+nw.ID || !p.Approved {
		t.Fatalf("payout %+v", p)
	}
	if o, _ := e.Order(ctx, old.ID); o.Status != StatusPaid || o.Refunds != nil && o.Refunds.ExchangedTo != nil {
		t.Fatalf("old order: %+v", o)
	}
	if got := tierCounts(t, e, dst); !slices.Equal(got, []TierCounts{{Available: 4}, {Available: 4}}) {
		t.Fatalf("target counts %+v", got)
	}
}

// TestXSessionDearerLapsed: the new order expires (the old stays), late
// money takes the tickets when they are there and the exchange completes;
// with no tickets left it is kept for a late_payment refund and the
// exchange stays lapsed. Asking again after a lapse opens a new attempt.
func TestXSessionDearerLapsed(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	e.xsNoKick = true
	ctx := context.Background()
	src, dst := xsSalesOf(t, e, clock, 2)
	expire := func() {
		clock.Advance(11 * time.Minute)
		tick(t, e, dst)
	}

	// Late money with tickets left: completes.
	a := paidOrder(t, e, src, "floor", 1, "ann")
	an, err := e.Exchange(ctx, a.ID, "ann", ExchangeRequest{SaleID: dst, TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	expire()
	if s := xsStatusOf(t, e, an.ID); s != ExchangeLapsed {
		t.Fatalf("expired: %s", s)
	}
	if o, _ := e.Order(ctx, a.ID); o.Status != StatusPaid {
		t.Fatalf("old after the lapse: %+v", o)
	}
	if o := xsPay(t, e, an.ID); o.Status != StatusPaid || o.NeedsRefund || o.Refunds.ExchangedFrom.Status != ExchangeAwaitingRelease {
		t.Fatalf("late money with tickets: %+v", o)
	}
	if n, err := e.SettleExchanges(ctx); err != nil || n != 1 {
		t.Fatalf("settle: %d %v", n, err)
	}
	if s := xsStatusOf(t, e, an.ID); s != ExchangeCompleted {
		t.Fatalf("late money: %s", s)
	}

	// Late money without tickets: kept for a refund; a new attempt later.
	b := paidOrder(t, e, src, "floor", 1, "bob")
	bn, err := e.Exchange(ctx, b.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "seat"})
	if err != nil {
		t.Fatal(err)
	}
	expire()
	paidOrder(t, e, dst, "seat", 1, "cy") // the last seat
	o := xsPay(t, e, bn.ID)
	if o.Status != StatusPaid || !o.NeedsRefund || len(o.Payouts) != 1 || o.Payouts[0].Reason != PayoutLatePayment || o.Payouts[0].AmountCents != 3300 {
		t.Fatalf("late money without tickets: %+v", o)
	}
	if s := xsStatusOf(t, e, bn.ID); s != ExchangeLapsed {
		t.Fatalf("late money without tickets: %s", s)
	}
	if n, err := e.SettleExchanges(ctx); err != nil || n != 0 {
		t.Fatalf("nothing to settle: %d %v", n, err)
	}
	if o, _ := e.Order(ctx, b.ID); o.Status != StatusPaid {
		t.Fatalf("old b: %+v", o)
	}
	b2, err := e.Exchange(ctx, b.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "floor"})
	if err != nil || b2.ID == bn.ID || b2.Status != StatusPaid { // floor 4700 + 300 = 5000: even, paid at once
		t.Fatalf("second attempt: %+v %v", b2, err)
	}
	if s := xsStatusOf(t, e, b2.ID); s != ExchangeCompleted {
		t.Fatalf("second attempt: %s", s)
	}
}

// TestXSessionCheckInWindow: between steps (a) and (b), cut by a crash,
// the door refuses the new order's tickets and admits the old one's; the
// sweep then revokes the new order, so only one of the two was used.
func TestXSessionCheckInWindow(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)
	old := paidOrder(t, e, src, "seat", 1, "bob")
	nw := xsStepA(t, e, old.ID, dst, "floor")
	e.Close()
	e = openTest(t, j, clock, 2)
	_, err := e.CheckInTicket(ctx, nw+".0", "north")
	wantCode(t, err, CodeExchangeInProgress)
	_, err = e.Refund(ctx, nw, true) // an admin's, forced
	wantCode(t, err, CodeInvalidOrderState)
	if _, err := e.CheckInTicket(ctx, old.ID+".0", "north"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.SettleExchanges(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = e.CheckInTicket(ctx, nw+".0", "north")
	wantCode(t, err, CodeTicketNotValid) // revoked
	if s := xsStatusOf(t, e, nw); s != ExchangeLapsed {
		t.Fatalf("status %s", s)
	}
}

// TestXSessionKick: with the kick on, paying the difference settles the
// exchange without the sweeper.
func TestXSessionKick(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	kicked := make(chan struct{}, 1)
	e.xsKicked = kicked
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)
	old, nw := xsDearerPaid(t, e, src, dst)
	select {
	case <-kicked:
	case <-time.After(30 * time.Second):
		t.Fatal("no kick finished within 30 s of the payment")
	}
	if s := xsStatusOf(t, e, nw.ID); s != ExchangeCompleted {
		t.Fatalf("after the kick the exchange is %s, not completed", s)
	}
	if o, _ := e.Order(ctx, old.ID); o.Status != StatusRefunded {
		t.Fatalf("old order: %+v", o)
	}
}

// TestXSessionPaymentsRoundTrip: ExchangeInPayments encodes and decodes
// to itself, and its records survive a snapshot and repartition.
func TestXSessionPaymentsRoundTrip(t *testing.T) {
	ev := event{kind: evExchangeInPayments, at: 9, order: orderKey{1}, xs: &xsEvent{parts: []paymentPart{{"stripe:pi_1", 3300, 3300}, {"pay-x", 4700, 5000}}}}
	b := appendEvent(nil, &ev)
	var got []event
	if err := decodeEntry(b, func(e *event) error { got = append(got, *e); return nil }); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], ev) {
		t.Fatalf("got %+v %v", got, err)
	}

	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	e.xsNoKick = true
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)
	old, nw := xsDearerPaid(t, e, src, dst)
	if _, err := e.SettleExchanges(ctx); err != nil {
		t.Fatal(err)
	}
	for _, reopen := range []struct {
		snap   bool
		shards int
	}{{true, 2}, {false, 3}} {
		e.Close()
		if reopen.snap {
			snapshotClosed(t, e, j)
		}
		e = openTest(t, j, clock, reopen.shards)
		e.xsNoKick = true
	}
	back, err := e.Refund(ctx, nw.ID, false)
	if err != nil || len(back.Payouts) != 2 || back.Payouts[1].PaymentID != old.PaymentID || back.Payouts[1].AmountCents != 4700 {
		t.Fatalf("refund after snapshot and repartition: %+v %v", back.Payouts, err)
	}
}

// TestXSessionRecoveredAtEveryEntry: a random run of cross-session
// exchanges (up and down, paid on time, late or never, orders checked in
// or refunded between the steps), decided step by step as the engine's
// calls do, in one state, is recovered from a snapshot taken after every
// log entry (a crash at each point between the steps) and from the log
// alone: the records, their payments and every order's view come back
// exactly.
func TestXSessionRecoveredAtEveryEntry(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 82))
	st := newState()
	now := int64(1_800_000_000_000)
	var log [][]byte
	var evs []event
	run := func(cmd *command) *result {
		var res result
		evs = st.execute(cmd, now, &res, evs[:0])
		if len(evs) > 0 {
			var entry []byte
			for i := range evs {
				entry = appendEvent(entry, &evs[i])
			}
			log = append(log, entry)
		}
		return &res
	}
	for _, id := range []string{"a", "b"} {
		cfg := SaleConfig{ID: id, Name: id, Currency: "EUR", OpensAtMs: now - 1, ClosesAtMs: now + 86_400_000,
			HoldMs: 60_000, PerUserLimit: 10, Catalogue: Catalogue{Event: "tour", StartsAtMs: now + 4*86_400_000},
			RefundPolicy: &RefundPolicy{Refund: autoRefund, Exchange: exchange24h},
			Tiers:        []TierConfig{{ID: "lo", Name: "Lo", PriceCents: 3000, Stock: 6}, {ID: "hi", Name: "Hi", PriceCents: 9000, Stock: 6}}}
		if res := run(&command{kind: cmdPutSale, saleID: id, sale: &cfg}); res.rej != nil {
			t.Fatal(res.rej)
		}
	}
	type ord struct {
		sale string
		key  orderKey
	}
	var orders []ord
	n := 0
	newKey := func() orderKey { n++; return orderKey{byte(n), byte(n >> 8), 7} }
	pay := func(o ord) {
		ov, _ := st.orderByKey(o.key)
		run(&command{kind: cmdPay, saleID: o.sale, order: o.key,
			payment: Payment{EventID: fmt.Sprint("stripe:pi_", n, "_", rng.IntN(1000)), Succeeded: true, AmountCents: st.amountDue(ov), Currency: "EUR"}})
	}
	settle := func() { // what SettleExchanges does
		var res result
		st.execute(&command{kind: cmdXSession, xs: &xsCommand{op: xsList}}, now, &res, nil)
		if res.xs == nil {
			return
		}
		for _, p := range res.xs.open {
			out := run(&command{kind: cmdXSession, saleID: p.fromSale, order: p.from,
				xs: &xsCommand{op: xsOutOp, otherSale: p.saleID, other: p.key, diff: p.diff, fee: p.fee}})
			run(&command{kind: cmdXSession, saleID: p.saleID, order: p.key, xs: &xsCommand{op: xsSettle, ok: out.rej == nil}})
		}
	}
	exchanged := 0
	for step := range 300 {
		now += 1000
		var o ord
		if len(orders) > 0 {
			o = orders[rng.IntN(len(orders))]
		}
		switch r := rng.IntN(10); {
		case r < 3 || len(orders) == 0:
			sale := []string{"a", "b"}[rng.IntN(2)]
			k := newKey()
			cmd := command{kind: cmdPurchase, saleID: sale, tierID: []string{"lo", "hi"}[rng.IntN(2)], qty: 1,
				userID: fmt.Sprint("u", rng.IntN(4)), key: fmt.Sprint("k", step), newOrder: k}
			if res := run(&cmd); res.rej == nil && res.created {
				orders = append(orders, ord{sale, k})
				pay(orders[len(orders)-1])
			}
		case r < 6: // step (a), and (b)/(c) now or later
			ov, _ := st.orderByKey(o.key)
			to := "a"
			if o.sale == "a" {
				to = "b"
			}
			var chk result
			st.execute(&command{kind: cmdXSession, saleID: o.sale, order: o.key, xs: &xsCommand{op: xsCheck, otherSale: to}}, now, &chk, nil)
			if chk.rej != nil || chk.xs.done != "" {
				break
			}
			k := newKey()
			res := run(&command{kind: cmdXSession, saleID: to, userID: ov.userID, tierID: []string{"lo", "hi"}[rng.IntN(2)], newOrder: k,
				xs: &xsCommand{op: xsInOp, otherSale: o.sale, other: o.key, event: chk.xs.event, oldAmount: chk.xs.amount, qty: chk.xs.qty,
					fee: chk.xs.fee, parts: chk.xs.parts}})
			if res.rej == nil && res.orderKey == k {
				orders = append(orders, ord{to, k})
				exchanged++
				if nw, _ := st.orderByKey(k); nw.status == StatusPending && rng.IntN(3) > 0 {
					pay(orders[len(orders)-1])
				}
			}
		case r == 6: // pay whatever is due on a pending or expired order
			if ov, _ := st.orderByKey(o.key); ov.status == StatusPending || ov.status == StatusExpired {
				pay(o)
			}
		case r == 7: // the door, or a refund, between the steps
			if rng.IntN(2) == 0 {
				run(&command{kind: cmdCheckIn, saleID: o.sale, order: o.key, ticket: 0})
			} else {
				run(&command{kind: cmdRefund, saleID: o.sale, order: o.key})
			}
		case r == 8:
			now += 70_000
			evs = st.expireDue(now, 100, evs[:0])
			if len(evs) > 0 {
				var entry []byte
				for i := range evs {
					entry = appendEvent(entry, &evs[i])
				}
				log = append(log, entry)
			}
		default:
			settle()
		}
		st.checkState()
	}
	dear, settled, undone := 0, 0, 0
	for _, r := range st.xs.in {
		if r.diff > 0 {
			dear++
		}
		switch r.state {
		case xsSettled:
			settled++
		case xsUndone:
			undone++
		}
	}
	t.Logf("seed %d: %d log entries, %d exchanges (%d dearer, %d settled, %d undone)", seed, len(log), len(st.xs.in), dear, settled, undone)
	if exchanged == 0 || dear == 0 || settled == 0 {
		t.Fatalf("seed %d: no dearer or settled exchange in the run", seed)
	}
	views := func(s *state) []Order {
		var out []Order
		for _, o := range orders {
			ov, _ := s.orderByKey(o.key)
			out = append(out, s.orderView(ov))
		}
		return out
	}
	st.dropStaleHolds()
	want, wantDump := views(st), dumpFull(st)
	for snapAt := 0; snapAt <= len(log); snapAt++ {
		states, _, err := recoverStates(journalSnapshotAt(t, log, snapAt), 1, quietLogger)
		if err != nil {
			t.Fatalf("seed %d snapshot at %d: %v", seed, snapAt, err)
		}
		if got := views(states[0]); !reflect.DeepEqual(got, want) {
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("seed %d snapshot at %d: order %d\n got %+v\nwant %+v", seed, snapAt, i, got[i], want[i])
				}
			}
		}
		if got := dumpFull(states[0]); got != wantDump {
			t.Fatalf("seed %d snapshot at %d: state differs:\n%s", seed, snapAt, firstDiff(wantDump, got))
		}
		for k, r := range st.xs.in {
			if g := states[0].xs.in[k]; !reflect.DeepEqual(g, r) {
				t.Fatalf("seed %d snapshot at %d: record %x: %+v, want %+v", seed, snapAt, k, g, r)
			}
		}
	}
}
