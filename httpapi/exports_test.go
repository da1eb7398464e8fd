package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/onsale/onsale/engine"
)

// TestExportStreamsInBoundedMemory exports a sale of 1M orders (20k with
// -short or -race) over a real listener, reads the body as a stream and
// counts its lines, and samples the live heap (after a GC, every 100k
// lines): it must stay within a few pages of the heap before the export,
// far below the export's size, which only holds if the server streams
// page by page instead of building the body.
func TestExportStreamsInBoundedMemory(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 20_000
	}
	// No snapshot during the test: encoding one holds the whole state in
	// memory for a moment, which is the snapshot writer's cost, not the
	// export's, and would make the bound below depend on timing.
	e := startEnv(t, envOptions{shards: 1, inboxMax: 1 << 16, snapshotEvents: 1 << 30})
	e.putSale("s1", n, n)
	fillOrders(t, e.eng, "s1", n)

	for _, c := range []struct {
		path      string
		wantLines int
	}{
		{"/v1/admin/sales/s1/orders.csv", n + 1},
		{"/v1/admin/sales/s1/attendees.csv", n/10 + 1}, // every tenth order is paid
	} {
		t.Run(c.path, func(t *testing.T) {
			lines, size, growth, allocs := e.streamExport(t, c.path)
			t.Logf("%s: %d lines, %.1f MB; live heap grew at most %.1f MB; %.0f bytes allocated per line",
				c.path, lines, float64(size)/1e6, float64(growth)/1e6, float64(allocs)/float64(lines))
			if lines != c.wantLines {
				t.Fatalf("%d lines, want %d", lines, c.wantLines)
			}
			// A third of the 146 MB export: a server that built the body
			// would fail it by far; the engine's and Go's own background
			// allocations (seen up to 18 MB on the shared machine) would not.
			const growthMax = 48 << 20
			if growth > growthMax {
				t.Fatalf("live heap grew by %d bytes during the export (bound %d)", growth, growthMax)
			}
		})
	}
}

// streamExport reads an export, counting lines; every 100k lines it
// collects garbage and reads the live heap. It returns the lines, the
// bytes, the largest growth of the live heap over the one before the
// export, and the bytes allocated meanwhile (client's and server's).
func (e *testEnv) streamExport(t *testing.T, path string) (lines int, size, growth int64, allocs uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, allocBase := int64(ms.HeapAlloc), ms.TotalAlloc
	sample := func() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		growth = max(growth, int64(ms.HeapAlloc)-base)
	}
	req, err := http.NewRequest("GET", e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	client := &http.Client{} // no timeout: the export takes as long as it takes
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("status %d, %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	buf := make([]byte, 64<<10)
	for {
		k, err := res.Body.Read(buf)
		size += int64(k)
		for _, c := range buf[:k] {
			if c == '\n' {
				lines++
				if lines%100_000 == 0 {
					sample()
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d lines: %v", lines, err)
		}
	}
	sample()
	runtime.ReadMemStats(&ms)
	return lines, size, growth, ms.TotalAlloc - allocBase
}

// fillOrders places n one-ticket orders in a sale straight through the
// engine (users cycling over 1,000), paying every tenth.
func fillOrders(t *testing.T, eng *engine.Engine, sale string, n int) {
	t.Helper()
	ctx := context.Background()
	const callers = 256
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := c; i < n; i += callers {
				key := strconv.Itoa(i)
				o, _, err := eng.Purchase(ctx, engine.PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1,
					UserID: "u" + strconv.Itoa(i%1000), IdempotencyKey: key})
				if err == nil && i%10 == 0 {
					_, _, err = eng.ApplyPayment(ctx, engine.Payment{EventID: "p" + key, OrderID: o.ID, Succeeded: true,
						AmountCents: o.AmountCents, Currency: o.Currency})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
