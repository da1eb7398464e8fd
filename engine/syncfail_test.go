package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/onsale/onsale/wal"
)

// TestSyncFailureIsNeverAcknowledged injects an fsync error into Pebble's
// WAL while buyers purchase. Pebble reports it to the waiting Append (or,
// for other commit errors, through its logger's Fatalf, where the test's
// hook stops the goroutine as os.Exit would stop the process); the engine
// calls its own fatal hook and stops acknowledging. Every purchase answered 2xx must then be in what was synced,
// and nothing may be answered after the fault.
func TestSyncFailureIsNeverAcknowledged(t *testing.T) {
	mem := vfs.NewCrashableMem()
	var failing atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && (op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return errorfs.ErrInjected
		}
		return nil
	})
	var fatal atomic.Int32
	log, err := wal.Open("db", wal.Options{FS: errorfs.Wrap(mem, inj), Logger: quietLogger,
		OnFatal: func(string) { fatal.Add(1); runtime.Goexit() }})
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	e, err := Open(Config{Journal: log, Shards: 2, Now: clock.Now, Logger: quietLogger, OnFatal: func(error) { fatal.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, id := range []string{"a", "b"} {
		if _, _, err := e.PutSale(ctx, testSale(id, clock, 10_000, 10_000)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var acked []string
	var afterFault int
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 && i == 50 {
					failing.Store(true)
				}
				faulty := failing.Load()
				o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: []string{"a", "b"}[i%2], TierID: "floor", Quantity: 1,
					UserID: fmt.Sprint("u", g), IdempotencyKey: fmt.Sprint(i)})
				if err == nil {
					mu.Lock()
					acked = append(acked, o.ID)
					if faulty && fatal.Load() > 0 {
						afterFault++
					}
					mu.Unlock()
				} else if !errors.Is(err, ErrStopped) {
					t.Errorf("purchase: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if fatal.Load() == 0 {
		t.Fatal("the injected sync error never reached the fatal hook")
	}
	if afterFault > 0 {
		t.Fatalf("%d purchases acknowledged after the fatal sync error", afterFault)
	}
	// Power loss now: only what was synced survives.
	clone := mem.CrashClone(vfs.CrashCloneCfg{})
	log2, err := wal.Open("db", wal.Options{FS: clone, Logger: quietLogger})
	if err != nil {
		t.Fatalf("reopen after the fault: %v", err)
	}
	defer log2.Close()
	e2, err := Open(Config{Journal: log2, Shards: 2, Now: clock.Now, Logger: quietLogger, OnFatal: func(error) {}})
	if err != nil {
		t.Fatalf("recovery after the fault: %v", err)
	}
	defer e2.Close()
	for _, id := range acked {
		if _, err := e2.Order(ctx, id); err != nil {
			t.Fatalf("acknowledged order %s lost: %v", id, err)
		}
	}
	t.Logf("%d purchases acknowledged before the fault, all recovered", len(acked))
}
