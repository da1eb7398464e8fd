package engine

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Exchanges to a dearer ticket (issue 13), as a box office does them: the
// buyer pays the difference, and until the money comes the old ticket
// stays valid.
//
//   - The exchange decision (decideExchange, refundrules.go) of a positive
//     difference opens an exchange: a new pending order of the new tier for
//     the buyer (its stock held for the sale's hold, like any purchase; its
//     amount the new tier's price) and an ExchangeOpened event linking it to
//     the old order with the difference and the fee, in one log entry. The
//     old order stays paid and valid.
//   - The new order's payment due is the difference, not its amount:
//     decidePay checks a payment against amountDue. A successful payment of
//     the difference pays the new order and releases the old one
//     (OrderExchanged, as an exchange to a cheaper ticket does) in one
//     decision, so the buyer never holds both tickets, nor neither.
//   - The new order expiring or being cancelled leaves the old one as it
//     was. Money for it that comes late completes the exchange if the old
//     order can still be released and the new tier has the stock; else it
//     is kept for a refund (needs_refund, a late_payment payout of the
//     difference), as any late payment. So is a payment that comes after the
//     old order was refunded or one of its tickets checked in.
//   - Asking again while the exchange awaits payment answers the same
//     pending order; asking for another tier then is invalid_order_state.
//     Once the attempt lapsed, asking again opens a new one (its
//     idempotency key counts the attempts: "exchange of <id> #2").
//   - A refund of an exchanged order returns what the buyer paid for it
//     through the payments that took the money, newest first: up to the
//     difference through the new order's payment, the rest through the
//     old order's (refundPayouts).
//
// The records (attempts) are kept after the attempt ends, one per order an
// exchange opened: they say what the order's payment due is and where its
// money came from. A shard without any pays one length check on a payment
// and on an order's view.

// exchangesSectionTag is the attempts' snapshot section (tag 73 is kept
// for exchanges across sales, not built yet).
const exchangesSectionTag = 72

// Statuses of an exchange, as an order's view shows them.
const (
	ExchangeAwaitingPayment = "awaiting_payment" // the new order is pending
	ExchangeCompleted       = "completed"        // the old order was released for the new
	ExchangeLapsed          = "lapsed"           // the new order expired, was cancelled or got no ticket
)

// exchangeAttemptKey is the idempotency key of an exchange's new order: it
// has a space, which a client's Idempotency-Key cannot. The first attempt
// keeps the key of an exchange paid at once.
func exchangeAttemptKey(saleID string, old orderKey, attempt int) string {
	if attempt <= 1 {
		return exchangeIdemKey(saleID, old)
	}
	return exchangeIdemKey(saleID, old) + " #" + strconv.Itoa(attempt)
}

// pendingExchange answers an exchange asked again while one is open: nil
// and no rejection when there is none (decide goes on), else the same
// pending order (answered by answerRefundRules) or a refusal.
func (st *state) pendingExchange(o *order, sl *sale, tierID string) (open bool, rej *Rejection) {
	l := st.refunds.latest[o.key]
	if l == nil {
		return false, nil
	}
	to, _ := st.orderByKey(l.to)
	if to.status != StatusPending {
		return false, nil // lapsed: a new attempt may be made
	}
	if id := sl.cfg.Tiers[to.tier].ID; id != tierID {
		return true, reject(CodeInvalidOrderState, "an exchange to tier %q awaits payment (order %s); cancel it first",
			id, formatOrderID(sl.cfg.ID, to.key))
	}
	return true, nil
}

// openExchange appends the events of an exchange to tier t that costs diff
// more: the new pending order and the link. decideExchange checked the
// rule, the order and the stock.
func (st *state) openExchange(o *order, sl *sale, t int, amount, diff, fee int64, cmd *command, now int64, evs []event) []event {
	attempt := 1
	if l := st.refunds.latest[o.key]; l != nil {
		attempt = l.attempt + 1
	}
	return append(evs,
		event{kind: evOrderPlaced, at: now, saleID: sl.cfg.ID, order: cmd.newOrder, userID: o.userID,
			key: exchangeAttemptKey(sl.cfg.ID, o.key, attempt), tier: uint16(t), qty: o.qty, amount: amount, expiresAt: now + sl.cfg.HoldMs},
		event{kind: evExchangeOpened, at: now, order: o.key, refund: &refundEvent{to: cmd.newOrder, amount: diff, fee: fee}},
	)
}

// cancelOpenExchange appends the cancellation of the exchange awaiting
// payment from o, if any: an admin refunding o (refunds.go, or approving
// its request) ends the exchange in the same decision, so its hold goes
// back at once rather than when it expires.
func (st *state) cancelOpenExchange(o *order, now int64, evs []event) []event {
	if len(st.refunds.latest) == 0 {
		return evs
	}
	if l := st.refunds.latest[o.key]; l != nil {
		if to, _ := st.orderByKey(l.to); to.status == StatusPending {
			evs = append(evs, event{kind: evOrderCancelled, at: now, order: to.key})
		}
	}
	return evs
}

