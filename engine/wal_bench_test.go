package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/onsale/onsale/wal"
)

// BenchmarkPurchaseWAL is BenchmarkPurchase on the Pebble log on disk, with
// fsync (durable, what production runs) and without (to show what the sync
// costs).
func BenchmarkPurchaseWAL(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, callers := range []int{1, 16, 64, 256} {
			b.Run(fmt.Sprintf("sync=%v/callers=%d", sync, callers), func(b *testing.B) {
				log, err := wal.Open(b.TempDir(), wal.Options{NoSync: !sync, Logger: quietLogger})
				if err != nil {
					b.Fatal(err)
				}
				defer log.Close()
				benchmarkPurchase(b, log, callers)
			})
		}
	}
}

// BenchmarkPurchaseWALMinSync compares syncing as soon as anything waits
// with a least interval between syncs, which trades a little latency for
// fewer syncs (each costs CPU) under load.
func BenchmarkPurchaseWALMinSync(b *testing.B) {
	for _, callers := range []int{16, 64} {
		for _, interval := range []time.Duration{0, 250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond} {
			b.Run(fmt.Sprintf("callers=%d/min-sync=%v", callers, interval), func(b *testing.B) {
				log, err := wal.Open(b.TempDir(), wal.Options{Logger: quietLogger, MinSyncInterval: func() time.Duration { return interval }})
				if err != nil {
					b.Fatal(err)
				}
				defer log.Close()
				benchmarkPurchase(b, log, callers)
			})
		}
	}
}
