package engine

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/onsale/onsale/wal"
)

var crashPoints = flag.Int("crashes", 20, "crash points per TestCrashUnderLoad run")

// statusRank orders statuses along the lifecycle: a crash may keep more than
// was acknowledged, never less.
var statusRank = map[OrderStatus]int{StatusPending: 0, StatusCancelled: 1, StatusExpired: 1, StatusPaid: 2, StatusRefunded: 3}

// TestCrashUnderLoad runs the engine on Pebble over a crashable in-memory
// filesystem, takes crash clones (dropping a random share of unsynced data)
// while buyers purchase, pay, cancel and get refunds and holds expire, and reopens each clone: nothing
// acknowledged is lost or rolled back, nothing is oversold, no order appears
// that nobody asked for, and reopening never fails.
func TestCrashUnderLoad(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	fs := vfs.NewCrashableMem()
	log, err := wal.Open("db", wal.Options{FS: fs, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	clock := newFakeClock()
	e, err := Open(Config{Journal: log, Shards: 2, Now: clock.Now, Logger: quietLogger, SnapshotEvents: 50,
		TickInterval: time.Millisecond, OnFatal: func(error) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	sales := []string{"a", "b", "c"}
	for _, id := range sales {
		if _, _, err := e.PutSale(ctx, testSale(id, clock, 40, 2)); err != nil {
			t.Fatal(err)
		}
	}
	type ack struct {
		status OrderStatus
		key    string
	}
	var mu sync.Mutex
	acked := map[string]ack{}  // order id → last acknowledged status
	asked := map[string]bool{} // "sale/user/key" of every purchase sent
	stop := make(chan struct{})
	// The crash loop hands out operations a few dozen at a time, so that the
	// log grows at the same pace per crash point however fast the machine.
	ops := make(chan struct{}, 1<<16)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(100+g)))
			var mine []string
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-ops:
				}
				// New buyers keep arriving, so that purchases go on succeeding
				// for the whole run (the crash loop keeps adding stock).
				sale, user, key := sales[r.IntN(3)], fmt.Sprint("u", g, "-", i/8+r.IntN(30)), fmt.Sprint(i)
				switch x := r.IntN(10); {
				case x < 6 || len(mine) == 0:
					mu.Lock()
					asked[sale+"/"+user+"/"+key] = true
					mu.Unlock()
					o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1, UserID: user, IdempotencyKey: key})
					if err == nil {
						mine = append(mine, o.ID)
						mu.Lock()
						acked[o.ID] = ack{o.Status, o.SaleID + "/" + o.UserID + "/" + o.IdempotencyKey}
						mu.Unlock()
					}
				case x < 8:
					id := mine[r.IntN(len(mine))]
					o, err := e.Order(ctx, id)
					if err != nil {
						continue
					}
					if o, _, err = e.ApplyPayment(ctx, Payment{EventID: fmt.Sprint("e", g, i), OrderID: id, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"}); err == nil {
						mu.Lock()
						acked[id] = ack{o.Status, acked[id].key}
						mu.Unlock()
					}
				case x < 9:
					id := mine[r.IntN(len(mine))]
					if o, err := e.Refund(ctx, id, true); err == nil {
						mu.Lock()
						acked[id] = ack{o.Status, acked[id].key}
						mu.Unlock()
					}
				default:
					id := mine[r.IntN(len(mine))]
					if o, err := e.Cancel(ctx, id, ""); err == nil {
						mu.Lock()
						acked[id] = ack{o.Status, acked[id].key}
						mu.Unlock()
					}
				}
			}
		}()
	}
	for crash := range *crashPoints {
		clock.Advance(time.Duration(rng.IntN(60)) * time.Second) // holds of 600 s expire as the run goes on
		for _, id := range sales {                               // more stock, as a promoter releases seats
			if _, _, err := e.PutSale(ctx, testSale(id, clock, 40+4*crash, 2)); err != nil {
				t.Fatal(err)
			}
		}
		for range 1 + rng.IntN(60) {
			ops <- struct{}{}
		}
		for range 1 + rng.IntN(50) { // let some of that work happen before the crash
			if _, err := e.Sale(ctx, sales[0]); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		before := make(map[string]ack, len(acked))
		for id, a := range acked {
			before[id] = a
		}
		mu.Unlock()
		clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(rng.Uint64(), 8))})
		log2, err := wal.Open("db", wal.Options{FS: clone, Logger: quietLogger})
		if err != nil {
			t.Fatalf("crash %d: wal reopen: %v", crash, err)
		}
		e2, err := Open(Config{Journal: log2, Shards: 1 + rng.IntN(3), Now: clock.Now, Logger: quietLogger, OnFatal: func(error) {}})
		if err != nil {
			t.Fatalf("crash %d: engine reopen: %v", crash, err)
		}
		orders, err := e2.allOrders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Order{}
		for _, o := range orders {
			got[o.ID] = o
			mu.Lock()
			ok := asked[o.SaleID+"/"+o.UserID+"/"+o.IdempotencyKey]
			mu.Unlock()
			if !ok {
				t.Fatalf("crash %d: order %s that nobody asked for", crash, o.ID)
			}
		}
		for id, a := range before {
			o, ok := got[id]
			if !ok {
				t.Fatalf("crash %d: acknowledged order %s lost", crash, id)
			}
			if statusRank[o.Status] < statusRank[a.status] || statusRank[o.Status] == statusRank[a.status] && o.Status != a.status {
				t.Fatalf("crash %d: order %s is %s after the crash, acknowledged %s", crash, id, o.Status, a.status)
			}
		}
		for _, id := range sales {
			s, err := e2.Sale(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if c := s.TierCounts[0]; c.Held+c.Sold > s.Tiers[0].Stock {
				t.Fatalf("crash %d: sale %s oversold: %+v", crash, id, c)
			}
		}
		e2.Close()
		log2.Close()
		if (crash+1)%250 == 0 || testing.Verbose() && crash+1 == *crashPoints {
			t.Logf("%d crash points: %d acknowledged orders, none lost", crash+1, len(before))
		}
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	counts := map[OrderStatus]int{}
	for _, a := range acked {
		counts[a.status]++
	}
	t.Logf("%d crash points, %d orders acknowledged, last acknowledged statuses %v", *crashPoints, len(acked), counts)
	mu.Unlock()
}
