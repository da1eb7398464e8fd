package engine

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

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

// BenchmarkPurchaseWALGather compares gathering (gather.go) off and on,
// with the log's fsyncs counted and timed under Pebble (syncCountingFS):
// purchases per fsync is what gathering is for.
func BenchmarkPurchaseWALGather(b *testing.B) {
	for _, callers := range []int{16, 64} {
		for _, gather := range []time.Duration{-1, time.Millisecond} {
			name := "off"
			if gather > 0 {
				name = gather.String()
			}
			b.Run(fmt.Sprintf("callers=%d/gather=%s", callers, name), func(b *testing.B) {
				fs := &syncCountingFS{FS: vfs.Default}
				log, err := wal.Open(b.TempDir(), wal.Options{Logger: quietLogger, FS: fs})
				if err != nil {
					b.Fatal(err)
				}
				defer log.Close()
				syncs0, ns0 := fs.syncs.Load(), fs.ns.Load()
				benchmarkPurchaseGather(b, log, callers, gather)
				syncs, ns := fs.syncs.Load()-syncs0, fs.ns.Load()-ns0
				b.ReportMetric(float64(b.N)/float64(syncs), "purchases/fsync")
				b.ReportMetric(float64(ns)/float64(syncs)/1e3, "µs/fsync")
			})
		}
	}
}

// syncCountingFS counts and times the data syncs of Pebble's log files.
type syncCountingFS struct {
	vfs.FS
	syncs, ns atomic.Int64
}

type syncCountingFile struct {
	vfs.File
	fs *syncCountingFS
}

func (f syncCountingFile) SyncData() error {
	start := time.Now()
	err := f.File.SyncData()
	f.fs.syncs.Add(1)
	f.fs.ns.Add(int64(time.Since(start)))
	return err
}

func (fs *syncCountingFS) wrap(f vfs.File, err error, name string) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return syncCountingFile{f, fs}, nil
}

func (fs *syncCountingFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(f, err, name)
}

func (fs *syncCountingFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(f, err, newname)
}
