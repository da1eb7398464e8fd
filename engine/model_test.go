package engine

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

var randomSeed = flag.Uint64("seed", 0, "seed for randomized tests (0: from the clock)")
var randomOps = flag.Int("ops", 5000, "operations per randomized test")

func testSeed(t *testing.T) uint64 {
	seed := *randomSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce with: go test ./engine/ -run '^%s$' -seed %d", t.Name(), seed)
		}
	})
	return seed
}

// model is a naive single-threaded statement of the rules: a list of orders
// and a few loops, written without looking at state.go.
type model struct {
	sales  map[string]*modelSale
	orders map[string]*modelOrder
	events map[string]bool
}

type modelSale struct {
	cfg    SaleConfig
	closed bool
}

type modelOrder struct {
	Order
	key      string
	usedKept bool // refunded by force after entry: checked-in tickets stay sold
}

// taken is how many tickets the order counts against stock and its user.
func (o *modelOrder) taken() int {
	switch {
	case o.Status == StatusPending, o.Status == StatusPaid && !o.NeedsRefund:
		return o.Quantity
	case o.Status == StatusRefunded && o.usedKept:
		return bits.OnesCount64(o.CheckedIn)
	}
	return 0
}

func (m *model) count(saleID, tierID string) (held, sold int) {
	for _, o := range m.orders {
		if o.SaleID != saleID || o.TierID != tierID {
			continue
		}
		if o.Status == StatusPending {
			held += o.Quantity
		} else {
			sold += o.taken()
		}
	}
	return
}

func (m *model) userTickets(saleID, user string) int {
	n := 0
	for _, o := range m.orders {
		if o.SaleID == saleID && o.UserID == user {
			n += o.taken()
		}
	}
	return n
}

func (m *model) stock(saleID, tierID string) int {
	for _, t := range m.sales[saleID].cfg.Tiers {
		if t.ID == tierID {
			return t.Stock
		}
	}
	return -1
}

func (m *model) purchase(now int64, req PurchaseRequest) (*modelOrder, Code) {
	s := m.sales[req.SaleID]
	if s == nil {
		return nil, CodeUnknownSale
	}
	for _, o := range m.orders {
		if o.SaleID == req.SaleID && o.UserID == req.UserID && o.key == req.IdempotencyKey {
			if o.TierID != req.TierID || o.Quantity != req.Quantity {
				return nil, CodeIdempotencyConflict
			}
			return o, ""
		}
	}
	switch {
	case s.closed || now >= s.cfg.ClosesAtMs:
		return nil, CodeSaleClosed
	case now < s.cfg.OpensAtMs:
		return nil, CodeSaleNotOpen
	case m.stock(req.SaleID, req.TierID) < 0:
		return nil, CodeUnknownTier
	case req.Quantity < 1 || req.Quantity > QuantityPerOrderMax:
		return nil, CodeInvalidQuantity
	case m.userTickets(req.SaleID, req.UserID)+req.Quantity > s.cfg.PerUserLimit:
		return nil, CodeLimitExceeded
	}
	held, sold := m.count(req.SaleID, req.TierID)
	if m.stock(req.SaleID, req.TierID)-held-sold < req.Quantity {
		return nil, CodeSoldOut
	}
	var price int64
	for _, t := range s.cfg.Tiers {
		if t.ID == req.TierID {
			price = t.PriceCents
		}
	}
	return &modelOrder{Order: Order{
		SaleID: req.SaleID, TierID: req.TierID, UserID: req.UserID, IdempotencyKey: req.IdempotencyKey,
		Quantity: req.Quantity, AmountCents: price * int64(req.Quantity), UnitPriceCents: price, Currency: s.cfg.Currency,
		Status: StatusPending, CreatedAtMs: now, ExpiresAtMs: now + s.cfg.HoldMs, UpdatedAtMs: now,
	}, key: req.IdempotencyKey}, ""
}

