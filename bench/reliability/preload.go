package reliability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
)

// Preload's sale: one tier, one ticket per order, pending for the longest
// hold the engine allows, so that every preloaded order stays held.
const (
	preloadSaleID   = "preload"
	preloadTierID   = "general"
	preloadBuyers   = 512 // concurrent callers: the shards batch what they send
	preloadPerUser  = 64
	preloadOrderMax = engine.StockPerTierMax
)

// Preload fills the log in dataDir with n pending orders of one sale
// (preloadSaleID), by opening the wal and the engine on the directory the
// way main.go does (same path, same shard count) and calling Purchase from
// many goroutines; the shards batch them into few synced log writes, which
// is faster than HTTP and writes exactly the records the server writes. No
// server may run on dataDir meanwhile (Pebble's lock refuses it).
func Preload(dataDir string, n, shards int, logger *slog.Logger) error {
	if n < 1 || n > preloadOrderMax {
		return fmt.Errorf("reliability: preload wants 1 to %d orders, not %d", preloadOrderMax, n)
	}
	// A failed append comes back as an error from Purchase.
	eng, log, err := openEngine(dataDir, shards, logger, func(error) {})
	if err != nil {
		return err
	}
	err = preloadOrders(eng, n)
	eng.Close()
	if cerr := log.Close(); err == nil {
		err = cerr
	}
	return err
}

func preloadOrders(eng *engine.Engine, n int) error {
	ctx := context.Background()
	now := time.Now()
	_, created, err := eng.PutSale(ctx, engine.SaleConfig{
		ID: preloadSaleID, Name: "Preloaded orders", Currency: "EUR",
		OpensAtMs: now.Add(-time.Minute).UnixMilli(), ClosesAtMs: now.Add(365 * 24 * time.Hour).UnixMilli(),
		HoldMs: engine.HoldMsMax, PerUserLimit: preloadPerUser,
		Tiers: []engine.TierConfig{{ID: preloadTierID, Name: "General", PriceCents: 1000, Stock: n}},
	})
	if err != nil {
		return fmt.Errorf("cannot create the preload sale: %w", err)
	}
	if !created {
		return errors.New("reliability: the data directory already has a preload sale")
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, preloadBuyers)
	for range preloadBuyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := preloadOne(ctx, eng, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}

// preloadOne buys order i, retrying while the shard's inbox is full.
func preloadOne(ctx context.Context, eng *engine.Engine, i int64) error {
	req := engine.PurchaseRequest{SaleID: preloadSaleID, TierID: preloadTierID, Quantity: 1,
		UserID: fmt.Sprintf("p%d", i/preloadPerUser), IdempotencyKey: fmt.Sprintf("k%d", i)}
	const attemptsMax = 1000
	for range attemptsMax {
		_, created, err := eng.Purchase(ctx, req)
		switch {
		case errors.Is(err, engine.ErrOverloaded):
			continue // the inbox is full: the shards are busy writing, try again
		case err != nil:
			return fmt.Errorf("preload order %d: %w", i, err)
		case !created:
			return fmt.Errorf("reliability: preload order %d already existed", i)
		}
		return nil
	}
	return fmt.Errorf("reliability: preload order %d overloaded %d times", i, attemptsMax)
}

// openEngine opens the wal and the engine on a data directory the way
// main.go does: the log in <dataDir>/wal, the engine on it.
func openEngine(dataDir string, shards int, logger *slog.Logger, onFatal func(error)) (*engine.Engine, *wal.Log, error) {
	log, err := wal.Open(filepath.Join(dataDir, "wal"), wal.Options{Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	eng, err := engine.Open(engine.Config{Journal: log, Shards: shards, Logger: logger, OnFatal: onFatal})
	if err != nil {
		log.Close()
		return nil, nil, err
	}
	return eng, log, nil
}
