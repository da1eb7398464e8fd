package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Refund and exchange rules (refundrules.go): the deadline at the decision
// instant, the fee, the admin's approval, exchanges, the admin's queue, and
// recovery of all of it.

const ruleStartsIn = 72 * time.Hour

// ruleSale is testSale with a performance 72 h away and the given rules.
func ruleSale(id string, clock *fakeClock, stock int, r RefundRule, x ExchangeRule) SaleConfig {
	cfg := testSale(id, clock, stock, 20)
	cfg.ClosesAtMs = clock.Ms() + ruleStartsIn.Milliseconds()
	cfg.StartsAtMs = clock.Ms() + ruleStartsIn.Milliseconds()
	if r != (RefundRule{}) || x != (ExchangeRule{}) {
		cfg.RefundPolicy = &RefundPolicy{r, x}
	}
	return cfg
}

var (
	autoRefund  = RefundRule{SelfService: true, UntilBeforeStartMs: (48 * time.Hour).Milliseconds(), FeePercent: 10, FeeCents: 200, Approval: RefundApprovalAuto}
	adminRefund = RefundRule{SelfService: true, UntilBeforeStartMs: (48 * time.Hour).Milliseconds(), FeePercent: 5, Approval: RefundApprovalAdmin}
	exchange24h = ExchangeRule{Allowed: true, UntilBeforeStartMs: (24 * time.Hour).Milliseconds(), FeeCents: 300}
)

// paidOrder buys and pays qty tickets of tier for user.
func paidOrder(t *testing.T, e *Engine, sale, tier string, qty int, user string) Order {
	t.Helper()
	o, err := buy(t, e, sale, tier, qty, user, "")
	if err != nil {
		t.Fatal(err)
	}
	o, _, err = e.ApplyPayment(context.Background(), Payment{EventID: "pay-" + o.ID, OrderID: o.ID, Succeeded: true, AmountCents: o.AmountCents, Currency: "EUR"})
	if err != nil || o.Status != StatusPaid {
		t.Fatalf("pay: %+v %v", o, err)
	}
	return o
}

func tierCounts(t *testing.T, e *Engine, sale string) []TierCounts {
	t.Helper()
	s, err := e.Sale(context.Background(), sale)
	if err != nil {
		t.Fatal(err)
	}
	return s.TierCounts
}

// TestRefundWindowAtTheDecisionInstant: one second before the deadline a
// request is refunded at once with the fee kept; at it and one second after
// it is refused with refund_window_closed, and nothing changes.
func TestRefundWindowAtTheDecisionInstant(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, ruleSale("s1", clock, 10, autoRefund, ExchangeRule{})); err != nil {
		t.Fatal(err)
	}
	deadline := clock.Ms() + ruleStartsIn.Milliseconds() - autoRefund.UntilBeforeStartMs
	early := paidOrder(t, e, "s1", "floor", 3, "ann") // 15000: fee 1500 + 200
	late := paidOrder(t, e, "s1", "floor", 1, "bob")
	clock.Advance(time.Duration(deadline-clock.Ms()-1000) * time.Millisecond)

	o, err := e.RequestRefund(ctx, early.ID, "ann", "cannot come")
	if err != nil || o.Status != StatusRefunded || o.Refunds.Refund == nil {
		t.Fatalf("one second before the deadline: %+v %v", o, err)
	}
	if r := o.Refunds.Refund; r.AmountCents != 15000 || r.FeeCents != 1700 || r.Source != RefundSelfService || r.AtMs != deadline-1000 {
		t.Fatalf("refund record %+v, want 15000 with fee 1700 at %d", r, deadline-1000)
	}
	if c := tierCounts(t, e, "s1")[0]; c.Sold != 1 || c.Available != 9 {
		t.Fatalf("floor after the refund: %+v, want 1 sold", c)
	}
	again, err := e.RequestRefund(ctx, early.ID, "ann", "")
	if err != nil || *again.Refunds.Refund != *o.Refunds.Refund {
		t.Fatalf("asking again: %+v %v, want the same refund", again.Refunds.Refund, err)
	}

	for _, step := range []time.Duration{time.Second, time.Second} { // at the deadline, then one second after
		clock.Advance(step)
		_, err = e.RequestRefund(ctx, late.ID, "bob", "")
		wantCode(t, err, CodeRefundWindowClosed)
	}
	if got, _ := e.Order(ctx, late.ID); got.Status != StatusPaid || got.Refunds != nil {
		t.Fatalf("refused request changed the order: %+v", got)
	}
	if c := tierCounts(t, e, "s1")[0]; c.Sold != 1 {
		t.Fatalf("refused request changed the tier: %+v", c)
	}
}

