package engine

import (
	"cmp"
	"context"
	"fmt"
	"math/bits"
	"slices"
)

// Reports: a sale's (or an event's) numbers after the rush. A report reads
// every order of the sale, a million in a big one, and the shard that owns
// them must keep selling meanwhile. So the shard does only what is cheap:
// one command (cmdSaleReport) takes a copy-on-write view of its orders
// (orderTable.freeze: a copy of the chunk pointers, as a snapshot takes),
// the sale's config and counters, its share of the admissions (an
// append-only list, shared by capping it) and the sums of its duplicate
// charges. The caller's goroutine then aggregates the frozen view at
// leisure; the shard pays later only a chunk copy on its first write to
// each chunk the view shares, as it does after a snapshot.
//
// What the numbers mean:
//
//   - revenue: the amounts of orders that stand paid and need no refund.
//     Money taken for an order that must be given back (paid with
//     needs_refund) and refunded orders are not revenue; refunds are counted
//     apart. Refund fees do not exist yet: RefundFeesCents is always 0.
//   - the rush curve counts orders by the minute they were placed: placed,
//     and of those the orders that stand paid now. Payments per minute
//     (when the money arrived) are kept per sale, not per order
//     (paycurve.go).
//   - check-ins are counted per gate in 5-minute buckets of the scan's time.
//     Tickets checked in before gates were logged have no gate and no time:
//     they count in the gate "" total, in no bucket.
//
// Coupon use will be reported once coupons exist (a section beside Money).

// CodeUnknownEvent: no sale names the event.
const CodeUnknownEvent Code = "unknown_event"

const (
	// RushBucketsMax bounds a rush curve: a week of minutes. A longer
	// life gets wider buckets (BucketMinutes), never more of them.
	RushBucketsMax = 7 * 24 * 60
	// BusiestMax is how many busiest buckets a report lists.
	BusiestMax = 10
	// CheckInBucketMinutes is the width of a check-in bucket, unless the
	// door stayed open longer than RushBucketsMax of them.
	CheckInBucketMinutes = 5
	// AttendeesPageMax bounds the orders one SaleAttendees call reads.
	AttendeesPageMax = 10_000
	// EventSalesMax bounds the sales an event report reads.
	EventSalesMax = 1000
)

// Report is a sale's or an event's numbers. An event's report sums over
// its sales; Sales lists each with its tiers.
type Report struct {
	Event    string // the event (an event's report), or the sale's event ("" if none)
	Sales    []ReportSale
	Orders   OrderCounts
	Money    []MoneyTotals // one per currency, by currency
	Rush     RushCurve
	CheckIns CheckInCurve
	// PaymentsPerMinute: payments and refunds per UTC minute with any, in
	// time order (paycurve.go).
	PaymentsPerMinute []PaymentMinute
}

// ReportSale is one sale of a report.
type ReportSale struct {
	ID, Name, Currency, Event string
	StartsAtMs                int64
	Closed                    bool
	Orders                    OrderCounts
	Money                     MoneyTotals
	Tiers                     []ReportTier
}

// ReportTier is one tier's numbers. Stock = Sold + Held + Available, as in
// TierCounts; Orders counts orders in any status.
type ReportTier struct {
	ID, Name      string
	PriceCents    int64
	Stock         int
	Sold          int
	Held          int
	Available     int
	Orders        int
	PaidOrders    int // stand paid and need no refund
	RevenueCents  int64
	Refunds       int
	RefundedCents int64
}

// OrderCounts counts orders by status. Paid excludes PaidNeedsRefund.
type OrderCounts struct {
	Total, Pending, Paid, PaidNeedsRefund, Cancelled, Expired, Refunded int
}

// MoneyTotals are the amounts of one currency, in cents.
type MoneyTotals struct {
	Currency             string
	RevenueCents         int64 // orders that stand paid and need no refund
	NeedsRefundCents     int64 // paid with needs_refund: taken, owed back
	Refunds              int
	RefundedCents        int64
	RefundFeesCents      int64 // 0 until refund rules (fees) exist
	DuplicateCharges     int
	DuplicateChargeCents int64
}

