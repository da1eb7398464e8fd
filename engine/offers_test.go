package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func openOffersTest(t testing.TB, j Journal, clock *fakeClock, shards int) *Engine {
	t.Helper()
	e, err := Open(Config{Journal: j, Shards: shards, Now: clock.Now, TickInterval: time.Hour,
		OnFatal: func(error) {}, Logger: quietLogger, QueueSeedKey: []byte("offers test seed key")})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// lotterySale: tier floor of stock tickets, registrations for 10 s.
func lotterySale(id string, clock *fakeClock, stock int) SaleConfig {
	cfg := testSale(id, clock, stock, 4)
	cfg.Offers = &OffersConfig{Lottery: LotteryConfig{RegistrationClosesAtMs: clock.Ms() + 10_000, PayWithinMs: 60_000}}
	return cfg
}

func waitlistSale(id string, clock *fakeClock, stock int) SaleConfig {
	cfg := testSale(id, clock, stock, 4)
	cfg.Offers = &OffersConfig{Waitlist: WaitlistConfig{Enabled: true, MaxQuantity: 2, PayWithinMs: 60_000}}
	return cfg
}

func register(e *Engine, sale string, bk OfferBook, user string, qty int) (OfferStatus, error) {
	return e.OfferRegister(context.Background(), sale, bk, OfferRequest{UserID: user, JoinID: joinID(user), TierID: "floor", Quantity: qty})
}

func mustRegister(t *testing.T, e *Engine, sale string, bk OfferBook, user string, qty int) OfferStatus {
	t.Helper()
	s, err := register(e, sale, bk, user, qty)
	if err != nil {
		t.Fatalf("register %s: %v", user, err)
	}
	return s
}

func offerOf(t *testing.T, e *Engine, sale string, bk OfferBook, user string) OfferStatus {
	t.Helper()
	s, err := e.OfferStatusOf(context.Background(), sale, bk, joinID(user))
	if err != nil {
		t.Fatalf("status %s: %v", user, err)
	}
	return s
}

// checkStock fails unless sold + held <= stock for every tier of sale.
func checkStock(t *testing.T, e *Engine, sale string) Sale {
	t.Helper()
	sl, err := e.Sale(context.Background(), sale)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range sl.TierCounts {
		if c.Sold+c.Held > sl.Tiers[i].Stock || c.Available < 0 {
			t.Fatalf("tier %s oversold: %+v of %d", sl.Tiers[i].ID, c, sl.Tiers[i].Stock)
		}
	}
	return sl
}

func payOffer(t *testing.T, e *Engine, orderID string, ok bool) Order {
	t.Helper()
	o, err := e.Order(context.Background(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	o, _, err = e.ApplyPayment(context.Background(), Payment{EventID: "ev-" + orderID, OrderID: orderID, Succeeded: ok, AmountCents: o.AmountCents, Currency: o.Currency})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("u", i)
	}
	return out
}

// offeredUsers lists the users whose registration is in state s, by rank.
func usersIn(t *testing.T, e *Engine, sale string, bk OfferBook, us []string, s OfferState) []string {
	t.Helper()
	type ranked struct {
		rank int
		user string
	}
	var rs []ranked
	for _, u := range us {
		if st := offerOf(t, e, sale, bk, u); st.State == s {
			rs = append(rs, ranked{st.Rank, u})
		}
	}
	slices.SortFunc(rs, func(a, b ranked) int { return a.rank - b.rank })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.user
	}
	return out
}

// TestLotteryDrawVerifiable: registrations until the close, one per
// buyer; no open sale before the draw; the draw recomputes from what it
// publishes (VerifyDraw, what "onsale verify-draw" runs) and the winners
// are the first ranked, each with an order in its own list and an
// order.offered notification.
func TestLotteryDrawVerifiable(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openOffersTest(t, j, clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, lotterySale("lot", clock, 3)); err != nil {
		t.Fatal(err)
	}
	us := users(10)
	for _, u := range us {
		if s := mustRegister(t, e, "lot", BookLottery, u, 1); !s.Created || s.State != OfferRegistered || s.Rank != -1 {
			t.Fatalf("register %s: %+v", u, s)
		}
	}
	if s := mustRegister(t, e, "lot", BookLottery, "u3", 2); s.Created || s.Quantity != 1 || s.Registered != 10 {
		t.Fatalf("registering again: %+v, want the same registration", s)
	}
	_, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "lot", TierID: "floor", Quantity: 1, UserID: "x", IdempotencyKey: "k"})
	wantCode(t, err, CodeSaleNotOpen)
	_, err = e.OfferStatusOf(ctx, "lot", BookLottery, joinID("nobody"))
	wantCode(t, err, CodeNotRegistered)
	_, err = register(e, "lot", BookWaitlist, "u1", 1)
	wantCode(t, err, CodeNotQueued)
	if d, err := e.QueueDrawOf(ctx, "lot"); err != nil || d.Drawn || d.Commitment != e.QueueSeedCommitment("lot") {
		t.Fatalf("draw before the close: %+v %v", d, err)
	}

	clock.Advance(10 * time.Second)
	_, err = register(e, "lot", BookLottery, "late", 1)
	wantCode(t, err, CodeRegistrationClosed)
	tick(t, e, "lot")
	d, err := e.QueueDrawOf(ctx, "lot")
	if err != nil || !d.Drawn {
		t.Fatalf("draw: %+v %v", d, err)
	}
	if err := VerifyDraw(d.Commitment, d.Seed, d.JoinIDs, d.Order); err != nil {
		t.Fatalf("the published draw does not verify: %v", err)
	}
	var ids []JoinID
	for _, u := range us {
		ids = append(ids, joinID(u))
	}
	if got := DrawOrder(d.Seed, ids); !slices.Equal(got, d.Order) {
		t.Fatal("the order is not DrawOrder of the registrants")
	}
	won := usersIn(t, e, "lot", BookLottery, us, OfferOffered)
	if len(won) != 3 {
		t.Fatalf("%d offers, want 3", len(won))
	}
	for i, u := range won {
		if joinID(u) != d.Order[i] {
			t.Fatalf("offer %d went to %s, not rank %d", i, u, i)
		}
		s := offerOf(t, e, "lot", BookLottery, u)
		os, err := e.UserOrders(ctx, u, "lot")
		if err != nil || len(os) != 1 || os[0].ID != s.OrderID || os[0].Status != StatusPending || s.PayByMs != clock.Ms()+60_000 || os[0].ExpiresAtMs != s.PayByMs {
			t.Fatalf("%s: status %+v, orders %+v %v", u, s, os, err)
		}
	}
	if w := usersIn(t, e, "lot", BookLottery, us, OfferWaiting); len(w) != 7 {
		t.Fatalf("%d waiting, want 7", len(w))
	}
	checkStock(t, e, "lot")
	offered := 0
	for _, es := range j.entries {
		for _, me := range es {
			DecodeNotifications(me.data, func(n *Notification) {
				if n.Kind == NotifyOrderOffered {
					offered++
				}
			})
		}
	}
	if offered != 3 {
		t.Fatalf("%d order.offered notifications, want 3", offered)
	}
}

