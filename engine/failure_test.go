package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAppendFailureStopsAcknowledging fails the journal in the middle of a
// concurrent load: every request acknowledged must be in the journal, every
// later request must be refused, and OnFatal must run once.
func TestAppendFailureStopsAcknowledging(t *testing.T) {
	for _, failAt := range []int{0, 1, 5, 40} {
		t.Run(fmt.Sprint("failAt=", failAt), func(t *testing.T) {
			clock := newFakeClock()
			j := newMemJournal()
			var fatals atomic.Int32
			e, err := Open(Config{Journal: j, Shards: 2, Now: clock.Now, Logger: quietLogger,
				OnFatal: func(error) { fatals.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background()
			for _, id := range []string{"a", "b", "c"} {
				if _, _, err := e.PutSale(ctx, testSale(id, clock, 1000, 1000)); err != nil {
					t.Fatal(err)
				}
			}
			j.mu.Lock()
			j.failAfter = j.appends + failAt
			j.mu.Unlock()

			var mu sync.Mutex
			var acked []string
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 100 {
						o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: []string{"a", "b", "c"}[i%3], TierID: "floor",
							Quantity: 1, UserID: fmt.Sprint("u", g), IdempotencyKey: fmt.Sprint(i)})
						switch {
						case err == nil:
							mu.Lock()
							acked = append(acked, o.ID)
							mu.Unlock()
						case errors.Is(err, ErrStopped):
						default:
							t.Errorf("unexpected error %v", err)
						}
					}
				}()
			}
			wg.Wait()
			if n := fatals.Load(); n != 1 {
				t.Fatalf("OnFatal ran %d times, want 1", n)
			}
			if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "a", TierID: "floor", Quantity: 1, UserID: "late", IdempotencyKey: "x"}); !errors.Is(err, ErrStopped) {
				t.Fatalf("purchase after failure: %v, want ErrStopped", err)
			}
			e.Close()
			j.mu.Lock()
			j.failAfter = -1
			j.mu.Unlock()
			e2, err := Open(Config{Journal: j, Shards: 3, Now: clock.Now, Logger: quietLogger, OnFatal: func(error) {}})
			if err != nil {
				t.Fatal(err)
			}
			defer e2.Close()
			for _, id := range acked {
				if _, err := e2.Order(ctx, id); err != nil {
					t.Fatalf("acknowledged order %s lost: %v", id, err)
				}
			}
			t.Logf("%d purchases acknowledged before the failure", len(acked))
		})
	}
}

// TestSnapshotUnderLoad takes snapshots every few events while purchases go
// on, restarts, and compares the state with what callers were told.
func TestSnapshotUnderLoad(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e, err := Open(Config{Journal: j, Shards: 2, Now: clock.Now, Logger: quietLogger, SnapshotEvents: 50, OnFatal: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s", clock, 5000, 5000)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]OrderStatus{}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s", TierID: "floor", Quantity: 1, UserID: fmt.Sprint("u", g), IdempotencyKey: fmt.Sprint(i)})
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if o, err = e.Cancel(ctx, o.ID, ""); err != nil {
						t.Error(err)
						return
					}
				}
				mu.Lock()
				want[o.ID] = o.Status
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	e.Close()
	j.mu.Lock()
	snaps := len(j.snaps)
	remaining := len(j.entries[0]) + len(j.entries[1])
	j.mu.Unlock()
	if snaps == 0 {
		t.Fatal("no snapshot was taken")
	}
	t.Logf("%d log entries left after snapshots", remaining)
	e2 := openTest(t, j, clock, 2)
	orders, err := e2.allOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != len(want) {
		t.Fatalf("%d orders after restart, want %d", len(orders), len(want))
	}
	for _, o := range orders {
		if want[o.ID] != o.Status {
			t.Fatalf("order %s: %s after restart, want %s", o.ID, o.Status, want[o.ID])
		}
	}
}
