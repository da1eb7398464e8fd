package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func queuedSale(id string, clock *fakeClock, stock int, mode QueueMode, rate int) SaleConfig {
	cfg := testSale(id, clock, stock, 10)
	cfg.Queue = QueueConfig{Mode: mode, AdmitRatePerSec: rate, AdmissionTTLMs: 60_000}
	return cfg
}

// openQueueTest opens an engine whose own ticker stays quiet: the tests
// tick when they mean to.
func openQueueTest(t testing.TB, clock *fakeClock, shards int) *Engine {
	t.Helper()
	e, err := Open(Config{Journal: newMemJournal(), Shards: shards, Now: clock.Now, TickInterval: time.Hour,
		OnFatal: func(error) {}, Logger: quietLogger})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func joinID(user string) JoinID {
	h := sha256.Sum256([]byte(user))
	return JoinID(h[:16])
}

func mustJoin(t testing.TB, e *Engine, sale, user string) QueueStatus {
	t.Helper()
	s, err := e.QueueJoin(context.Background(), sale, joinID(user))
	if err != nil {
		t.Fatalf("join %s: %v", user, err)
	}
	return s
}

func mustPosition(t testing.TB, e *Engine, sale, user string) QueueStatus {
	t.Helper()
	s, err := e.QueuePosition(context.Background(), sale, joinID(user))
	if err != nil {
		t.Fatalf("position %s: %v", user, err)
	}
	return s
}

func buyAdmitted(e *Engine, sale, user, key string, s QueueStatus) (Order, error) {
	o, _, err := e.Purchase(context.Background(), PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1, UserID: user,
		IdempotencyKey: key, Admission: &QueueAdmission{JoinID: s.JoinID, Place: s.Place, Wave: s.Wave}})
	return o, err
}

// TestQueueJoinTwice: joining again answers the same place and changes
// nothing; a sale without a queue refuses joins; a buyer not in the queue
// has no position.
func TestQueueJoinTwice(t *testing.T) {
	clock := newFakeClock()
	e := openQueueTest(t, clock, 2)
	ctx := context.Background()
	cfg := queuedSale("q", clock, 0, QueueFIFO, 10)
	cfg.OpensAtMs = clock.Ms() + 60_000 // not open: nobody is admitted yet
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.PutSale(ctx, testSale("plain", clock, 10, 10)); err != nil {
		t.Fatal(err)
	}
	a := mustJoin(t, e, "q", "alice")
	b := mustJoin(t, e, "q", "bob")
	again := mustJoin(t, e, "q", "alice")
	if !a.Created || !b.Created || again.Created {
		t.Fatalf("created: %v %v %v, want true true false", a.Created, b.Created, again.Created)
	}
	if a.Place != 0 || b.Place != 1 || again.Place != 0 || again.State != QueueWaiting || b.Ahead != 1 || again.Joined != 2 {
		t.Fatalf("places: alice %+v, bob %+v, alice again %+v", a, b, again)
	}
	_, err := e.QueueJoin(ctx, "plain", joinID("alice"))
	wantCode(t, err, CodeNotQueued)
	_, err = e.QueuePosition(ctx, "q", joinID("carol"))
	wantCode(t, err, CodeNotQueued)
	if v, err := e.SaleView("q"); err != nil || v.QueueCounts == nil || v.QueueCounts.Joined != 2 {
		t.Fatalf("view: %+v", v)
	}
}

