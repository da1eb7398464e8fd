package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// Exchanges into another session of the same event (xsession.go).

// xsSales puts two sessions of event "tour" that live in different shards
// of two: src (floor 5000, seat 8000) and dst (floor 4700, seat 8000),
// both allowing exchanges (fee 300), stock 4 each, and returns their ids.
func xsSales(t *testing.T, e *Engine, clock *fakeClock) (src, dst string) {
	return xsSalesOf(t, e, clock, 4)
}

func xsSalesOf(t *testing.T, e *Engine, clock *fakeClock, stock int) (src, dst string) {
	t.Helper()
	ids := []string{"s1", "s2", "s3", "s4", "s5", "s6"}
	src = ids[0]
	for _, id := range ids[1:] {
		if shardIndex(id, 2) != shardIndex(src, 2) {
			dst = id
			break
		}
	}
	for _, id := range []string{src, dst} {
		cfg := ruleSale(id, clock, stock, autoRefund, exchange24h)
		cfg.Event = "tour"
		if id == dst {
			cfg.Tiers[0].PriceCents = 4700
		}
		if _, _, err := e.PutSale(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	return src, dst
}

// xsStepA runs the check and step (a) only, as a crash right after it
// leaves them, and returns the new order's id.
func xsStepA(t *testing.T, e *Engine, oldID, dst, tier string) string {
	t.Helper()
	id, err := xsTryStepA(e, oldID, dst, tier)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestXSessionExchangeDownAndEven: an order moves to another session in
// another shard; a cheaper ticket pays the difference back once through
// the old order's payment, an even one pays nothing; asking again answers
// the same order; a dearer one, another event's sale, a sold-out tier and
// the target's per-buyer limit are refused and change nothing.
func TestXSessionExchangeDownAndEven(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)

	seat := paidOrder(t, e, src, "seat", 1, "bob") // 8000
	down, err := e.Exchange(ctx, seat.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "floor"})
	if err != nil || down.SaleID != dst || down.Status != StatusPaid || down.TierID != "floor" || down.AmountCents != 4700 {
		t.Fatalf("exchange down: %+v %v", down, err)
	}
	if x := down.Refunds.ExchangedFrom; x == nil || x.FromOrderID != seat.ID || x.DifferenceCents != -3000 || x.FeeCents != 300 || x.Status != ExchangeCompleted {
		t.Fatalf("exchanged_from %+v", down.Refunds.ExchangedFrom)
	}
	old, _ := e.Order(ctx, seat.ID)
	if old.Status != StatusRefunded || old.Refunds.ExchangedTo == nil || old.Refunds.ExchangedTo.ToOrderID != down.ID {
		t.Fatalf("old order: %+v", old)
	}
	if len(old.Payouts) != 1 || old.Payouts[0].AmountCents != 3000 || old.Payouts[0].Reason != PayoutExchangeDifference || old.Payouts[0].PaymentID != seat.PaymentID {
		t.Fatalf("payouts %+v", old.Payouts)
	}
	if again, err := e.Exchange(ctx, seat.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "floor"}); err != nil || again.ID != down.ID {
		t.Fatalf("asked again: %+v %v", again, err)
	}
	if again, _ := e.Order(ctx, seat.ID); len(again.Payouts) != 1 {
		t.Fatalf("paid out twice: %+v", again.Payouts)
	}
	if got := tierCounts(t, e, src); !slices.Equal(got, []TierCounts{{Available: 4}, {Available: 4}}) {
		t.Fatalf("source counts %+v", got)
	}
	if got := tierCounts(t, e, dst); !slices.Equal(got, []TierCounts{{Sold: 1, Available: 3}, {Available: 4}}) {
		t.Fatalf("target counts %+v", got)
	}
	// Its refund goes back through the old order's payment, which still
	// holds 8000 - 3000 = 5000 of the buyer's money: 4700 less the rule's
	// fee (10 % + 200 = 670).
	back, err := e.RequestRefund(ctx, down.ID, "bob", "")
	if err != nil || back.Status != StatusRefunded || len(back.Payouts) != 1 {
		t.Fatalf("refund of the new order: %+v %v", back, err)
	}
	if p := back.Payouts[0]; p.Reason != PayoutRefundRequest || p.AmountCents != 4030 || p.PaymentID != seat.PaymentID || p.TotalCents != 8000 {
		t.Fatalf("refund payout %+v", p)
	}

	even := paidOrder(t, e, src, "floor", 1, "ann") // 5000 = 4700 + 300
	got, err := e.Exchange(ctx, even.ID, "ann", ExchangeRequest{SaleID: dst, TierID: "floor"})
	if err != nil || got.Refunds.ExchangedFrom.DifferenceCents != 0 {
		t.Fatalf("even: %+v %v", got, err)
	}
	if o, _ := e.Order(ctx, even.ID); o.Status != StatusRefunded || len(o.Payouts) != 0 {
		t.Fatalf("even old order: %+v", o)
	}

	// Refusals change nothing.
	floor := paidOrder(t, e, src, "floor", 1, "cy")
	before := [2][]TierCounts{tierCounts(t, e, src), tierCounts(t, e, dst)}
	other := ruleSale("other", clock, 4, autoRefund, exchange24h)
	other.Event = "another-show"
	if _, _, err := e.PutSale(ctx, other); err != nil {
		t.Fatal(err)
	}
	_, err = e.Exchange(ctx, floor.ID, "cy", ExchangeRequest{SaleID: "other", TierID: "floor"})
	wantCode(t, err, CodeExchangeNotAllowed)
	_, err = e.Exchange(ctx, floor.ID, "mallory", ExchangeRequest{SaleID: dst, TierID: "floor"})
	wantCode(t, err, CodeUnknownOrder)
	if after := [2][]TierCounts{tierCounts(t, e, src), tierCounts(t, e, dst)}; !reflect.DeepEqual(after, before) {
		t.Fatalf("a refusal changed counts: %+v, want %+v", after, before)
	}
	for range 3 { // ann took one of four (bob's went back with his refund)
		paidOrder(t, e, dst, "floor", 1, "dee")
	}
	before = [2][]TierCounts{tierCounts(t, e, src), tierCounts(t, e, dst)}
	_, err = e.Exchange(ctx, floor.ID, "cy", ExchangeRequest{SaleID: dst, TierID: "floor"})
	wantCode(t, err, CodeSoldOut)
	if o, _ := e.Order(ctx, floor.ID); o.Status != StatusPaid || o.Refunds != nil {
		t.Fatalf("after refusals: %+v", o)
	}
	if after := [2][]TierCounts{tierCounts(t, e, src), tierCounts(t, e, dst)}; !reflect.DeepEqual(after, before) {
		t.Fatalf("a refusal changed counts: %+v, want %+v", after, before)
	}
}

