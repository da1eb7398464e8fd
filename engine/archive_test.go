package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/onsale/onsale/wal"
)

// archiveFixture is an engine on Pebble over an in-memory filesystem, with
// sale "done" (orders in every status, a coupon, check-ins) and sale "live".
type archiveFixture struct {
	t      *testing.T
	fs     *vfs.MemFS
	log    *wal.Log
	e      *Engine
	clock  *fakeClock
	shards int
	orders []string // every order of "done"
	snaps  int      // SnapshotEvents
}

func newArchiveFixture(t *testing.T, shards int) *archiveFixture {
	return newArchiveFixtureSnaps(t, shards, 7)
}

func newArchiveFixtureSnaps(t *testing.T, shards, snaps int) *archiveFixture {
	f := &archiveFixture{t: t, fs: vfs.NewCrashableMem(), clock: newFakeClock(), shards: shards, snaps: snaps}
	f.open()
	ctx := context.Background()
	for _, id := range []string{"done", "live"} {
		if _, _, err := f.e.PutSale(ctx, testSale(id, f.clock, 100, 20)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.e.PutCoupon(ctx, "done", CouponConfig{Code: "TEN", PercentOff: 10, UsesMax: 5}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		req := PurchaseRequest{SaleID: "done", TierID: []string{"floor", "seat"}[i%2], Quantity: 1 + i%3,
			UserID: fmt.Sprint("u", i%5), IdempotencyKey: fmt.Sprint("k", i)}
		if i%4 == 0 {
			req.Coupon = "ten"
		}
		o, _, err := f.e.Purchase(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		f.orders = append(f.orders, o.ID)
		switch i % 4 {
		case 0, 1:
			f.pay(o, "pay-"+o.ID)
		case 2:
			f.pay(o, "pay-"+o.ID)
			if _, err := f.e.Refund(ctx, o.ID, false); err != nil {
				t.Fatal(err)
			}
		case 3:
			if _, err := f.e.Cancel(ctx, o.ID, ""); err != nil {
				t.Fatal(err)
			}
		}
		if i%4 == 1 {
			if _, err := f.e.CheckInTicket(ctx, o.ID+".0", "north"); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

func (f *archiveFixture) open() {
	f.t.Helper()
	log, err := wal.Open("db", wal.Options{FS: f.fs, Logger: quietLogger})
	if err != nil {
		f.t.Fatal(err)
	}
	f.log = log
	f.e, err = Open(Config{Journal: log, Shards: f.shards, Now: f.clock.Now, TickInterval: time.Millisecond,
		OnFatal: func(error) {}, Logger: quietLogger, SnapshotEvents: max(f.snaps, 1)})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *archiveFixture) close() {
	f.e.Close()
	f.log.Close()
}

func (f *archiveFixture) restart() {
	f.close()
	f.open()
}

func (f *archiveFixture) pay(o Order, event string) (Order, PaymentOutcome) {
	f.t.Helper()
	got, outcome, err := f.e.ApplyPayment(context.Background(), Payment{EventID: event, OrderID: o.ID, Succeeded: true,
		AmountCents: o.AmountCents, Currency: o.Currency})
	if err != nil {
		f.t.Fatal(err)
	}
	return got, outcome
}

// reads returns what every read route of the engine answers about sale
// "done", as JSON, with the sale's archived flag and view version left out.
func (f *archiveFixture) reads() map[string]string {
	f.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	put := func(name string, v any, err error) {
		if err != nil {
			f.t.Fatalf("%s: %v", name, err)
		}
		b, _ := json.Marshal(v)
		out[name] = string(b)
	}
	sl, err := f.e.Sale(ctx, "done")
	sl.Archived, sl.Version = false, 0
	put("sale", sl, err)
	for _, id := range f.orders {
		o, err := f.e.Order(ctx, id)
		put("order "+id, o, err)
		tk, err := f.e.Tickets(ctx, id)
		put("tickets "+id, tk, err)
	}
	mine, err := f.e.UserOrders(ctx, "u1", "done")
	put("user orders", mine, err)
	for _, limit := range []int{5, 100} {
		cursor := ""
		for page := 0; page < 10; page++ {
			// Cursors are opaque and number the shard's orders, which an
			// archive or unarchive of a sale renumbers: compare the pages.
			orders, next, err := f.e.SaleOrders(ctx, "done", cursor, limit)
			put(fmt.Sprint("orders ", limit, " ", page), []any{orders, next == ""}, err)
			if cursor = next; cursor == "" {
				break
			}
		}
	}
	rep, err := f.e.SaleReport(ctx, "done")
	put("report", rep, err)
	att, next, err := f.e.SaleAttendees(ctx, "done", "", 100)
	put("attendees", []any{att, next}, err)
	cps, err := f.e.Coupons(ctx, "done")
	put("coupons", cps, err)
	keys, err := f.e.TicketKeys(ctx, "done")
	put("ticket keys", keys, err)
	return out
}

func sameReads(t *testing.T, when string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s: %s differs:\n got %s\nwant %s", when, k, got[k], w)
		}
	}
}

// TestArchiveReadsAsBefore archives a sale and reads it back through every
// read the engine has, live, after a restart and after unarchiving: the
// same answers as before, while the sale is no longer in its shard.
// With snapshots every 7 events and never, so that recovery both restores
// archived sales from a snapshot and replays SaleArchived and
// SaleUnarchived.
func TestArchiveReadsAsBefore(t *testing.T) {
	for _, snaps := range []int{7, 1 << 30} {
		t.Run(fmt.Sprint("snapshot every ", snaps), func(t *testing.T) { testArchiveReadsAsBefore(t, snaps) })
	}
}

func testArchiveReadsAsBefore(t *testing.T, snaps int) {
	f := newArchiveFixtureSnaps(t, 1, snaps)
	defer f.close()
	ctx := context.Background()
	before := f.reads()
	sl, err := f.e.Archive(ctx, "done")
	if err != nil || !sl.Archived || sl.OrderCount != 12 {
		t.Fatalf("Archive: %+v, %v", sl, err)
	}
	if _, again := f.e.Archive(ctx, "done"); again != nil {
		t.Fatalf("archive of an archived sale: %v", again)
	}
	if st := f.e.shards[0].st; len(st.sales) != 1 || st.orders.n != 0 {
		t.Fatalf("shard still holds %d sales, %d orders", len(st.sales), st.orders.n)
	}
	if v, _ := f.e.SaleView("done"); !v.Archived {
		t.Fatal("view not archived")
	}
	sameReads(t, "archived", f.reads(), before)
	_, _, err = f.e.Purchase(ctx, PurchaseRequest{SaleID: "done", TierID: "floor", Quantity: 1, UserID: "x", IdempotencyKey: "x"})
	wantCode(t, err, CodeSaleArchived)
	_, _, err = f.e.PutSale(ctx, testSale("done", f.clock, 5, 5))
	wantCode(t, err, CodeSaleArchived)
	if _, err := f.e.Order(ctx, f.orders[0]+"x"); err == nil {
		t.Fatal("a made-up order id was found")
	}
	f.restart()
	if v, _ := f.e.SaleView("done"); v == nil || !v.Archived {
		t.Fatal("archived view lost by a restart")
	}
	sameReads(t, "archived, restarted", f.reads(), before)
	if _, err := f.e.Unarchive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	sameReads(t, "unarchived", f.reads(), before)
	f.restart()
	sameReads(t, "unarchived, restarted", f.reads(), before)
	// Archived a second time (a new generation), then restarted.
	if _, err := f.e.Archive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	f.restart()
	sameReads(t, "archived twice, restarted", f.reads(), before)
	// Another shard count repartitions the archived sale with the others.
	f.shards = 3
	f.restart()
	sameReads(t, "archived, repartitioned", f.reads(), before)
	if _, err := f.e.Unarchive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	sameReads(t, "repartitioned, unarchived", f.reads(), before)
}

// TestArchiveRefusesPendingOrders: held tickets keep a sale live until
// they are paid, cancelled or expired.
func TestArchiveRefusesPendingOrders(t *testing.T) {
	f := newArchiveFixture(t, 2)
	defer f.close()
	ctx := context.Background()
	o, _, err := f.e.Purchase(ctx, PurchaseRequest{SaleID: "done", TierID: "floor", Quantity: 1, UserID: "p", IdempotencyKey: "p"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.e.Archive(ctx, "done")
	wantCode(t, err, CodePendingOrders)
	_, err = f.e.Archive(ctx, "nope")
	wantCode(t, err, CodeUnknownSale)
	if _, err := f.e.Cancel(ctx, o.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Archive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveLatePayment: a payment for an order of an archived sale that
// had expired brings the sale back and is applied once; the same event
// again, with the sale archived again, changes nothing and is answered
// from disk.
func TestArchiveLatePayment(t *testing.T) {
	f := newArchiveFixture(t, 2)
	defer f.close()
	ctx := context.Background()
	o, _, err := f.e.Purchase(ctx, PurchaseRequest{SaleID: "done", TierID: "floor", Quantity: 2, UserID: "late", IdempotencyKey: "late"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(11 * time.Minute) // past the hold
	f.tick()
	if got, _ := f.e.Order(ctx, o.ID); got.Status != StatusExpired {
		t.Fatalf("order %s, want expired", got.Status)
	}
	if _, err := f.e.Archive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	paid, outcome := f.pay(o, "late-1")
	if outcome != PaymentApplied || paid.Status != StatusPaid {
		t.Fatalf("late payment: %s %v", paid.Status, outcome)
	}
	if v, _ := f.e.SaleView("done"); v.Archived {
		t.Fatal("sale still archived after a payment changed it")
	}
	if _, err := f.e.Archive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	late := f.e.archiveM.lateWrites.Get()
	again, outcome := f.pay(o, "late-1")
	if outcome != PaymentUnchanged || again.Status != StatusPaid || again.PaymentID != "late-1" {
		t.Fatalf("replayed payment: %s %v", again.Status, outcome)
	}
	if v, _ := f.e.SaleView("done"); !v.Archived || f.e.archiveM.lateWrites.Get() != late {
		t.Fatal("a replayed payment event brought the sale back")
	}
	f.restart()
	got, err := f.e.Order(ctx, o.ID)
	if err != nil || got.Status != StatusPaid || got.PaymentID != "late-1" {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	rep, err := f.e.SaleReport(ctx, "done")
	if err != nil {
		t.Fatal(err)
	}
	_ = rep
}

// TestArchiveRefund refunds a paid order of an archived sale: the sale
// comes back, the tickets return to stock, and a restart keeps it.
func TestArchiveRefund(t *testing.T) {
	f := newArchiveFixture(t, 1)
	defer f.close()
	ctx := context.Background()
	if _, err := f.e.Archive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	before, _ := f.e.Sale(ctx, "done")
	id := f.orders[4] // paid, floor, 2 tickets, no check-in
	o, err := f.e.Refund(ctx, id, false)
	if err != nil || o.Status != StatusRefunded {
		t.Fatalf("refund: %+v %v", o, err)
	}
	after, _ := f.e.Sale(ctx, "done")
	if after.Archived || after.TierCounts[0].Sold != before.TierCounts[0].Sold-o.Quantity {
		t.Fatalf("sold %d -> %d after refunding %d", before.TierCounts[0].Sold, after.TierCounts[0].Sold, o.Quantity)
	}
	f.restart()
	if o, err := f.e.Order(ctx, id); err != nil || o.Status != StatusRefunded {
		t.Fatalf("after restart: %+v %v", o, err)
	}
}

func (f *archiveFixture) tick() {
	f.t.Helper()
	for i := range f.e.shards {
		r := &request{cmd: command{kind: cmdTick}, done: make(chan struct{}, 1)}
		if err := f.e.send(f.e.shards[i], r); err != nil {
			f.t.Fatal(err)
		}
		if err := f.e.wait(context.Background(), r); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestArchiveAutomatic: with ArchiveAfter set, a sale is archived by its
// shard's tick once its time has come, and not before.
func TestArchiveAutomatic(t *testing.T) {
	f := newArchiveFixture(t, 2)
	f.close()
	var err error
	f.log, err = wal.Open("db", wal.Options{FS: f.fs, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer f.log.Close()
	f.e, err = Open(Config{Journal: f.log, Shards: 2, Now: f.clock.Now, TickInterval: time.Millisecond,
		OnFatal: func(error) {}, Logger: quietLogger, ArchiveAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer f.e.Close()
	// Both sales close in an hour: due in two hours.
	f.clock.Advance(90 * time.Minute)
	time.Sleep(20 * time.Millisecond) // several ticks: nothing is due (nothing to observe but absence)
	if v, _ := f.e.SaleView("done"); v.Archived {
		t.Fatal("archived before its time")
	}
	f.clock.Advance(31 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ := f.e.SaleView("done")
		l, _ := f.e.SaleView("live")
		if d.Archived && l.Archived {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not archived automatically within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	if f.e.archivedSales.Load() != 2 || f.e.archivedOrders.Load() != 12 {
		t.Fatalf("gauges: %d sales, %d orders", f.e.archivedSales.Load(), f.e.archivedOrders.Load())
	}
}

// TestArchiveCrash takes crash clones of the filesystem (unsynced data
// dropped) while a sale is archived and brought back, and reopens each:
// every clone has the sale either live or archived, whole, never half; and
// one taken after an acknowledged archive has it archived.
func TestArchiveCrash(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 11))
	f := newArchiveFixture(t, 2)
	defer f.close()
	ctx := context.Background()
	want := f.reads()
	var clones []*vfs.MemFS
	var known []int // per clone: 1 archived, 0 live (taken after an acknowledged call), -1 either
	for round := range 6 {
		done := make(chan error, 1)
		go func() {
			var err error
			if round%2 == 0 {
				_, err = f.e.Archive(ctx, "done")
			} else {
				_, err = f.e.Unarchive(ctx, "done")
			}
			done <- err
		}()
		for range 1 + rng.IntN(3) {
			clones = append(clones, f.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rng}))
			known = append(known, -1)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		clones = append(clones, f.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(100), RNG: rng}))
		known = append(known, 1-round%2)
		// Purchases on the other sale between rounds, so entries interleave.
		if _, _, err := f.e.Purchase(ctx, PurchaseRequest{SaleID: "live", TierID: "floor", Quantity: 1,
			UserID: fmt.Sprint("r", round), IdempotencyKey: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, fs := range clones {
		c := &archiveFixture{t: t, fs: fs, clock: f.clock, shards: 2, orders: f.orders, snaps: 7}
		c.open()
		v, err := c.e.SaleView("done")
		if err != nil {
			t.Fatalf("clone %d: %v", i, err)
		}
		sameReads(t, fmt.Sprintf("clone %d (archived %v)", i, v.Archived), c.reads(), want)
		if known[i] >= 0 && v.Archived != (known[i] == 1) {
			t.Fatalf("clone %d (seed %d): archived %v after an acknowledged call that left it %d", i, seed, v.Archived, known[i])
		}
		c.close()
	}
}

// TestArchiveRandomized interleaves purchases and payments on live sales
// with archives and unarchives of others, from several goroutines, then
// restarts: every acknowledged order reads back as it was acknowledged,
// and nothing is oversold.
func TestArchiveRandomized(t *testing.T) {
	seed := testSeed(t)
	f := &archiveFixture{t: t, fs: vfs.NewCrashableMem(), clock: newFakeClock(), shards: 2}
	f.open()
	defer f.close()
	ctx := context.Background()
	sales := []string{"s0", "s1", "s2", "s3"}
	for _, id := range sales {
		if _, _, err := f.e.PutSale(ctx, testSale(id, f.clock, 60, 50)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	acked := map[string]OrderStatus{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := range 60 {
				sale := sales[r.IntN(len(sales))]
				switch x := r.IntN(10); {
				case x < 2:
					if _, err := f.e.Archive(ctx, sale); err != nil && !isCode(err, CodePendingOrders) {
						t.Error(err)
					}
				case x < 3:
					if _, err := f.e.Unarchive(ctx, sale); err != nil {
						t.Error(err)
					}
				default:
					o, _, err := f.e.Purchase(ctx, PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1,
						UserID: fmt.Sprint("g", g), IdempotencyKey: fmt.Sprint(i)})
					if err != nil {
						if !isCode(err, CodeSaleArchived) && !isCode(err, CodeSoldOut) && !isCode(err, CodeLimitExceeded) {
							t.Error(err)
						}
						continue
					}
					got, _, err := f.e.ApplyPayment(ctx, Payment{EventID: "p" + o.ID, OrderID: o.ID, Succeeded: true,
						AmountCents: o.AmountCents, Currency: o.Currency})
					if err != nil {
						t.Error(err)
						continue
					}
					mu.Lock()
					acked[o.ID] = got.Status
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.Fatalf("seed %d", seed)
	}
	check := func(when string) {
		for id, status := range acked {
			o, err := f.e.Order(ctx, id)
			if err != nil || o.Status != status {
				t.Fatalf("%s (seed %d): order %s: %v %v, want %s", when, seed, id, o.Status, err, status)
			}
		}
		for _, id := range sales {
			v, _ := f.e.SaleView(id)
			for i, tc := range v.TierCounts {
				if tc.Sold+tc.Held > v.Tiers[i].Stock {
					t.Fatalf("%s: %s oversold", when, id)
				}
			}
		}
	}
	check("live")
	f.restart()
	check("restarted")
	t.Logf("seed %d: %d orders", seed, len(acked))
}

func isCode(err error, code Code) bool {
	rej, ok := err.(*Rejection)
	return ok && rej.Code == code
}

// archiveGenerations returns the generations of a sale's records on disk,
// with the bytes (keys and values) of each.
func archiveGenerations(t *testing.T, store ArchiveStore, sale string) map[uint32]int {
	t.Helper()
	prefix := archiveSaleKey(sale)
	gens := map[uint32]int{}
	err := store.ArchiveScan(prefix, nil, func(k, v []byte) (bool, error) {
		if len(k) >= len(prefix)+5 { // not the 'g' record
			gens[uint32(k[len(prefix)])<<24|uint32(k[len(prefix)+1])<<16|uint32(k[len(prefix)+2])<<8|uint32(k[len(prefix)+3])] += len(k) + len(v)
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return gens
}

// waitPruned buys on the live sale (each purchase a snapshot of the one
// shard) until only the newest generation of "done" is on disk.
func (f *archiveFixture) waitPruned(newest uint32) {
	f.t.Helper()
	for i := 0; ; i++ {
		gens := archiveGenerations(f.t, f.log, "done")
		if len(gens) == 1 && gens[newest] > 0 {
			return
		}
		if i == 500 {
			f.t.Fatalf("generations %v on disk after %d snapshots' worth of purchases; want only %d", gens, i, newest)
		}
		if _, _, err := f.e.Purchase(context.Background(), PurchaseRequest{SaleID: "live", TierID: "floor", Quantity: 1,
			UserID: fmt.Sprint("p", i%50), IdempotencyKey: fmt.Sprint("prune", i, newest)}); err != nil {
			f.t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the snapshot writer runs beside the shard; the purchases are the observation loop
	}
}

// TestArchiveOldGenerationsDeleted: a sale archived three times keeps only
// its newest generation once a snapshot holds it; a crash between that
// snapshot and the deletion leaves both readable, and the restarted
// shard deletes the old ones after its next snapshot; reads, a restart
// and bringing the sale back are unchanged throughout.
func TestArchiveOldGenerationsDeleted(t *testing.T) {
	f := newArchiveFixtureSnaps(t, 1, 1)
	open := true
	defer func() {
		if open {
			f.close()
		}
	}()
	ctx := context.Background()
	want := f.reads()
	for round := range 4 { // archive (1), back, archive (2), back
		var err error
		if round%2 == 0 {
			_, err = f.e.Archive(ctx, "done")
		} else {
			_, err = f.e.Unarchive(ctx, "done")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	gens := archiveGenerations(t, f.log, "done")
	if gens[2] == 0 {
		t.Fatalf("generations on disk %v, want 2 (and 1 until a snapshot deletes it)", gens)
	}
	f.waitPruned(2)
	sameReads(t, "pruned, live", f.reads(), want)

	// A crash between the snapshot that holds generation 3 and the
	// deletion of 2.
	var clone *vfs.MemFS
	var once sync.Once
	var cloned atomic.Bool
	hook := func(sale string, newest uint32) bool {
		if newest != 3 {
			return true
		}
		once.Do(func() { clone = f.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0}); cloned.Store(true) })
		return false
	}
	pruneArchiveHook.Store(&hook)
	defer pruneArchiveHook.Store(nil)
	if _, err := f.e.Archive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	for i := 0; !cloned.Load(); i++ {
		if i == 500 {
			t.Fatal("no snapshot held generation 3")
		}
		if _, _, err := f.e.Purchase(ctx, PurchaseRequest{SaleID: "live", TierID: "floor", Quantity: 1,
			UserID: fmt.Sprint("c", i%50), IdempotencyKey: fmt.Sprint("crash", i)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	pruneArchiveHook.Store(nil)
	f.close()
	open = false

	c := &archiveFixture{t: t, fs: clone, clock: f.clock, shards: 1, orders: f.orders, snaps: 1}
	c.open()
	defer c.close()
	if gens := archiveGenerations(t, c.log, "done"); gens[2] == 0 || gens[3] == 0 {
		t.Fatalf("after the crash: generations %v, want 2 and 3", gens)
	}
	sameReads(t, "crashed before deleting", c.reads(), want)
	gens = archiveGenerations(t, c.log, "done")
	c.waitPruned(3)
	t.Logf("generation 2 of %d orders: %d bytes returned", len(c.orders), gens[2])
	sameReads(t, "pruned after the crash, archived", c.reads(), want)
	c.restart()
	sameReads(t, "restarted", c.reads(), want)
	if _, err := c.e.Unarchive(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	sameReads(t, "brought back", c.reads(), want)
}
