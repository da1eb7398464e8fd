package engine

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"
)

// Exchanges into another session of the same event (issue 13): the buyer
// gives back a paid order of one sale and gets a ticket of another sale
// whose catalogue Event is the same. The two sales may live in different
// shards, so the exchange is two decisions, each in its sale's shard,
// joined by records that make it finish after a crash:
//
//   - A check in the source shard (read only): the order is the buyer's,
//     paid, unused, not exchanged, and the source sale's exchange rule
//     allows it now (its deadline and fee decide). The target sale must
//     allow exchanges too. The check also reads the payments that took the
//     old order's money (paymentParts, exchanges.go), so that the new
//     order can later be refunded through them.
//   - Step (a), the target shard: a new order of the new tier for the
//     buyer (the target's per-buyer limit and stock checked), an
//     ExchangeIn record linking it back and an ExchangeInPayments record
//     of the old order's payments, in one log entry. Its idempotency key
//     is "exchange of <old order id>" ("... #n" for the n-th attempt once
//     earlier ones lapsed): a retry answers the same order. A difference
//     <= 0 (the new amount + the fee is not more than the old amount)
//     makes it paid at once. A dearer one makes it pending, held for the
//     target's hold like any purchase (it counts against the per-buyer
//     limit as a hold), with the difference as its payment due
//     (amountDue, exchanges.go); the old order stays paid and valid.
//   - The difference paid on the new order (decidePay, in the target
//     shard, as any payment: late money takes the tickets again if they
//     are there, else it is kept for a late_payment refund) makes it paid
//     with its exchange still open; the payment's answer does not wait for
//     the source shard: ApplyPayment kicks steps (b) and (c) beside it,
//     and the sweeper finishes what a crash cut. A new order that expires
//     or is cancelled leaves the old one as it was (lapsed).
//   - Step (b), the source shard: ExchangedOut releases the old order as a
//     same-sale exchange does (refunded, tickets revoked, stock back, a
//     negative difference paid out once through the old order's payment)
//     with a link to the new order. Asking again answers the same.
//   - Step (c), the target shard: ExchangeInSettled once (b) is done; if
//     (b) was refused (the old order was checked in, refunded or exchanged
//     meanwhile), ExchangeInUndone revokes the new order (refunded, stock
//     back; a difference the buyer paid goes back through its payment as
//     an exchange_undone payout; nothing else, the rest of its money being
//     the old order's), so the buyer never ends with both orders valid,
//     nor with neither.
//   - SettleExchanges (the sweeper) runs (b) and (c) for every ExchangeIn
//     not settled whose new order is paid: the server calls it at start-up
//     and periodically, so an exchange cut by a crash between (a) and (c)
//     finishes.
//   - On a fleet, a step whose sale is another partition's runs on the
//     node that holds it, through Config.Remote (xsremote.go); each node's
//     sweeper settles the exchanges whose new order it holds.
//
// Between (a) and (b) both orders are valid: one request's time normally,
// at most the sweeper's period after a crash. The door refuses the new
// order's tickets (exchange_in_progress) until (c), so at most one of the
// two orders can be used. A settled new order is refunded or exchanged
// again like any order: its refund goes back through the payments that
// took its money, newest first (the difference's, then the old order's).
// A new order made before the payments were recorded (no
// ExchangeInPayments) is still refused to its buyer; an admin refunds it.

// Codes are the refund rules' (refundrules.go) and exchange_in_progress;
// the snapshot sections are tags 73 (the records) and 82 (the old orders'
// payments).
const (
	xsessionSectionTag = 73
	xsPaymentsTag      = 82

	// CodeExchangeInProgress: a check-in of a ticket of an order made by an
	// exchange into another session that is not settled yet.
	CodeExchangeInProgress Code = "exchange_in_progress"

	// xsAttemptsMax bounds the attempts of one old order into one sale.
	xsAttemptsMax = 64
)

// xsIn is a target shard's record of an exchange in, by the new order.
type xsIn struct {
	fromSale  string
	from      orderKey
	diff, fee int64
	at        int64
	state     uint8 // xsOpen, xsSettled, xsUndone
	// parts are the payments that took the old order's money, newest
	// first, as step (a) read them; nil for a record made before they
	// were recorded.
	parts []paymentPart
}