// TestLotteryCascade: unpaid winners' offers expire and pass to the next
// ranked, round after round; a cancel passes at once; a paid one stays;
// when nothing is left to win, the rest have not won.
func TestLotteryCascade(t *testing.T) {
	clock := newFakeClock()
	e := openOffersTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, lotterySale("lot", clock, 2)); err != nil {
		t.Fatal(err)
	}
	us := users(8)
	for _, u := range us {
		mustRegister(t, e, "lot", BookLottery, u, 1)
	}
	clock.Advance(10 * time.Second)
	tick(t, e, "lot")
	d, _ := e.QueueDrawOf(ctx, "lot")
	rankOf := map[JoinID]int{}
	for i, id := range d.Order {
		rankOf[id] = i
	}
	wantRanks := func(round string, ranks ...int) {
		t.Helper()
		var got []int
		for _, u := range usersIn(t, e, "lot", BookLottery, us, OfferOffered) {
			got = append(got, rankOf[joinID(u)])
		}
		if !slices.Equal(got, ranks) {
			t.Fatalf("%s: offers at ranks %v, want %v", round, got, ranks)
		}
		checkStock(t, e, "lot")
	}
	wantRanks("draw", 0, 1)
	for round := 1; round <= 2; round++ { // nobody pays: two rounds of expiries
		clock.Advance(60 * time.Second)
		tick(t, e, "lot")
		wantRanks(fmt.Sprint("round ", round), 2*round, 2*round+1)
	}
	offered := usersIn(t, e, "lot", BookLottery, us, OfferOffered) // ranks 4, 5
	payOffer(t, e, offerOf(t, e, "lot", BookLottery, offered[0]).OrderID, true)
	if _, err := e.Cancel(ctx, offerOf(t, e, "lot", BookLottery, offered[1]).OrderID, offered[1]); err != nil {
		t.Fatal(err)
	}
	wantRanks("cancel", 6) // at once, in the cancel's entry
	if s := offerOf(t, e, "lot", BookLottery, offered[0]); s.State != OfferBought {
		t.Fatalf("paid winner: %+v", s)
	}
	if s := offerOf(t, e, "lot", BookLottery, offered[1]); s.State != OfferLapsed {
		t.Fatalf("cancelled winner: %+v", s)
	}
	last := usersIn(t, e, "lot", BookLottery, us, OfferOffered)[0]
	payOffer(t, e, offerOf(t, e, "lot", BookLottery, last).OrderID, true)
	if s := checkStock(t, e, "lot"); s.TierCounts[0].Sold != 2 {
		t.Fatalf("sold %+v", s.TierCounts[0])
	}
	if w := usersIn(t, e, "lot", BookLottery, us, OfferNotWon); len(w) != 1 || rankOf[joinID(w[0])] != 7 {
		t.Fatalf("not won: %v", w)
	}
	if l := usersIn(t, e, "lot", BookLottery, us, OfferLapsed); len(l) != 5 {
		t.Fatalf("lapsed: %v", l)
	}
}

