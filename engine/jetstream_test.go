package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/onsale/onsale/wal/jetstream"
	"github.com/onsale/onsale/wal/jetstream/jstest"
)

func openJetStreamJournal(tb testing.TB, c *jstest.Cluster, name string) *jetstream.Journal {
	tb.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	j, err := jetstream.Open(context.Background(), jetstream.Options{Conn: nc, Name: name})
	if err != nil {
		tb.Fatal(err)
	}
	return j
}

// TestJetStreamJournalRecovers: an engine on the JetStream journal, with
// snapshots taken mid-way (the streams purged behind them), comes back on a
// second writer with every acknowledged order, and the first writer, now
// fenced, acknowledges nothing more.
func TestJetStreamJournalRecovers(t *testing.T) {
	c := jstest.Start(t, 3, false)
	now := time.Now()
	open := func() (*Engine, chan error) {
		fatal := make(chan error, 1)
		e, err := Open(Config{Journal: openJetStreamJournal(t, c, "rec"), Shards: 2, Logger: quietLogger,
			SnapshotEvents: 50, OnFatal: func(err error) { fatal <- err }})
		if err != nil {
			t.Fatal(err)
		}
		return e, fatal
	}
	first, fatal := open()
	ctx := context.Background()
	for s := range 4 {
		cfg := hotSale(now.UnixMilli(), 1000)
		cfg.ID = fmt.Sprintf("s%d", s)
		if _, _, err := first.PutSale(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				o, _, err := first.Purchase(ctx, PurchaseRequest{SaleID: fmt.Sprintf("s%d", i%4), TierID: "ga", Quantity: 1,
					UserID: "u" + strconv.Itoa(w), IdempotencyKey: strconv.Itoa(i)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[o.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	second, _ := open() // fences every shard of the first
	defer second.Close()
	for id := range acked {
		if _, err := second.Order(ctx, id); err != nil {
			t.Fatalf("acknowledged order %s lost: %v", id, err)
		}
	}
	sold := 0
	for s := range 4 {
		sale, err := second.Sale(ctx, fmt.Sprintf("s%d", s))
		if err != nil {
			t.Fatal(err)
		}
		sold += sale.TierCounts[0].Held + sale.TierCounts[0].Sold
	}
	if sold != len(acked) {
		t.Fatalf("%d tickets held or sold after recovery, %d acknowledged", sold, len(acked))
	}
	_, _, err := first.Purchase(ctx, PurchaseRequest{SaleID: "s0", TierID: "ga", Quantity: 1, UserID: "late", IdempotencyKey: "late"})
	if err == nil {
		t.Fatal("the fenced engine acknowledged a purchase")
	}
	select {
	case <-fatal:
	case <-time.After(30 * time.Second):
		t.Fatal("the fenced engine did not stop")
	}
	first.Close()
}

// BenchmarkPurchaseJetStream is BenchmarkPurchaseWAL on the JetStream
// journal: 3 servers embedded on loopback, an R3 stream, each Append's
// entries acknowledged by a quorum (sync_interval default, and always).
func BenchmarkPurchaseJetStream(b *testing.B) {
	for _, syncAlways := range []bool{false, true} {
		c := jstest.Start(b, 3, syncAlways)
		for _, callers := range []int{16, 64} {
			b.Run(fmt.Sprintf("sync-always=%v/callers=%d", syncAlways, callers), func(b *testing.B) {
				benchmarkPurchase(b, openJetStreamJournal(b, c, fmt.Sprintf("bench%d", callers)), callers)
			})
		}
	}
}