// xsOut is a source shard's record of an order exchanged out, by the old order.
type xsOut struct {
	toSale    string
	to        orderKey
	diff, fee int64
	at        int64
}

const (
	xsOpen uint8 = iota + 1
	xsSettled
	xsUndone
)

// xsState is a shard's cross-session records. Records are replaced, never
// modified, so a snapshot may share them.
type xsState struct {
	in  map[orderKey]*xsIn
	out map[orderKey]*xsOut
}

// xsOp is a step of a cross-session exchange.
type xsOp uint8

const (
	xsCheck  xsOp = iota + 1 // source: may the order go? (read)
	xsInOp                   // target: step (a)
	xsOutOp                  // source: step (b)
	xsSettle                 // target: step (c)
	xsList                   // any: the open ExchangeIn records (read)
)

// xsCommand is what the steps carry.
type xsCommand struct {
	op        xsOp
	otherSale string        // xsInOp: the source sale; xsOutOp: the target sale; xsCheck: the target sale
	other     orderKey      // xsInOp: the old order; xsOutOp: the new order
	event     string        // xsInOp: the source sale's catalogue event
	oldAmount int64         // xsInOp
	qty       int           // xsInOp
	diff, fee int64         // xsInOp: fee; xsOutOp: both
	ok        bool          // xsSettle: (b) was done (else undo)
	parts     []paymentPart // xsInOp: the old order's payments
}

// xsEvent is what the events carry.
type xsEvent struct {
	sale      string
	other     orderKey
	diff, fee int64
	parts     []paymentPart // ExchangeInPayments
}

// xsResult answers xsCheck and xsList.
type xsResult struct {
	amount int64
	qty    int
	fee    int64
	user   string
	event  string
	done   string        // xsCheck: the order was exchanged out already, to this order id
	parts  []paymentPart // xsCheck: the payments that took the order's money
	open   []xsPending
}

type xsPending struct {
	saleID, fromSale string
	key, from        orderKey
	diff, fee        int64
}