// TestXSessionPerBuyerLimit: the buyer gains tickets in the target sale,
// so its per-buyer limit applies.
func TestXSessionPerBuyerLimit(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	src, _ := xsSales(t, e, clock)
	lim := ruleSale("lim", clock, 4, autoRefund, exchange24h)
	lim.Event, lim.PerUserLimit = "tour", 1
	if _, _, err := e.PutSale(ctx, lim); err != nil {
		t.Fatal(err)
	}
	paidOrder(t, e, "lim", "floor", 1, "bob")
	o := paidOrder(t, e, src, "seat", 1, "bob")
	_, err := e.Exchange(ctx, o.ID, "bob", ExchangeRequest{SaleID: "lim", TierID: "floor"})
	wantCode(t, err, CodeLimitExceeded)
	if got, _ := e.Order(ctx, o.ID); got.Status != StatusPaid {
		t.Fatalf("old order %+v", got)
	}
}

// TestXSessionCrashThenSweep: a crash after step (a) leaves both orders
// valid; after recovery the sweeper releases the old one. An old order
// refunded between (a) and (b) makes the sweeper revoke the new one
// instead, without a payout. The records survive replay, a snapshot and
// repartition.
func TestXSessionCrashThenSweep(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)
	a := paidOrder(t, e, src, "seat", 1, "bob")
	b := paidOrder(t, e, src, "seat", 1, "ann")
	aNew := xsStepA(t, e, a.ID, dst, "floor")
	bNew := xsStepA(t, e, b.ID, dst, "floor")
	if again := xsStepA(t, e, a.ID, dst, "floor"); again != aNew {
		t.Fatalf("step (a) again made %s, want %s", again, aNew)
	}
	e.Close() // the crash: (b) never ran
	e = openTest(t, j, clock, 2)
	if o, _ := e.Order(ctx, aNew); o.Status != StatusPaid || o.Refunds.ExchangedFrom.Status != ExchangeAwaitingRelease {
		t.Fatalf("new order after the crash: %+v", o)
	}
	if _, err := e.Refund(ctx, b.ID, false); err != nil { // b changes before (b)
		t.Fatal(err)
	}
	if n, err := e.SettleExchanges(ctx); err != nil || n != 2 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if n, err := e.SettleExchanges(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: %d %v", n, err)
	}
	if o, _ := e.Order(ctx, a.ID); o.Status != StatusRefunded || o.Refunds.ExchangedTo.ToOrderID != aNew {
		t.Fatalf("old a: %+v", o)
	}
	if o, _ := e.Order(ctx, aNew); o.Status != StatusPaid || o.Refunds.ExchangedFrom.Status != ExchangeCompleted {
		t.Fatalf("new a: %+v", o)
	}
	if o, _ := e.Order(ctx, bNew); o.Status != StatusRefunded || o.Refunds.ExchangedFrom.Status != ExchangeLapsed || len(o.Payouts) != 0 {
		t.Fatalf("new b, undone: %+v", o)
	}
	if got := tierCounts(t, e, dst); !slices.Equal(got, []TierCounts{{Sold: 1, Available: 3}, {Available: 4}}) {
		t.Fatalf("target counts %+v", got)
	}
	views := func() [4]Order {
		var v [4]Order
		for i, id := range []string{a.ID, aNew, b.ID, bNew} {
			v[i], _ = e.Order(ctx, id)
		}
		return v
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
}

