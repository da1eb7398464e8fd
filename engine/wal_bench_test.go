package engine

import (
	"fmt"
	"testing"

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
