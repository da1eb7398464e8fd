package notify

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
)

// TestPacerCountsTheLastSecond: the window is the last second of synced
// entries; a spell longer than BusyMax is not paced.
func TestPacerCountsTheLastSecond(t *testing.T) {
	p := newPacer(100, 10, 5*time.Second)
	t0 := time.Unix(1_000_000, 0)
	p.decided(60, t0)
	if p.isBusy(t0) {
		t.Fatal("busy at 60 entries, threshold 100")
	}
	p.decided(40, t0.Add(500*time.Millisecond))
	if !p.isBusy(t0.Add(500 * time.Millisecond)) {
		t.Fatal("not busy at 100 entries within a second")
	}
	if p.isBusy(t0.Add(1050 * time.Millisecond)) { // the first 60 left the window
		t.Fatal("still busy once the first 60 entries are more than a second old")
	}
	for i := range 70 { // 100 a second for 7 s: busy for 5 s, then the normal load
		at := t0.Add(2*time.Second + time.Duration(i)*100*time.Millisecond)
		p.decided(10, at)
		p.isBusy(at) // as the reader asks each round
	}
	if p.isBusy(t0.Add(9 * time.Second)) {
		t.Fatal("paced after a 7 s spell, BusyMax 5 s")
	}
	if newPacer(100, 10, time.Minute).isBusy(t0) {
		t.Fatal("an empty window is busy")
	}
}

// TestDeliveryYieldsToBusyEngineThenDrains: while the engine is busy, the
// endpoint gets at most BusyRate deliveries a second and the reader leaves
// the log unread beyond its read-ahead; across a restart in the middle of
// it, and once the rush is over, every notification is delivered, each
// shard's in decide order.
func TestDeliveryYieldsToBusyEngineThenDrains(t *testing.T) {
	dir := t.TempDir()
	rcv := newReceiver(t, "endpoint-secret-0123456789")
	cfg := Config{BusyRate: 20, BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond}
	const snapNever = 1 << 30 // no snapshot: no truncation makes the reader read everything
	nd := startNodeSnap(t, dir, cfg, snapNever)
	nd.n.pace.force.Store(1)
	addEndpoint(t, nd, "wh_p", rcv.srv.URL+"/hook", "endpoint-secret-0123456789", engine.NotifyOrderCreated)
	ctx := context.Background()
	for _, s := range []string{"p1", "p2"} {
		sl := testSale(s)
		sl.PerUserLimit, sl.Tiers[0].Stock = 1000, 10_000
		if _, _, err := nd.eng.PutSale(ctx, sl); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	var wantMu sync.Mutex
	buyMany := func(nd *node, from, count int) {
		const buyers = 8
		var wg sync.WaitGroup
		for b := range buyers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + b; i < from+count; i += buyers {
					o, _, err := nd.eng.Purchase(ctx, engine.PurchaseRequest{SaleID: "p" + strconv.Itoa(i%2+1), TierID: "floor",
						Quantity: 1, UserID: "user:u" + strconv.Itoa(i), IdempotencyKey: "k"})
					if err != nil {
						t.Error(err)
						return
					}
					wantMu.Lock()
					want[o.ID] = true
					wantMu.Unlock()
				}
			}()
		}
		wg.Wait()
	}

	start := time.Now()
	const first = 600
	buyMany(nd, 0, first)
	// The reader has stored at most its read-ahead beyond what was
	// delivered (plus, per shard, one entry's notifications: an entry is
	// read whole), and deliveries kept to the pace: both are what the
	// pacer guarantees, whatever the machine's speed.
	nd.n.mu.Lock()
	read := nd.n.head
	nd.n.mu.Unlock()
	delivered := len(rcv.payloads())
	elapsed := time.Since(start)
	if limit := 1 + int(20*elapsed.Seconds()) + 1; delivered > limit {
		t.Errorf("%d deliveries in %v while busy at 20/s: want at most %d", delivered, elapsed, limit)
	}
	if slack := 2 * (8 + 1); int(read) > readAheadBusy+delivered+slack {
		t.Errorf("the reader stored %d notifications while busy with %d delivered: want at most %d", read, delivered, readAheadBusy+delivered+slack)
	}
	if int(read) < first && nd.n.Lag() == 0 {
		t.Errorf("%d of %d notifications read, yet no lag reported", read, first)
	}
	if !nd.n.pace.busy.Load() {
		t.Error("onsale_webhook_paced is 0 while busy")
	}
	t.Logf("busy: %d delivered, %d read, lag %d after %v", delivered, read, nd.n.Lag(), elapsed)

	// A restart in the middle: what was not delivered is delivered later.
	nd.stop()
	nd = startNodeSnap(t, dir, cfg, snapNever)
	nd.n.pace.force.Store(1)
	buyMany(nd, first, 100)
	nd.n.pace.force.Store(2) // the rush is over

	got := rcv.waitFor(t, "every order.created", func(got []Payload) bool {
		have := map[string]bool{}
		for _, p := range got {
			have[p.Data.OrderID] = true
		}
		return len(have) == len(want)
	})
	for i := 0; nd.n.Lag() != 0 || nd.n.Backlog("wh_p") != 0; i++ {
		if i == 2000 {
			t.Fatalf("lag %d, backlog %d after every delivery", nd.n.Lag(), nd.n.Backlog("wh_p"))
		}
		time.Sleep(5 * time.Millisecond) // the cursors move just after the receiver answered
	}
	seen := map[string]bool{}
	last := map[string][2]uint64{} // per shard: the newest (seq, index) delivered
	for _, p := range got {
		if !want[p.Data.OrderID] {
			t.Errorf("delivered %s, which nobody bought", p.Data.OrderID)
		}
		var shard string
		var seq, idx uint64
		if _, err := fmt.Sscanf(strings.ReplaceAll(p.ID, "_", " "), "evt %s %d %d", &shard, &seq, &idx); err != nil {
			t.Fatalf("event id %q: %v", p.ID, err)
		}
		if seen[p.ID] { // a redelivery after the restart (at least once): only of what came before
			continue
		}
		seen[p.ID] = true
		if l := last[shard]; seq < l[0] || seq == l[0] && idx < l[1] {
			t.Errorf("shard %s: %s delivered after evt_%s_%d_%d", shard, p.ID, shard, l[0], l[1])
		}
		last[shard] = [2]uint64{seq, idx}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct notifications for %d orders", len(seen), len(want))
	}
}