// TestXSessionEventsRoundTrip: the events encode and decode to themselves.
func TestXSessionEventsRoundTrip(t *testing.T) {
	for _, ev := range []event{
		{kind: evExchangeIn, at: 5, order: orderKey{1}, xs: &xsEvent{sale: "s2", other: orderKey{2}, diff: -300, fee: 300}},
		{kind: evExchangedOut, at: 6, order: orderKey{2}, xs: &xsEvent{sale: "s1", other: orderKey{1}, diff: 0, fee: 0}},
		{kind: evExchangeInSettled, at: 7, order: orderKey{1}},
		{kind: evExchangeInUndone, at: 8, order: orderKey{1}},
	} {
		b := appendEvent(nil, &ev)
		var got []event
		if err := decodeEntry(b, func(e *event) error { got = append(got, *e); return nil }); err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], ev) {
			t.Fatalf("%s: got %+v %v", ev.kind, got, err)
		}
	}
}

// xsTryStepA is xsStepA that reports a refusal instead of failing.
func xsTryStepA(e *Engine, oldID, dst, tier string) (string, error) {
	return xsStepAWith(e, oldID, dst, tier, true)
}

// xsStepAWith is xsTryStepA; without withParts, step (a) logs no
// ExchangeInPayments, as a build before those records did.
func xsStepAWith(e *Engine, oldID, dst, tier string, withParts bool) (string, error) {
	ctx := context.Background()
	saleID, key, _ := parseOrderID(oldID)
	var chk *xsResult
	if err := e.one(ctx, saleID, command{kind: cmdXSession, saleID: saleID, order: key, xs: &xsCommand{op: xsCheck, otherSale: dst}},
		func(r *result) { chk = r.xs }); err != nil {
		return "", err
	}
	if chk.done != "" {
		return chk.done, nil
	}
	if !withParts {
		chk.parts = nil
	}
	var got orderKey
	err := e.one(ctx, dst, command{kind: cmdXSession, saleID: dst, userID: chk.user, tierID: tier, newOrder: newOrderKey(),
		xs: &xsCommand{op: xsInOp, otherSale: saleID, other: key, event: chk.event, oldAmount: chk.amount, qty: chk.qty, fee: chk.fee, parts: chk.parts}},
		func(r *result) { got = r.orderKey })
	return formatOrderID(dst, got), err
}