// TestQueueAdmissionRules: a queued sale sells only to admitted buyers,
// each admission once, before its expiry; admissions go at most as far as
// the tickets available.
func TestQueueAdmissionRules(t *testing.T) {
	clock := newFakeClock()
	e := openQueueTest(t, clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, queuedSale("q", clock, 2, QueueFIFO, 1000)); err != nil { // 2 tiers of 2: 4 tickets
		t.Fatal(err)
	}
	for i := range 10 {
		mustJoin(t, e, "q", fmt.Sprint("u", i))
	}
	tick(t, e, "q")
	if s := mustPosition(t, e, "q", "u9"); s.Admitted != 4 || s.State != QueueWaiting || s.Ahead != 5 {
		t.Fatalf("after a tick: %+v, want 4 admitted (the tickets), u9 waiting with 5 ahead", s)
	}
	u0 := mustPosition(t, e, "q", "u0")
	if u0.State != QueueAdmitted || u0.Wave != 1 || u0.AdmissionExpiryMs != clock.Ms()+60_000 {
		t.Fatalf("u0: %+v", u0)
	}
	_, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "q", TierID: "floor", Quantity: 1, UserID: "u0", IdempotencyKey: "k0"})
	wantCode(t, err, CodeAdmissionRequired)
	u9 := mustPosition(t, e, "q", "u9")
	_, err = buyAdmitted(e, "q", "u9", "k9", u9) // not admitted
	wantCode(t, err, CodeAdmissionInvalid)
	stolen := u0
	stolen.JoinID = joinID("u9") // u0's place with another buyer
	_, err = buyAdmitted(e, "q", "u9", "k9", stolen)
	wantCode(t, err, CodeAdmissionInvalid)
	o, err := buyAdmitted(e, "q", "u0", "k0", u0)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := buyAdmitted(e, "q", "u0", "k0", u0); err != nil || again.ID != o.ID { // a retry: the same order
		t.Fatalf("retry: %v %v", again.ID, err)
	}
	_, err = buyAdmitted(e, "q", "u0", "k0b", u0)
	wantCode(t, err, CodeAdmissionUsed)
	if s := mustPosition(t, e, "q", "u0"); s.State != QueueUsed {
		t.Fatalf("u0 after buying: %+v", s)
	}
	// u1's admission expires unused.
	clock.Advance(60 * time.Second)
	tick(t, e, "q")
	u1 := mustPosition(t, e, "q", "u1")
	if u1.State != QueueLapsed {
		t.Fatalf("u1 after its expiry: %+v", u1)
	}
	u1.Wave = 1
	_, err = buyAdmitted(e, "q", "u1", "k1", u1)
	wantCode(t, err, CodeAdmissionExpired)
	// The lapsed admissions' places went to the next: 3 tickets left, 3 admitted.
	if s := mustPosition(t, e, "q", "u6"); s.State != QueueAdmitted || s.Wave != 2 || s.Admitted != 7 {
		t.Fatalf("u6 after the second wave: %+v", s)
	}
}

// TestQueueAdmissionRace: two purchases racing with one admission give one
// order.
func TestQueueAdmissionRace(t *testing.T) {
	clock := newFakeClock()
	e := openQueueTest(t, clock, 2)
	if _, _, err := e.PutSale(context.Background(), queuedSale("q", clock, 10, QueueFIFO, 1000)); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, e, "q", "u")
	tick(t, e, "q")
	s := mustPosition(t, e, "q", "u")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = buyAdmitted(e, "q", "u", fmt.Sprint("k", i), s) }()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		var rej *Rejection
		switch {
		case err == nil:
			ok++
		case errors.As(err, &rej) && rej.Code == CodeAdmissionUsed:
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d orders from one admission, want 1", ok)
	}
}

// TestQueueFreedStockAdmitsNext: with every ticket held, nobody more is
// admitted; a hold's expiry admits the next buyer in the same tick.
func TestQueueFreedStockAdmitsNext(t *testing.T) {
	clock := newFakeClock()
	e := openQueueTest(t, clock, 1)
	cfg := queuedSale("q", clock, 1, QueueFIFO, 1000)
	cfg.Tiers = cfg.Tiers[:1]
	cfg.HoldMs = 30_000
	if _, _, err := e.PutSale(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, e, "q", "a")
	mustJoin(t, e, "q", "b")
	tick(t, e, "q")
	a := mustPosition(t, e, "q", "a")
	if _, err := buyAdmitted(e, "q", "a", "ka", a); err != nil {
		t.Fatal(err)
	}
	clock.Advance(20 * time.Second)
	tick(t, e, "q")
	if b := mustPosition(t, e, "q", "b"); b.State != QueueWaiting {
		t.Fatalf("b while a holds the only ticket: %+v", b)
	}
	clock.Advance(10 * time.Second) // a's hold expires
	tick(t, e, "q")
	b := mustPosition(t, e, "q", "b")
	if b.State != QueueAdmitted {
		t.Fatalf("b after a's hold expired: %+v", b)
	}
	if _, err := buyAdmitted(e, "q", "b", "kb", b); err != nil {
		t.Fatal(err)
	}
	// Sold out (a ticket held counts until it is paid or expires): a new
	// buyer cannot join once nothing is available or held... here b holds it.
	_, err := e.QueueJoin(context.Background(), "q", joinID("c"))
	if err != nil {
		t.Fatalf("join while a ticket is held: %v", err)
	}
}