// RushCurve counts orders per bucket from the first order's minute to the
// last's. Buckets are BucketMinutes wide (1 unless the life was longer than
// RushBucketsMax minutes) and start at StartMs + i*BucketMinutes minutes.
type RushCurve struct {
	StartMs       int64 // a UTC minute; 0 when there is no order
	BucketMinutes int
	Buckets       []RushBucket
	Busiest       []RushBucket // up to BusiestMax buckets, most placed first, earlier first on ties
}

// RushBucket is one bucket of the rush curve.
type RushBucket struct {
	AtMs          int64
	Placed        int // orders placed in the bucket
	PlacedTickets int
	Paid          int // of those, orders that stand paid now (no refund needed)
}

// CheckInCurve counts admissions per gate.
type CheckInCurve struct {
	StartMs       int64 // start of the first bucket; 0 when nobody was admitted with a time
	BucketMinutes int
	Admitted      int
	Gates         []GateCheckIns // by gate name
}

// GateCheckIns is one gate's admissions; Buckets lists the non-empty
// buckets in time order.
type GateCheckIns struct {
	Gate     string
	Admitted int
	Buckets  []CheckInBucket
}

// CheckInBucket is the admissions of one gate in one bucket.
type CheckInBucket struct {
	AtMs     int64
	Admitted int
}

// frozenSale is what cmdSaleReport hands out of the shard: nothing in it
// is written after, so any goroutine may read it.
type frozenSale struct {
	cfg        SaleConfig // replaced on change, never modified in place
	closed     bool
	si         int32
	tiers      []tierCount
	orders     frozenOrders
	onlySale   bool        // every order of the view is the sale's
	admissions []admission // the shard's, capped: appends go elsewhere
	charges    int
	chargeSum  int64
	pays       []payMinute // a copy (paycurve.go)

	// mine is the set of the sale's checked-in orders, built on the
	// caller's goroutine the first time saleAdmissions needs it.
	mine map[orderKey]struct{}
}

// reportResult is the answer of the report commands.
type reportResult struct {
	sale      *frozenSale
	attendees []AttendeeRow
	next      int
}