func TestRefundFee(t *testing.T) {
	for _, c := range []struct {
		percent       int
		fixed, amount int64
		want          int64
	}{
		{10, 0, 999, 99},       // 99.9 rounds down: the buyer's favour
		{10, 200, 15000, 1700}, // percent plus fixed
		{0, 200, 150, 150},     // never more than the amount
		{100, 0, 5000, 5000},
		{0, 0, 5000, 0},
		{33, 1, 1, 1},
		{7, 0, 64 * PriceCentsMax, 64 * PriceCentsMax * 7 / 100},
	} {
		if got := refundFee(RefundRule{FeePercent: c.percent, FeeCents: c.fixed}, c.amount); got != c.want {
			t.Errorf("%d%% + %d of %d: %d, want %d", c.percent, c.fixed, c.amount, got, c.want)
		}
	}
}

func TestRefundRulesValidated(t *testing.T) {
	clock := newFakeClock()
	ok := ruleSale("s1", clock, 1, autoRefund, exchange24h)
	if r := validateSaleConfig(&ok); r != nil {
		t.Fatalf("valid rules refused: %v", r)
	}
	for _, c := range []struct {
		name   string
		change func(*SaleConfig)
	}{
		{"no starts_at", func(c *SaleConfig) { c.StartsAtMs = 0 }},
		{"exchange without starts_at", func(c *SaleConfig) { c.StartsAtMs, c.RefundPolicy.Refund = 0, RefundRule{} }},
		{"fee over 100%", func(c *SaleConfig) { c.RefundPolicy.Refund.FeePercent = 101 }},
		{"negative fee", func(c *SaleConfig) { c.RefundPolicy.Refund.FeeCents = -1 }},
		{"no approval", func(c *SaleConfig) { c.RefundPolicy.Refund.Approval = 0 }},
		{"fee without self service", func(c *SaleConfig) { c.RefundPolicy.Refund = RefundRule{FeePercent: 5} }},
		{"window over a year", func(c *SaleConfig) { c.RefundPolicy.Refund.UntilBeforeStartMs = RefundWindowMsMax + 1 }},
		{"negative window", func(c *SaleConfig) { c.RefundPolicy.Exchange.UntilBeforeStartMs = -1 }},
		{"exchange fee without allowed", func(c *SaleConfig) { c.RefundPolicy.Exchange = ExchangeRule{FeeCents: 1} }},
	} {
		cfg := ok
		p := *ok.RefundPolicy
		cfg.RefundPolicy = &p
		c.change(&cfg)
		if r := validateSaleConfig(&cfg); r == nil || r.Code != CodeInvalidRequest {
			t.Errorf("%s: got %v, want invalid_request", c.name, r)
		}
	}
}

