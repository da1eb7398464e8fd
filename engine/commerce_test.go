package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func buy(t *testing.T, e *Engine, sale, tier string, qty int, user, coupon string) (Order, error) {
	t.Helper()
	o, _, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: sale, TierID: tier, Quantity: qty,
		UserID: user, IdempotencyKey: fmt.Sprint(user, "-", tier, "-", qty, "-", time.Now().UnixNano()), Coupon: coupon})
	return o, err
}

func tick(t *testing.T, e *Engine, sale string) {
	t.Helper()
	if err := e.one(context.Background(), sale, command{kind: cmdTick}, func(*result) {}); err != nil {
		t.Fatal(err)
	}
}

// TestPricePhases: a phase ends at its until (exclusive) and after its
// first N tickets; an order that straddles the N-th ticket is priced
// whole at the price of its first ticket; a hold that expires gives its
// place in the phase back.
func TestPricePhases(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := testSale("s1", clock, 100, 100)
	until := clock.Ms() + 60_000
	cfg.Tiers[0].Phases = []PricePhase{{UntilMs: until, First: 3, PriceCents: 1000}, {First: 5, PriceCents: 2000}}
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	want := func(o Order, err error, unit int64) {
		t.Helper()
		if err != nil || o.UnitPriceCents != unit || o.AmountCents != unit*int64(o.Quantity) {
			t.Fatalf("got %+v %v, want unit price %d", o, err, unit)
		}
	}
	o1, err := buy(t, e, "s1", "floor", 2, "ann", "") // tickets 1-2
	want(o1, err, 1000)
	o, err := buy(t, e, "s1", "floor", 2, "bob", "") // tickets 3-4: the 3rd is in phase 1, so both are
	want(o, err, 1000)
	o, err = buy(t, e, "s1", "floor", 1, "cat", "") // ticket 5: phase 2
	want(o, err, 2000)
	o, err = buy(t, e, "s1", "floor", 1, "dan", "") // ticket 6: base price
	want(o, err, 5000)
	// Ann's 2 tickets expire: sold + held is 4, the 5th ticket is phase 2's again.
	clock.Advance(time.Duration(cfg.HoldMs) * time.Millisecond)
	tick(t, e, "s1")
	if got, _ := e.Order(ctx, o1.ID); got.Status != StatusExpired || got.UnitPriceCents != 1000 {
		t.Fatalf("ann's order %+v", got)
	}

	// The instant: until-1 ms is in phase 1, until is not.
	cfg2 := testSale("s2", clock, 100, 100)
	until = clock.Ms() + 1000
	cfg2.Tiers[0].Phases = []PricePhase{{UntilMs: until, PriceCents: 1000}}
	if _, _, err := e.PutSale(ctx, cfg2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(999 * time.Millisecond)
	o, err = buy(t, e, "s2", "floor", 1, "eve", "")
	want(o, err, 1000)
	clock.Advance(time.Millisecond)
	o, err = buy(t, e, "s2", "floor", 1, "eve", "")
	want(o, err, 5000)
}

func TestPricePhasesValidated(t *testing.T) {
	clock := newFakeClock()
	for _, c := range []struct {
		name   string
		phases []PricePhase
	}{
		{"no bound", []PricePhase{{PriceCents: 1}}},
		{"until backwards", []PricePhase{{UntilMs: 20, PriceCents: 1}, {UntilMs: 10, PriceCents: 1}}},
		{"first backwards", []PricePhase{{First: 20, PriceCents: 1}, {First: 20, PriceCents: 1}}},
		{"negative price", []PricePhase{{First: 1, PriceCents: -1}}},
		{"too many", make([]PricePhase, PhasesPerTierMax+1)},
	} {
		cfg := testSale("s1", clock, 10, 10)
		cfg.Tiers[0].Phases = c.phases
		if rej := validateSaleConfig(&cfg); rej == nil || rej.Code != CodeInvalidRequest {
			t.Errorf("%s: got %v", c.name, rej)
		}
	}
}

func packageSale(clock *fakeClock, stock int) SaleConfig {
	cfg := testSale("s1", clock, stock, 1000)
	cfg.Tiers = append(cfg.Tiers, TierConfig{ID: "family", Name: "Family", PriceCents: 20000,
		Components: []PackageComponent{{TierID: "floor", Quantity: 2}, {TierID: "seat", Quantity: 1}}})
	return cfg
}

// TestPackagesRaceSingles: buyers race packages and single tickets of the
// same tiers: the components are never oversold, the counts equal a
// recount, and everything is released when the holds expire.
func TestPackagesRaceSingles(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	cfg := packageSale(clock, 50)
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	held := map[string]int{}
	for g := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tier := []string{"floor", "seat", "family"}[g%3]
			o, err := buy(t, e, "s1", tier, 1+g%2, fmt.Sprint("u", g), "")
			if err != nil {
				if rej, ok := err.(*Rejection); !ok || rej.Code != CodeSoldOut {
					t.Errorf("buyer %d: %v", g, err)
				}
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if tier == "family" {
				held["floor"] += 2 * o.Quantity
				held["seat"] += o.Quantity
				if o.AmountCents != 20000*int64(o.Quantity) {
					t.Errorf("package order %+v", o)
				}
			} else {
				held[tier] += o.Quantity
			}
		}()
	}
	wg.Wait()
	s, err := e.Sale(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"floor", "seat"} {
		c := s.TierCounts[i]
		if c.Held != held[name] || c.Held+c.Available != 50 {
			t.Errorf("%s: %+v, orders hold %d", name, c, held[name])
		}
	}
	if fam := s.TierCounts[2]; fam.Available != min(s.TierCounts[0].Available/2, s.TierCounts[1].Available) {
		t.Errorf("family available %d with floor %d, seat %d", fam.Available, s.TierCounts[0].Available, s.TierCounts[1].Available)
	}
	if held["floor"] < 49 && held["seat"] < 50 {
		t.Errorf("neither tier sold out: %v", held)
	}
	// Recovery recounts every tier from the orders (checkState) and must
	// find the same numbers.
	e.Close()
	e = openTest(t, j, clock, 2)
	if again, _ := e.Sale(ctx, "s1"); fmt.Sprint(again.TierCounts) != fmt.Sprint(s.TierCounts) {
		t.Fatalf("recovered %v, live %v", again.TierCounts, s.TierCounts)
	}

	clock.Advance(time.Duration(cfg.HoldMs) * time.Millisecond)
	tick(t, e, "s1")
	s, _ = e.Sale(ctx, "s1")
	for i, c := range s.TierCounts[:2] {
		if c.Held != 0 || c.Available != 50 {
			t.Errorf("tier %d after expiry: %+v", i, c)
		}
	}
	if s.TierCounts[2].Available != 25 {
		t.Errorf("family after expiry: %+v", s.TierCounts[2])
	}
}

