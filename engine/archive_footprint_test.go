//go:build archivebench

package engine

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/wal"
)

// The footprint of archived sales, not in CI (minutes, gigabytes):
//
//	go test -tags archivebench -run TestArchiveFootprint -timeout 60m -v ./engine
//
// It builds data directories in bulk (states written as snapshots and
// archive records directly, not purchase by purchase), then restarts a
// fresh process on each (this test binary, re-run as a child) and reports
// the time from opening the log to the engine being ready, and the
// process's resident memory after a collection:
//
//	live           one live sale of -footprint-live orders
//	live+archive   the same, beside -footprint-archived-sales archived sales of
//	               -footprint-archived-orders orders each (10 x 1M: 10M orders)
//	1M live        one live sale of 1M orders (recovery before archiving it)
//	1M archived    that sale archived (recovery after)
var (
	footprintLive     = flag.Int("footprint-live", 200_000, "orders of the live sale")
	footprintSales    = flag.Int("footprint-archived-sales", 10, "archived sales")
	footprintArchived = flag.Int("footprint-archived-orders", 1_000_000, "orders per archived sale")
	footprintRuns     = flag.Int("footprint-runs", 3, "restarts per data directory (the median is reported)")
)

func TestArchiveFootprint(t *testing.T) {
	if os.Getenv("ONSALE_FOOTPRINT_DIR") != "" {
		footprintChild(t, os.Getenv("ONSALE_FOOTPRINT_DIR"))
		return
	}
	root := t.TempDir()
	cases := []struct {
		name                    string
		live, archived, perSale int
	}{
		{"live", *footprintLive, 0, 0},
		{"live+archive", *footprintLive, *footprintSales, *footprintArchived},
		{"1M live", 1_000_000, 0, 0},
		{"1M archived", 0, 1, 1_000_000},
	}
	for i, c := range cases {
		dir := filepath.Join(root, strconv.Itoa(i))
		start := time.Now()
		buildFootprintDir(t, dir, c.live, c.archived, c.perSale)
		t.Logf("%s: built in %s", c.name, time.Since(start).Round(time.Second))
		var restarts []time.Duration
		var rss, heap []float64
		for range *footprintRuns {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestArchiveFootprint$", "-test.v")
			cmd.Env = append(os.Environ(), "ONSALE_FOOTPRINT_DIR="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: child: %v\n%s", c.name, err, out)
			}
			line := ""
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				if s, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "FOOTPRINT "); ok {
					line = s
				}
			}
			var ms, r, h float64
			if _, err := fmt.Sscanf(line, "%g %g %g", &ms, &r, &h); err != nil {
				t.Fatalf("%s: child said %q: %v", c.name, out, err)
			}
			restarts = append(restarts, time.Duration(ms*float64(time.Millisecond)))
			rss, heap = append(rss, r), append(heap, h)
		}
		t.Logf("RESULT %-13s live orders %8d  archived %2d x %8d  restart-to-ready %8s  RSS %6.1f MiB  heap %6.1f MiB  (median of %d)",
			c.name, c.live, c.archived, c.perSale, median(restarts).Round(time.Millisecond),
			medianF(rss), medianF(heap), len(restarts))
		os.RemoveAll(dir)
	}
}

// footprintChild opens the directory as main would and reports.
func footprintChild(t *testing.T, dir string) {
	start := time.Now()
	log, err := wal.Open(dir, wal.Options{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(Config{Journal: log, Shards: 1, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	// An archived order reads from disk without loading its sale.
	if v, _ := e.SaleView("archived-0"); v != nil {
		orders, _, err := e.SaleOrders(context.Background(), "archived-0", "", 1)
		if err != nil || len(orders) != 1 {
			t.Fatalf("archived order: %v", err)
		}
		if _, err := e.Order(context.Background(), orders[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("FOOTPRINT %.1f %.1f %.1f\n", float64(ready)/float64(time.Millisecond), rssMiB(t), float64(ms.HeapInuse)/(1<<20))
	e.Close()
	log.Close()
}

func rssMiB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// buildFootprintDir writes one shard's state: a live sale of live orders
// (as a snapshot) and archived sales (as archive records, with the shard's
// snapshot naming them).
func buildFootprintDir(t *testing.T, dir string, live, archived, perSale int) {
	log, err := wal.Open(dir, wal.Options{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	st := newState()
	if live > 0 {
		bulkSale(st, "live", live)
	}
	for i := range archived {
		one := newState()
		id := fmt.Sprint("archived-", i)
		bulkSale(one, id, perSale)
		keys, values := archiveRecords(one, 1)
		for len(keys) > 0 {
			n := min(len(keys), 100_000)
			if _, err := log.AppendArchive(0, 1, nil, keys[:n], values[:n]); err != nil {
				t.Fatal(err)
			}
			keys, values = keys[n:], values[n:]
		}
		view := publishedView(one.sales[0])
		view.Archived = true
		st.archived[id] = &archivedSale{id: id, gen: 1, view: view}
	}
	if err := log.Reset([][][]byte{st.snapshotEncoding()}); err != nil {
		t.Fatal(err)
	}
	// Opened once more, Pebble writes its WAL out as tables, as a server
	// that ran for a while would have: the child measures a restart, not
	// the replay of the bulk load's Pebble WAL.
	log.Close()
	if log, err = wal.Open(dir, wal.Options{Logger: quietLogger}); err != nil {
		t.Fatal(err)
	}
	log.Close()
}

// bulkSale adds a sale of n paid orders, 1 to 4 tickets each, by n/4 users.
func bulkSale(st *state, id string, n int) {
	cfg := SaleConfig{ID: id, Name: "Sale " + id, Currency: "EUR", OpensAtMs: 1, ClosesAtMs: 2, HoldMs: 60_000,
		PerUserLimit: 1 << 20, Tiers: []TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 4 * n}}}
	st.insertSale(cfg, false)
	si := int32(len(st.sales) - 1)
	for i := range n {
		var k orderKey
		for b := range 8 {
			k[b] = byte(uint64(i) >> (8 * b))
		}
		copy(k[8:], id)
		qty := uint16(1 + i%4)
		st.insertOrder(order{key: k, userID: "user-" + strconv.Itoa(i/4), idemKey: "k" + strconv.Itoa(i),
			paymentID: "pay-" + strconv.Itoa(i), amount: 5000 * int64(qty), createdAt: 1_800_000_000_000 + int64(i),
			expiresAt: 1_800_000_600_000 + int64(i), updatedAt: 1_800_000_000_000 + int64(i),
			sale: si, tier: 0, qty: qty, status: StatusPaid})
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func medianF(fs []float64) float64 {
	s := append([]float64(nil), fs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