// amountDue is what a payment of o must be: the difference for an order
// an exchange to a dearer ticket opened (in its sale, or from another
// session: xsession.go), else its amount.
func (st *state) amountDue(o *order) int64 {
	if len(st.refunds.attempts) > 0 {
		if l := st.refunds.attempts[o.key]; l != nil {
			return l.difference
		}
	}
	if len(st.xs.in) > 0 {
		if r := st.xs.in[o.key]; r != nil && r.diff > 0 {
			return r.diff
		}
	}
	return o.amount
}

// attemptOf returns the exchange that opened o, nil for any other order.
func (st *state) attemptOf(o *order) *exchangeLink {
	if len(st.refunds.attempts) == 0 {
		return nil
	}
	return st.refunds.attempts[o.key]
}

// payExchange decides a successful payment of the difference for the new
// order o of exchange l (not paid yet): it pays o and releases the old
// order when it still can, else it keeps the money for a refund.
func (st *state) payExchange(o *order, l *exchangeLink, p *Payment, now int64, res *result, evs []event) []event {
	sl := st.sales[o.sale]
	old, _ := st.orderByKey(l.from)
	releasable := old != nil && old.status == StatusPaid && !old.needsRefund && old.checkedIn == 0 &&
		st.refunds.exchangedTo[old.key] == nil
	if o.status != StatusPending {
		// Late money: the new order's stock was released; take it again
		// if it is there. The per-user limit is not asked: the old order's
		// tickets go as the new ones come.
		releasable = releasable && sl.available(int(o.tier)) >= int(o.qty) && st.attendeesFit(o)
	}
	res.payment = PaymentApplied
	if releasable {
		return append(evs,
			event{kind: evOrderPaid, at: now, order: o.key, paymentID: p.EventID},
			event{kind: evOrderExchanged, at: now, order: old.key, refund: &refundEvent{to: o.key, amount: l.difference, fee: l.fee}})
	}
	if o.status == StatusPending {
		evs = append(evs, event{kind: evOrderCancelled, at: now, order: o.key}) // its hold goes back
	}
	return append(evs, event{kind: evOrderPaid, at: now, order: o.key, paymentID: p.EventID, needsRefund: true})
}

// applyExchangeOpened links a new pending order to the order it would
// replace.
func (st *state) applyExchangeOpened(ev *event) error {
	from, _ := st.orderByKey(ev.order)
	to, _ := st.orderByKey(ev.refund.to)
	rs := &st.refunds
	switch {
	case from == nil || to == nil || from.sale != to.sale:
		return fmt.Errorf("%w: ExchangeOpened of orders not held in one sale", errCorrupt)
	case to.status != StatusPending || rs.attempts[to.key] != nil || rs.exchangedTo[from.key] != nil:
		return fmt.Errorf("%w: ExchangeOpened of a %s order, twice, or of an order exchanged already", errCorrupt, to.status)
	}
	attempt := 1
	if l := rs.latest[from.key]; l != nil {
		attempt = l.attempt + 1
	}
	rs.linkAttempt(&exchangeLink{from: from.key, to: to.key, difference: ev.refund.amount, fee: ev.refund.fee, at: ev.at, attempt: attempt})
	st.touch(from.sale)
	return nil
}

func (rs *refundState) linkAttempt(l *exchangeLink) {
	if rs.attempts == nil {
		rs.attempts = make(map[orderKey]*exchangeLink)
		rs.latest = make(map[orderKey]*exchangeLink)
	}
	rs.attempts[l.to] = l
	if cur := rs.latest[l.from]; cur == nil || cur.attempt < l.attempt {
		rs.latest[l.from] = l
	}
}

// exchangeStatus says where exchange l is.
func (st *state) exchangeStatus(l *exchangeLink) string {
	if done := st.refunds.exchangedTo[l.from]; done != nil && done.to == l.to {
		return ExchangeCompleted
	}
	if to, _ := st.orderByKey(l.to); to != nil && to.status == StatusPending {
		return ExchangeAwaitingPayment
	}
	return ExchangeLapsed
}

// attemptView is exchange l as an order's view shows it.
func (st *state) attemptView(l *exchangeLink, saleID string) *Exchange {
	x := l.view(saleID)
	x.Status = st.exchangeStatus(l)
	return x
}

// paymentPart is a payment that took some of an order's money: took of
// its total (providers want both).
type paymentPart struct {
	paymentID   string
	took, total int64
}