// TestPackageLimitAndChange: a package counts its tickets against the
// per-buyer limit, and its components cannot change once the sale has
// orders.
func TestPackageLimitAndChange(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := packageSale(clock, 50)
	cfg.PerUserLimit = 5
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := buy(t, e, "s1", "family", 1, "ann", ""); err != nil { // 3 tickets
		t.Fatal(err)
	}
	_, err := buy(t, e, "s1", "floor", 3, "ann", "")
	wantCode(t, err, CodeLimitExceeded)
	if _, err := buy(t, e, "s1", "floor", 2, "ann", ""); err != nil {
		t.Fatal(err)
	}
	changed := packageSale(clock, 50)
	changed.Tiers[2].Components[0].Quantity = 1
	_, _, err = e.PutSale(ctx, changed)
	wantCode(t, err, CodeInvalidRequest)
	lower := packageSale(clock, 50)
	lower.Tiers[0].Stock = 3 // ann holds 2 + 2 through the package
	_, _, err = e.PutSale(ctx, lower)
	wantCode(t, err, CodeStockBelowCommitted)
}

// TestCouponRace: 1,000 buyers race for the last 10 uses of a coupon:
// exactly 10 orders get it; cancelling them gives the uses back.
func TestCouponRace(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 5000, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutCoupon(ctx, "s1", CouponConfig{Code: "last-10", PercentOff: 25, UsesMax: 10}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []Order
	exhausted := 0
	for g := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := buy(t, e, "s1", "floor", 1, fmt.Sprint("u", g), "Last-10")
			mu.Lock()
			defer mu.Unlock()
			switch rej, _ := err.(*Rejection); {
			case err == nil:
				won = append(won, o)
			case rej != nil && rej.Code == CodeCouponExhausted:
				exhausted++
			default:
				t.Errorf("buyer %d: %v", g, err)
			}
		}()
	}
	wg.Wait()
	if len(won) != 10 || exhausted != 990 {
		t.Fatalf("%d orders with the coupon, %d refused", len(won), exhausted)
	}
	for _, o := range won {
		if o.Coupon != "LAST-10" || o.DiscountCents != 1250 || o.AmountCents != 3750 || o.UnitPriceCents != 5000 {
			t.Fatalf("order %+v", o)
		}
	}
	if s, _ := e.Sale(ctx, "s1"); s.TierCounts[0].Held != 10 {
		t.Fatalf("refused buyers changed the stock: %+v", s.TierCounts[0])
	}
	for _, o := range won {
		if _, err := e.Cancel(ctx, o.ID, o.UserID); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := e.Coupons(ctx, "s1")
	if err != nil || len(cs) != 1 || cs[0].Uses != 0 {
		t.Fatalf("after cancelling: %+v %v", cs, err)
	}
	if _, err := buy(t, e, "s1", "floor", 1, "late", "last-10"); err != nil {
		t.Fatalf("a use given back is not taken again: %v", err)
	}
}