// TestQueueDrawVerifiable: buyers who join before the opening are drawn at
// it; the revealed seed matches the commitment published before, the order
// is DrawOrder of the seed and the join ids, and later joins queue after.
func TestQueueDrawVerifiable(t *testing.T) {
	clock := newFakeClock()
	e := openQueueTest(t, clock, 2)
	ctx := context.Background()
	cfg := queuedSale("q", clock, 100, QueueShuffleAtOpen, 5)
	cfg.OpensAtMs = clock.Ms() + 10_000
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	before, err := e.QueueDrawOf(ctx, "q")
	if err != nil || before.Drawn {
		t.Fatalf("draw before the opening: %+v %v", before, err)
	}
	const n = 50
	for i := range n {
		if s := mustJoin(t, e, "q", fmt.Sprint("u", i)); s.State != QueueRegistered || s.Place != -1 {
			t.Fatalf("joined before the draw: %+v", s)
		}
	}
	clock.Advance(10 * time.Second)
	tick(t, e, "q")
	late := mustJoin(t, e, "q", "late")
	d, err := e.QueueDrawOf(ctx, "q")
	if err != nil || !d.Drawn {
		t.Fatalf("draw: %+v %v", d, err)
	}
	if sha256.Sum256(d.Seed[:]) != before.Commitment || d.Commitment != before.Commitment {
		t.Fatal("the revealed seed does not match the commitment")
	}
	if len(d.JoinIDs) != n || !slices.IsSortedFunc(d.JoinIDs, func(a, b JoinID) int { return slices.Compare(a[:], b[:]) }) {
		t.Fatalf("join ids: %d, sorted %v", len(d.JoinIDs), d.JoinIDs)
	}
	if !slices.Equal(DrawOrder(d.Seed, d.JoinIDs), d.Order) {
		t.Fatal("the order is not DrawOrder(seed, join ids)")
	}
	identity := true
	for i := range n {
		s := mustPosition(t, e, "q", fmt.Sprint("u", i))
		if d.Order[s.Place] != joinID(fmt.Sprint("u", i)) {
			t.Fatalf("u%d is at place %d, the draw put someone else there", i, s.Place)
		}
		identity = identity && s.Place == i
	}
	if identity {
		t.Fatal("the draw kept the join order")
	}
	if late.Place != n || late.State != QueueWaiting {
		t.Fatalf("a join after the draw: %+v", late)
	}
	if s := mustPosition(t, e, "q", "u0"); s.Admitted != 5 {
		t.Fatalf("admitted after the opening tick: %d, want the rate (5)", s.Admitted)
	}
}

// TestQueueRestoredExactly: a randomized queue (joins, draws, waves,
// purchases, expiries) restarted from the log alone and from a snapshot
// plus the log answers every buyer exactly as before.
func TestQueueRestoredExactly(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, snapEvery := range []int{0, 37} {
		t.Run(fmt.Sprint("snapshot every ", snapEvery), func(t *testing.T) {
			clock := newFakeClock()
			j := newMemJournal()
			open := func() *Engine {
				e, err := Open(Config{Journal: j, Shards: 2, Now: clock.Now, TickInterval: time.Hour,
					OnFatal: func(error) {}, Logger: quietLogger, SnapshotEvents: snapEvery})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			e := open()
			ctx := context.Background()
			sales := []string{"fifo", "shuffle"}
			cf := queuedSale("fifo", clock, 20, QueueFIFO, 7)
			cs := queuedSale("shuffle", clock, 20, QueueShuffleAtOpen, 9)
			cs.OpensAtMs = clock.Ms() + 5_000
			for _, c := range []SaleConfig{cf, cs} {
				if _, _, err := e.PutSale(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			users := 0
			for step := range 400 {
				sale := sales[rng.IntN(2)]
				switch r := rng.IntN(10); {
				case r < 6:
					u := fmt.Sprint("u", rng.IntN(users+1))
					if u == fmt.Sprint("u", users) {
						users++
					}
					if _, err := e.QueueJoin(ctx, sale, joinID(u)); err != nil {
						var rej *Rejection
						if !errors.As(err, &rej) {
							t.Fatal(err)
						}
					}
				case r < 8:
					clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
					tick(t, e, sale)
				default:
					u := fmt.Sprint("u", rng.IntN(users+1))
					if s, err := e.QueuePosition(ctx, sale, joinID(u)); err == nil && s.State == QueueAdmitted {
						buyAdmitted(e, sale, u, fmt.Sprint("k", step), s) // sold out is fine
					}
				}
			}
			want := queueStatuses(t, e, sales, users)
			seen := map[QueueState]int{}
			for _, s := range want {
				seen[s.State]++
			}
			if seen[QueueUsed] == 0 || seen[QueueAdmitted]+seen[QueueLapsed] == 0 {
				t.Fatalf("the run reached too little: %v", seen)
			}
			e.Close()
			e = open()
			defer e.Close()
			if got := queueStatuses(t, e, sales, users); !slices.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("after restart, entry %d: %+v, want %+v", i, got[i], want[i])
					}
				}
				t.Fatalf("after restart: %d answers, want %d", len(got), len(want))
			}
		})
	}
}

func queueStatuses(t *testing.T, e *Engine, sales []string, users int) []QueueStatus {
	var out []QueueStatus
	for _, sale := range sales {
		for u := range users {
			s, err := e.QueuePosition(context.Background(), sale, joinID(fmt.Sprint("u", u)))
			if err != nil {
				wantCode(t, err, CodeNotQueued)
			}
			out = append(out, s)
		}
		d, err := e.QueueDrawOf(context.Background(), sale)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, QueueStatus{JoinID: JoinID(d.Seed[:16]), Place: len(d.Order)})
	}
	return out
}