func (st *state) decideXSession(cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	x := cmd.xs
	if x.op == xsList {
		for _, k := range sortedKeys(st.xs.in) {
			o, _ := st.orderByKey(k)
			if r := st.xs.in[k]; st.xsStatus(r, o) == ExchangeAwaitingRelease {
				res.xs = appendPending(res.xs, xsPending{saleID: st.sales[o.sale].cfg.ID, fromSale: r.fromSale, key: k, from: r.from, diff: r.diff, fee: r.fee})
			}
		}
		return evs, nil
	}
	sl, _ := st.saleByID(cmd.saleID)
	if sl == nil {
		return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	switch x.op {
	case xsInOp:
		return st.decideXSIn(sl, cmd, now, res, evs)
	}
	o, _ := st.orderByKey(cmd.order)
	if o == nil || st.sales[o.sale] != sl || cmd.userID != "" && o.userID != cmd.userID {
		return evs, reject(CodeUnknownOrder, "no order %q", formatOrderID(cmd.saleID, cmd.order))
	}
	switch x.op {
	case xsCheck:
		if out := st.xs.out[o.key]; out != nil {
			res.xs = &xsResult{done: formatOrderID(out.toSale, out.to)}
			return evs, nil
		}
		rule := sl.cfg.refundPolicy().Exchange
		switch {
		case !rule.Allowed:
			return evs, reject(CodeExchangeNotAllowed, "sale %q does not allow exchanges", sl.cfg.ID)
		case sl.cfg.Event == "":
			return evs, reject(CodeExchangeNotAllowed, "sale %q belongs to no event; its orders are exchanged within it", sl.cfg.ID)
		case x.otherSale == sl.cfg.ID:
			return evs, reject(CodeInvalidRequest, "the order is of sale %q already", sl.cfg.ID)
		}
		if rej := st.releasable(o, sl); rej != nil {
			return evs, rej
		}
		if rej := st.xsMovable(o, CodeExchangeNotAllowed); rej != nil {
			return evs, rej
		}
		if deadline := sl.cfg.StartsAtMs - rule.UntilBeforeStartMs; now >= deadline {
			return evs, reject(CodeExchangeWindowClosed, "exchanges of sale %q closed at %s", sl.cfg.ID, formatMs(deadline))
		}
		res.xs = &xsResult{amount: o.amount, qty: int(o.qty), fee: rule.FeeCents, user: o.userID, event: sl.cfg.Event,
			parts: st.paymentParts(o)} // exchanges.go
		return evs, nil
	case xsOutOp:
		if out := st.xs.out[o.key]; out != nil {
			if out.toSale != x.otherSale || out.to != x.other {
				return evs, reject(CodeInvalidOrderState, "order was exchanged already, for order %s", formatOrderID(out.toSale, out.to))
			}
			return evs, nil // the same step again
		}
		if rej := st.releasable(o, sl); rej != nil {
			return evs, rej
		}
		if r := st.xs.in[o.key]; r != nil && r.state == xsOpen {
			return evs, reject(CodeInvalidOrderState, "the order's own exchange from another session is not settled yet")
		}
		return append(evs, event{kind: evExchangedOut, at: now, order: o.key, xs: &xsEvent{sale: x.otherSale, other: x.other, diff: x.diff, fee: x.fee}}), nil
	case xsSettle:
		r := st.xs.in[o.key]
		switch {
		case r == nil:
			return evs, reject(CodeUnknownOrder, "order %q did not come from an exchange", formatOrderID(cmd.saleID, cmd.order))
		case r.state != xsOpen:
			return evs, nil
		case x.ok:
			return append(evs, event{kind: evExchangeInSettled, at: now, order: o.key}), nil
		}
		return append(evs, event{kind: evExchangeInUndone, at: now, order: o.key}), nil
	}
	return evs, reject(CodeInvalidRequest, "unknown exchange step")
}

// xsUnsettled reports whether sale sl has an exchange in not settled
// (awaiting payment or release): it is not archived until it lapses or the
// sweeper settles it (its record would leave the shard the sweeper reads).
func (st *state) xsUnsettled(sl *sale) bool {
	for k, r := range st.xs.in {
		o, _ := st.orderByKey(k)
		if s := st.xsStatus(r, o); st.sales[o.sale] == sl && (s == ExchangeAwaitingRelease || s == ExchangeAwaitingPayment) {
			return true
		}
	}
	return false
}

// xsStatus says where the exchange that made order o (record r) is. An
// open record is awaiting payment while o is pending, awaiting release
// once o is paid (or refunded by an admin since) with its tickets, and
// lapsed when o expired, was cancelled, or its money came too late to
// take tickets (a late_payment refund).
func (st *state) xsStatus(r *xsIn, o *order) string {
	switch {
	case r.state == xsSettled:
		return ExchangeCompleted
	case r.state == xsUndone:
		return ExchangeLapsed
	case o.status == StatusPending:
		return ExchangeAwaitingPayment
	case o.status == StatusPaid && !o.needsRefund:
		return ExchangeAwaitingRelease
	case o.status == StatusRefunded && !st.hasPayout(o, PayoutLatePayment, o.paymentID):
		return ExchangeAwaitingRelease
	}
	return ExchangeLapsed
}

// xsInProgress reports whether o was made by an exchange from another
// session that is not settled: its tickets do not admit yet (checkin.go).
func (st *state) xsInProgress(o *order) bool {
	if len(st.xs.in) == 0 {
		return false
	}
	r := st.xs.in[o.key]
	return r != nil && r.state == xsOpen
}

// xsMovable says why the buyer may not refund or exchange o, an order an
// exchange from another session made, yet: not settled, or made before
// its old order's payments were recorded (its refund would have no
// payment to go through). nil for every other order.
func (st *state) xsMovable(o *order, code Code) *Rejection {
	r := st.xs.in[o.key]
	switch {
	case r == nil, r.state == xsUndone:
		return nil // an undone order is refunded: the caller's status check answers
	case r.state == xsOpen:
		return reject(CodeInvalidOrderState, "order's exchange from another session is not settled yet; ask again shortly")
	case r.parts == nil:
		return reject(code, "order came from an exchange from another session made before its payments were recorded; ask the organiser")
	}
	return nil
}

// xsLapsed reports whether o, made by an exchange attempt, lapsed: a new
// attempt may be made.
func (st *state) xsLapsed(o *order) bool {
	r := st.xs.in[o.key]
	return r == nil || st.xsStatus(r, o) == ExchangeLapsed
}

func appendPending(r *xsResult, p xsPending) *xsResult {
	if r == nil {
		r = &xsResult{}
	}
	r.open = append(r.open, p)
	return r
}

// releasable says why o cannot be given back for another session's ticket.
func (st *state) releasable(o *order, sl *sale) *Rejection {
	switch {
	case sl.pk != nil:
		return reject(CodeExchangeNotAllowed, "sale %q sells packages; its tickets are exchanged at the box office", sl.cfg.ID)
	case st.realName.attendees[o.key] != nil:
		return reject(CodeExchangeNotAllowed, "sale %q names its attendees; exchange at the box office", sl.cfg.ID)
	case o.status != StatusPaid || o.needsRefund:
		return reject(CodeInvalidOrderState, "order is %s; only a paid order with tickets can be exchanged", o.statusText())
	case o.checkedIn != 0:
		return reject(CodeTicketUsed, "%d of the order's tickets were checked in", bits.OnesCount64(o.checkedIn))
	case st.refunds.exchangedTo[o.key] != nil:
		return reject(CodeInvalidOrderState, "order was exchanged already")
	}
	if open, _ := st.pendingExchange(o, sl, ""); open { // exchanges.go
		return reject(CodeInvalidOrderState, "an exchange of the order awaits payment; cancel its new order first")
	}
	return nil
}

// decideXSIn decides step (a) in the target sale sl.
func (st *state) decideXSIn(sl *sale, cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	x := cmd.xs
	attempt := 1
	for ; attempt <= xsAttemptsMax; attempt++ {
		idx, ok := st.findIdem(sl, cmd.userID, exchangeAttemptKey(x.otherSale, x.other, attempt))
		if !ok {
			break
		}
		o := st.orders.at(idx)
		if st.xsLapsed(o) {
			continue // expired, cancelled or undone: a new attempt
		}
		if sl.cfg.Tiers[o.tier].ID != cmd.tierID {
			return evs, reject(CodeInvalidOrderState, "order was exchanged already, for tier %q (order %s); cancel it first if it awaits payment",
				sl.cfg.Tiers[o.tier].ID, formatOrderID(sl.cfg.ID, o.key))
		}
		res.orderKey = o.key
		return evs, nil // the same exchange again
	}
	rule := sl.cfg.refundPolicy().Exchange
	t := sl.tierIndex(cmd.tierID)
	switch {
	case attempt > xsAttemptsMax:
		return evs, reject(CodeExchangeNotAllowed, "%d attempts of this exchange lapsed; ask the organiser", xsAttemptsMax)
	case sl.cfg.Event == "" || sl.cfg.Event != x.event:
		return evs, reject(CodeExchangeNotAllowed, "sale %q is not a session of event %q", sl.cfg.ID, x.event)
	case !rule.Allowed:
		return evs, reject(CodeExchangeNotAllowed, "sale %q does not take exchanges", sl.cfg.ID)
	case sl.pk != nil || sl.cfg.RealName.Required:
		return evs, reject(CodeExchangeNotAllowed, "sale %q sells packages or names attendees; exchange at the box office", sl.cfg.ID)
	case t < 0:
		return evs, reject(CodeUnknownTier, "sale %q has no tier %q", sl.cfg.ID, cmd.tierID)
	}
	if have := int(sl.users[cmd.userID].tickets); have+x.qty*sl.ticketsPer(t) > sl.cfg.PerUserLimit {
		return evs, reject(CodeLimitExceeded, "at most %d tickets per user in sale %q; you hold %d", sl.cfg.PerUserLimit, sl.cfg.ID, have)
	}
	amount := sl.unitPrice(t, now) * int64(x.qty)
	diff := amount + x.fee - x.oldAmount
	if avail := sl.available(t); avail < x.qty {
		rej := reject(CodeSoldOut, "%d tickets of tier %q left", avail, cmd.tierID)
		rej.Available = avail
		return evs, rej
	}
	if _, taken := st.byKey[cmd.newOrder]; taken {
		panic(newInvariantError("order key drawn twice"))
	}
	res.orderKey = cmd.newOrder
	key := exchangeAttemptKey(x.otherSale, x.other, attempt)
	evs = append(evs, event{kind: evOrderPlaced, at: now, saleID: sl.cfg.ID, order: cmd.newOrder, userID: cmd.userID, key: key,
		tier: uint16(t), qty: uint16(x.qty), amount: amount, expiresAt: now + sl.cfg.HoldMs})
	if diff <= 0 {
		evs = append(evs, event{kind: evOrderPaid, at: now, order: cmd.newOrder, paymentID: key})
	} // else the buyer pays the difference on it (amountDue)
	evs = append(evs, event{kind: evExchangeIn, at: now, order: cmd.newOrder, xs: &xsEvent{sale: x.otherSale, other: x.other, diff: diff, fee: x.fee}})
	if len(x.parts) > 0 {
		evs = append(evs, event{kind: evExchangeInPayments, at: now, order: cmd.newOrder, xs: &xsEvent{parts: x.parts}})
	}
	return evs, nil
}

// applyXSession carries out the events of this file.
func (st *state) applyXSession(ev *event) error {
	idx, ok := st.byKey[ev.order]
	if !ok {
		return fmt.Errorf("%w: %s of unknown order", errCorrupt, ev.kind)
	}
	o := st.orders.mut(idx)
	sl := st.sales[o.sale]
	st.touch(o.sale)
	xs := &st.xs
	switch ev.kind {
	case evExchangeIn:
		want := StatusPaid
		if ev.xs.diff > 0 {
			want = StatusPending // a dearer one awaits the difference
		}
		if xs.in[o.key] != nil || o.status != want {
			return fmt.Errorf("%w: ExchangeIn twice or of a %s order", errCorrupt, o.status)
		}
		putLazy(&xs.in, o.key, &xsIn{fromSale: ev.xs.sale, from: ev.xs.other, diff: ev.xs.diff, fee: ev.xs.fee, at: ev.at, state: xsOpen})
	case evExchangeInPayments:
		r := xs.in[o.key]
		if r == nil || r.parts != nil || len(ev.xs.parts) == 0 {
			return fmt.Errorf("%w: ExchangeInPayments of no exchange, twice, or of none", errCorrupt)
		}
		n := *r
		n.parts = ev.xs.parts
		xs.in[o.key] = &n
	case evExchangeInSettled, evExchangeInUndone:
		r := xs.in[o.key]
		if r == nil || r.state != xsOpen {
			return fmt.Errorf("%w: %s of no open exchange", errCorrupt, ev.kind)
		}
		n := *r
		n.state = xsSettled
		if ev.kind == evExchangeInUndone {
			n.state = xsUndone
			if o.status == StatusPaid && !o.needsRefund { // an admin may have refunded it meanwhile
				st.revokeOnRefund(o, sl, ev.at)
				if r.diff > 0 { // the difference the buyer paid goes back; the rest is the old order's
					st.addPayoutOf(o, PayoutExchangeUndone, o.paymentID, r.diff, r.diff, sl.cfg.Currency, true, ev.at) // payouts.go
				}
				if err := st.applyRefund(o, sl, ev); err != nil {
					return err
				}
			}
		}
		xs.in[o.key] = &n
	case evExchangedOut:
		if xs.out[o.key] != nil {
			return fmt.Errorf("%w: ExchangedOut twice", errCorrupt)
		}
		st.revokeOnRefund(o, sl, ev.at)
		st.payoutsOnExchange(o, sl, &refundEvent{amount: ev.xs.diff, fee: ev.xs.fee}, ev.at) // refundpayouts.go
		if err := st.applyRefund(o, sl, ev); err != nil {
			return err
		}
		putLazy(&xs.out, o.key, &xsOut{toSale: ev.xs.sale, to: ev.xs.other, diff: ev.xs.diff, fee: ev.xs.fee, at: ev.at})
	default:
		return fmt.Errorf("%w: cannot apply %s", errCorrupt, ev.kind)
	}
	o.updatedAt = ev.at
	checkTier(sl, int(o.tier))
	return nil
}

// fillXSession completes an order's view with its cross-session links.
func (st *state) fillXSession(o *order, v *Order) {
	if len(st.xs.in) == 0 && len(st.xs.out) == 0 {
		return
	}
	id := st.sales[o.sale].cfg.ID
	if r := st.xs.in[o.key]; r != nil {
		if v.Refunds == nil {
			v.Refunds = &OrderRefunds{}
		}
		v.Refunds.ExchangedFrom = &Exchange{FromOrderID: formatOrderID(r.fromSale, r.from), ToOrderID: formatOrderID(id, o.key),
			DifferenceCents: r.diff, FeeCents: r.fee, AtMs: r.at, Status: st.xsStatus(r, o)}
		if r.diff > 0 {
			v.Refunds.AmountDueCents = r.diff // its payment is the difference
		}
	}
	if r := st.xs.out[o.key]; r != nil {
		if v.Refunds == nil {
			v.Refunds = &OrderRefunds{}
		}
		v.Refunds.ExchangedTo = &Exchange{FromOrderID: formatOrderID(id, o.key), ToOrderID: formatOrderID(r.toSale, r.to),
			DifferenceCents: r.diff, FeeCents: r.fee, AtMs: r.at, Status: ExchangeCompleted}
	}
}

// ExchangeAwaitingRelease: an exchange into another session whose old
// order is not released yet (between steps (a) and (b)).
const ExchangeAwaitingRelease = "awaiting_release"

// exchangeAcross is Engine.Exchange into another sale: check, (a), (b), (c).
func (e *Engine) exchangeAcross(ctx context.Context, orderID, userID string, req ExchangeRequest) (Order, error) {
	saleID, key, _ := parseOrderID(orderID)
	_, chk, err := e.xsRun(ctx, saleID, command{kind: cmdXSession, saleID: saleID, order: key, userID: userID,
		xs: &xsCommand{op: xsCheck, otherSale: req.SaleID}})
	if err != nil {
		return Order{}, err
	}
	if chk == nil {
		return Order{}, fmt.Errorf("%w: the exchange check answered nothing", ErrStopped)
	}
	if chk.done != "" { // exchanged out already: the same exchange
		return e.xsOrder(ctx, chk.done) // xsremote.go
	}
	newKey := newOrderKey()
	got, _, err := e.xsRun(ctx, req.SaleID, command{kind: cmdXSession, saleID: req.SaleID, userID: chk.user, tierID: req.TierID, newOrder: newKey,
		xs: &xsCommand{op: xsInOp, otherSale: saleID, other: key, event: chk.event, oldAmount: chk.amount, qty: chk.qty, fee: chk.fee,
			parts: chk.parts}})
	if err != nil {
		return Order{}, err
	}
	if err := e.finishAcross(ctx, req.SaleID, got); err != nil {
		return Order{}, err
	}
	return e.xsOrder(ctx, formatOrderID(req.SaleID, got))
}

// finishAcross runs steps (b) and (c) of the exchange that made order key
// of sale saleID, if it is open.
func (e *Engine) finishAcross(ctx context.Context, saleID string, key orderKey) error {
	_, xs, err := e.xsRun(ctx, saleID, command{kind: cmdXSession, xs: &xsCommand{op: xsList}})
	if err != nil {
		return err
	}
	var open []xsPending
	if xs != nil {
		open = xs.open
	}
	for _, p := range open {
		if p.key == key && p.saleID == saleID {
			return e.settleOne(ctx, p)
		}
	}
	return nil
}

func (e *Engine) settleOne(ctx context.Context, p xsPending) error {
	_, _, err := e.xsRun(ctx, p.fromSale, command{kind: cmdXSession, saleID: p.fromSale, order: p.from,
		xs: &xsCommand{op: xsOutOp, otherSale: p.saleID, other: p.key, diff: p.diff, fee: p.fee}})
	var rej *Rejection
	if err != nil && !errors.As(err, &rej) {
		return err // not decided, or not known to be: the sweeper tries again
	}
	_, _, err = e.xsRun(ctx, p.saleID, command{kind: cmdXSession, saleID: p.saleID, order: p.key,
		xs: &xsCommand{op: xsSettle, ok: err == nil}})
	return err
}

// kickExchange runs steps (b) and (c) beside the caller once a payment
// made o, the new order of an exchange into another session, paid: the
// payment's answer does not wait for the source shard. A kick that fails
// (stopping, overloaded) is left to the sweeper.
func (e *Engine) kickExchange(o *Order) {
	if o.Refunds == nil || o.Refunds.ExchangedFrom == nil || o.Refunds.ExchangedFrom.Status != ExchangeAwaitingRelease {
		return
	}
	saleID, key, ok := parseOrderID(o.ID)
	if !ok {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), xsKickTimeout)
		defer cancel()
		e.finishAcross(ctx, saleID, key) //nolint:errcheck // the sweeper retries
		if e.xsKicked != nil {
			e.xsKicked <- struct{}{}
		}
	}()
}