// TestWaitlistFills: a waitlist takes registrations only for what the
// tier cannot sell; tickets freed by a cancel, an expiry, a refund or new
// stock become offers for the first registrations that fit, in order; an
// offer that lapses passes on; a buyer may leave.
func TestWaitlistFills(t *testing.T) {
	clock := newFakeClock()
	e := openOffersTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := waitlistSale("w", clock, 2)
	cfg.HoldMs = 300_000
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, err := register(e, "w", BookWaitlist, "c", 1)
	wantCode(t, err, CodeTicketsAvailable)
	a, _, _ := e.Purchase(ctx, PurchaseRequest{SaleID: "w", TierID: "floor", Quantity: 1, UserID: "a", IdempotencyKey: "k"})
	b, _, _ := e.Purchase(ctx, PurchaseRequest{SaleID: "w", TierID: "floor", Quantity: 1, UserID: "b", IdempotencyKey: "k"})
	payOffer(t, e, b.ID, true)
	_, err = register(e, "w", BookWaitlist, "c", 3)
	wantCode(t, err, CodeInvalidQuantity)
	for _, r := range []struct {
		u   string
		qty int
	}{{"c", 1}, {"d", 2}, {"e", 1}, {"f", 1}, {"g", 1}} {
		if s := mustRegister(t, e, "w", BookWaitlist, r.u, r.qty); s.State != OfferWaiting {
			t.Fatalf("%s: %+v", r.u, s)
		}
	}
	if s := offerOf(t, e, "w", BookWaitlist, "e"); s.Ahead != 2 {
		t.Fatalf("e: %+v, want 2 ahead", s)
	}
	state := func(u string) OfferState { return offerOf(t, e, "w", BookWaitlist, u).State }

	// A cancel frees one ticket: c (1) gets it; d (2) does not fit.
	if _, err := e.Cancel(ctx, a.ID, "a"); err != nil {
		t.Fatal(err)
	}
	if state("c") != OfferOffered || state("d") != OfferWaiting || state("e") != OfferWaiting {
		t.Fatalf("after the cancel: c %s, d %s, e %s", state("c"), state("d"), state("e"))
	}
	checkStock(t, e, "w")
	// c's offer lapses: the expiry passes it to e (d still does not fit).
	clock.Advance(60 * time.Second)
	tick(t, e, "w")
	if state("c") != OfferLapsed || state("e") != OfferOffered || state("d") != OfferWaiting {
		t.Fatalf("after the expiry: c %s, d %s, e %s", state("c"), state("d"), state("e"))
	}
	payOffer(t, e, offerOf(t, e, "w", BookWaitlist, "e").OrderID, true)
	// f leaves; a refund frees b's ticket: g gets it, f is skipped.
	if s, err := e.OfferLeave(ctx, "w", joinID("f")); err != nil || s.State != OfferLeft {
		t.Fatalf("leave: %+v %v", s, err)
	}
	if _, err := e.Refund(ctx, b.ID, false); err != nil {
		t.Fatal(err)
	}
	if state("g") != OfferOffered || state("f") != OfferLeft {
		t.Fatalf("after the refund: f %s, g %s", state("f"), state("g"))
	}
	// An admin adds two tickets: d (2) fits now.
	cfg.Tiers[0].Stock = 4
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if s := offerOf(t, e, "w", BookWaitlist, "d"); s.State != OfferOffered || s.Quantity != 2 {
		t.Fatalf("after new stock: d %+v", s)
	}
	if sl := checkStock(t, e, "w"); sl.TierCounts[0].Available != 0 {
		t.Fatalf("counts %+v", sl.TierCounts[0])
	}
	// c may register again, at the end.
	if s := mustRegister(t, e, "w", BookWaitlist, "c", 1); !s.Created || s.State != OfferWaiting || s.Rank != 5 {
		t.Fatalf("c again: %+v", s)
	}
}

