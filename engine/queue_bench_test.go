package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func benchJoinID(i int) JoinID {
	var id JoinID
	binary.LittleEndian.PutUint64(id[:], uint64(i)*0x9E3779B97F4A7C15) // spread like the keyed hashes they stand for
	binary.LittleEndian.PutUint64(id[8:], uint64(i))
	return id
}

// BenchmarkQueueMemory reports the heap that a million queued buyers cost
// in a shard's state (joins decided and applied one by one, as the shard
// does), and how long the draw of a million takes (one shard stall, once
// per sale, at its opening).
func BenchmarkQueueMemory(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		st := newState()
		const now = 1_800_000_000_000
		cfg := hotSale(now+60_000, 1000) // opens in a minute: joins wait for the draw
		cfg.Queue = QueueConfig{Mode: QueueShuffleAtOpen, AdmitRatePerSec: 1000, AdmissionTTLMs: 60_000}
		var res result
		evs := st.execute(&command{kind: cmdPutSale, saleID: "hot", sale: &cfg}, now, &res, nil)
		cmd := command{kind: cmdQueueJoin, saleID: "hot", queue: &queueCommand{}}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		for i := range n {
			cmd.queue.id = benchJoinID(i)
			res = result{}
			evs = st.execute(&cmd, now, &res, evs[:0])
			if res.rej != nil {
				b.Fatal(res.rej)
			}
		}
		joins := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/buyer")
		b.ReportMetric(n/joins.Seconds(), "joins-decided/s")
		start = time.Now()
		evs = st.queueTick(now+60_000, evs[:0])
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "draw-ms")
		if !st.sales[0].queue.drawn {
			b.Fatal("no draw")
		}
		runtime.KeepAlive(st)
	}
}

// BenchmarkQueueJoin measures joins through the whole engine, as
// BenchmarkPurchase measures purchases: the same callers, the same
// in-memory journal, so the two compare.
func BenchmarkQueueJoin(b *testing.B) {
	for _, callers := range []int{1, 256} {
		b.Run(fmt.Sprintf("journal=mem/callers=%d", callers), func(b *testing.B) {
			j := &countingJournal{Journal: newMemJournal()}
			e, err := Open(Config{Journal: j, Shards: 1, InboxMax: 4096, Logger: quietLogger, OnFatal: func(err error) { panic(err) }})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background()
			cfg := hotSale(time.Now().UnixMilli(), StockPerTierMax)
			cfg.Queue = QueueConfig{Mode: QueueFIFO, AdmitRatePerSec: 1000, AdmissionTTLMs: 60_000}
			if _, _, err := e.PutSale(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism((callers + 1) / 2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := e.QueueJoin(ctx, "hot", benchJoinID(int(next.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
			b.ReportMetric(float64(b.N)/float64(j.appends.Load()), "joins/append")
		})
	}
}

// BenchmarkQueueExpiryToAdmission measures, on the real clock and the
// default tick (100 ms), the time from a hold's expiry to the published
// admission of the next buyer in line: one ticket, held by the admitted
// buyer with the shortest hold (1 s), then freed by the expiry.
func BenchmarkQueueExpiryToAdmission(b *testing.B) {
	e, err := Open(Config{Journal: newMemJournal(), Shards: 1, Logger: quietLogger, OnFatal: func(err error) { panic(err) }})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	cfg := hotSale(time.Now().UnixMilli(), 1)
	cfg.HoldMs = 1000
	cfg.Queue = QueueConfig{Mode: QueueFIFO, AdmitRatePerSec: 1000, AdmissionTTLMs: 60_000}
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	if _, err := e.QueueJoin(ctx, "hot", benchJoinID(0)); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		id := benchJoinID(i)
		st, err := e.QueuePosition(ctx, "hot", id)
		for deadline := time.Now().Add(5 * time.Second); err == nil && st.State != QueueAdmitted && time.Now().Before(deadline); {
			st, err = e.QueuePosition(ctx, "hot", id)
		}
		if err != nil || st.State != QueueAdmitted {
			b.Fatalf("buyer %d not admitted: %+v %v", i, st, err)
		}
		o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "hot", TierID: "ga", Quantity: 1, UserID: strconv.Itoa(i),
			IdempotencyKey: "k", Admission: &QueueAdmission{JoinID: id, Place: st.Place, Wave: st.Wave}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.QueueJoin(ctx, "hot", benchJoinID(i+1)); err != nil {
			b.Fatal(err)
		}
		// The next buyer is admitted into the ticket once the hold
		// expires: watch the published view (one atomic load), as a
		// waiting page's stream does.
		for deadline := time.Now().Add(5 * time.Second); ; runtime.Gosched() {
			if v, _ := e.SaleView("hot"); v.QueueCounts != nil && v.QueueCounts.Admitted > i+1 {
				lat = append(lat, time.Since(time.UnixMilli(o.ExpiresAtMs)))
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("no admission 5 s after the expiry")
			}
		}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(lat)), "ms-mean")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-max")
}

// BenchmarkDrawOrder measures the draw's algorithm alone on a million
// join ids (what the shard runs at the opening, and the verifier).
func BenchmarkDrawOrder(b *testing.B) {
	ids := make([]JoinID, 1_000_000)
	for i := range ids {
		ids[i] = benchJoinID(i)
	}
	b.ResetTimer()
	for range b.N {
		DrawOrder([32]byte{1}, ids)
	}
}