// TestXSessionRandomized mixes purchases, payments (some after their
// hold ended), expiries, admin and buyer refunds (of new orders too),
// check-ins, cross-session exchanges up and down (whole, and cut after
// step (a) as a crash does) and restarts (replay, snapshot) over two
// sessions in different shards. After every step no tier has sold + held
// above its stock; after every sweep no paid exchange is open, no buyer
// holds both orders of an exchange valid, the old order was released
// exactly when the exchange completed, at most one order of an exchange
// admitted anyone, no payment paid out more than it took, and the money
// balances: payments in - payouts = amounts of valid orders + fees kept
// (exchange fees of completed exchanges, refund fees).
func TestXSessionRandomized(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 73))
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	e.xsNoKick = true // the sweep settles: the run replays from its seed
	ctx := context.Background()
	const stock = 12
	src, dst := xsSalesOf(t, e, clock, stock)
	sales := []string{src, dst}
	tiers := []string{"floor", "seat"}
	var orders []string // every order made, in order
	type pair struct{ old, new string }
	var pairs []pair
	isNew := map[string]bool{}
	paidIn := map[string]int64{} // payment event id → what it took
	admitted := map[string]bool{}
	done, undone, dearer, payments := 0, 0, 0, 0

	checkCounts := func(step int) {
		for _, s := range sales {
			for i, c := range tierCounts(t, e, s) {
				if c.Sold+c.Held > stock || c.Sold+c.Held+c.Available != stock {
					t.Fatalf("seed %d step %d: sale %s tier %d: %+v", seed, step, s, i, c)
				}
			}
		}
	}
	valid := func(o Order) bool { return o.Status == StatusPaid && !o.NeedsRefund }
	checkPairs := func(step int) {
		for _, p := range pairs {
			old, err1 := e.Order(ctx, p.old)
			nw, err2 := e.Order(ctx, p.new)
			if err1 != nil || err2 != nil {
				t.Fatalf("seed %d step %d: %v %v", seed, step, err1, err2)
			}
			x := nw.Refunds.ExchangedFrom
			released := old.Refunds != nil && old.Refunds.ExchangedTo != nil && old.Refunds.ExchangedTo.ToOrderID == p.new
			switch {
			case x == nil || x.Status == ExchangeAwaitingRelease:
				t.Fatalf("seed %d step %d: exchange %s → %s still open after a sweep: %+v", seed, step, p.old, p.new, x)
			case valid(old) && valid(nw):
				t.Fatalf("seed %d step %d: both %s and %s valid", seed, step, p.old, p.new)
			case released != (x.Status == ExchangeCompleted):
				t.Fatalf("seed %d step %d: old released %v, exchange %s", seed, step, released, x.Status)
			case x.Status == ExchangeAwaitingPayment && nw.Status != StatusPending:
				t.Fatalf("seed %d step %d: awaiting payment, new order %s", seed, step, nw.Status)
			case admitted[p.old] && admitted[p.new]:
				t.Fatalf("seed %d step %d: both %s and %s admitted", seed, step, p.old, p.new)
			}
		}
	}
	checkMoney := func(step int) {
		var in, out, kept int64
		for _, v := range paidIn {
			in += v
		}
		outOf := map[string]int64{}
		for _, id := range orders {
			o, err := e.Order(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range o.Payouts {
				out += p.AmountCents
				outOf[p.PaymentID] += p.AmountCents
			}
			if valid(o) {
				kept += o.AmountCents
			}
			if r := o.Refunds; r != nil {
				if x := r.ExchangedFrom; x != nil && x.Status == ExchangeCompleted {
					kept += x.FeeCents
				}
				if r.Refund != nil {
					kept += r.Refund.FeeCents
				}
			}
		}
		for id, n := range outOf {
			if took, ok := paidIn[id]; !ok || n > took {
				t.Fatalf("seed %d step %d: payouts of %d through payment %q, which took %d (known %v)", seed, step, n, id, took, ok)
			}
		}
		if in-out != kept {
			t.Fatalf("seed %d step %d: money in %d - payouts %d = %d, but valid orders and fees keep %d", seed, step, in, out, in-out, kept)
		}
	}
	pay := func(id string) {
		o, err := e.Order(ctx, id)
		if err != nil {
			return
		}
		due := o.AmountCents
		if o.Refunds != nil && o.Refunds.AmountDueCents > 0 {
			due = o.Refunds.AmountDueCents
		}
		payments++
		ev := fmt.Sprintf("pay-%s-%d", id, payments)
		_, outcome, err := e.ApplyPayment(ctx, Payment{EventID: ev, OrderID: id, Succeeded: true, AmountCents: due, Currency: "EUR"})
		if err == nil && (outcome == PaymentApplied || outcome == PaymentDuplicateCharge || outcome == PaymentMismatch) {
			paidIn[ev] = due
		}
	}
	sweep := func(step int) {
		if _, err := e.SettleExchanges(ctx); err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("seed %d step %d: sweep: %v", seed, step, err)
			}
		}
		checkPairs(step)
		checkMoney(step)
	}
	pick := func() string { return orders[rng.IntN(len(orders))] }
	for step := range 400 {
		switch op := rng.IntN(14); {
		case op < 3 || len(orders) == 0: // buy, and pay most
			o, err := buy(t, e, sales[rng.IntN(2)], tiers[rng.IntN(2)], 1, fmt.Sprint("u", rng.IntN(6)), "")
			if err != nil {
				break
			}
			orders = append(orders, o.ID)
			if rng.IntN(4) > 0 {
				pay(o.ID)
			}
		case op == 3: // pay a random order that is not paid (pending, or late)
			id := pick()
			if o, err := e.Order(ctx, id); err == nil && (o.Status == StatusPending || o.Status == StatusExpired && rng.IntN(2) == 0) {
				pay(id)
			}
		case op == 4: // time passes: holds expire
			clock.Advance(4 * time.Minute)
			for _, s := range sales {
				tick(t, e, s)
			}
		case op >= 5 && op <= 7: // a whole exchange, or one cut after step (a)
			id := pick()
			from, _, _ := parseOrderID(id)
			to := sales[0]
			if from == to {
				to = sales[1]
			}
			o, err := e.Order(ctx, id)
			if err != nil || !valid(o) {
				break
			}
			var nw string
			tier := tiers[rng.IntN(2)]
			if op < 7 {
				n, err := e.Exchange(ctx, id, o.UserID, ExchangeRequest{SaleID: to, TierID: tier})
				if err != nil {
					break
				}
				nw = n.ID
				done++
				if n.Status == StatusPending {
					dearer++
					if rng.IntN(3) > 0 {
						pay(nw)
					}
				}
			} else {
				if nw, err = xsTryStepA(e, id, to, tier); err != nil {
					break
				}
				if rng.IntN(3) == 0 {
					e.Refund(ctx, id, false) // the old order changes before step (b): the sweep undoes
				}
			}
			if !isNew[nw] {
				pairs = append(pairs, pair{id, nw})
				isNew[nw] = true
				orders = append(orders, nw)
			}
		case op == 8: // an admin refunds an order; a new one only once its exchange completed
			id := pick()
			if o, err := e.Order(ctx, id); err == nil && (!isNew[id] || o.Refunds.ExchangedFrom.Status == ExchangeCompleted) {
				e.Refund(ctx, id, false)
			}
		case op == 9: // the buyer asks for a refund under the rule (fee kept)
			id := pick()
			if o, err := e.Order(ctx, id); err == nil {
				e.RequestRefund(ctx, id, o.UserID, "")
			}
		case op == 10: // the door scans a ticket
			id := pick()
			if _, err := e.CheckInTicket(ctx, id+".0", "north"); err == nil {
				admitted[id] = true
			}
		case op == 11: // restart, sometimes from a snapshot
			e.Close()
			if rng.IntN(2) == 0 {
				snapshotClosed(t, e, j)
			}
			e = openTest(t, j, clock, 2)
			e.xsNoKick = true
			sweep(step)
		default:
			sweep(step)
		}
		checkCounts(step)
	}
	sweep(400)
	for _, p := range pairs {
		if o, _ := e.Order(ctx, p.new); o.Refunds.ExchangedFrom.Status == ExchangeLapsed {
			undone++
		}
	}
	t.Logf("seed %d: %d orders, %d exchanges (%d whole at once, %d dearer, %d lapsed or revoked)", seed, len(orders), len(pairs), done, dearer, undone)
	if len(pairs) == 0 || done == 0 || dearer == 0 {
		t.Fatalf("seed %d: a random run without a cross-session exchange, or a dearer one", seed)
	}
}