// TestCouponRules: each refusal has its code and changes nothing; fixed
// discounts stop at 0; a refund keeps the use, an expiry gives it back and
// late money takes it again only if one is left; the cap cannot go below
// the uses taken.
func TestCouponRules(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 100, 100)); err != nil {
		t.Fatal(err)
	}
	now := clock.Ms()
	for _, c := range []CouponConfig{
		{Code: "TEN", PercentOff: 10, UsesMax: 2, UsesPerBuyerMax: 1},
		{Code: "BIG", AmountOffCents: 1_000_000},
		{Code: "SEATS", PercentOff: 50, Tiers: []string{"seat"}, MinQuantity: 2},
		{Code: "LATER", PercentOff: 5, ValidFromMs: now + 1000},
		{Code: "GONE", PercentOff: 5, ValidUntilMs: now},
		{Code: "OFF", PercentOff: 5, Disabled: true},
		{Code: "HALF", PercentOff: 1},
	} {
		if _, err := e.PutCoupon(ctx, "s1", c); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.PutCoupon(ctx, "s1", CouponConfig{Code: "ten", PercentOff: 1})
	wantCode(t, err, CodeCouponExists)
	_, err = e.PutCoupon(ctx, "s1", CouponConfig{Code: "X", PercentOff: 1})
	wantCode(t, err, CodeInvalidRequest)
	for code, want := range map[string]Code{
		"NOPE": CodeCouponUnknown, "LATER": CodeCouponNotYetValid, "GONE": CodeCouponExpired, "OFF": CodeCouponDisabled,
		"SEATS": CodeCouponNotApplicable, "bad code!": CodeCouponUnknown,
	} {
		_, err := buy(t, e, "s1", "floor", 1, "ann", code)
		wantCode(t, err, want)
	}
	_, err = buy(t, e, "s1", "seat", 1, "ann", "SEATS")
	wantCode(t, err, CodeCouponNotApplicable)
	if s, _ := e.Sale(ctx, "s1"); s.TierCounts[0].Held+s.TierCounts[1].Held != 0 {
		t.Fatalf("refused coupons took stock: %+v", s.TierCounts)
	}
	o, err := buy(t, e, "s1", "floor", 1, "ann", "big")
	if err != nil || o.AmountCents != 0 || o.DiscountCents != 5000 {
		t.Fatalf("fixed discount: %+v %v", o, err)
	}
	// 1% of 50.50 is 50.5 cents: half down, 50.
	o, err = buy(t, e, "s1", "floor", 1, "ann", "HALF")
	if err != nil || o.DiscountCents != 50 {
		t.Fatalf("1%% of 5000: %+v %v", o, err)
	}
	if d := (&coupon{cfg: CouponConfig{PercentOff: 1}}).discount(5050); d != 50 {
		t.Fatalf("1%% of 5050 is %d, want 50 (half down)", d)
	}
	if d := (&coupon{cfg: CouponConfig{PercentOff: 1}}).discount(5051); d != 51 {
		t.Fatalf("1%% of 5051 is %d, want 51", d)
	}

	paid, err := buy(t, e, "s1", "floor", 1, "bob", "TEN")
	if err != nil {
		t.Fatal(err)
	}
	_, err = buy(t, e, "s1", "floor", 1, "bob", "TEN")
	wantCode(t, err, CodeCouponExhausted) // per buyer
	if _, _, err := e.ApplyPayment(ctx, Payment{EventID: "p1", OrderID: paid.ID, Succeeded: true, AmountCents: paid.AmountCents, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Refund(ctx, paid.ID, false); err != nil {
		t.Fatal(err)
	}
	expiring, err := buy(t, e, "s1", "floor", 1, "cat", "TEN")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.PatchCoupon(ctx, "s1", "ten", CouponPatch{UsesMax: ptr(1)})
	wantCode(t, err, CodeCouponCapBelowUses)
	// Cat's hold expires: the use comes back (bob's refund kept his) and
	// dan takes it; cat's late money finds no use left.
	clock.Advance(10 * time.Minute)
	tick(t, e, "s1")
	if cs, _ := e.Coupons(ctx, "s1"); cs[0].Uses != 1 {
		t.Fatalf("TEN after a refund and an expiry: %+v", cs[0])
	}
	if _, err := buy(t, e, "s1", "floor", 1, "dan", "TEN"); err != nil {
		t.Fatal(err)
	}
	late, _, err := e.ApplyPayment(ctx, Payment{EventID: "p2", OrderID: expiring.ID, Succeeded: true, AmountCents: expiring.AmountCents, Currency: "EUR"})
	if err != nil || late.Status != StatusPaid || !late.NeedsRefund {
		t.Fatalf("late money without a use left: %+v %v", late, err)
	}
	c, err := e.PatchCoupon(ctx, "s1", "TEN", CouponPatch{UsesMax: ptr(3), Disabled: ptr(true)})
	if err != nil || c.UsesMax != 3 || !c.Disabled || c.Uses != 2 {
		t.Fatalf("patched: %+v %v", c, err)
	}
}

func ptr[T any](v T) *T { return &v }
