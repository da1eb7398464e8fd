package engine

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestWebhooksAreLoggedState(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	w, err := e.CreateWebhook(ctx, Webhook{ID: "wh_a", URL: "http://127.0.0.1:1/x", Events: []string{NotifyOrderPaid}, SecretSealed: []byte("s")})
	if err != nil || w.CreatedAtMs != clock.Ms() {
		t.Fatalf("CreateWebhook: %+v %v", w, err)
	}
	if _, err := e.CreateWebhook(ctx, Webhook{ID: "wh_b", URL: "http://127.0.0.1:1/y", SecretSealed: []byte("t")}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Webhook{
		{ID: "wh_a", URL: "u", SecretSealed: []byte("s")},                                               // taken
		{ID: "", URL: "u", SecretSealed: []byte("s")},                                                   // no id
		{ID: "wh_c", URL: "u"},                                                                          // no secret
		{ID: "wh_c", URL: "u", SecretSealed: []byte("s"), Events: []string{"order.nope"}},               // unknown kind
		{ID: "wh_c", URL: "u", SecretSealed: []byte("s"), Events: []string{"order.paid", "order.paid"}}, // twice
	} {
		_, err := e.CreateWebhook(ctx, bad)
		wantCode(t, err, CodeInvalidRequest)
	}
	_, err = e.DeleteWebhook(ctx, "wh_nope")
	wantCode(t, err, CodeUnknownWebhook)
	if d, err := e.DeleteWebhook(ctx, "wh_b"); err != nil || d.ID != "wh_b" {
		t.Fatalf("DeleteWebhook: %+v %v", d, err)
	}
	e.Close()

	for _, shards := range []int{2, 3} { // replay, then a repartition
		e2 := openTest(t, j, clock, shards)
		got, err := e2.Webhooks(ctx)
		if err != nil || len(got) != 1 || got[0].ID != "wh_a" || !slices.Equal(got[0].Events, []string{NotifyOrderPaid}) || string(got[0].SecretSealed) != "s" {
			t.Fatalf("%d shards: Webhooks after reopen: %+v %v", shards, got, err)
		}
		e2.Close()
	}
}

// recordingTap is an OutboxTap that lets a snapshot's truncation through
// only when the test says so.
type recordingTap struct {
	mu        sync.Mutex
	durable   map[int]uint64
	truncates chan [2]uint64
	release   chan struct{}
}

func (r *recordingTap) Durable(shard int, seq uint64) {
	r.mu.Lock()
	r.durable[shard] = max(r.durable[shard], seq)
	r.mu.Unlock()
}

func (r *recordingTap) BeforeTruncate(shard int, seq uint64) bool {
	r.truncates <- [2]uint64{uint64(shard), seq}
	<-r.release
	return true
}

// TestOutboxTapHoldsTruncation: the snapshot writer asks the outbox before
// the log is deleted, and the log stays until it answers; the entries it
// reads there carry the notifications of every decision.
func TestOutboxTapHoldsTruncation(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	tap := &recordingTap{durable: map[int]uint64{}, truncates: make(chan [2]uint64, 4), release: make(chan struct{})}
	e, err := Open(Config{Journal: j, Shards: 1, Now: clock.Now, TickInterval: time.Millisecond, OnFatal: func(error) {},
		Logger: quietLogger, SnapshotEvents: 5, Outbox: tap})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(tap.release) }) }
	defer release() // before Close: the snapshot writer waits for it
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, testSale("s1", clock, 100, 10)); err != nil {
		t.Fatal(err)
	}
	var orders []Order
	for i := range 4 {
		o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u" + string(rune('a'+i)), IdempotencyKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		orders = append(orders, o)
	}
	var at [2]uint64
	select {
	case at = <-tap.truncates:
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot asked the outbox before truncating")
	}
	tap.mu.Lock()
	durable := tap.durable[0]
	tap.mu.Unlock()
	if at[1] == 0 || durable < at[1] || e.DurableSeq(0) < at[1] {
		t.Fatalf("truncation at %v, durable %d / %d", at, durable, e.DurableSeq(0))
	}
	// Held: every entry is still in the log; read them as the outbox does.
	var kinds []string
	var refs []OrderRef
	err = j.Replay(0, 0, func(seq uint64, entry []byte) error {
		return DecodeNotifications(entry, func(n *Notification) {
			kinds = append(kinds, n.Kind)
			if n.HasOrder {
				refs = append(refs, n.Order)
			}
		})
	})
	if err != nil {
		t.Fatalf("log truncated before the outbox answered: %v", err)
	}
	want := []string{NotifySaleAnnounced, NotifyOrderCreated, NotifyOrderCreated, NotifyOrderCreated, NotifyOrderCreated}
	if !slices.Equal(kinds[:len(want)], want) {
		t.Fatalf("notifications %v, want %v first", kinds, want)
	}
	got, err := e.LookupOrders(ctx, 0, append(refs, OrderRef{9}))
	if err != nil || len(got) != 5 || got[4].ID != "" {
		t.Fatalf("LookupOrders: %+v %v", got, err)
	}
	for i, o := range orders {
		if got[i].ID != o.ID || got[i].UserID != o.UserID {
			t.Fatalf("order %d: %+v, want %+v", i, got[i], o)
		}
	}
	release()
}