// TestXSessionArchived: an archived target or source sale refuses with
// sale_archived, and nothing changes.
func TestXSessionArchived(t *testing.T) {
	f := newArchiveFixture(t, 2) // on Pebble: sales can be archived
	defer f.close()
	e := f.e
	ctx := context.Background()
	src, dst := xsSales(t, e, f.clock)
	o := paidOrder(t, e, src, "seat", 1, "bob")
	if _, err := e.Archive(ctx, dst); err != nil {
		t.Fatal(err)
	}
	_, err := e.Exchange(ctx, o.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "floor"})
	wantCode(t, err, CodeSaleArchived)
	if got, _ := e.Order(ctx, o.ID); got.Status != StatusPaid || got.Refunds != nil {
		t.Fatalf("old order after a refusal: %+v", got)
	}
	if _, err := e.Archive(ctx, src); err != nil {
		t.Fatal(err)
	}
	_, err = e.Exchange(ctx, o.ID, "bob", ExchangeRequest{SaleID: dst, TierID: "floor"})
	wantCode(t, err, CodeSaleArchived)
}

// TestXSessionBeforePaymentRecords: a new order whose step (a) logged no
// payments (a build before ExchangeInPayments) keeps the old rule once
// settled: its buyer's refund and exchange are refused, and an admin's
// refund is a manual payout against the pseudo payment id, which no
// provider knows.
func TestXSessionBeforePaymentRecords(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	src, dst := xsSales(t, e, clock)
	old := paidOrder(t, e, src, "seat", 1, "bob")
	nw, err := xsStepAWith(e, old.ID, dst, "floor", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.SettleExchanges(ctx); err != nil {
		t.Fatal(err)
	}
	if s := xsStatusOf(t, e, nw); s != ExchangeCompleted {
		t.Fatalf("status %s", s)
	}
	_, err = e.RequestRefund(ctx, nw, "bob", "")
	wantCode(t, err, CodeRefundNotAllowed)
	_, err = e.Exchange(ctx, nw, "bob", ExchangeRequest{TierID: "seat"})
	wantCode(t, err, CodeExchangeNotAllowed)
	o, err := e.Refund(ctx, nw, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Payouts) != 1 || o.Payouts[0].Status != PayoutManual || o.Payouts[0].PaymentID != "exchange of "+old.ID {
		t.Fatalf("payouts %+v", o.Payouts)
	}
}