func (m *model) pay(now int64, o *modelOrder, p Payment) Code {
	if o.PaymentID == p.EventID {
		return ""
	}
	if p.AmountCents != o.AmountCents || p.Currency != o.Currency {
		// A success takes money that must go back, recorded once per event.
		if !p.Succeeded || p.AmountCents <= 0 || len(p.Currency) != 3 {
			return CodePaymentMismatch
		}
		for _, r := range o.Payouts {
			if r.Reason == PayoutPaymentMismatch && r.PaymentID == p.EventID {
				return ""
			}
		}
		o.addPayout(PayoutPaymentMismatch, p.EventID, p.AmountCents, p.Currency, false, now)
		o.UpdatedAtMs = now
		return ""
	}
	switch {
	case !p.Succeeded && o.Status == StatusPending:
		o.Status, o.PaymentID, o.UpdatedAtMs = StatusCancelled, p.EventID, now
		m.events[p.EventID] = true
	case p.Succeeded && o.Status == StatusPending:
		o.Status, o.PaymentID, o.UpdatedAtMs = StatusPaid, p.EventID, now
		m.events[p.EventID] = true
	case p.Succeeded && (o.Status == StatusExpired || o.Status == StatusCancelled):
		held, sold := m.count(o.SaleID, o.TierID)
		ok := m.stock(o.SaleID, o.TierID)-held-sold >= o.Quantity &&
			m.userTickets(o.SaleID, o.UserID)+o.Quantity <= m.sales[o.SaleID].cfg.PerUserLimit
		o.Status, o.NeedsRefund, o.PaymentID, o.UpdatedAtMs = StatusPaid, !ok, p.EventID, now
		m.events[p.EventID] = true
		if !ok {
			o.addPayout(PayoutLatePayment, p.EventID, o.AmountCents, o.Currency, false, now)
		}
	case p.Succeeded && (o.Status == StatusPaid || o.Status == StatusRefunded):
		for _, c := range o.DuplicateCharges {
			if c.EventID == p.EventID {
				return ""
			}
		}
		o.DuplicateCharges = append(o.DuplicateCharges, DuplicateCharge{EventID: p.EventID, AmountCents: p.AmountCents, AtMs: now})
		o.addPayout(PayoutDuplicateCharge, p.EventID, p.AmountCents, o.Currency, false, now)
		o.UpdatedAtMs = now
	}
	return ""
}

// checkIn admits ticket n of an order.
func (m *model) checkIn(now int64, o *modelOrder, n int) Code {
	switch {
	case n >= o.Quantity:
		return CodeUnknownTicket
	case o.Status != StatusPaid || o.NeedsRefund:
		return CodeTicketNotValid
	case o.CheckedIn&(1<<n) != 0:
		return CodeTicketAlreadyCheckIn
	}
	o.CheckedIn |= 1 << n
	o.UpdatedAtMs = now
	return ""
}

// refund refunds a paid order; one with used tickets only by force.
func (m *model) refund(now int64, o *modelOrder, force bool) Code {
	switch {
	case o.Status != StatusPaid:
		return CodeInvalidOrderState
	case o.CheckedIn != 0 && !force:
		return CodeTicketUsed
	}
	late := -1
	for i, r := range o.Payouts {
		if o.NeedsRefund && r.Reason == PayoutLatePayment && r.PaymentID == o.PaymentID {
			late = i
		}
	}
	if late >= 0 {
		o.Payouts[late].Approved, o.Payouts[late].UpdatedAtMs = true, now
	} else {
		o.addPayout(PayoutAdminRefund, o.PaymentID, o.AmountCents, o.Currency, true, now)
	}
	o.Status, o.NeedsRefund, o.UpdatedAtMs, o.usedKept = StatusRefunded, false, now, o.CheckedIn != 0
	return ""
}

