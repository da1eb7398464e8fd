package engine

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// gatedJournal is a memJournal whose syncs can be held: while gate is set,
// each wait function blocks until the gate is closed.
type gatedJournal struct {
	*memJournal
	mu       sync.Mutex
	gate     chan struct{}
	appended chan struct{} // one value per Append made while gated
}

func (j *gatedJournal) Append(shard int, firstSeq uint64, entries [][]byte) (func() error, error) {
	wait, err := j.memJournal.Append(shard, firstSeq, entries)
	j.mu.Lock()
	gate := j.gate
	j.mu.Unlock()
	if err != nil || gate == nil {
		return wait, err
	}
	j.appended <- struct{}{}
	return func() error { <-gate; return wait() }, nil
}

// TestSaleViewShowsOnlyDurableState: a purchase decided but not yet synced
// is not visible to readers; once the buyer is answered, every reader sees
// it.
func TestSaleViewShowsOnlyDurableState(t *testing.T) {
	clock := newFakeClock()
	j := &gatedJournal{memJournal: newMemJournal(), appended: make(chan struct{}, 16)}
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	if _, err := e.SaleView("s1"); err == nil {
		t.Fatal("a sale that does not exist has a view")
	}
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 5, 4)); err != nil {
		t.Fatal(err)
	}
	before, err := e.SaleView("s1")
	if err != nil || before.TierCounts[0].Held != 0 || before.TierCounts[0].Available != 5 {
		t.Fatalf("view after PutSale: %+v %v", before, err)
	}

	gate := make(chan struct{})
	j.mu.Lock()
	j.gate = gate
	j.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 2, UserID: "u", IdempotencyKey: "k"})
		done <- err
	}()
	<-j.appended // decided, applied in memory, in the log, not synced
	if v, _ := e.SaleView("s1"); v != before || v.TierCounts[0].Held != 0 {
		t.Fatalf("a purchase not yet durable is visible: %+v", v.TierCounts)
	}
	j.mu.Lock()
	j.gate = nil
	j.mu.Unlock()
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after, _ := e.SaleView("s1")
	if c := after.TierCounts[0]; c.Held != 2 || c.Available != 3 || after.OrderCount != 1 {
		t.Fatalf("answered purchase not visible: %+v", after)
	}
	if before.TierCounts[0].Held != 0 {
		t.Fatal("a published view was modified")
	}
}

// TestSaleViewsAfterRecovery: views of every recovered sale are published
// at Open, repartitioned or not.
func TestSaleViewsAfterRecovery(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := e.PutSale(ctx, testSale(id, clock, 5, 4)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "b", TierID: "seat", Quantity: 1, UserID: "u", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	for _, shards := range []int{2, 3} {
		e = openTest(t, j, clock, shards)
		sales, _ := e.Sales(ctx)
		if len(sales) != 3 || sales[1].ID != "b" || sales[1].TierCounts[1].Held != 1 {
			t.Fatalf("%d shards: %+v", shards, sales)
		}
		e.Close()
	}
}

// TestAwaitingSyncCountsWhatWaitsForTheLog: requests decided while a sync
// is held are counted until they are answered.
func TestAwaitingSyncCountsWhatWaitsForTheLog(t *testing.T) {
	clock := newFakeClock()
	j := &gatedJournal{memJournal: newMemJournal(), appended: make(chan struct{}, 64)}
	e := openTest(t, j, clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 50, 50)); err != nil {
		t.Fatal(err)
	}
	if n := e.AwaitingSync(); n != 0 {
		t.Fatalf("idle engine: %d awaiting", n)
	}
	gate := make(chan struct{})
	j.mu.Lock()
	j.gate = gate
	j.mu.Unlock()
	const buyers = 5
	done := make(chan error, buyers)
	for i := range buyers {
		go func() {
			_, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1,
				UserID: "u", IdempotencyKey: string(rune('a' + i))})
			done <- err
		}()
	}
	for spins := 0; e.AwaitingSync() != buyers; spins++ { // observed, not slept on
		if spins > 10_000_000 {
			t.Fatalf("%d awaiting, want %d", e.AwaitingSync(), buyers)
		}
		runtime.Gosched()
	}
	j.mu.Lock()
	j.gate = nil
	j.mu.Unlock()
	close(gate)
	for range buyers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := e.AwaitingSync(); n != 0 {
		t.Fatalf("after the answers: %d awaiting", n)
	}
}

// TestViewMemoBelongsToItsView: every published view has its own memo,
// empty when published, so a value derived from an older view is never
// found on a newer one; copies have none. A view of more tiers than fit
// in viewWithFewTiers has one too.
func TestViewMemoBelongsToItsView(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 10, 10)); err != nil {
		t.Fatal(err)
	}
	v1, _ := e.SaleView("s1")
	if v1.Memo() == nil || v1.Memo().Load() != nil {
		t.Fatalf("a new view's memo: %v", v1.Memo())
	}
	v1.Memo().Store("derived from v1")
	if again, _ := e.SaleView("s1"); again.Memo().Load() != "derived from v1" {
		t.Fatal("the same view's memo lost its value")
	}
	if c, _ := e.Sale(ctx, "s1"); c.Memo() != nil {
		t.Fatal("a copy of a view has a memo")
	}
	if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	v2, _ := e.SaleView("s1")
	if v2 == v1 || v2.Memo() == nil || v2.Memo() == v1.Memo() || v2.Memo().Load() != nil {
		t.Fatalf("the purchase's view shares or inherits a memo: %v", v2.Memo().Load())
	}

	many := testSale("s2", clock, 10, 10)
	for len(many.Tiers) <= len(viewWithFewTiers{}.counts) {
		tier := many.Tiers[0]
		tier.ID = fmt.Sprintf("t%d", len(many.Tiers))
		many.Tiers = append(many.Tiers, tier)
	}
	if _, _, err := e.PutSale(ctx, many); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.SaleView("s2"); v.Memo() == nil || len(v.TierCounts) != len(many.Tiers) {
		t.Fatalf("a view of %d tiers: memo %v", len(many.Tiers), v.Memo())
	}
}