// decideReportRead checks the sale of a report command; it logs nothing.
func (st *state) decideReportRead(cmd *command) *Rejection {
	if sl, _ := st.saleByID(cmd.saleID); sl == nil {
		return reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	return nil
}

// answerReport runs on the shard's loop: it must stay short whatever the
// sale's size. cmdSaleReport copies chunk pointers and counters (the
// duplicate charges are a map of the few orders that have any);
// cmdSaleAttendees reads at most cmd.limit of the sale's orders.
func (st *state) answerReport(cmd *command, res *result) {
	sl, si := st.saleByID(cmd.saleID)
	if cmd.kind == cmdSaleAttendees {
		res.reports = st.attendeesPage(sl, si, cmd.after, cmd.limit)
		return
	}
	f := &frozenSale{
		cfg: sl.cfg, closed: sl.closed, si: si, tiers: slices.Clone(sl.tiers),
		orders: st.orders.freeze(), onlySale: sl.orders == int(st.orders.n),
		admissions: st.door.list[:len(st.door.list):len(st.door.list)],
		pays:       slices.Clone(sl.pays),
	}
	for k, list := range st.charges { // sums: the order of the map does not matter
		if o, _ := st.orderByKey(k); o != nil && o.sale == si {
			for _, c := range list {
				f.charges++
				f.chargeSum += c.AmountCents
			}
		}
	}
	res.reports = &reportResult{sale: f}
}

// SaleReport returns a sale's report. The shard is held only to freeze the
// sale; the report is computed on the caller's goroutine.
func (e *Engine) SaleReport(ctx context.Context, saleID string) (Report, error) {
	f, err := e.freezeSale(ctx, saleID)
	if err != nil {
		return Report{}, err
	}
	r := buildReport([]*frozenSale{f})
	r.Event = f.cfg.Event
	return r, nil
}

// EventReport returns the report of every sale whose catalogue names the
// event, summed, each sale frozen in turn.
func (e *Engine) EventReport(ctx context.Context, event string) (Report, error) {
	var ids []string
	for _, v := range e.views.all() {
		if v.Event == event && event != "" {
			ids = append(ids, v.ID)
		}
	}
	if len(ids) == 0 {
		return Report{}, reject(CodeUnknownEvent, "no sale names the event %q", event)
	}
	if len(ids) > EventSalesMax {
		return Report{}, reject(CodeInvalidRequest, "event %q has %d sales; a report reads at most %d", event, len(ids), EventSalesMax)
	}
	frozen := make([]*frozenSale, 0, len(ids))
	for _, id := range ids {
		f, err := e.freezeSale(ctx, id)
		if err != nil {
			return Report{}, err
		}
		frozen = append(frozen, f)
	}
	r := buildReport(frozen)
	r.Event = event
	return r, nil
}

func (e *Engine) freezeSale(ctx context.Context, saleID string) (*frozenSale, error) {
	var f *frozenSale
	err := e.one(ctx, saleID, command{kind: cmdSaleReport, saleID: saleID}, func(res *result) { f = res.reports.sale })
	return f, err
}

// buildReport aggregates frozen sales: one pass per sale for the counts and
// the curves' ranges, then one for the buckets.
func buildReport(frozen []*frozenSale) Report {
	var r Report
	rush := span{}
	door := span{}
	for _, f := range frozen {
		s := f.summarise(&rush)
		r.Sales = append(r.Sales, s)
		r.Orders.add(s.Orders)
		r.Money = addMoney(r.Money, s.Money)
		f.admissionSpan(&door)
	}
	r.Rush = rushCurve(frozen, rush)
	r.CheckIns = checkInCurve(frozen, door)
	r.PaymentsPerMinute = paymentMinutes(frozen) // paycurve.go
	return r
}

// span is the range of times a curve covers, in ms.
type span struct {
	min, max int64
	any      bool
}

func (s *span) add(ms int64) {
	if !s.any {
		s.min, s.max, s.any = ms, ms, true
		return
	}
	s.min, s.max = min(s.min, ms), max(s.max, ms)
}

// buckets plans a curve over the span: its start (floor to the bucket
// width's minute), width in minutes (a multiple of unitMinutes) and count.
func (s span) buckets(unitMinutes int) (startMs int64, widthMinutes, n int) {
	if !s.any {
		return 0, unitMinutes, 0
	}
	unitMs := int64(unitMinutes) * 60_000
	first, last := floorDiv(s.min, unitMs), floorDiv(s.max, unitMs)
	units := last - first + 1
	per := (units + RushBucketsMax - 1) / RushBucketsMax
	widthMs := per * unitMs
	startMs = floorDiv(s.min, widthMs) * widthMs
	n = int((s.max-startMs)/widthMs) + 1
	return startMs, int(per) * unitMinutes, n
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// summarise counts the sale's orders by status and tier.
func (f *frozenSale) summarise(rush *span) ReportSale {
	cfg := &f.cfg
	s := ReportSale{ID: cfg.ID, Name: cfg.Name, Currency: cfg.Currency, Event: cfg.Event,
		StartsAtMs: cfg.StartsAtMs, Closed: f.closed, Tiers: make([]ReportTier, len(f.tiers))}
	for t, tc := range f.tiers {
		tier := &cfg.Tiers[t]
		s.Tiers[t] = ReportTier{ID: tier.ID, Name: tier.Name, PriceCents: tier.PriceCents, Stock: tier.Stock,
			Sold: tc.sold, Held: tc.held, Available: tier.Stock - tc.sold - tc.held}
	}
	m := MoneyTotals{Currency: cfg.Currency, DuplicateCharges: f.charges, DuplicateChargeCents: f.chargeSum}
	f.each(func(o *order) {
		tr := &s.Tiers[o.tier]
		tr.Orders++
		s.Orders.Total++
		rush.add(o.createdAt)
		switch o.status {
		case StatusPending:
			s.Orders.Pending++
		case StatusPaid:
			if o.needsRefund {
				s.Orders.PaidNeedsRefund++
				m.NeedsRefundCents += o.amount
				break
			}
			s.Orders.Paid++
			tr.PaidOrders++
			tr.RevenueCents += o.amount
			m.RevenueCents += o.amount
		case StatusCancelled:
			s.Orders.Cancelled++
		case StatusExpired:
			s.Orders.Expired++
		case StatusRefunded:
			s.Orders.Refunded++
			tr.Refunds++
			tr.RefundedCents += o.amount
			m.Refunds++
			m.RefundedCents += o.amount
		}
	})
	s.Money = m
	return s
}

// each calls fn for every order of the sale, in creation order.
func (f *frozenSale) each(fn func(*order)) {
	for i := int32(0); i < f.orders.n; i++ {
		if o := f.orders.at(i); o.sale == f.si {
			fn(o)
		}
	}
}

func (c *OrderCounts) add(o OrderCounts) {
	c.Total += o.Total
	c.Pending += o.Pending
	c.Paid += o.Paid
	c.PaidNeedsRefund += o.PaidNeedsRefund
	c.Cancelled += o.Cancelled
	c.Expired += o.Expired
	c.Refunded += o.Refunded
}

// addMoney adds m to the totals of its currency, keeping them sorted.
func addMoney(all []MoneyTotals, m MoneyTotals) []MoneyTotals {
	i, found := slices.BinarySearchFunc(all, m.Currency, func(t MoneyTotals, c string) int { return cmp.Compare(t.Currency, c) })
	if !found {
		return slices.Insert(all, i, m)
	}
	t := &all[i]
	t.RevenueCents += m.RevenueCents
	t.NeedsRefundCents += m.NeedsRefundCents
	t.Refunds += m.Refunds
	t.RefundedCents += m.RefundedCents
	t.RefundFeesCents += m.RefundFeesCents
	t.DuplicateCharges += m.DuplicateCharges
	t.DuplicateChargeCents += m.DuplicateChargeCents
	return all
}

func rushCurve(frozen []*frozenSale, s span) RushCurve {
	start, width, n := s.buckets(1)
	c := RushCurve{StartMs: start, BucketMinutes: width, Buckets: make([]RushBucket, n)}
	widthMs := int64(width) * 60_000
	for i := range c.Buckets {
		c.Buckets[i].AtMs = start + int64(i)*widthMs
	}
	for _, f := range frozen {
		f.each(func(o *order) {
			b := &c.Buckets[(o.createdAt-start)/widthMs]
			b.Placed++
			b.PlacedTickets += int(o.qty)
			if o.status == StatusPaid && !o.needsRefund {
				b.Paid++
			}
		})
	}
	busiest := make([]RushBucket, 0, n)
	for _, b := range c.Buckets {
		if b.Placed > 0 {
			busiest = append(busiest, b)
		}
	}
	slices.SortStableFunc(busiest, func(a, b RushBucket) int { return cmp.Compare(b.Placed, a.Placed) })
	c.Busiest = busiest[:min(len(busiest), BusiestMax)]
	return c
}

// saleAdmissions calls fn for each admission of the sale's tickets, in
// log order. An admission names its order by key; a shard with other
// sales' orders needs the set of this sale's checked-in orders to tell.
func (f *frozenSale) saleAdmissions(fn func(*admission)) {
	if !f.onlySale && f.mine == nil {
		f.mine = make(map[orderKey]struct{})
		f.each(func(o *order) {
			if o.checkedIn != 0 {
				f.mine[o.key] = struct{}{}
			}
		})
	}
	mine := f.mine
	for i := range f.admissions {
		a := &f.admissions[i]
		if mine != nil {
			if _, ok := mine[a.order]; !ok {
				continue
			}
		}
		fn(a)
	}
}

func (f *frozenSale) admissionSpan(s *span) {
	f.saleAdmissions(func(a *admission) { s.add(a.at) })
}

func checkInCurve(frozen []*frozenSale, s span) CheckInCurve {
	start, width, _ := s.buckets(CheckInBucketMinutes)
	c := CheckInCurve{StartMs: start, BucketMinutes: width}
	widthMs := int64(width) * 60_000
	gates := map[string]*GateCheckIns{}
	gate := func(name string) *GateCheckIns {
		g := gates[name]
		if g == nil {
			g = &GateCheckIns{Gate: name}
			gates[name] = g
		}
		return g
	}
	for _, f := range frozen {
		timed := 0
		f.saleAdmissions(func(a *admission) {
			timed++
			g := gate(a.gate)
			g.Admitted++
			at := start + (a.at-start)/widthMs*widthMs
			// Admissions come in log order, mostly in time order: a
			// bucket is usually the gate's last one.
			if k := len(g.Buckets); k > 0 && g.Buckets[k-1].AtMs == at {
				g.Buckets[k-1].Admitted++
				return
			}
			g.Buckets = append(g.Buckets, CheckInBucket{AtMs: at, Admitted: 1})
		})
		untimed := -timed
		f.each(func(o *order) { untimed += bits.OnesCount64(o.checkedIn) })
		if untimed > 0 {
			gate("").Admitted += untimed
		}
	}
	for _, g := range gates {
		c.Admitted += g.Admitted
		c.Gates = append(c.Gates, *g)
	}
	slices.SortFunc(c.Gates, func(a, b GateCheckIns) int { return cmp.Compare(a.Gate, b.Gate) })
	for i := range c.Gates {
		c.Gates[i].Buckets = mergeBuckets(c.Gates[i].Buckets)
	}
	return c
}

// mergeBuckets sorts a gate's buckets and merges equal ones (offline
// gates upload late, so their admissions reach the log out of time order).
func mergeBuckets(bs []CheckInBucket) []CheckInBucket {
	if slices.IsSortedFunc(bs, func(a, b CheckInBucket) int { return cmp.Compare(a.AtMs, b.AtMs) }) {
		return bs
	}
	slices.SortStableFunc(bs, func(a, b CheckInBucket) int { return cmp.Compare(a.AtMs, b.AtMs) })
	out := bs[:1]
	for _, b := range bs[1:] {
		if last := &out[len(out)-1]; last.AtMs == b.AtMs {
			last.Admitted += b.Admitted
			continue
		}
		out = append(out, b)
	}
	return out
}

// AttendeeRow is one ticket of a sale's export of attendees: a ticket of an
// order that stands paid (and needs no refund), or a checked-in ticket of
// an order refunded after entry (its holder was let in).
type AttendeeRow struct {
	TicketID  string // "<order_id>.<n>"
	OrderID   string
	Ticket    int
	TierID    string
	UserID    string
	BoxOffice *BoxOffice // the box-office record (a sealed contact), or nil; shared: never modify
	Status    OrderStatus
	CheckedIn bool
	Gate      string // "" if not checked in, or checked in before gates were logged
	AtMs      int64  // when the gate scanned it; 0 likewise
}

// SaleAttendees pages through a sale's attendees, order by order in
// creation order: the tickets of up to limit orders after the cursor (""
// for the start), and the cursor of the next page ("" when there is none).
// Each page is one short visit to the shard.
func (e *Engine) SaleAttendees(ctx context.Context, saleID, cursor string, limit int) ([]AttendeeRow, string, error) {
	after := -1
	if cursor != "" {
		n, err := fmt.Sscanf(cursor, "%d", &after)
		if n != 1 || err != nil || after < 0 {
			return nil, "", reject(CodeInvalidRequest, "cursor %q is not one this server gave", cursor)
		}
	}
	limit = min(max(limit, 1), AttendeesPageMax)
	var out []AttendeeRow
	next := ""
	err := e.one(ctx, saleID, command{kind: cmdSaleAttendees, saleID: saleID, after: after, limit: limit},
		func(res *result) {
			out = res.reports.attendees
			if res.reports.next >= 0 {
				next = fmt.Sprint(res.reports.next)
			}
		})
	return out, next, err
}

// attendeesPage reads the attendees of up to limit of the sale's orders
// after index after; next is the index to continue after, or -1.
func (st *state) attendeesPage(sl *sale, si int32, after, limit int) *reportResult {
	res := &reportResult{next: -1}
	seen := 0
	for idx := int32(after + 1); idx < st.orders.n; idx++ {
		o := st.orders.at(idx)
		if o.sale != si {
			continue
		}
		if seen == limit {
			res.next = int(idx) - 1
			break
		}
		seen++
		kept := o.status == StatusPaid && !o.needsRefund
		if !kept && !(o.status == StatusRefunded && o.checkedIn != 0) {
			continue
		}
		orderID := formatOrderID(sl.cfg.ID, o.key)
		for n := range int(o.qty) {
			in := o.checkedIn&(1<<n) != 0
			if !kept && !in {
				continue
			}
			a := AttendeeRow{TicketID: TicketCode(orderID, n), OrderID: orderID, Ticket: n,
				TierID: sl.cfg.Tiers[o.tier].ID, UserID: o.userID, BoxOffice: st.boxOffice[o.key],
				Status: o.status, CheckedIn: in}
			if in {
				if ad := st.door.find(o.key, uint8(n)); ad != nil {
					a.Gate, a.AtMs = ad.gate, ad.at
				}
			}
			res.attendees = append(res.attendees, a)
		}
	}
	return res
}
