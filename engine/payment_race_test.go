package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestPaymentRaces sends the payment provider's worst: every success event
// delivered one to three times at once, failures before, after and during
// the success, buyers cancelling at the same time, and the clock jumping to
// the very instant the holds end while all of it is in flight. Each round
// buys more than the stock so that late payments compete for released
// tickets. Afterwards, and again after a restart from the log:
//   - an acknowledged success is never lost: the order is paid (with
//     needs_refund when no ticket was left for it), and every answer to
//     that event said the same;
//   - a success is never refused, however late;
//   - an order without an acknowledged success is not paid;
//   - every tier's counts equal the recount of its orders (an event moved
//     each order at most once) and never exceed the stock.
func TestPaymentRaces(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 5))
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	const buyers, stock = 8, 4
	rounds := max(25, *randomOps/200) // -ops 50000: 250 rounds

	type outcome struct {
		mu        sync.Mutex
		successes []Order // every acknowledged answer to the success event
		sent      bool    // a success event was sent
	}
	outcomes := map[string]*outcome{}
	var sales []string
	for round := range rounds {
		sale := fmt.Sprint("race", round)
		sales = append(sales, sale)
		if _, _, err := e.PutSale(ctx, testSale(sale, clock, stock, 4)); err != nil {
			t.Fatal(err)
		}
		var orders []Order
		for b := range buyers {
			o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1,
				UserID: fmt.Sprint("u", b), IdempotencyKey: "k"})
			if err == nil {
				orders = append(orders, o)
			}
		}
		// Free one ticket so that a late payment can find it.
		if _, err := e.Cancel(ctx, orders[0].ID, orders[0].UserID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, o := range orders {
			out := &outcome{}
			outcomes[o.ID] = out
			plan := rng.IntN(6)
			if round == 0 && o.ID == orders[0].ID {
				plan = 5 // left alone: at least one order ends cancelled, whatever the draws
			}
			dups := 1 + rng.IntN(3)
			success := Payment{EventID: "s-" + o.ID, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"}
			failure := Payment{EventID: "f-" + o.ID, OrderID: o.ID, AmountCents: o.AmountCents, Currency: "EUR"}
			pay := func() {
				out.mu.Lock()
				out.sent = true
				out.mu.Unlock()
				var inner sync.WaitGroup
				for range dups {
					inner.Go(func() {
						got, _, err := e.ApplyPayment(ctx, success)
						if err != nil {
							t.Errorf("seed %d: success for %s refused: %v", seed, o.ID, err)
							return
						}
						out.mu.Lock()
						out.successes = append(out.successes, got)
						out.mu.Unlock()
					})
				}
				inner.Wait()
			}
			fail := func() { e.ApplyPayment(ctx, failure) }
			cancel := func() { e.Cancel(ctx, o.ID, o.UserID) }
			switch plan {
			case 0: // success, then failure
				wg.Go(func() { pay(); fail() })
			case 1: // failure, then success (out of order)
				wg.Go(func() { fail(); pay() })
			case 2: // both at once
				wg.Go(pay)
				wg.Go(fail)
			case 3: // the buyer cancels while the money arrives
				wg.Go(pay)
				wg.Go(cancel)
			case 4: // success only
				wg.Go(pay)
			default: // nothing: the hold expires
			}
		}
		// The holds end while the events are in flight, and other buyers
		// snap up what the expiry releases, before the late payments.
		wg.Go(func() { clock.Advance(600 * time.Second) })
		wg.Go(func() {
			for i := range 2 * stock {
				e.Purchase(ctx, PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1,
					UserID: fmt.Sprint("late", i), IdempotencyKey: "k"})
			}
		})
		wg.Wait()
	}
	// End every hold (the last round's late buyers too); wait for the ticks
	// to release them.
	clock.Advance(601 * time.Second)
	for i := 0; e.HoldsOutstanding() > 0; i++ {
		if i == 5000 {
			t.Fatalf("seed %d: %d holds still outstanding", seed, e.HoldsOutstanding())
		}
		time.Sleep(time.Millisecond) // bounded poll of an observable count
	}
	if t.Failed() {
		return
	}

	check := func(e *Engine, when string) map[string]int {
		t.Helper()
		ends := map[string]int{}
		for id, out := range outcomes {
			o, err := e.Order(ctx, id)
			if err != nil {
				t.Fatalf("seed %d %s: order %s: %v", seed, when, id, err)
			}
			end := o.Status.String()
			if o.NeedsRefund {
				end += "+needs_refund"
			}
			ends[end]++
			if len(out.successes) > 0 {
				if o.Status != StatusPaid {
					t.Fatalf("seed %d %s: order %s is %s although its payment was acknowledged", seed, when, id, o.Status)
				}
				for _, a := range out.successes {
					if a.Status != StatusPaid || a.NeedsRefund != o.NeedsRefund {
						t.Fatalf("seed %d %s: order %s: an answer said %s needs_refund=%v, the order is %s needs_refund=%v",
							seed, when, id, a.Status, a.NeedsRefund, o.Status, o.NeedsRefund)
					}
				}
			} else if o.Status == StatusPaid {
				t.Fatalf("seed %d %s: order %s is paid without an acknowledged success", seed, when, id)
			}
			if o.Status == StatusPending {
				t.Fatalf("seed %d %s: order %s still pending after its hold", seed, when, id)
			}
		}
		for _, sale := range sales {
			s, err := e.Sale(ctx, sale)
			if err != nil {
				t.Fatal(err)
			}
			orders, _, err := e.SaleOrders(ctx, sale, "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			sold := 0
			for _, o := range orders {
				if o.TierID == "floor" && o.Status == StatusPaid && !o.NeedsRefund {
					sold += o.Quantity
				}
			}
			c, stock := s.TierCounts[0], s.Tiers[0].Stock
			if c.Sold != sold || c.Held != 0 || c.Sold+c.Held+c.Available != stock {
				t.Fatalf("seed %d %s: sale %s floor: sold %d held %d available %d stock %d, orders say sold %d",
					seed, when, sale, c.Sold, c.Held, c.Available, stock, sold)
			}
		}
		return ends
	}
	ends := check(e, "live")
	t.Logf("orders ended as %v", ends)
	for _, end := range []string{"paid", "paid+needs_refund", "cancelled", "expired"} {
		if ends[end] == 0 {
			t.Errorf("seed %d: no order ended %s; the races did not reach that case", seed, end)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	check(openTest(t, j, clock, 3), "after restart")
}
