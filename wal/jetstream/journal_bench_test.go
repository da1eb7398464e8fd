package jetstream

import (
	"fmt"
	"testing"

	"github.com/onsale/onsale/wal/jetstream/jstest"
)

// BenchmarkReplay measures what a takeover costs per log entry: a new
// writer opens (fences) a shard whose stream holds 100k entries of 200
// bytes and replays them all. b.N counts entries replayed.
func BenchmarkReplay(b *testing.B) {
	c := jstest.Start(b, 3, false)
	const entries, batch = 100_000, 1000
	w, err := Open(b.Context(), Options{Conn: connect(b, c), Name: "replay"})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 200)
	var waits []func() error
	for i := 0; i < entries; i += batch {
		es := make([][]byte, batch)
		for k := range es {
			es[k] = body
		}
		wait, err := w.Append(0, uint64(i+1), es)
		if err != nil {
			b.Fatal(err)
		}
		waits = append(waits, wait)
	}
	for _, wait := range waits {
		if err := wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	replayed := 0
	for b.Loop() {
		r, err := Open(b.Context(), Options{Conn: connect(b, c), Name: "replay"})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := r.Replay(0, 0, func(uint64, []byte) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != entries {
			b.Fatal(fmt.Sprintf("replayed %d of %d", n, entries))
		}
		replayed += n
	}
	b.ReportMetric(float64(replayed)/b.Elapsed().Seconds(), "entries/s")
}
