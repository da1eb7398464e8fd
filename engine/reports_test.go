package engine

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

// TestSaleReport walks a small sale through every status and checks each
// number of its report, and the event's report over it and a second sale
// in another currency on the same shard.
func TestSaleReport(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	t0 := clock.Ms() / 60_000 * 60_000 // a minute boundary
	clock.Advance(time.Duration(t0-clock.Ms()) * time.Millisecond)

	a := testSale("a", clock, 10, 10)
	a.Event = "ev"
	a.HoldMs = 3600_000 // the pending order outlives the clock's moves to the check-ins
	b := testSale("b", clock, 10, 10)
	b.Event, b.Currency = "ev", "USD"
	c := testSale("c", clock, 10, 10) // no event
	for _, cfg := range []SaleConfig{a, b, c} {
		if _, _, err := e.PutSale(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	buy := func(sale, tier string, qty int, user string) Order {
		t.Helper()
		o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: sale, TierID: tier, Quantity: qty, UserID: user, IdempotencyKey: user + sale})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	pay := func(o Order, event string) {
		t.Helper()
		if _, _, err := e.ApplyPayment(ctx, Payment{EventID: event, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: o.Currency}); err != nil {
			t.Fatal(err)
		}
	}
	o1 := buy("a", "floor", 2, "u1") // minute 0: paid, both tickets admitted
	pay(o1, "p1")
	clock.Advance(30 * time.Second)
	o2 := buy("a", "seat", 1, "u2") // minute 0: paid, refunded
	pay(o2, "p2")
	if _, err := e.Refund(ctx, o2.ID, false); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	buy("a", "floor", 1, "u3")       // minute 1: pending
	o4 := buy("a", "floor", 1, "u4") // minute 1: cancelled
	if _, err := e.Cancel(ctx, o4.ID, ""); err != nil {
		t.Fatal(err)
	}
	o5 := buy("a", "seat", 1, "u5") // minute 1: paid, charged twice
	pay(o5, "p5")
	pay(o5, "p5-again")
	o6 := buy("b", "floor", 1, "u6") // minute 1, sale b
	pay(o6, "p6")
	pay(buy("c", "floor", 1, "u7"), "p7") // another event's

	clock.Advance(6 * time.Minute) // 7:00: first check-in bucket is 5:00
	if _, err := e.CheckInTicket(ctx, o1.ID+".0", "north"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute) // 17:00: bucket 15:00
	if _, err := e.CheckInTicket(ctx, o1.ID+".1", "south"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CheckInTicket(ctx, o5.ID+".0", "north"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CheckInTicket(ctx, o6.ID+".0", "north"); err != nil {
		t.Fatal(err)
	}

	r, err := e.SaleReport(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if r.Event != "ev" || len(r.Sales) != 1 {
		t.Fatalf("event %q, %d sales", r.Event, len(r.Sales))
	}
	wantOrders := OrderCounts{Total: 5, Pending: 1, Paid: 2, Cancelled: 1, Refunded: 1}
	if r.Orders != wantOrders || r.Sales[0].Orders != wantOrders {
		t.Errorf("orders %+v, want %+v", r.Orders, wantOrders)
	}
	wantTiers := []ReportTier{
		{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 10, Sold: 2, Held: 1, Available: 7, Orders: 3, PaidOrders: 1, RevenueCents: 10000},
		{ID: "seat", Name: "Seated", PriceCents: 8000, Stock: 10, Sold: 1, Available: 9, Orders: 2, PaidOrders: 1, RevenueCents: 8000, Refunds: 1, RefundedCents: 8000},
	}
	if !reflect.DeepEqual(r.Sales[0].Tiers, wantTiers) {
		t.Errorf("tiers\n%+v, want\n%+v", r.Sales[0].Tiers, wantTiers)
	}
	wantMoney := []MoneyTotals{{Currency: "EUR", RevenueCents: 18000, Refunds: 1, RefundedCents: 8000, DuplicateCharges: 1, DuplicateChargeCents: 8000}}
	if !reflect.DeepEqual(r.Money, wantMoney) {
		t.Errorf("money %+v, want %+v", r.Money, wantMoney)
	}
	wantRush := RushCurve{StartMs: t0, BucketMinutes: 1, Buckets: []RushBucket{
		{AtMs: t0, Placed: 2, PlacedTickets: 3, Paid: 1},
		{AtMs: t0 + 60_000, Placed: 3, PlacedTickets: 3, Paid: 1},
	}}
	wantRush.Busiest = []RushBucket{wantRush.Buckets[1], wantRush.Buckets[0]}
	if !reflect.DeepEqual(r.Rush, wantRush) {
		t.Errorf("rush %+v, want %+v", r.Rush, wantRush)
	}
	wantDoor := CheckInCurve{StartMs: t0 + 5*60_000, BucketMinutes: 5, Admitted: 3, Gates: []GateCheckIns{
		{Gate: "north", Admitted: 2, Buckets: []CheckInBucket{{t0 + 5*60_000, 1}, {t0 + 15*60_000, 1}}},
		{Gate: "south", Admitted: 1, Buckets: []CheckInBucket{{t0 + 15*60_000, 1}}},
	}}
	if !reflect.DeepEqual(r.CheckIns, wantDoor) {
		t.Errorf("check-ins %+v, want %+v", r.CheckIns, wantDoor)
	}

	ev, err := e.EventReport(ctx, "ev")
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Sales) != 2 || ev.Sales[0].ID != "a" || ev.Sales[1].ID != "b" {
		t.Fatalf("event sales %+v", ev.Sales)
	}
	if ev.Orders.Total != 6 || ev.Orders.Paid != 3 {
		t.Errorf("event orders %+v", ev.Orders)
	}
	if len(ev.Money) != 2 || ev.Money[0].Currency != "EUR" || ev.Money[1] != (MoneyTotals{Currency: "USD", RevenueCents: 5000}) {
		t.Errorf("event money %+v", ev.Money)
	}
	if n := ev.Rush.Buckets[1].Placed; n != 4 {
		t.Errorf("event rush minute 1: %d placed, want 4", n)
	}
	if ev.CheckIns.Admitted != 4 || ev.CheckIns.Gates[0].Admitted != 3 {
		t.Errorf("event check-ins %+v", ev.CheckIns)
	}

	_, err = e.EventReport(ctx, "nope")
	wantCode(t, err, CodeUnknownEvent)
	_, err = e.SaleReport(ctx, "nope")
	wantCode(t, err, CodeUnknownSale)

	// Attendees: paid tickets of a, one order a page.
	var got []AttendeeRow
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := e.SaleAttendees(ctx, "a", cursor, 1)
		if err != nil || pages > 10 {
			t.Fatal(pages, err)
		}
		got = append(got, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	want := []string{o1.ID + ".0 north", o1.ID + ".1 south", o5.ID + ".0 north"}
	var gotIDs []string
	for _, a := range got {
		gotIDs = append(gotIDs, a.TicketID+" "+a.Gate)
	}
	if !reflect.DeepEqual(gotIDs, want) {
		t.Errorf("attendees %v, want %v", gotIDs, want)
	}
}

// TestSpanBuckets: a curve never has more than RushBucketsMax buckets, and
// every time of the span falls in one.
func TestSpanBuckets(t *testing.T) {
	const m = 60_000
	for _, tc := range []struct {
		name       string
		from, to   int64
		unit       int
		wantWidth  int
		wantCount  int
		wantStartM int64
	}{
		{"one order", 10*m + 5, 10*m + 5, 1, 1, 1, 10},
		{"two minutes", 10*m + 59_999, 11 * m, 1, 1, 2, 10},
		{"a week", 0, RushBucketsMax*m - 1, 1, 1, RushBucketsMax, 0},
		{"a week and a minute", 0, RushBucketsMax * m, 1, 2, RushBucketsMax/2 + 1, 0},
		{"a year", 3 * m, 365 * 24 * 60 * m, 1, 53, 9917, 0},
		{"door, 5 minutes", 7 * m, 17 * m, 5, 5, 3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := span{}
			s.add(tc.from)
			s.add(tc.to)
			start, width, n := s.buckets(tc.unit)
			if width != tc.wantWidth || n != tc.wantCount || start != tc.wantStartM*m {
				t.Fatalf("start %d width %d n %d, want %d %d %d", start/m, width, n, tc.wantStartM, tc.wantWidth, tc.wantCount)
			}
			if n > RushBucketsMax || tc.to >= start+int64(n*width)*m || tc.from < start {
				t.Fatalf("span not covered or too many buckets")
			}
		})
	}
}

// TestSaleReportWhileSelling takes reports while purchases and payments
// run: each report's frozen orders must agree with the counters frozen with
// them (held = tickets of pending orders, sold = of paid ones), which only
// holds if the view and the counters are of one instant and the shard's
// later writes never reach the view. Run it with -race.
func TestSaleReportWhileSelling(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s", clock, 100_000, 100)); err != nil {
		t.Fatal(err)
	}
	const buyers, each = 4, 300
	var wg sync.WaitGroup
	for w := range buyers {
		wg.Go(func() {
			for i := range each {
				u := fmt.Sprintf("u%d-%d", w, i)
				o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", TierID: "floor", Quantity: 1 + i%3, UserID: u, IdempotencyKey: "k"})
				if err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					e.ApplyPayment(ctx, Payment{EventID: "p" + u, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"})
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	last := -1
	for reports := 0; ; reports++ {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		f, err := e.freezeSale(ctx, "s")
		if err != nil {
			t.Fatal(err)
		}
		r := buildReport([]*frozenSale{f})
		tier := r.Sales[0].Tiers[0]
		if r.Orders.Total < last || tier.Orders != r.Orders.Total {
			t.Fatalf("report %d: %d orders after %d; tier has %d", reports, r.Orders.Total, last, tier.Orders)
		}
		last = r.Orders.Total
		held, sold := 0, 0
		f.each(func(o *order) {
			switch {
			case o.status == StatusPending:
				held += int(o.qty)
			case o.status == StatusPaid:
				sold += int(o.qty)
			}
		})
		if tier.Held != held || tier.Sold != sold {
			t.Fatalf("report %d: counters held %d sold %d, orders say %d %d", reports, tier.Held, tier.Sold, held, sold)
		}
		if finished {
			if r.Orders.Total != buyers*each {
				t.Fatalf("final report: %d orders, want %d", r.Orders.Total, buyers*each)
			}
			return
		}
	}
}