// paymentParts lists the payments that took o's money, newest first: an
// order an exchange made was paid by the difference on its own payment
// (when the difference was positive) and by the payments of the orders it
// replaced; an order an exchange from another session made brings its old
// order's payments (xsession.go). At most xsPartsMax, the newest.
func (st *state) paymentParts(o *order) []paymentPart {
	var parts []paymentPart
	cur := o
	for range 64 { // a chain of exchanges, bounded
		l := st.refunds.exchangedFrom[cur.key]
		if l == nil {
			parts = append(parts, st.ownPayments(cur)...)
			break
		}
		if l.difference > 0 {
			parts = append(parts, paymentPart{cur.paymentID, l.difference, l.difference})
		}
		prev, _ := st.orderByKey(l.from)
		if prev == nil {
			break
		}
		cur = prev
	}
	if len(parts) == 0 {
		parts = append(parts, paymentPart{o.paymentID, o.amount, o.amount})
	}
	return parts[:min(len(parts), xsPartsMax)]
}

// ownPayments are the payments of an order no same-sale exchange made:
// its own, or for one an exchange from another session made, the
// difference's and what the old order's payments still hold (a negative
// difference went back through them at step (b)).
func (st *state) ownPayments(o *order) []paymentPart {
	var r *xsIn
	if len(st.xs.in) > 0 {
		r = st.xs.in[o.key]
	}
	if r == nil || r.parts == nil {
		return []paymentPart{{o.paymentID, o.amount, o.amount}}
	}
	var parts []paymentPart
	if r.diff > 0 {
		parts = append(parts, paymentPart{o.paymentID, r.diff, r.diff})
	}
	returned := max(-r.diff, 0)
	for i, p := range r.parts {
		n := min(returned, p.took)
		if i == len(r.parts)-1 {
			n = returned
		}
		p.took = max(p.took-n, 0)
		returned -= n
		parts = append(parts, p)
	}
	return parts
}

// refundPayouts records the payouts of a refund of back on o, out of the
// payments that took o's money (paymentParts). The newest payment pays
// back first, each at most what it took; what no payment covers (none:
// the buyer never gets more back than the order's amount) goes on the
// last.
func (st *state) refundPayouts(o *order, reason PayoutReason, back int64, currency string, at int64) {
	parts := st.paymentParts(o)
	for i, p := range parts {
		n := min(back, p.took)
		if i == len(parts)-1 {
			n = back
		}
		if n > 0 {
			st.addPayoutOf(o, reason, p.paymentID, n, p.total, currency, true, at)
		}
		if back -= n; back <= 0 {
			return
		}
	}
}

// ExchangeOpened's body: at key newKey difference fee (after the new
// order's OrderPlaced). Encoded by appendRefundEvent as OrderExchanged is.

// The attempts' snapshot section (tag 72), by new order key:
//
//	nattempts | {fromKey toKey difference fee atMs attempt}*
func init() {
	registerSnapshotSection(snapshotSection{tag: exchangesSectionTag, freeze: freezeExchanges, restore: restoreExchanges})
}

func freezeExchanges(st *state) func([]byte) []byte {
	rs := st.refunds
	if len(rs.attempts) == 0 {
		return nil
	}
	links := make([]*exchangeLink, 0, len(rs.attempts)) // links are never modified: shared
	for _, k := range sortedKeys(rs.attempts) {
		links = append(links, rs.attempts[k])
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(links)))
		for _, l := range links {
			b = append(b, l.from[:]...)
			b = append(b, l.to[:]...)
			b = binary.AppendVarint(b, l.difference)
			b = binary.AppendVarint(b, l.fee)
			b = binary.AppendVarint(b, l.at)
			b = binary.AppendUvarint(b, uint64(l.attempt))
		}
		return b
	}
}

func restoreExchanges(st *state, body []byte) error {
	d := decoder{b: body}
	rs := &st.refunds
	for range d.uvarint(uint64(len(st.byKey))) {
		l := &exchangeLink{from: d.key(), to: d.key(), difference: d.varint(), fee: d.varint(), at: d.varint(),
			attempt: int(d.uvarint(uint64(len(st.byKey))))}
		from, _ := st.orderByKey(l.from)
		to, _ := st.orderByKey(l.to)
		if d.err != nil || from == nil || to == nil || from.sale != to.sale || l.attempt == 0 || rs.attempts[l.to] != nil {
			d.fail("an exchange attempt of orders not held, or twice")
			break
		}
		rs.linkAttempt(l)
	}
	return d.finish("exchanges section")
}

// moveExchanges files the attempts on the new shard of their sale
// (repartition); both orders of one are in the same sale.
func moveExchanges(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		for k, l := range st.refunds.attempts {
			o, _ := st.orderByKey(k)
			states[route(st.sales[o.sale].cfg.ID)].refunds.linkAttempt(l)
		}
	}
}
