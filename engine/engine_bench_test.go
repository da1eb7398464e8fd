package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchUsers is the crowd of one hot sale.
const benchUsers = 100_000

func benchUserIDs() []string {
	ids := make([]string, benchUsers)
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
	}
	return ids
}

func hotSale(now int64, stock int) SaleConfig {
	return SaleConfig{
		ID: "hot", Name: "Hot", Currency: "EUR", OpensAtMs: now - 1, ClosesAtMs: now + 3600_000,
		HoldMs: 600_000, PerUserLimit: 1_000_000,
		Tiers: []TierConfig{{ID: "ga", Name: "General admission", PriceCents: 4500, Stock: stock}},
	}
}

// BenchmarkStateMachine measures the pure decide+apply of purchases on one
// hot sale: 100k users each buy one of 100k tickets; when it sells out, the
// next round starts on a fresh state (timer stopped). No goroutines, no log.
func BenchmarkStateMachine(b *testing.B) {
	st := newState()
	const now = 1_800_000_000_000
	cfg := hotSale(now, benchUsers)
	var res result
	evs := st.execute(&command{kind: cmdPutSale, saleID: "hot", sale: &cfg}, now, &res, nil)
	users := benchUserIDs()
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	cmd := command{kind: cmdPurchase, saleID: "hot", tierID: "ga", qty: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if st.orders.n == benchUsers {
			b.StopTimer()
			st = newState()
			evs = st.execute(&command{kind: cmdPutSale, saleID: "hot", sale: &cfg}, now, &res, evs[:0])
			b.StartTimer()
		}
		cmd.userID = users[i%benchUsers]
		cmd.key = keys[(i/benchUsers)%len(keys)]
		cmd.newOrder[0], cmd.newOrder[1], cmd.newOrder[2], cmd.newOrder[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		cmd.newOrder[4] = byte(i >> 32)
		res = result{}
		evs = st.execute(&cmd, now, &res, evs[:0])
		if res.rej != nil {
			b.Fatal(res.rej)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkPurchase measures purchases through the whole engine (inbox,
// shard loop, committer) with callers waiting at once, on the in-memory
// journal. The wal benchmarks (bench_wal_test.go) add the disk.
func BenchmarkPurchase(b *testing.B) {
	for _, callers := range []int{1, 256} {
		b.Run(fmt.Sprintf("journal=mem/callers=%d", callers), func(b *testing.B) {
			benchmarkPurchase(b, newMemJournal(), callers)
		})
	}
}

// countingJournal counts appends, to report purchases per sync.
type countingJournal struct {
	Journal
	appends atomic.Int64
}

func (c *countingJournal) Append(shard int, firstSeq uint64, entries [][]byte) (func() error, error) {
	c.appends.Add(1)
	return c.Journal.Append(shard, firstSeq, entries)
}

func benchmarkPurchase(b *testing.B, journal Journal, callers int) {
	benchmarkPurchaseGather(b, journal, callers, 0)
}

// benchmarkPurchaseGather is benchmarkPurchase with Config.SyncGatherMax
// set (0: the default; negative: off).
func benchmarkPurchaseGather(b *testing.B, journal Journal, callers int, gather time.Duration) {
	j := &countingJournal{Journal: journal}
	now := time.Now()
	e, err := Open(Config{Journal: j, Shards: 1, InboxMax: 4096, Logger: quietLogger, OnFatal: func(err error) { panic(err) },
		SyncGatherMax: gather})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, hotSale(now.UnixMilli(), StockPerTierMax)); err != nil {
		b.Fatal(err)
	}
	users := benchUserIDs()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism((callers + 1) / 2)
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			_, _, err := e.Purchase(ctx, PurchaseRequest{
				SaleID: "hot", TierID: "ga", Quantity: 1,
				UserID: users[i%benchUsers], IdempotencyKey: strconv.FormatInt(i, 10),
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
	b.ReportMetric(float64(b.N)/float64(j.appends.Load()), "purchases/append")
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/purchase")
}

// processCPU is the CPU time (user and system) the process has used: the
// cost of a purchase on a shared machine, where wall time also counts the
// neighbours.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
