package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
)

// BenchmarkPurchaseOutbox measures purchases through the engine on the
// Pebble log on disk, with no outbox, with the notifier reading every
// entry but nobody to deliver to, and with one endpoint (a loopback
// receiver) that takes every notification. The difference is what
// notifications cost the purchase path.
func BenchmarkPurchaseOutbox(b *testing.B) {
	for _, mode := range []string{"none", "notifier", "endpoint", "endpoint-down"} {
		b.Run("outbox="+mode, func(b *testing.B) { benchmarkPurchaseOutbox(b, mode) })
	}
}

func benchmarkPurchaseOutbox(b *testing.B, mode string) {
	log, err := wal.Open(b.TempDir(), wal.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	var n *Notifier
	cfg := engine.Config{Journal: log, Shards: 2, InboxMax: 4096, Logger: quiet, OnFatal: func(err error) { panic(err) }}
	if mode != "none" {
		n = New(Config{DataKey: testDataKey, Logger: quiet})
		cfg.Outbox = n
	}
	eng, err := engine.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	var delivered atomic.Int64
	if n != nil {
		if err := n.Start(log, eng); err != nil {
			b.Fatal(err)
		}
		defer n.Close()
	}
	if strings.HasPrefix(mode, "endpoint") { // endpoint-down: a receiver that answers 503, retried after backoff
		down := mode == "endpoint-down"
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			if down {
				w.WriteHeader(503)
				return
			}
			delivered.Add(1)
		}))
		defer srv.Close()
		_, err := eng.CreateWebhook(context.Background(), engine.Webhook{ID: "wh_b", URL: srv.URL, SecretSealed: n.SealSecret("wh_b", []byte("s"))})
		if err != nil {
			b.Fatal(err)
		}
		for n.Backlog("wh_b") < 0 {
			time.Sleep(time.Millisecond)
		}
	}
	ctx := context.Background()
	sale := testSale("hot")
	sale.PerUserLimit = 1000
	sale.Tiers[0].Stock = engine.StockPerTierMax
	if _, _, err := eng.PutSale(ctx, sale); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(128)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			_, _, err := eng.Purchase(ctx, engine.PurchaseRequest{SaleID: "hot", TierID: "floor", Quantity: 1,
				UserID: "user:u" + strconv.FormatInt(i%10000, 10), IdempotencyKey: strconv.FormatInt(i, 10)})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
	b.StopTimer()
	if mode == "endpoint" {
		b.ReportMetric(float64(delivered.Load())/float64(b.N), "delivered/purchase")
	}
}
