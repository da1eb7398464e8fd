package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestIdempotencyUnderConcurrency sends 100 concurrent purchases with one
// key: one order, every caller gets it; a different body conflicts; another
// user's same key is another order; all of it survives a restart.
func TestIdempotencyUnderConcurrency(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s", clock, 100, 4)); err != nil {
		t.Fatal(err)
	}
	req := PurchaseRequest{SaleID: "s", TierID: "floor", Quantity: 2, UserID: "alice", IdempotencyKey: "same"}
	var wg sync.WaitGroup
	ids := make([]string, 100)
	created := make([]bool, 100)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, c, err := e.Purchase(ctx, req)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], created[i] = o.ID, c
		}()
	}
	wg.Wait()
	n := 0
	for i := range ids {
		if ids[i] != ids[0] {
			t.Fatalf("caller %d got order %s, caller 0 got %s", i, ids[i], ids[0])
		}
		if created[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d callers were told they created the order, want 1", n)
	}
	other := req
	other.Quantity = 1
	var rej *Rejection
	if _, _, err := e.Purchase(ctx, other); !errors.As(err, &rej) || rej.Code != CodeIdempotencyConflict {
		t.Fatalf("different body, same key: %v", err)
	}
	bob := req
	bob.UserID = "bob"
	ob, c, err := e.Purchase(ctx, bob)
	if err != nil || !c || ob.ID == ids[0] {
		t.Fatalf("bob's purchase with alice's key: %+v created=%v err=%v", ob, c, err)
	}
	s, _ := e.Sale(ctx, "s")
	if s.TierCounts[0].Held != 4 {
		t.Fatalf("held %d, want 4 (two orders of 2)", s.TierCounts[0].Held)
	}
	e.Close()
	e2 := openTest(t, j, clock, 3)
	o, c, err := e2.Purchase(ctx, req)
	if err != nil || c || o.ID != ids[0] {
		t.Fatalf("retry after restart: %s created=%v err=%v, want %s", o.ID, c, err, ids[0])
	}
	orders, err := e2.UserOrders(ctx, "alice", "")
	if err != nil || len(orders) != 1 {
		t.Fatalf("alice has %d orders (%v), want 1", len(orders), err)
	}
}