// TestOffersLimits: an offer that the per-user limit would refuse is
// passed over for good; one place per document on a real-name waitlist.
func TestOffersLimits(t *testing.T) {
	clock := newFakeClock()
	e := openOffersTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := waitlistSale("w", clock, 2)
	cfg.PerUserLimit = 2
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	a, _, _ := e.Purchase(ctx, PurchaseRequest{SaleID: "w", TierID: "floor", Quantity: 1, UserID: "a", IdempotencyKey: "k"})
	e.Purchase(ctx, PurchaseRequest{SaleID: "w", TierID: "floor", Quantity: 1, UserID: "c", IdempotencyKey: "k"})
	mustRegister(t, e, "w", BookWaitlist, "c", 1)
	// c buys a seat meanwhile: 2 tickets, at its limit.
	e.Purchase(ctx, PurchaseRequest{SaleID: "w", TierID: "seat", Quantity: 1, UserID: "c", IdempotencyKey: "k2"})
	mustRegister(t, e, "w", BookWaitlist, "d", 1)
	if _, err := e.Cancel(ctx, a.ID, "a"); err != nil {
		t.Fatal(err)
	}
	if s := offerOf(t, e, "w", BookWaitlist, "c"); s.State != OfferPassed {
		t.Fatalf("c: %+v, want passed", s)
	}
	if s := offerOf(t, e, "w", BookWaitlist, "d"); s.State != OfferOffered {
		t.Fatalf("d: %+v, want offered", s)
	}

	rn := waitlistSale("rn", clock, 1)
	rn.RealName = RealNameRule{Required: true, PerDocumentLimit: 1}
	if _, _, err := e.PutSale(ctx, rn); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "rn", TierID: "floor", Quantity: 1, UserID: "a", IdempotencyKey: "k", Attendees: attendees(1)}); err != nil {
		t.Fatal(err)
	}
	reg := func(user string, docs ...byte) error {
		_, err := e.OfferRegister(ctx, "rn", BookWaitlist, OfferRequest{UserID: user, JoinID: joinID(user), TierID: "floor", Quantity: len(docs), Attendees: attendees(docs...)})
		return err
	}
	wantCode(t, reg("x"), CodeInvalidQuantity)
	_, err := e.OfferRegister(ctx, "rn", BookWaitlist, OfferRequest{UserID: "x", JoinID: joinID("x"), TierID: "floor", Quantity: 1})
	wantCode(t, err, CodeAttendeesRequired)
	if err := reg("x", 7); err != nil {
		t.Fatal(err)
	}
	wantCode(t, reg("y", 7), CodeDocumentInQueue)
	wantCode(t, reg("y", 1), CodeDocumentLimitExceeded)
}

