package engine

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/onsale/onsale/wal"
)

// fillJournal writes n purchases (one ticket each, users cycling over 100k)
// through a real engine of the given shard count into j, so the log holds
// what production writes. With several shards the purchases are spread over
// one hot sale per shard.
func fillJournal(tb testing.TB, j Journal, shards, n int, snapshotEvents int) {
	tb.Helper()
	clock := newFakeClock()
	e, err := Open(Config{Journal: j, Shards: shards, Now: clock.Now, Logger: quietLogger, SnapshotEvents: snapshotEvents,
		BatchMax: 4096, InboxMax: 1 << 16, OnFatal: func(err error) { panic(err) }})
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	sales := saleIDsPerShard(shards)
	for _, id := range sales {
		cfg := hotSale(clock.Ms(), n)
		cfg.ID = id
		cfg.PerUserLimit = 1_000_000
		if _, _, err := e.PutSale(ctx, cfg); err != nil {
			tb.Fatal(err)
		}
	}
	users := benchUserIDs()
	const callers = 512
	errs := make(chan error, callers)
	for c := range callers {
		go func() {
			for i := c; i < n; i += callers {
				if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: sales[i%len(sales)], TierID: "ga", Quantity: 1,
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

// saleIDsPerShard returns one sale id per shard, each owned by its shard;
// the first is "hot".
func saleIDsPerShard(shards int) []string {
	ids := make([]string, shards)
	ids[shardIndex("hot", shards)] = "hot"
	for i := 0; ; i++ {
		id := "hot-" + strconv.Itoa(i)
		if s := shardIndex(id, shards); ids[s] == "" {
			ids[s] = id
		}
		if !slices.Contains(ids, "") {
			return ids
		}
	}
}

// BenchmarkRecovery measures recovery of a log of 1M orders: all of it
// replayed from the log, or loaded from a snapshot (10k orders replayed
// after it), on one shard or spread over two. cpu-s/recovery is the CPU time
// of the whole process (every goroutine, the GC's included) and does not
// grow when other processes share the machine, as s/recovery does.
func BenchmarkRecovery(b *testing.B) {
	const orders = 1_000_000
	for _, shards := range []int{1, 2} {
		for _, snap := range []bool{false, true} {
			name := fmt.Sprintf("orders=1M/snapshot=%v", snap)
			if shards > 1 {
				name += fmt.Sprintf("/shards=%d", shards)
			}
			b.Run(name, func(b *testing.B) {
				j := newMemJournal()
				fillJournal(b, j, shards, orders, recoverySnapshotEvents(orders, shards, snap))
				benchmarkRecovery(b, orders, shards, func() (Journal, func()) { return j, func() {} })
			})
		}
	}
}

// BenchmarkRecoveryWAL is BenchmarkRecovery on the Pebble log on disk, as
// production recovers: each round opens the log (Pebble replays its own WAL
// into the memtable), recovers and closes it. The files are in the page
// cache after the fill, so this is Pebble's CPU, not the disk's speed.
func BenchmarkRecoveryWAL(b *testing.B) {
	const orders = 1_000_000
	for _, snap := range []bool{false, true} {
		b.Run(fmt.Sprintf("orders=1M/snapshot=%v", snap), func(b *testing.B) {
			dir := b.TempDir()
			log, err := wal.Open(dir, wal.Options{NoSync: true, Logger: quietLogger})
			if err != nil {
				b.Fatal(err)
			}
			fillJournal(b, log, 1, orders, recoverySnapshotEvents(orders, 1, snap))
			if err := log.Close(); err != nil {
				b.Fatal(err)
			}
			benchmarkRecovery(b, orders, 1, func() (Journal, func()) {
				log, err := wal.Open(dir, wal.Options{Logger: quietLogger})
				if err != nil {
					b.Fatal(err)
				}
				return log, func() { log.Close() }
			})
		})
	}
}

// recoverySnapshotEvents makes each shard take one snapshot near the end of
// the fill, or none.
func recoverySnapshotEvents(orders, shards int, snap bool) int {
	if !snap {
		return orders * 10
	}
	return orders/shards - 10_000
}

// benchmarkRecovery times recoverStates alone (not opening or closing the
// log) and reports the heap that the recovered states keep per order, their
// strings included. best-s and best-cpu-s are the fastest round: on a shared
// machine, run with -benchtime 5x and compare those. open-s is the time to
// open the log before recovery, untimed (Pebble replays its own WAL).
func benchmarkRecovery(b *testing.B, orders, shards int, open func() (Journal, func())) {
	b.ReportAllocs()
	b.ResetTimer()
	var wall, cpu, openWall time.Duration
	bestWall, bestCPU := time.Duration(1<<63-1), time.Duration(1<<63-1)
	var heap uint64
	for range b.N {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		opened := time.Now()
		j, done := open()
		openWall += time.Since(opened)
		b.StartTimer()
		start, startCPU := time.Now(), cpuTime()
		states, _, err := recoverStates(j, shards, quietLogger)
		w, c := time.Since(start), cpuTime()-startCPU
		wall, cpu, bestWall, bestCPU = wall+w, cpu+c, min(bestWall, w), min(bestCPU, c)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		done()
		n := 0
		for _, st := range states {
			n += int(st.orders.n)
		}
		if n != orders {
			b.Fatalf("recovered %d orders", n)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(states)
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/recovery")
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/recovery")
	b.ReportMetric(float64(heap)/float64(orders), "heap-B/order")
	b.ReportMetric(bestWall.Seconds(), "best-s/recovery")
	b.ReportMetric(bestCPU.Seconds(), "best-cpu-s/recovery")
	if openWall > time.Millisecond {
		b.ReportMetric(openWall.Seconds()/float64(b.N), "open-s/op")
	}
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// BenchmarkSnapshotEncode measures the snapshot writer's work for a shard of
// 1M orders (freeze is microseconds; encode runs beside the shard).
func BenchmarkSnapshotEncode(b *testing.B) {
	const n = 1_000_000
	st := newState()
	const now = 1_800_000_000_000
	cfg := hotSale(now, n)
	cfg.PerUserLimit = 1_000_000
	var res result
	evs := st.execute(&command{kind: cmdPutSale, saleID: "hot", sale: &cfg}, now, &res, nil)
	users := benchUserIDs()
	cmd := command{kind: cmdPurchase, saleID: "hot", tierID: "ga", qty: 1}
	for i := range n {
		cmd.userID, cmd.key = users[i%benchUsers], strconv.Itoa(i)
		cmd.newOrder = orderKey{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)}
		res = result{}
		evs = st.execute(&cmd, now, &res, evs[:0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for range b.N {
		size = 0
		for _, c := range st.freeze(1).encode() {
			size += len(c)
		}
	}
	b.ReportMetric(float64(size)/n, "B/order")
}