// xsKickTimeout bounds a kick; the sweeper finishes what it leaves.
const xsKickTimeout = 30 * time.Second

// SettleExchanges finishes every exchange into another session whose old
// order was not released yet (a crash between its steps): it releases
// the old order and settles the new one, or revokes the new one when the
// old can no longer go. It returns how many it finished. The server runs
// it at start-up and periodically.
func (e *Engine) SettleExchanges(ctx context.Context) (int, error) {
	var open []xsPending
	if err := e.fanOut(ctx, command{kind: cmdXSession, xs: &xsCommand{op: xsList}}, func(r *result) {
		if r.xs != nil {
			open = append(open, r.xs.open...)
		}
	}); err != nil {
		return 0, err
	}
	n := 0
	var first error
	for _, p := range open {
		err := e.settleOne(ctx, p)
		var rej *Rejection
		switch {
		case err == nil:
			n++
		case errors.As(err, &rej): // this one cannot settle now; the others go on
			first = cmp.Or(first, err)
		default:
			return n, err // stopping, or the log failed
		}
	}
	return n, first
}

// Event bodies:
//
//	ExchangeIn                        at newKey fromSale fromKey difference fee (after the new order's OrderPlaced, and OrderPaid unless the difference > 0)
//	ExchangeInPayments                at newKey n {paymentID took total}* (after ExchangeIn)
//	ExchangedOut                      at oldKey toSale toKey difference fee
//	ExchangeInSettled, ExchangeInUndone  at newKey
func appendXSessionEvent(b []byte, ev *event) []byte {
	b = binary.AppendVarint(b, ev.at)
	b = append(b, ev.order[:]...)
	if ev.kind == evExchangeInPayments {
		return appendPaymentParts(b, ev.xs.parts)
	}
	if ev.kind == evExchangeIn || ev.kind == evExchangedOut {
		b = appendString(b, ev.xs.sale)
		b = append(b, ev.xs.other[:]...)
		b = binary.AppendVarint(b, ev.xs.diff)
		b = binary.AppendVarint(b, ev.xs.fee)
	}
	return b
}

func decodeXSessionEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	ev.order = d.key()
	if ev.kind == evExchangeInPayments {
		ev.xs = &xsEvent{parts: d.paymentParts()}
		return
	}
	if ev.kind == evExchangeIn || ev.kind == evExchangedOut {
		ev.xs = &xsEvent{sale: d.str(IDLenMax), other: d.key(), diff: d.varint(), fee: d.varint()}
	}
}

// The snapshot section (tag 73), each list by order key:
//
//	nin  | {newKey fromSale fromKey difference fee atMs state}*
//	nout | {oldKey toSale toKey difference fee atMs}*
//
// The payments' section (tag 82), restored after tag 73, by new order key:
//
//	nin | {newKey n {paymentID took total}*}*
func init() {
	registerSnapshotSection(snapshotSection{tag: xsessionSectionTag, freeze: freezeXSession, restore: restoreXSession})
	registerSnapshotSection(snapshotSection{tag: xsPaymentsTag, freeze: freezeXSPayments, restore: restoreXSPayments})
}

func freezeXSPayments(st *state) func([]byte) []byte {
	var keys []orderKey
	var parts [][]paymentPart // never modified: shared
	for _, k := range sortedKeys(st.xs.in) {
		if r := st.xs.in[k]; r.parts != nil {
			keys, parts = append(keys, k), append(parts, r.parts)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for i, k := range keys {
			b = append(b, k[:]...)
			b = appendPaymentParts(b, parts[i])
		}
		return b
	}
}

func restoreXSPayments(st *state, body []byte) error {
	d := decoder{b: body}
	for range d.uvarint(uint64(len(st.xs.in))) {
		k := d.key()
		parts := d.paymentParts()
		r := st.xs.in[k]
		if d.err != nil || r == nil || r.parts != nil || len(parts) == 0 {
			d.fail("payments of an exchange in not held, twice, or none")
			break
		}
		n := *r
		n.parts = parts
		st.xs.in[k] = &n
	}
	return d.finish("cross-session exchange payments section")
}

// xsPartsMax bounds the payments an order's money came from (a chain of
// exchanges, each adding at most one).
const xsPartsMax = 64

func appendPaymentParts(b []byte, parts []paymentPart) []byte {
	b = binary.AppendUvarint(b, uint64(len(parts)))
	for _, p := range parts {
		b = appendString(b, p.paymentID)
		b = binary.AppendVarint(b, p.took)
		b = binary.AppendVarint(b, p.total)
	}
	return b
}

func (d *decoder) paymentParts() []paymentPart {
	n := d.uvarint(xsPartsMax)
	var parts []paymentPart
	for range n {
		p := paymentPart{paymentID: d.str(PaymentIDLenMax), took: d.varint(), total: d.varint()}
		if d.err != nil {
			return nil
		}
		parts = append(parts, p)
	}
	return parts
}

func freezeXSession(st *state) func([]byte) []byte {
	xs := st.xs
	if len(xs.in) == 0 && len(xs.out) == 0 {
		return nil
	}
	inKeys, outKeys := sortedKeys(xs.in), sortedKeys(xs.out)
	in, out := clonedMap(xs.in), clonedMap(xs.out)
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(inKeys)))
		for _, k := range inKeys {
			r := in[k]
			b = append(b, k[:]...)
			b = appendString(b, r.fromSale)
			b = append(b, r.from[:]...)
			b = binary.AppendVarint(b, r.diff)
			b = binary.AppendVarint(b, r.fee)
			b = binary.AppendVarint(b, r.at)
			b = binary.AppendUvarint(b, uint64(r.state))
		}
		b = binary.AppendUvarint(b, uint64(len(outKeys)))
		for _, k := range outKeys {
			r := out[k]
			b = append(b, k[:]...)
			b = appendString(b, r.toSale)
			b = append(b, r.to[:]...)
			b = binary.AppendVarint(b, r.diff)
			b = binary.AppendVarint(b, r.fee)
			b = binary.AppendVarint(b, r.at)
		}
		return b
	}
}