// TestQueueOnePlacePerDocument: on a real-name queued sale a join names
// the buyer's document; the same document under another buyer id is
// refused, also after a restart from a snapshot.
func TestQueueOnePlacePerDocument(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openOffersTest(t, j, clock, 2)
	ctx := context.Background()
	cfg := queuedSale("q", clock, 5, QueueFIFO, 10)
	cfg.RealName = RealNameRule{Required: true, PerDocumentLimit: 2}
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, err := e.QueueJoin(ctx, "q", joinID("alice"))
	wantCode(t, err, CodeAttendeesRequired)
	doc := [32]byte{42}
	a, err := e.QueueJoinDocument(ctx, "q", joinID("alice"), doc)
	if err != nil || !a.Created {
		t.Fatalf("alice: %+v %v", a, err)
	}
	_, err = e.QueueJoinDocument(ctx, "q", joinID("bob"), doc)
	wantCode(t, err, CodeDocumentInQueue)
	if again, err := e.QueueJoinDocument(ctx, "q", joinID("alice"), doc); err != nil || again.Created || again.Place != a.Place {
		t.Fatalf("alice again: %+v %v", again, err)
	}
	e.Close()
	snapshotClosed(t, e, j)
	for _, shards := range []int{2, 3} {
		e = openOffersTest(t, j, clock, shards)
		user := fmt.Sprint("carol", shards)
		_, err = e.QueueJoinDocument(ctx, "q", joinID(user), doc)
		wantCode(t, err, CodeDocumentInQueue)
		if s, err := e.QueueJoinDocument(ctx, "q", joinID(user), [32]byte{byte(shards)}); err != nil || !s.Created {
			t.Fatalf("%s with a document of their own: %+v %v", user, s, err)
		}
		e.Close()
	}
}

// offerSnapshot is every answer the books give about us, and the sales'
// counts: what a restart must restore exactly.
func offerSnapshot(t *testing.T, e *Engine, sales []string, us []string) []string {
	t.Helper()
	var out []string
	for _, sale := range sales {
		sl, err := e.Sale(context.Background(), sale)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %+v", sale, sl.TierCounts))
		for _, bk := range []OfferBook{BookLottery, BookWaitlist} {
			for _, u := range us {
				s, err := e.OfferStatusOf(context.Background(), sale, bk, joinID(u))
				var rej *Rejection
				if err != nil && !errors.As(err, &rej) {
					t.Fatal(err)
				}
				out = append(out, fmt.Sprintf("%s %s %s: %+v %v", sale, bk, u, s, err))
			}
		}
	}
	return out
}