// TestRefundRequestRefusals: the business rejections, none of which
// changes anything.
func TestRefundRequestRefusals(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	for _, cfg := range []SaleConfig{ruleSale("s1", clock, 10, autoRefund, ExchangeRule{}), testSale("plain", clock, 10, 10)} {
		if _, _, err := e.PutSale(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	pending, err := buy(t, e, "s1", "floor", 1, "ann", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.RequestRefund(ctx, pending.ID, "ann", "")
	wantCode(t, err, CodeInvalidOrderState)
	paid := paidOrder(t, e, "s1", "floor", 2, "ann")
	_, err = e.RequestRefund(ctx, paid.ID, "bob", "")
	wantCode(t, err, CodeUnknownOrder) // another buyer's order is a missing one
	if _, err := e.CheckInTicket(ctx, TicketCode(paid.ID, 0), "north"); err != nil {
		t.Fatal(err)
	}
	_, err = e.RequestRefund(ctx, paid.ID, "ann", "")
	wantCode(t, err, CodeTicketUsed)
	plain := paidOrder(t, e, "plain", "floor", 1, "ann")
	_, err = e.RequestRefund(ctx, plain.ID, "ann", "")
	wantCode(t, err, CodeRefundNotAllowed)
	_, err = e.RequestRefund(ctx, plain.ID, "ann", "bad\x00reason")
	wantCode(t, err, CodeInvalidRequest)
	if c := tierCounts(t, e, "s1")[0]; c.Sold != 2 || c.Held != 1 {
		t.Fatalf("refused requests changed the tier: %+v", c)
	}
}

// TestRefundRequestApproval: with approval "admin" a request waits in the
// queue with the fee of its instant; asking again answers the same
// request; approving refunds it, rejecting keeps the order.
func TestRefundRequestApproval(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	if _, _, err := e.PutSale(ctx, ruleSale("s1", clock, 10, adminRefund, ExchangeRule{})); err != nil {
		t.Fatal(err)
	}
	a := paidOrder(t, e, "s1", "seat", 1, "ann") // 8000: fee 400
	b := paidOrder(t, e, "s1", "seat", 2, "bob")
	o, err := e.RequestRefund(ctx, a.ID, "ann", "ill")
	if err != nil || o.Status != StatusPaid || o.Refunds.Request == nil || o.Refunds.Request.Status != RefundRequestPending || o.Refunds.Request.FeeCents != 400 {
		t.Fatalf("request: %+v %v", o.Refunds.Request, err)
	}
	clock.Advance(time.Minute)
	again, err := e.RequestRefund(ctx, a.ID, "ann", "other words")
	if err != nil || *again.Refunds.Request != *o.Refunds.Request {
		t.Fatalf("asking again: %+v %v, want %+v", again.Refunds.Request, err, o.Refunds.Request)
	}
	if _, err := e.RequestRefund(ctx, b.ID, "bob", ""); err != nil {
		t.Fatal(err)
	}
	q, err := e.RefundQueue(ctx, "", 0, 100)
	if err != nil || len(q) != 2 || q[0].OrderID != a.ID || q[0].Kind != QueueRefundRequest || q[0].FeeCents != 400 || q[0].Reason != "ill" {
		t.Fatalf("queue %+v %v", q, err)
	}
	o, err = e.SettleRefundQueueItem(ctx, q[0].ID, SettleApprove, "ok")
	if err != nil || o.Status != StatusRefunded || o.Refunds.Refund == nil || o.Refunds.Refund.Source != RefundApproved || o.Refunds.Refund.FeeCents != 400 ||
		o.Refunds.Request.Status != RefundRequestApproved || o.Refunds.Request.Note != "ok" {
		t.Fatalf("approved: %+v %+v %v", o.Refunds.Refund, o.Refunds.Request, err)
	}
	if _, err := e.SettleRefundQueueItem(ctx, q[0].ID, SettleApprove, "ok"); err != nil {
		t.Fatalf("approving twice: %v", err)
	}
	_, err = e.SettleRefundQueueItem(ctx, q[0].ID, SettleReject, "")
	wantCode(t, err, CodeInvalidOrderState)
	_, err = e.SettleRefundQueueItem(ctx, q[1].ID, SettleRefunded, "")
	wantCode(t, err, CodeInvalidRequest)
	o, err = e.SettleRefundQueueItem(ctx, q[1].ID, SettleReject, "too late")
	if err != nil || o.Status != StatusPaid || o.Refunds.Request.Status != RefundRequestRejected {
		t.Fatalf("rejected: %+v %v", o, err)
	}
	if c := tierCounts(t, e, "s1")[1]; c.Sold != 2 {
		t.Fatalf("seat after one approval and one rejection: %+v", c)
	}
	if q, _ := e.RefundQueue(ctx, "s1", 0, 100); len(q) != 0 {
		t.Fatalf("settled items still queued: %+v", q)
	}
	_, err = e.SettleRefundQueueItem(ctx, "refund_request.nope", SettleApprove, "")
	wantCode(t, err, CodeUnknownOrder)
	_, err = e.SettleRefundQueueItem(ctx, "nonsense", SettleApprove, "")
	wantCode(t, err, CodeUnknownQueueItem)
}

// TestRefundQueueLateMoneyAndDuplicates: a late payment that found its
// stock gone and a duplicate charge are listed with the requests, and
// leave the queue once marked refunded by hand.
func TestRefundQueueLateMoneyAndDuplicates(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 2)
	ctx := context.Background()
	cfg := testSale("s1", clock, 1, 10)
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	lateOrder, err := buy(t, e, "s1", "floor", 1, "ann", "")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Duration(cfg.HoldMs) * time.Millisecond)
	tick(t, e, "s1")
	dup := paidOrder(t, e, "s1", "floor", 1, "bob") // takes the last ticket
	clock.Advance(time.Second)
	late, _, err := e.ApplyPayment(ctx, Payment{EventID: "late", OrderID: lateOrder.ID, Succeeded: true, AmountCents: 5000, Currency: "EUR"})
	if err != nil || !late.NeedsRefund {
		t.Fatalf("late payment: %+v %v", late, err)
	}
	clock.Advance(time.Second)
	if _, p, err := e.ApplyPayment(ctx, Payment{EventID: "twice", OrderID: dup.ID, Succeeded: true, AmountCents: 5000, Currency: "EUR"}); err != nil || !p.DuplicateCharge() {
		t.Fatalf("duplicate charge: %v %v", p, err)
	}
	q, err := e.RefundQueue(ctx, "s1", 0, 100)
	if err != nil || len(q) != 2 || q[0].Kind != QueueNeedsRefund || q[1].Kind != QueueDuplicateCharge || q[1].EventID != "twice" {
		t.Fatalf("queue %+v %v", q, err)
	}
	if only, _ := e.RefundQueue(ctx, "", QueueDuplicateCharge, 100); len(only) != 1 || only[0].ID != q[1].ID {
		t.Fatalf("duplicate charges only: %+v", only)
	}
	_, err = e.SettleRefundQueueItem(ctx, q[0].ID, SettleApprove, "")
	wantCode(t, err, CodeInvalidRequest)
	o, err := e.SettleRefundQueueItem(ctx, q[0].ID, SettleRefunded, "bank transfer 42")
	if err != nil || o.Status != StatusRefunded || o.NeedsRefund || o.Refunds.Refund.Source != RefundByHand || o.Refunds.Refund.AmountCents != 5000 {
		t.Fatalf("late money refunded by hand: %+v %v", o, err)
	}
	o, err = e.SettleRefundQueueItem(ctx, q[1].ID, SettleRefunded, "cash")
	if err != nil || o.Status != StatusPaid || o.DuplicateCharges[0].RefundedAtMs != clock.Ms() || o.DuplicateCharges[0].Note != "cash" {
		t.Fatalf("duplicate charge refunded by hand: %+v %v", o, err)
	}
	if _, err := e.SettleRefundQueueItem(ctx, q[1].ID, SettleRefunded, "cash"); err != nil {
		t.Fatalf("marking twice: %v", err)
	}
	_, err = e.SettleRefundQueueItem(ctx, "duplicate_charge.1."+dup.ID, SettleRefunded, "")
	wantCode(t, err, CodeUnknownQueueItem)
	if q, _ := e.RefundQueue(ctx, "", 0, 100); len(q) != 0 {
		t.Fatalf("settled items still queued: %+v", q)
	}
	if c := tierCounts(t, e, "s1")[0]; c.Sold != 1 {
		t.Fatalf("floor: %+v, want bob's ticket sold", c)
	}
	_, err = e.RefundQueue(ctx, "nope", 0, 10)
	wantCode(t, err, CodeUnknownSale)
}

// TestExchange: down to a cheaper tier refunds the difference less the
// fee; up to a dearer one is refused online; a sold-out tier changes
// nothing; repeating answers the same new order; the window closes at its
// deadline.
func TestExchange(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := ruleSale("s1", clock, 4, autoRefund, exchange24h)
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	seat := paidOrder(t, e, "s1", "seat", 2, "ann")   // 16000
	floor := paidOrder(t, e, "s1", "floor", 1, "bob") // 5000

	up, err := e.Exchange(ctx, floor.ID, "bob", ExchangeRequest{TierID: "seat"}) // 8000 + 300 - 5000 owed: awaits payment (exchanges_test.go)
	if err != nil || up.Status != StatusPending || up.Refunds.AmountDueCents != 3300 {
		t.Fatalf("exchange up: %+v %v", up, err)
	}
	if _, err := e.Cancel(ctx, up.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	before := tierCounts(t, e, "s1")
	if !slices.Equal(before, []TierCounts{{Sold: 1, Available: 3}, {Sold: 2, Available: 2}}) {
		t.Fatalf("counts %+v", before)
	}

	n, err := e.Exchange(ctx, seat.ID, "ann", ExchangeRequest{SaleID: "s1", TierID: "floor"})
	if err != nil || n.ID == seat.ID || n.Status != StatusPaid || n.TierID != "floor" || n.AmountCents != 10000 || n.Refunds.ExchangedFrom == nil {
		t.Fatalf("exchange down: %+v %v", n, err)
	}
	if x := n.Refunds.ExchangedFrom; x.FromOrderID != seat.ID || x.ToOrderID != n.ID || x.DifferenceCents != 10000+300-16000 || x.FeeCents != 300 {
		t.Fatalf("exchange record %+v", x)
	}
	old, _ := e.Order(ctx, seat.ID)
	if old.Status != StatusRefunded || old.Refunds.ExchangedTo == nil || *old.Refunds.ExchangedTo != *n.Refunds.ExchangedFrom {
		t.Fatalf("old order %+v", old)
	}
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, []TierCounts{{Sold: 3, Available: 1}, {Available: 4}}) {
		t.Fatalf("counts after the exchange %+v", got)
	}
	again, err := e.Exchange(ctx, seat.ID, "ann", ExchangeRequest{TierID: "floor"})
	if err != nil || again.ID != n.ID {
		t.Fatalf("repeat: %+v %v, want %s", again, err, n.ID)
	}
	_, err = e.Exchange(ctx, seat.ID, "ann", ExchangeRequest{TierID: "seat"})
	wantCode(t, err, CodeInvalidOrderState)
	_, err = e.Exchange(ctx, n.ID, "bob", ExchangeRequest{TierID: "seat"})
	wantCode(t, err, CodeUnknownOrder)
	_, err = e.Exchange(ctx, n.ID, "ann", ExchangeRequest{SaleID: "other", TierID: "seat"})
	wantCode(t, err, CodeExchangeNotAllowed)

	// Floor has 1 left: bob's seat order of 2 cannot move there.
	pair := paidOrder(t, e, "s1", "seat", 2, "bob")
	before = tierCounts(t, e, "s1")
	_, err = e.Exchange(ctx, pair.ID, "bob", ExchangeRequest{TierID: "floor"})
	wantCode(t, err, CodeSoldOut)
	if got := tierCounts(t, e, "s1"); !slices.Equal(got, before) {
		t.Fatalf("sold-out exchange changed %+v to %+v", before, got)
	}
	if got, _ := e.Order(ctx, pair.ID); got.Status != StatusPaid || got.Refunds != nil {
		t.Fatalf("sold-out exchange changed the order: %+v", got)
	}

	// The new order can itself be refunded under the rule.
	r, err := e.RequestRefund(ctx, n.ID, "ann", "")
	if err != nil || r.Refunds.Refund.AmountCents != 10000 || r.Refunds.Refund.FeeCents != 1200 {
		t.Fatalf("refund of the new order: %+v %v", r.Refunds.Refund, err)
	}

	deadline := cfg.StartsAtMs - exchange24h.UntilBeforeStartMs
	one := paidOrder(t, e, "s1", "seat", 1, "cat")
	two := paidOrder(t, e, "s1", "seat", 1, "dan")
	clock.Advance(time.Duration(deadline-clock.Ms()-1000) * time.Millisecond)
	if _, err := e.Exchange(ctx, one.ID, "cat", ExchangeRequest{TierID: "floor"}); err != nil {
		t.Fatalf("one second before the deadline: %v", err)
	}
	clock.Advance(2 * time.Second)
	_, err = e.Exchange(ctx, two.ID, "dan", ExchangeRequest{TierID: "floor"})
	wantCode(t, err, CodeExchangeWindowClosed)
}

// dumpRefunds is the refund state in a stable order.
func dumpRefunds(st *state) string {
	var lines []string
	for k, r := range st.refunds.requests {
		lines = append(lines, fmt.Sprintf("request %x %+v", k, *r))
	}
	for k, r := range st.refunds.records {
		lines = append(lines, fmt.Sprintf("record %x %+v", k, *r))
	}
	for k, l := range st.refunds.exchangedTo {
		lines = append(lines, fmt.Sprintf("exchange %x %+v", k, *l))
	}
	for k, l := range st.refunds.exchangedFrom {
		lines = append(lines, fmt.Sprintf("exchanged from %x %+v", k, *l))
	}
	for k, cs := range st.refunds.charges {
		lines = append(lines, fmt.Sprintf("charges %x %+v", k, cs))
	}
	for k, l := range st.refunds.attempts {
		lines = append(lines, fmt.Sprintf("attempt %x %+v", k, *l))
	}
	for k, l := range st.refunds.latest {
		lines = append(lines, fmt.Sprintf("latest attempt %x %+v", k, *l))
	}
	for _, sl := range st.sales {
		lines = append(lines, fmt.Sprintf("rules %s %+v", sl.cfg.ID, sl.cfg.refundPolicy()))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// randomRefundLog drives a state through purchases, payments (late and
// duplicate ones too), refund requests, exchanges, admin settlements and
// expiries, and checks after every step that every tier's sold + held <=
// stock and that the running counts equal a recount of the orders.
func randomRefundLog(t *testing.T, rng *rand.Rand, steps int) (*state, [][]byte) {
	t.Helper()
	st := newState()
	now := int64(1_800_000_000_000)
	var log [][]byte
	var evs []event
	run := func(cmd *command) *result {
		var res result
		evs = st.execute(cmd, now, &res, evs[:0])
		if len(evs) > 0 {
			var entry []byte
			for i := range evs {
				entry = appendEvent(entry, &evs[i])
			}
			log = append(log, entry)
		}
		return &res
	}
	sales := []string{"auto", "admin", "plain"}
	rules := []RefundRule{autoRefund, adminRefund, {}}
	for i, id := range sales {
		cfg := SaleConfig{ID: id, Name: id, Currency: "EUR", OpensAtMs: now - 1, ClosesAtMs: now + 86_400_000,
			HoldMs: 60_000, PerUserLimit: 10, RefundPolicy: &RefundPolicy{Refund: rules[i]}, Catalogue: Catalogue{StartsAtMs: now + 4*86_400_000},
			Tiers: []TierConfig{
				{ID: "a", Name: "A", PriceCents: 3000, Stock: 12},
				{ID: "b", Name: "B", PriceCents: 5000, Stock: 8},
				{ID: "c", Name: "C", PriceCents: 9000, Stock: 5},
			}}
		if i < 2 {
			cfg.RefundPolicy.Exchange = ExchangeRule{Allowed: true, UntilBeforeStartMs: 86_400_000, FeeCents: int64(100 * i)}
		}
		if r := run(&command{kind: cmdPutSale, saleID: id, sale: &cfg}); r.rej != nil {
			t.Fatal(r.rej)
		}
	}
	type placed struct {
		key  orderKey
		sale string
	}
	var orders []placed
	newKey := func() orderKey {
		var k orderKey
		binary.LittleEndian.PutUint64(k[:], rng.Uint64())
		binary.LittleEndian.PutUint64(k[8:], rng.Uint64())
		return k
	}
	tiers := []string{"a", "b", "c"}
	for step := range steps {
		now += int64(rng.IntN(120_000))
		var cmd command
		if len(orders) > 0 {
			p := orders[rng.IntN(len(orders))]
			cmd = command{saleID: p.sale, order: p.key}
		}
		switch r := rng.IntN(100); {
		case r < 35 || len(orders) == 0:
			sale := sales[rng.IntN(len(sales))]
			cmd = command{kind: cmdPurchase, saleID: sale, tierID: tiers[rng.IntN(3)], qty: 1 + rng.IntN(3),
				userID: fmt.Sprint("u", rng.IntN(12)), key: fmt.Sprint("k", step), newOrder: newKey()}
			if res := run(&cmd); res.rej == nil && res.created {
				orders = append(orders, placed{cmd.newOrder, sale})
			}
		case r < 60:
			o, _ := st.orderByKey(cmd.order)
			cmd.kind = cmdPay
			amount := o.amount
			if rng.IntN(4) > 0 {
				amount = st.amountDue(o) // exchanges.go: the difference of a dearer exchange
			}
			cmd.payment = Payment{EventID: fmt.Sprint("e", rng.IntN(3*len(orders))), Succeeded: rng.IntN(10) > 0, AmountCents: amount, Currency: "EUR"}
			run(&cmd)
		case r < 70:
			o, _ := st.orderByKey(cmd.order)
			cmd.kind, cmd.userID, cmd.refund = cmdRefundRequest, o.userID, &refundCommand{text: "r"}
			run(&cmd)
		case r < 82:
			o, _ := st.orderByKey(cmd.order)
			cmd.kind, cmd.userID, cmd.tierID, cmd.newOrder = cmdExchange, o.userID, tiers[rng.IntN(3)], newKey()
			if res := run(&cmd); res.rej == nil && res.orderKey != cmd.order {
				_, known := st.refunds.exchangedFrom[res.orderKey]
				if _, opened := st.refunds.attempts[res.orderKey]; (known || opened) && !slices.ContainsFunc(orders, func(p placed) bool { return p.key == res.orderKey }) {
					orders = append(orders, placed{res.orderKey, cmd.saleID})
				}
			}
		case r < 90:
			kind := RefundQueueKind(1 + rng.IntN(3))
			action := SettleAction(1 + rng.IntN(3))
			cmd.kind, cmd.refund = cmdSettleRefund, &refundCommand{kind: kind, action: action, charge: rng.IntN(2), text: "n"}
			run(&cmd)
		case r < 93:
			cmd.kind = cmdCancel
			run(&cmd)
		default:
			evs = st.expireDue(now, 1+rng.IntN(20), evs[:0])
			if len(evs) > 0 {
				var entry []byte
				for i := range evs {
					entry = appendEvent(entry, &evs[i])
				}
				log = append(log, entry)
			}
		}
		st.checkState() // sold + held <= stock, counts = recount (panics otherwise)
		checkExchanges(t, st)
	}
	return st, log
}

// TestRefundRulesRandomizedAndRecovered: the random mix keeps the tiers'
// invariants after every step, and recovery from the log, with or without
// a snapshot in the middle, restores the refund records exactly.
func TestRefundRulesRandomizedAndRecovered(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d", seed)
	live, log := randomRefundLog(t, rand.New(rand.NewPCG(seed, 70)), 3000)
	live.dropStaleHolds()
	if len(live.refunds.requests) == 0 || len(live.refunds.records) == 0 || len(live.refunds.exchangedTo) == 0 || len(live.refunds.charges) == 0 {
		t.Fatalf("seed %d: a random log without requests, refunds, exchanges or returned charges: %d %d %d %d", seed,
			len(live.refunds.requests), len(live.refunds.records), len(live.refunds.exchangedTo), len(live.refunds.charges))
	}
	if len(live.refunds.attempts) == 0 {
		t.Fatalf("seed %d: a random log without an exchange to a dearer ticket", seed)
	}
	want := dumpFull(live) + "\n" + dumpRefunds(live)
	for _, snapAt := range []int{0, len(log) / 2, len(log)} {
		t.Run(fmt.Sprintf("snapshot=%d", snapAt), func(t *testing.T) {
			j := journalSnapshotAt(t, log, snapAt)
			states, _, err := recoverStates(j, 1, quietLogger)
			if err != nil {
				t.Fatal(err)
			}
			if got := dumpFull(states[0]) + "\n" + dumpRefunds(states[0]); got != want {
				t.Fatalf("recovered state differs:\n%s", firstDiff(want, got))
			}
			if snapAt == len(log) {
				again := states[0].snapshotEncoding()
				if !slices.EqualFunc(again, j.snaps[0].chunks, func(a, b []byte) bool { return string(a) == string(b) }) {
					t.Fatal("the restored state encodes to another snapshot")
				}
			}
		})
	}
	t.Run("repartition", func(t *testing.T) {
		states, err := repartition([]*state{live}, 3)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, st := range states {
			st.checkState()
			n += len(st.refunds.records) + len(st.refunds.requests) + len(st.refunds.exchangedTo) + len(st.refunds.charges) + len(st.refunds.attempts)
			checkExchanges(t, st)
		}
		if want := len(live.refunds.records) + len(live.refunds.requests) + len(live.refunds.exchangedTo) + len(live.refunds.charges) + len(live.refunds.attempts); n != want {
			t.Fatalf("repartition kept %d records of %d", n, want)
		}
	})
}

// TestRefundEventsRoundTrip: every event of this file encodes and decodes
// to itself; a truncated one is refused.
func TestRefundEventsRoundTrip(t *testing.T) {
	k, to := orderKey{1, 2, 3}, orderKey{9}
	for _, ev := range []event{
		{kind: evRefundRules, saleID: "s1", refund: &refundEvent{refund: autoRefund, exchange: exchange24h}},
		{kind: evRefundRequested, at: 5, order: k, refund: &refundEvent{amount: 100, fee: 7, text: "why"}},
		{kind: evRefundRequestRejected, at: 6, order: k, refund: &refundEvent{text: "no"}},
		{kind: evRefundSettled, at: 7, order: k, refund: &refundEvent{source: RefundApproved, amount: 100, fee: 7, text: "ok"}},
		{kind: evOrderExchanged, at: 8, order: k, refund: &refundEvent{to: to, amount: -500, fee: 300}},
		{kind: evExchangeOpened, at: 8, order: k, refund: &refundEvent{to: to, amount: 3300, fee: 300}},
		{kind: evChargeRefunded, at: 9, order: k, refund: &refundEvent{charge: 3, text: "cash"}},
	} {
		b := appendEvent(nil, &ev)
		var got event
		if err := decodeEntry(b, func(e *event) error { got = *e; return nil }); err != nil {
			t.Fatalf("%s: %v", ev.kind, err)
		}
		if got.kind != ev.kind || got.at != ev.at || got.order != ev.order || got.saleID != ev.saleID || *got.refund != *ev.refund {
			t.Fatalf("%s: decoded %+v %+v, want %+v %+v", ev.kind, got, *got.refund, ev, *ev.refund)
		}
		var scratch event
		var cfg SaleConfig
		if err := decodeRecord(b[3:len(b)-1], &scratch, &cfg, nil); err == nil { // one byte short
			t.Fatalf("%s: a truncated record decoded", ev.kind)
		}
	}
}