func restoreXSession(st *state, body []byte) error {
	d := decoder{b: body}
	for range d.uvarint(uint64(len(st.byKey))) {
		k := d.key()
		r := &xsIn{fromSale: d.str(IDLenMax), from: d.key(), diff: d.varint(), fee: d.varint(), at: d.varint(), state: uint8(d.uvarint(uint64(xsUndone)))}
		if _, ok := st.byKey[k]; d.err != nil || !ok || r.state == 0 || st.xs.in[k] != nil {
			d.fail("an exchange in of an order not held, or twice")
			break
		}
		putLazy(&st.xs.in, k, r)
	}
	for range d.uvarint(uint64(len(st.byKey))) {
		k := d.key()
		r := &xsOut{toSale: d.str(IDLenMax), to: d.key(), diff: d.varint(), fee: d.varint(), at: d.varint()}
		if _, ok := st.byKey[k]; d.err != nil || !ok || st.xs.out[k] != nil {
			d.fail("an exchange out of an order not held, or twice")
			break
		}
		putLazy(&st.xs.out, k, r)
	}
	return d.finish("cross-session exchanges section")
}

// moveXSession files the records on the new shard of their order's sale
// (repartition, archiving).
func moveXSession(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		for k, r := range st.xs.in {
			o, _ := st.orderByKey(k)
			putLazy(&states[route(st.sales[o.sale].cfg.ID)].xs.in, k, r)
		}
		for k, r := range st.xs.out {
			o, _ := st.orderByKey(k)
			putLazy(&states[route(st.sales[o.sale].cfg.ID)].xs.out, k, r)
		}
	}
}
