package engine

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
)

// fillJournal writes n purchases (one ticket each, users cycling over 100k)
// through a real engine into j, so the log holds what production writes.
func fillJournal(tb testing.TB, j Journal, n int, snapshotEvents int) {
	tb.Helper()
	clock := newFakeClock()
	e, err := Open(Config{Journal: j, Shards: 1, Now: clock.Now, Logger: quietLogger, SnapshotEvents: snapshotEvents,
		BatchMax: 4096, InboxMax: 1 << 16, OnFatal: func(err error) { panic(err) }})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	cfg := hotSale(clock.Ms(), n)
	cfg.PerUserLimit = 1_000_000
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		tb.Fatal(err)
	}
	users := benchUserIDs()
	const callers = 512
	errs := make(chan error, callers)
	for c := range callers {
		go func() {
			for i := c; i < n; i += callers {
				if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "hot", TierID: "ga", Quantity: 1,
					UserID: users[i%benchUsers], IdempotencyKey: strconv.Itoa(i)}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			tb.Fatal(err)
		}
	}
	e.Close()
}

// BenchmarkRecovery measures Open on a log of 1M orders: all of it replayed
// from the log, or loaded from a snapshot.
func BenchmarkRecovery(b *testing.B) {
	const orders = 1_000_000
	for _, snap := range []bool{false, true} {
		b.Run(fmt.Sprintf("orders=1M/snapshot=%v", snap), func(b *testing.B) {
			j := newMemJournal()
			snapshotEvents := orders * 10 // never
			if snap {
				snapshotEvents = orders - 10_000 // one snapshot near the end
			}
			fillJournal(b, j, orders, snapshotEvents)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				states, _, err := recoverStates(j, 1, quietLogger)
				if err != nil {
					b.Fatal(err)
				}
				if states[0].orders.n != orders {
					b.Fatalf("recovered %d orders", states[0].orders.n)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/recovery")
		})
	}
}

// BenchmarkMemoryPerOrder reports the heap that one order costs in a shard's
// state, beyond the client's own strings (user id, idempotency key), which
// the benchmark allocates before it measures.
func BenchmarkMemoryPerOrder(b *testing.B) {
	const n = 1_000_000
	users := benchUserIDs()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	for range b.N {
		st := newState()
		const now = 1_800_000_000_000
		cfg := hotSale(now, n)
		cfg.PerUserLimit = 1_000_000
		var res result
		evs := st.execute(&command{kind: cmdPutSale, saleID: "hot", sale: &cfg}, now, &res, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cmd := command{kind: cmdPurchase, saleID: "hot", tierID: "ga", qty: 1}
		for i := range n {
			cmd.userID, cmd.key = users[i%benchUsers], keys[i]
			cmd.newOrder = orderKey{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)}
			res = result{}
			evs = st.execute(&cmd, now, &res, evs[:0])
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/order")
		runtime.KeepAlive(st)
	}
}
