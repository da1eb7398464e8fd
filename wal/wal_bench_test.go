package wal

import (
	"bytes"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAppend measures one shard appending entries of 1 or 1,000
// 48-byte records, synced or not, with the process's CPU per append (the
// log writer's goroutine and the fdatasync included). records/s is the figure that matters: the
// engine puts a whole decided batch in one entry.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, records := range []int{1, 1000} {
			b.Run(fmt.Sprintf("sync=%v/records=%d", sync, records), func(b *testing.B) {
				l, err := Open(b.TempDir(), Options{NoSync: !sync, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				entry := [][]byte{bytes.Repeat([]byte("r"), 48*records)}
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := processCPU(b)
				for i := range b.N {
					if err := appendSync(l, 0, uint64(i+1), entry); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*records)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/append")
			})
		}
	}
}

// BenchmarkAppendParallel: several shards append synced entries at once;
// Pebble groups their syncs, so appends/s grows with the shard count.
func BenchmarkAppendParallel(b *testing.B) {
	for _, shards := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			l, err := Open(b.TempDir(), Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			entry := [][]byte{bytes.Repeat([]byte("r"), 48*100)}
			b.ResetTimer()
			var wg sync.WaitGroup
			for s := range shards {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := s; i < b.N; i += shards {
						if err := appendSync(l, s, uint64(i/shards+1), entry); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// BenchmarkReplay reads back a log of 1M records (1,000 entries of 1,000).
func BenchmarkReplay(b *testing.B) {
	l, err := Open(b.TempDir(), Options{NoSync: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	entry := [][]byte{bytes.Repeat([]byte("r"), 48*1000)}
	for i := range 1000 {
		if err := appendSync(l, 0, uint64(i+1), entry); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		n := 0
		if err := l.Replay(0, 0, func(uint64, []byte) error { n++; return nil }); err != nil || n != 1000 {
			b.Fatalf("replayed %d: %v", n, err)
		}
	}
	b.ReportMetric(1e6*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// processCPU is the CPU the process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