// TestOffersRandom mixes registrations, purchases, payments, cancels,
// refunds and expiries on a lottery sale and a waitlist sale: sold + held
// never passes the stock, and a restart from the log, from a snapshot
// taken mid-way and with another shard count restores every answer.
func TestOffersRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	clock := newFakeClock()
	j := newMemJournal()
	e := openOffersTest(t, j, clock, 2)
	ctx := context.Background()
	lot := lotterySale("lot", clock, 6)
	lot.Offers = &OffersConfig{Lottery: LotteryConfig{RegistrationClosesAtMs: clock.Ms() + 20_000, PayWithinMs: 60_000}}
	wl := waitlistSale("wl", clock, 5)
	for _, c := range []SaleConfig{lot, wl} {
		if _, _, err := e.PutSale(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	sales := []string{"lot", "wl"}
	us := users(30)
	reached := map[string]int{}
	for step := range 600 {
		sale := sales[rng.IntN(2)]
		u := us[rng.IntN(len(us))]
		var err error
		switch r := rng.IntN(20); {
		case r < 5:
			bk := BookWaitlist
			if sale == "lot" {
				bk = BookLottery
			}
			_, err = register(e, sale, bk, u, 1+rng.IntN(2))
		case r < 9:
			_, _, err = e.Purchase(ctx, PurchaseRequest{SaleID: sale, TierID: "floor", Quantity: 1 + rng.IntN(2), UserID: u, IdempotencyKey: fmt.Sprint("k", step)})
		case r < 13:
			os, _ := e.UserOrders(ctx, u, sale)
			if len(os) > 0 {
				o := os[rng.IntN(len(os))]
				switch rng.IntN(4) {
				case 0:
					_, err = e.Cancel(ctx, o.ID, u)
				case 1:
					_, err = e.Refund(ctx, o.ID, false)
				default:
					if o.Status == StatusPending {
						payOffer(t, e, o.ID, rng.IntN(5) != 0)
						reached["paid"]++
					}
				}
			}
		case r < 14:
			_, err = e.OfferLeave(ctx, "wl", joinID(u))
		case r < 16: // a buyer with an offer pays it
			bk := BookWaitlist
			if sale == "lot" {
				bk = BookLottery
			}
			if s, err := e.OfferStatusOf(ctx, sale, bk, joinID(u)); err == nil && s.State == OfferOffered {
				payOffer(t, e, s.OrderID, true)
				reached["offer paid"]++
			}
		default:
			clock.Advance(time.Duration(rng.IntN(15_000)) * time.Millisecond)
			tick(t, e, sale)
		}
		var rej *Rejection
		if err != nil && !errors.As(err, &rej) {
			t.Fatalf("step %d: %v", step, err)
		}
		if rej != nil {
			reached[string(rej.Code)]++
		}
		for _, s := range sales {
			checkStock(t, e, s)
		}
	}
	want := offerSnapshot(t, e, sales, us)
	states := map[OfferState]int{}
	for _, sale := range sales {
		for _, bk := range []OfferBook{BookLottery, BookWaitlist} {
			for _, u := range us {
				if s, err := e.OfferStatusOf(ctx, sale, bk, joinID(u)); err == nil {
					states[s.State]++
				}
			}
		}
	}
	t.Logf("states %v, rejections %v", states, reached)
	if states[OfferBought]+states[OfferLapsed] == 0 {
		t.Fatalf("the run made no offer: %v", states)
	}
	for _, reopen := range reopenings {
		e.Close()
		if reopen.snap {
			snapshotClosed(t, e, j)
		}
		e = openOffersTest(t, j, clock, reopen.shards)
		if got := offerSnapshot(t, e, sales, us); !slices.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("after %s: %s\nwant %s", reopen.name, got[i], want[i])
				}
			}
		}
	}
	// The restored books go on: every pending order expires, and the
	// tickets cascade without overselling.
	for range 5 {
		clock.Advance(10 * time.Minute)
		for _, s := range sales {
			tick(t, e, s)
			checkStock(t, e, s)
		}
	}
}
