package engine

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_800_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Ms() int64 { return c.Now().UnixMilli() }

func openTest(t testing.TB, j Journal, clock *fakeClock, shards int) *Engine {
	t.Helper()
	e, err := Open(Config{
		Journal: j, Shards: shards, Now: clock.Now, TickInterval: time.Millisecond,
		OnFatal: func(error) {}, Logger: quietLogger,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func testSale(id string, clock *fakeClock, stock, limit int) SaleConfig {
	return SaleConfig{
		ID: id, Name: "Concert " + id, Currency: "EUR",
		OpensAtMs: clock.Ms() - 1000, ClosesAtMs: clock.Ms() + 3600_000, HoldMs: 600_000,
		PerUserLimit: limit,
		Tiers: []TierConfig{
			{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: stock},
			{ID: "seat", Name: "Seated", PriceCents: 8000, Stock: stock},
		},
	}
}

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Code != code {
		t.Fatalf("got %v, want rejection %s", err, code)
	}
}

func TestEngineSmoke(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	if _, created, err := e.PutSale(ctx, testSale("s1", clock, 3, 4)); err != nil || !created {
		t.Fatalf("PutSale: created %v err %v", created, err)
	}
	o, created, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 2, UserID: "u1", IdempotencyKey: "k1"})
	if err != nil || !created || o.Status != StatusPending || o.AmountCents != 10000 {
		t.Fatalf("Purchase: %+v %v %v", o, created, err)
	}
	o2, created, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 2, UserID: "u1", IdempotencyKey: "k1"})
	if err != nil || created || o2.ID != o.ID {
		t.Fatalf("retry: %+v %v %v", o2, created, err)
	}
	_, _, err = e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 2, UserID: "u2", IdempotencyKey: "k1"})
	wantCode(t, err, CodeSoldOut)
	got, err := e.Order(ctx, o.ID)
	if err != nil || !reflect.DeepEqual(got, o) {
		t.Fatalf("Order: %+v %v, want %+v", got, err, o)
	}
	e.Close()

	e2 := openTest(t, j, clock, 3)
	got, err = e2.Order(ctx, o.ID)
	if err != nil || !reflect.DeepEqual(got, o) {
		t.Fatalf("after reopen with 3 shards: %+v %v, want %+v", got, err, o)
	}
	s, err := e2.Sale(ctx, "s1")
	if err != nil || s.TierCounts[0] != (TierCounts{Held: 2, Sold: 0, Available: 1}) {
		t.Fatalf("Sale: %+v %v", s, err)
	}
}

var quietLogger = slog.New(slog.DiscardHandler)
