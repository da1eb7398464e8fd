package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/onsale/onsale/wal"
)

// TestRecoveryCountsTheTailOnWAL: on the Pebble log, recovery counts the
// orders the log places after the snapshot (tailCount, which sizes byKey
// and the order table's prefill for them) and recovers the same state as
// without the count: every index, whatever the snapshot's place.
func TestRecoveryCountsTheTailOnWAL(t *testing.T) {
	seed := testSeed(t)
	live, log := randomLog(rand.New(rand.NewPCG(seed, 11)), 4000, false)
	live.dropStaleHolds()
	want := dumpFull(live)
	for _, snapAt := range []int{0, len(log) / 3, len(log)} {
		t.Run(fmt.Sprintf("snapshot=%d", snapAt), func(t *testing.T) {
			j, err := wal.Open(t.TempDir(), wal.Options{Logger: quietLogger, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if err := j.Reset([][][]byte{newState().snapshotEncoding()}); err != nil {
				t.Fatal(err)
			}
			wait, err := j.Append(0, 1, log)
			if err != nil {
				t.Fatal(err)
			}
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			placed := 0
			st := newState()
			for i, e := range log {
				if err := decodeEntry(e, func(ev *event) error {
					if i >= snapAt && ev.kind == evOrderPlaced {
						placed++
					}
					if i < snapAt {
						return st.apply(ev)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if snapAt > 0 {
				if err := j.SaveSnapshot(0, uint64(snapAt), st.snapshotEncoding()); err != nil {
					t.Fatal(err)
				}
			}
			if got := countTail(j, 0).wait(); got != placed {
				t.Fatalf("seed %d: counted %d orders after the snapshot, want %d", seed, got, placed)
			}
			wantRecovered(t, j, len(log), want)
		})
	}
}

// TestPrefillStops: a prefill announced for far more orders than come (a
// corrupt snapshot's claim) allocates a bounded window ahead, and stop ends
// it; the orders added meanwhile, fed from it or not, are in the table as
// without it.
func TestPrefillStops(t *testing.T) {
	var tb orderTable
	p := startPrefill(&tb, 1<<31)
	const n = 3*chunkLen + 5
	for i := range n {
		p.feed(&tb)
		tb.add(order{sale: int32(i), qty: 1})
	}
	p.stop()
	tb.add(order{sale: n, qty: 1})
	if tb.n != n+1 {
		t.Fatalf("%d orders, want %d", tb.n, n+1)
	}
	for i := range int32(n + 1) {
		if o := tb.at(i); o.sale != i || o.qty != 1 {
			t.Fatalf("order %d is %+v", i, o)
		}
	}
	if len(tb.chunks) != n/chunkLen+1 {
		t.Fatalf("%d chunks for %d orders", len(tb.chunks), n+1)
	}
	// A prefill whose goroutine made every chunk asked for, which feed then
	// found closed, stops too.
	var small orderTable
	p = startPrefill(&small, 2*chunkLen)
	added := int32(0)
	for range 4 * chunkLen {
		p.feed(&small)
		small.add(order{sale: added, qty: 1})
		added++
		if p.spare == nil {
			break
		}
	}
	p.stop()
	for i := range added {
		if o := small.at(i); o.sale != i {
			t.Fatalf("small table: order %d is %+v", i, o)
		}
	}
	if small.n != added {
		t.Fatalf("small table: %d orders, want %d", small.n, added)
	}
	var nilPrefill *chunkPrefill
	nilPrefill.feed(&tb)
	nilPrefill.stop()
}