// addPayout records money to give back. The model's payments come from no
// provider adapter, so every payout is manual.
func (o *modelOrder) addPayout(reason PayoutReason, paymentID string, amount int64, currency string, approved bool, now int64) {
	o.Payouts = append(o.Payouts, Payout{
		ID: fmt.Sprintf("%s.%d", o.ID, len(o.Payouts)), OrderID: o.ID, Reason: reason, AmountCents: amount, TotalCents: amount,
		Currency: currency, PaymentID: paymentID, Status: PayoutManual, Approved: approved,
		NextAttemptAtMs: now, CreatedAtMs: now, UpdatedAtMs: now,
	})
}

// expire expires every pending order whose hold has ended. The engine does
// this on its tick; the sequential test makes sure a tick ran before it
// compares.
func (m *model) expire(now int64) {
	for _, o := range m.orders {
		if o.Status == StatusPending && o.ExpiresAtMs <= now {
			o.Status, o.UpdatedAtMs = StatusExpired, now
		}
	}
}

// TestRandomAgainstModel drives the engine (several shards) and the model
// with the same random operations, one at a time, and requires the same
// outcome for each, the same state at the end, and the same state again
// after a restart.
func TestRandomAgainstModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	clock := newFakeClock()
	j := newMemJournal()
	e, err := Open(Config{Journal: j, Shards: 3, Now: clock.Now, TickInterval: time.Hour, SnapshotEvents: 200, OnFatal: func(error) {}, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { e.Close() }()
	ctx := context.Background()
	m := &model{sales: map[string]*modelSale{}, orders: map[string]*modelOrder{}, events: map[string]bool{}}

	saleIDs := []string{"a", "b", "c", "d", "e", "nosuch"}
	for _, id := range saleIDs[:5] {
		cfg := testSale(id, clock, 1+rng.IntN(8), 1+rng.IntN(4))
		cfg.HoldMs = int64(1+rng.IntN(5)) * 1000
		if _, _, err := e.PutSale(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		m.sales[id] = &modelSale{cfg: cfg}
	}
	var ids []string // order ids handed out, in creation order
	pick := func() (string, *modelOrder) {
		if len(ids) == 0 {
			return "a.aaaaaaaaaaaaaaaaaaaaaaaaaa", nil
		}
		id := ids[rng.IntN(len(ids))]
		return id, m.orders[id]
	}
	codeOf := func(err error) Code {
		var rej *Rejection
		if errors.As(err, &rej) {
			return rej.Code
		}
		if err != nil {
			t.Fatalf("operational error: %v", err)
		}
		return ""
	}
	for op := range *randomOps {
		now := clock.Ms()
		switch r := rng.IntN(100); {
		case r < 45:
			req := PurchaseRequest{
				SaleID: saleIDs[rng.IntN(len(saleIDs))], TierID: []string{"floor", "seat", "roof"}[rng.IntN(3)],
				Quantity: rng.IntN(4), UserID: fmt.Sprint("u", rng.IntN(12)), IdempotencyKey: fmt.Sprint("k", rng.IntN(30)),
			}
			o, created, err := e.Purchase(ctx, req)
			mo, wantCode := m.purchase(now, req)
			if got := codeOf(err); got != wantCode {
				t.Fatalf("op %d purchase %+v: got %q, model %q", op, req, got, wantCode)
			}
			if err != nil {
				continue
			}
			if created {
				if mo.ID != "" {
					t.Fatalf("op %d purchase %+v: engine created %s, model has %+v", op, req, o.ID, mo)
				}
				if _, dup := m.orders[o.ID]; dup {
					t.Fatalf("op %d: created an order id twice", op)
				}
				mo.ID = o.ID
				m.orders[o.ID] = mo
				ids = append(ids, o.ID)
			} else if o.ID != mo.ID {
				t.Fatalf("op %d: retry returned %s, model %s", op, o.ID, mo.ID)
			}
		case r < 65:
			id, mo := pick()
			amount, currency := int64(0), "EUR"
			if mo != nil {
				amount = mo.AmountCents
			}
			if rng.IntN(10) == 0 {
				amount++
			}
			p := Payment{EventID: fmt.Sprint("evt", rng.IntN(60)), OrderID: id, Succeeded: rng.IntN(4) != 0, AmountCents: amount, Currency: currency}
			_, _, err := e.ApplyPayment(ctx, p)
			want := CodeUnknownOrder
			if mo != nil {
				want = m.pay(now, mo, p)
			}
			if got := codeOf(err); got != want {
				t.Fatalf("op %d pay %+v: got %q, model %q", op, p, got, want)
			}
		case r < 75:
			id, mo := pick()
			user := fmt.Sprint("u", rng.IntN(12))
			_, err := e.Cancel(ctx, id, user)
			want := CodeUnknownOrder
			if mo != nil && mo.UserID == user {
				switch mo.Status {
				case StatusPending:
					mo.Status, mo.UpdatedAtMs, want = StatusCancelled, now, ""
				case StatusCancelled:
					want = ""
				default:
					want = CodeInvalidOrderState
				}
			}
			if got := codeOf(err); got != want {
				eo, _ := e.Order(ctx, id)
				t.Fatalf("op %d cancel: got %q, model %q\nengine %+v\nmodel  %+v", op, got, want, eo, mo)
			}
		case r < 77:
			id, mo := pick()
			force := rng.IntN(2) == 0
			_, err := e.Refund(ctx, id, force)
			want := CodeUnknownOrder
			if mo != nil {
				want = m.refund(now, mo, force)
			}
			if got := codeOf(err); got != want {
				t.Fatalf("op %d refund (force %v): got %q, model %q", op, force, got, want)
			}
		case r < 80:
			id, mo := pick()
			n := rng.IntN(5)
			_, err := e.CheckIn(ctx, TicketCode(id, n))
			want := CodeUnknownTicket
			if mo != nil {
				want = m.checkIn(now, mo, n)
			}
			if got := codeOf(err); got != want {
				t.Fatalf("op %d checkin %s.%d: got %q, model %q", op, id, n, got, want)
			}
		case r < 85:
			id := saleIDs[rng.IntN(5)]
			closed := rng.IntN(3) == 0
			if _, err := e.SetSaleClosed(ctx, id, closed); err != nil {
				t.Fatal(err)
			}
			m.sales[id].closed = closed
		case r < 88:
			clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
			if err := e.expireDueNow(ctx); err != nil {
				t.Fatal(err)
			}
			m.expire(clock.Ms())
		case r < 90:
			// Restart, sometimes with another shard count: recovery must
			// give back exactly the state before.
			e.Close()
			if e, err = Open(Config{Journal: j, Shards: 1 + rng.IntN(4), Now: clock.Now, TickInterval: time.Hour, SnapshotEvents: 200, OnFatal: func(error) {}, Logger: quietLogger}); err != nil {
				t.Fatalf("op %d reopen: %v", op, err)
			}
		default:
			id, mo := pick()
			o, err := e.Order(ctx, id)
			if mo == nil {
				if codeOf(err) != CodeUnknownOrder {
					t.Fatalf("op %d: unknown order: %v", op, err)
				}
				continue
			}
			if err != nil || !reflect.DeepEqual(o, mo.Order) {
				t.Fatalf("op %d order:\n got %+v %v\nmodel %+v", op, o, err, mo.Order)
			}
		}
	}
	compareWithModel(t, e, m)
}

// expireDueNow makes every shard expire every hold that has ended, as its
// timer would, and waits until that is durable.
func (e *Engine) expireDueNow(ctx context.Context) error {
	return e.fanOut(ctx, command{kind: cmdTick}, func(*result) {})
}

// allOrders lists every order of every sale through the public API.
func (e *Engine) allOrders(ctx context.Context) ([]Order, error) {
	sales, err := e.Sales(ctx)
	if err != nil {
		return nil, err
	}
	var out []Order
	for _, s := range sales {
		cursor := ""
		for {
			page, next, err := e.SaleOrders(ctx, s.ID, cursor, 7)
			if err != nil {
				return nil, err
			}
			out = append(out, page...)
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return out, nil
}

func compareWithModel(t *testing.T, e *Engine, m *model) {
	t.Helper()
	ctx := context.Background()
	orders, err := e.allOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != len(m.orders) {
		t.Fatalf("engine has %d orders, model %d", len(orders), len(m.orders))
	}
	for _, o := range orders {
		if mo := m.orders[o.ID]; mo == nil || !reflect.DeepEqual(o, mo.Order) {
			t.Fatalf("order differs:\n engine %+v\n model  %+v", o, mo)
		}
	}
	sales, err := e.Sales(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sales {
		for i, tier := range s.Tiers {
			held, sold := m.count(s.ID, tier.ID)
			c := s.TierCounts[i]
			if c.Held != held || c.Sold != sold || c.Available != tier.Stock-held-sold || held+sold > tier.Stock {
				t.Fatalf("sale %s tier %s: engine %+v, model held %d sold %d stock %d", s.ID, tier.ID, c, held, sold, tier.Stock)
			}
		}
	}
}

// TestConcurrentNeverOversells runs many goroutines against few tickets on
// several shards and checks, while they run and after, that sold + held
// never passes stock, that no user passes the limit, and that every order a
// caller was given is there after a restart with the status it last saw.
func TestConcurrentNeverOversells(t *testing.T) {
	seed := testSeed(t)
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 3)
	ctx := context.Background()
	sales := []string{"x", "y", "z", "w"}
	for _, id := range sales {
		if _, _, err := e.PutSale(ctx, testSale(id, clock, 20, 3)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]OrderStatus{} // the last status a caller was told
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			var mine []string
			for i := range *randomOps / 16 {
				sale := sales[rng.IntN(len(sales))]
				switch r := rng.IntN(10); {
				case r < 6:
					o, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1 + rng.IntN(2),
						UserID: fmt.Sprint("u", rng.IntN(40)), IdempotencyKey: fmt.Sprint(g, "-", i)})
					if err == nil {
						mine = append(mine, o.ID)
						mu.Lock()
						seen[o.ID] = o.Status
						mu.Unlock()
					}
				case r < 8 && len(mine) > 0:
					id := mine[rng.IntN(len(mine))]
					o, err := e.Order(ctx, id)
					if err != nil {
						t.Errorf("order %s: %v", id, err)
						return
					}
					o, _, err = e.ApplyPayment(ctx, Payment{EventID: fmt.Sprint("p", g, "-", i), OrderID: id, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"})
					if err == nil {
						mu.Lock()
						seen[id] = o.Status
						mu.Unlock()
					}
				case len(mine) > 0:
					id := mine[rng.IntN(len(mine))]
					if o, err := e.Cancel(ctx, id, ""); err == nil {
						mu.Lock()
						seen[id] = o.Status
						mu.Unlock()
					}
				}
				if i%50 == 0 {
					s, err := e.Sale(ctx, sale)
					if err != nil {
						t.Error(err)
						return
					}
					if c := s.TierCounts[0]; c.Held+c.Sold > s.Tiers[0].Stock || c.Available < 0 {
						t.Errorf("sale %s oversold: %+v", sale, c)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	e.Close()
	e2 := openTest(t, j, clock, 2)
	orders, err := e2.allOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Order{}
	perUser := map[string]int{}
	for _, o := range orders {
		got[o.ID] = o
		if o.Status == StatusPending || o.Status == StatusPaid && !o.NeedsRefund {
			perUser[o.SaleID+"/"+o.UserID] += o.Quantity
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		o, ok := got[id]
		if !ok {
			t.Fatalf("acknowledged order %s lost after restart", id)
		}
		if o.Status != seen[id] {
			t.Fatalf("order %s: status %s after restart, caller last saw %s", id, o.Status, seen[id])
		}
	}
	for k, n := range perUser {
		if n > 3 {
			t.Fatalf("%s holds %d tickets, limit 3", k, n)
		}
	}
	for _, id := range sales {
		s, err := e2.Sale(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c := s.TierCounts[0]; c.Held+c.Sold > s.Tiers[0].Stock {
			t.Fatalf("sale %s oversold after restart: %+v", id, c)
		}
	}
}
