package engine

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Refund and exchange rules (退换规则). A sale may let its buyers ask for
// their money back, and exchange a ticket for another tier, themselves, up
// to a deadline before the performance, for a fee:
//
//   - The deadline is relative to the sale's catalogue StartsAtMs: a sale
//     with a rule must say when it starts (validateRefundRules). A request
//     is accepted while now < StartsAtMs - UntilBeforeStartMs, now being
//     the decision instant (the batch's clock): at the deadline it is
//     refused with refund_window_closed (exchange_window_closed).
//   - The refund fee is FeePercent of the order's amount, rounded down to
//     the cent (in the buyer's favour), plus FeeCents, never more than the
//     amount. The buyer gets amount - fee back.
//   - Approval "auto" refunds at once: one RefundSettled event carries the
//     amount and the fee and returns the tickets to the tier exactly as the
//     admin's refund does (refunds.go). Approval "admin" records a pending
//     RefundRequest, with the amount and fee fixed when it was asked, which
//     an admin approves (the same RefundSettled) or rejects. Asking again
//     answers the request already made, whatever became of it.
//   - An exchange moves a paid order to another tier of its sale in one
//     decision: a new paid order of the new tier (the old one's attendees
//     on a real-name sale), and the old order released like a refund
//     (OrderExchanged), in one log entry. The difference is new amount +
//     fee - old amount: negative is money the buyer gets back; positive is
//     money the buyer owes, and then the exchange waits for it (a pending
//     new order whose payment due is the difference, exchanges.go).
//     Exchanging again answers the exchange already made.
//   - The admin's refund queue (RefundQueue) lists in one place the pending
//     requests, the paid orders that need a refund (late payments:
//     decidePay) and the duplicate charges not yet returned (charges.go).
//     Settling an item approves or rejects a request, or records that the
//     money went back by hand (RefundSettled by hand for a needs_refund
//     order, ChargeRefunded for a duplicate charge).
//
// Records live beside the orders, in maps keyed by order (refundState),
// like box-office records: an order without any pays nothing for them.

// Limits and codes of refund and exchange rules.
const (
	RefundNoteLenMax        = 500 // a buyer's reason, an admin's note
	RefundWindowMsMax       = 366 * 24 * 3600 * 1000
	RefundQueueLimitMax     = 10_000
	refundRulesSectionTag   = 70
	refundRecordsSectionTag = 71

	// CodeRefundNotAllowed: the sale lets no buyer ask for a refund.
	CodeRefundNotAllowed Code = "refund_not_allowed"
	// CodeRefundWindowClosed: the sale's refund deadline has passed.
	CodeRefundWindowClosed Code = "refund_window_closed"
	// CodeExchangeNotAllowed: the sale allows no exchange (or not this one).
	CodeExchangeNotAllowed Code = "exchange_not_allowed"
	// CodeExchangeWindowClosed: the sale's exchange deadline has passed.
	CodeExchangeWindowClosed Code = "exchange_window_closed"
	// CodeUnknownQueueItem: no such item in the admin's refund queue.
	CodeUnknownQueueItem Code = "unknown_queue_item"
)

// RefundApproval says who decides a buyer's refund request.
type RefundApproval uint8

const (
	RefundApprovalAuto  RefundApproval = iota + 1 // refunded at once
	RefundApprovalAdmin                           // an admin approves or rejects
)

func (a RefundApproval) String() string {
	switch a {
	case RefundApprovalAuto:
		return "auto"
	case RefundApprovalAdmin:
		return "admin"
	}
	return ""
}

// RefundRule is a sale's self-service refund rule; the zero value is a sale
// whose buyers cannot ask for a refund themselves.
type RefundRule struct {
	SelfService        bool
	UntilBeforeStartMs int64 // requests close this long before StartsAtMs
	FeePercent         int   // 0-100 of the order's amount, rounded down
	FeeCents           int64 // added to the percent
	Approval           RefundApproval
}

// RefundPolicy is a sale's refund and exchange rules.
type RefundPolicy struct {
	Refund   RefundRule
	Exchange ExchangeRule
}

// refundPolicy is a sale's policy, the zero one when it has none.
func (c *SaleConfig) refundPolicy() RefundPolicy {
	if c.RefundPolicy == nil {
		return RefundPolicy{}
	}
	return *c.RefundPolicy
}

// ExchangeRule is a sale's exchange rule; the zero value allows none.
type ExchangeRule struct {
	Allowed            bool
	UntilBeforeStartMs int64
	FeeCents           int64
}

// RefundRequestStatus is where a refund request is.
type RefundRequestStatus uint8

const (
	RefundRequestPending RefundRequestStatus = iota + 1
	RefundRequestApproved
	RefundRequestRejected
)

func (s RefundRequestStatus) String() string {
	switch s {
	case RefundRequestPending:
		return "pending"
	case RefundRequestApproved:
		return "approved"
	case RefundRequestRejected:
		return "rejected"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// RefundRequest is a buyer's request on a sale with approval "admin".
type RefundRequest struct {
	AtMs        int64
	Reason      string
	AmountCents int64 // the order's amount when asked
	FeeCents    int64 // the fee the rule set when asked
	Status      RefundRequestStatus
	SettledAtMs int64  // approved or rejected at; 0 while pending
	Note        string // the admin's
}

// RefundSource says what settled a refund.
type RefundSource uint8

const (
	RefundSelfService RefundSource = iota + 1 // the rule, approval auto
	RefundApproved                            // an admin approved the request
	RefundByHand                              // money returned outside onsale (a needs_refund order)
)

func (s RefundSource) String() string {
	switch s {
	case RefundSelfService:
		return "self_service"
	case RefundApproved:
		return "approved"
	case RefundByHand:
		return "by_hand"
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// RefundRecord is a refund settled under the rules: the money owed back is
// AmountCents - FeeCents. A refund "by hand" was paid outside onsale;
// the others are what a payment provider must send.
type RefundRecord struct {
	AtMs        int64
	AmountCents int64
	FeeCents    int64
	Source      RefundSource
	Note        string
}

// Exchange links an order exchanged to the order that replaced it. Both
// orders show it. DifferenceCents is new amount + fee - old amount:
// negative is money the buyer gets back.
type Exchange struct {
	FromOrderID     string
	ToOrderID       string
	DifferenceCents int64
	FeeCents        int64
	AtMs            int64
	Status          string // ExchangeCompleted, ExchangeAwaitingPayment or ExchangeLapsed (exchanges.go)
}

// OrderRefunds are an order's records under the refund and exchange
// rules; each nil when absent. Shared: never modify them.
type OrderRefunds struct {
	Request       *RefundRequest
	Refund        *RefundRecord
	ExchangedTo   *Exchange // this order was exchanged for ToOrderID
	ExchangedFrom *Exchange // this order replaced FromOrderID, or was opened to (exchanges.go)
	// ExchangeAttempt is the newest exchange to a dearer ticket opened
	// from this order that did not complete: awaiting payment or lapsed.
	ExchangeAttempt *Exchange
	// AmountDueCents is what a payment of an order opened by an exchange
	// to a dearer ticket must be: the difference (exchanges.go); 0 for
	// every other order, whose payment is its AmountCents. Here rather
	// than in Order, so that no other order's view carries it.
	AmountDueCents int64
}

// ExchangeRequest asks to move an order to another tier.
type ExchangeRequest struct {
	SaleID string // optional: the order's own sale
	TierID string
}

// Refund queue items.
type RefundQueueKind uint8

const (
	QueueRefundRequest   RefundQueueKind = iota + 1 // a pending refund request
	QueueNeedsRefund                                // a paid order that got no tickets
	QueueDuplicateCharge                            // money taken twice
)

var queueKindNames = [...]string{QueueRefundRequest: "refund_request", QueueNeedsRefund: "needs_refund", QueueDuplicateCharge: "duplicate_charge"}

func (k RefundQueueKind) String() string {
	if int(k) < len(queueKindNames) && queueKindNames[k] != "" {
		return queueKindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseRefundQueueKind reads a kind's name.
func ParseRefundQueueKind(s string) (RefundQueueKind, bool) {
	for k, n := range queueKindNames {
		if n != "" && n == s {
			return RefundQueueKind(k), true
		}
	}
	return 0, false
}

// RefundQueueItem is money an admin must see returned.
type RefundQueueItem struct {
	ID          string // kind "." [charge index "."] order id
	Kind        RefundQueueKind
	OrderID     string
	SaleID      string
	UserID      string
	AmountCents int64 // the order's amount; the charge's for a duplicate charge
	FeeCents    int64 // a request's fee; 0 otherwise
	Currency    string
	SinceMs     int64  // asked, paid late or charged at
	Reason      string // a request's
	EventID     string // a duplicate charge's payment event
}

// SettleAction is what an admin does with a queue item.
type SettleAction uint8

const (
	SettleApprove  SettleAction = iota + 1 // a refund request: refund it
	SettleReject                           // a refund request: refuse it
	SettleRefunded                         // money returned by hand
)

// ParseSettleAction reads an action's name.
func ParseSettleAction(s string) (SettleAction, bool) {
	switch s {
	case "approve":
		return SettleApprove, true
	case "reject":
		return SettleReject, true
	case "refunded":
		return SettleRefunded, true
	}
	return 0, false
}

// refundState is a shard's refund and exchange records. Records are
// replaced, never modified, so a snapshot may share them.
type refundState struct {
	requests map[orderKey]*RefundRequest
	records  map[orderKey]*RefundRecord
	// exchangedTo links an exchanged order to its new one;
	// exchangedFrom (derived) the new one back.
	exchangedTo   map[orderKey]*exchangeLink
	exchangedFrom map[orderKey]*exchangeLink
	charges       map[orderKey][]chargeReturn
	// attempts are the exchanges to a dearer ticket, by the new order they
	// opened (exchanges.go); latest (derived) the newest of each old order.
	attempts map[orderKey]*exchangeLink
	latest   map[orderKey]*exchangeLink
}

type exchangeLink struct {
	from, to   orderKey
	difference int64
	fee        int64
	at         int64
	attempt    int // an exchange to a dearer ticket: its number among the old order's (exchanges.go)
}

// chargeReturn is a duplicate charge (by its index on the order) returned
// by hand.
type chargeReturn struct {
	index int32
	at    int64
	note  string
}

// refundCommand is what the refund commands carry beyond the order.
type refundCommand struct {
	text   string // a reason or a note
	action SettleAction
	kind   RefundQueueKind
	charge int // a duplicate charge's index
	limit  int
}

// refundEvent is what the refund events carry beyond the order.
type refundEvent struct {
	refund   RefundRule
	exchange ExchangeRule
	source   RefundSource
	amount   int64
	fee      int64
	text     string   // reason or note
	to       orderKey // OrderExchanged: the new order
	charge   int      // ChargeRefunded: the charge's index
}

// String spells a policy in dumps and logs; nil and zero alike.
func (p *RefundPolicy) String() string {
	if p == nil || *p == (RefundPolicy{}) {
		return "none"
	}
	return fmt.Sprintf("refund %+v exchange %+v", p.Refund, p.Exchange)
}

// validateRefundRules checks a sale's policy. It also gives the config a
// policy of its own: nil for a zero one (as replay restores it), else a
// copy the caller cannot change under the shard.
func validateRefundRules(c *SaleConfig) *Rejection {
	p := c.refundPolicy()
	c.RefundPolicy = nil
	if p != (RefundPolicy{}) {
		c.RefundPolicy = &p
	}
	r, x := p.Refund, p.Exchange
	switch {
	case !r.SelfService && r != (RefundRule{}):
		return reject(CodeInvalidRequest, "refunds: set self_service to true, or leave refunds out")
	case r.SelfService && (r.UntilBeforeStartMs < 0 || r.UntilBeforeStartMs > RefundWindowMsMax):
		return reject(CodeInvalidRequest, "refunds.until_before_start must be 0 to 366 days")
	case r.FeePercent < 0 || r.FeePercent > 100:
		return reject(CodeInvalidRequest, "refunds.fee_percent must be 0 to 100")
	case r.FeeCents < 0 || r.FeeCents > PriceCentsMax:
		return reject(CodeInvalidRequest, "refunds.fee_cents must be 0 to %d", int64(PriceCentsMax))
	case r.SelfService && r.Approval != RefundApprovalAuto && r.Approval != RefundApprovalAdmin:
		return reject(CodeInvalidRequest, `refunds.approval must be "auto" or "admin"`)
	case !x.Allowed && x != (ExchangeRule{}):
		return reject(CodeInvalidRequest, "exchange: set allowed to true, or leave exchange out")
	case x.UntilBeforeStartMs < 0 || x.UntilBeforeStartMs > RefundWindowMsMax:
		return reject(CodeInvalidRequest, "exchange.until_before_start must be 0 to 366 days")
	case x.FeeCents < 0 || x.FeeCents > PriceCentsMax:
		return reject(CodeInvalidRequest, "exchange.fee_cents must be 0 to %d", int64(PriceCentsMax))
	case (r.SelfService || x.Allowed) && c.StartsAtMs == 0:
		return reject(CodeInvalidRequest, "a sale with refunds or exchange needs starts_at: their deadlines count back from it")
	}
	return nil
}

// refundRulesEvent appends the rules of a sale being put, as the real-name
// rule does (realname.go): SalePut's record does not carry them, and a
// SalePut without them resets them.
func refundRulesEvent(evs []event, cfg *SaleConfig) []event {
	p := cfg.refundPolicy()
	if p == (RefundPolicy{}) {
		return evs
	}
	return append(evs, event{kind: evRefundRules, saleID: cfg.ID, refund: &refundEvent{refund: p.Refund, exchange: p.Exchange}})
}

// refundFee is the rule's fee on an amount: the percent rounded down, plus
// the fixed part, at most the amount.
func refundFee(r RefundRule, amount int64) int64 {
	return min(amount*int64(r.FeePercent)/100+r.FeeCents, amount) // amount <= 64 * PriceCentsMax: no overflow
}

// decideRefundRequest decides a buyer's refund request at now.
func (st *state) decideRefundRequest(o *order, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	if st.refunds.requests[o.key] != nil {
		return evs, nil // asked before: the same request
	}
	if rec := st.refunds.records[o.key]; rec != nil && rec.Source == RefundSelfService {
		return evs, nil // refunded at once before: the same refund
	}
	sl := st.sales[o.sale]
	rule := sl.cfg.refundPolicy().Refund
	switch {
	case !rule.SelfService:
		return evs, reject(CodeRefundNotAllowed, "sale %q does not let buyers ask for refunds; contact the organiser", sl.cfg.ID)
	case o.status != StatusPaid:
		return evs, reject(CodeInvalidOrderState, "order is %s; only a paid order can be refunded", o.status)
	case o.needsRefund:
		return evs, reject(CodeInvalidOrderState, "order got no tickets and is already in the organiser's refund queue")
	case o.checkedIn != 0:
		return evs, reject(CodeTicketUsed, "%d of the order's tickets were checked in", bits.OnesCount64(o.checkedIn))
	}
	if open, _ := st.pendingExchange(o, sl, ""); open { // exchanges.go
		return evs, reject(CodeInvalidOrderState, "an exchange of the order awaits payment; cancel its new order first")
	}
	if rej := st.xsMovable(o, CodeRefundNotAllowed); rej != nil { // xsession.go: not settled, or no payments recorded
		return evs, rej
	}
	if deadline := sl.cfg.StartsAtMs - rule.UntilBeforeStartMs; now >= deadline {
		return evs, reject(CodeRefundWindowClosed, "refunds of sale %q closed at %s", sl.cfg.ID, formatMs(deadline))
	}
	re := &refundEvent{amount: o.amount, fee: refundFee(rule, o.amount), text: cmd.refund.text}
	if rule.Approval == RefundApprovalAuto {
		re.source = RefundSelfService
		return append(evs, event{kind: evRefundSettled, at: now, order: o.key, refund: re}), nil
	}
	return append(evs, event{kind: evRefundRequested, at: now, order: o.key, refund: re}), nil
}

// decideExchange decides a buyer's exchange to another tier at now.
func (st *state) decideExchange(o *order, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	sl := st.sales[o.sale]
	if l := st.refunds.exchangedTo[o.key]; l != nil {
		to, _ := st.orderByKey(l.to)
		if sl.cfg.Tiers[to.tier].ID != cmd.tierID {
			return evs, reject(CodeInvalidOrderState, "order was exchanged already, for tier %q", sl.cfg.Tiers[to.tier].ID)
		}
		return evs, nil // the same exchange again
	}
	if open, rej := st.pendingExchange(o, sl, cmd.tierID); open { // exchanges.go: the same pending order again
		return evs, rej
	}
	if st.xs.out[o.key] != nil { // xsession.go
		return evs, reject(CodeInvalidOrderState, "order was exchanged for another session's ticket already")
	}
	if rej := st.xsMovable(o, CodeExchangeNotAllowed); rej != nil { // xsession.go: not settled, or no payments recorded
		return evs, rej
	}
	rule := sl.cfg.refundPolicy().Exchange
	t := sl.tierIndex(cmd.tierID)
	switch {
	case !rule.Allowed:
		return evs, reject(CodeExchangeNotAllowed, "sale %q does not allow exchanges", sl.cfg.ID)
	case sl.pk != nil:
		return evs, reject(CodeExchangeNotAllowed, "sale %q sells packages; its tickets are exchanged at the box office", sl.cfg.ID)
	case t < 0:
		return evs, reject(CodeUnknownTier, "sale %q has no tier %q", sl.cfg.ID, cmd.tierID)
	case t == int(o.tier):
		return evs, reject(CodeInvalidRequest, "order is of tier %q already", cmd.tierID)
	case o.status != StatusPaid || o.needsRefund:
		return evs, reject(CodeInvalidOrderState, "order is %s; only a paid order with tickets can be exchanged", o.statusText())
	case o.checkedIn != 0:
		return evs, reject(CodeTicketUsed, "%d of the order's tickets were checked in", bits.OnesCount64(o.checkedIn))
	}
	if deadline := sl.cfg.StartsAtMs - rule.UntilBeforeStartMs; now >= deadline {
		return evs, reject(CodeExchangeWindowClosed, "exchanges of sale %q closed at %s", sl.cfg.ID, formatMs(deadline))
	}
	amount := sl.unitPrice(t, now) * int64(o.qty)
	diff := amount + rule.FeeCents - o.amount
	if avail := sl.available(t); avail < int(o.qty) {
		rej := reject(CodeSoldOut, "%d tickets of tier %q left", avail, cmd.tierID)
		rej.Available = avail
		return evs, rej
	}
	if _, taken := st.byKey[cmd.newOrder]; taken {
		panic(newInvariantError("order key drawn twice"))
	}
	if as := st.realName.attendees[o.key]; as != nil { // the same people, on the new tickets
		evs = append(evs, event{kind: evAttendeesNamed, at: now, saleID: sl.cfg.ID, order: cmd.newOrder, attendees: as})
	}
	if diff > 0 {
		return st.openExchange(o, sl, t, amount, diff, rule.FeeCents, cmd, now, evs), nil // exchanges.go: the buyer pays the difference
	}
	key := exchangeIdemKey(sl.cfg.ID, o.key)
	return append(evs,
		event{kind: evOrderPlaced, at: now, saleID: sl.cfg.ID, order: cmd.newOrder, userID: o.userID, key: key,
			tier: uint16(t), qty: o.qty, amount: amount, expiresAt: now + sl.cfg.HoldMs},
		event{kind: evOrderPaid, at: now, order: cmd.newOrder, paymentID: key},
		event{kind: evOrderExchanged, at: now, order: o.key, refund: &refundEvent{to: cmd.newOrder, amount: diff, fee: rule.FeeCents}},
	), nil
}

// exchangeIdemKey is the new order's idempotency key and payment id: it
// has a space, which a client's Idempotency-Key cannot.
func exchangeIdemKey(saleID string, old orderKey) string {
	return "exchange of " + formatOrderID(saleID, old)
}

// decideSettle decides an admin's action on a queue item of order o.
func (st *state) decideSettle(o *order, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	rc := cmd.refund
	switch rc.kind {
	case QueueRefundRequest:
		req := st.refunds.requests[o.key]
		switch {
		case req == nil:
			return evs, reject(CodeUnknownQueueItem, "order has no refund request")
		case req.Status == RefundRequestApproved && rc.action == SettleApprove, req.Status == RefundRequestRejected && rc.action == SettleReject:
			return evs, nil // settled so before
		case req.Status != RefundRequestPending:
			return evs, reject(CodeInvalidOrderState, "the refund request was %s already", req.Status)
		case rc.action == SettleReject:
			return append(evs, event{kind: evRefundRequestRejected, at: now, order: o.key, refund: &refundEvent{text: rc.text}}), nil
		case rc.action != SettleApprove:
			return evs, reject(CodeInvalidRequest, `a refund request is settled with "approve" or "reject"`)
		case o.status != StatusPaid || o.needsRefund:
			return evs, reject(CodeInvalidOrderState, "order is %s now; reject the request", o.statusText())
		case o.checkedIn != 0:
			return evs, reject(CodeTicketUsed, "tickets of the order were checked in since the request; reject it, or refund with force")
		}
		evs = st.cancelOpenExchange(o, now, evs) // exchanges.go
		return append(evs, event{kind: evRefundSettled, at: now, order: o.key,
			refund: &refundEvent{source: RefundApproved, amount: req.AmountCents, fee: req.FeeCents, text: rc.text}}), nil
	case QueueNeedsRefund:
		if rc.action != SettleRefunded {
			return evs, reject(CodeInvalidRequest, `a needs_refund order is settled with "refunded", once the money went back`)
		}
		if rec := st.refunds.records[o.key]; rec != nil && rec.Source == RefundByHand {
			return evs, nil
		}
		if o.status != StatusPaid || !o.needsRefund {
			return evs, reject(CodeUnknownQueueItem, "order does not need a refund")
		}
		return append(evs, event{kind: evRefundSettled, at: now, order: o.key,
			refund: &refundEvent{source: RefundByHand, amount: o.amount, text: rc.text}}), nil
	case QueueDuplicateCharge:
		if rc.action != SettleRefunded {
			return evs, reject(CodeInvalidRequest, `a duplicate charge is settled with "refunded", once the money went back`)
		}
		if rc.charge >= len(st.charges[o.key]) {
			return evs, reject(CodeUnknownQueueItem, "order has no duplicate charge %d", rc.charge)
		}
		if st.chargeReturned(o.key, rc.charge) {
			return evs, nil
		}
		return append(evs, event{kind: evChargeRefunded, at: now, order: o.key, refund: &refundEvent{charge: rc.charge, text: rc.text}}), nil
	}
	return evs, reject(CodeUnknownQueueItem, "no such queue item")
}

func (st *state) chargeReturned(k orderKey, i int) bool {
	for _, c := range st.refunds.charges[k] {
		if int(c.index) == i {
			return true
		}
	}
	return false
}

// applyRefundRules carries out the events of this file.
func (st *state) applyRefundRules(ev *event) error {
	if ev.kind == evRefundRules {
		sl, si := st.saleByID(ev.saleID)
		if sl == nil {
			return fmt.Errorf("%w: RefundRules of unknown sale %q", errCorrupt, ev.saleID)
		}
		st.touch(si)
		sl.cfg.RefundPolicy = &RefundPolicy{Refund: ev.refund.refund, Exchange: ev.refund.exchange}
		return nil
	}
	idx, ok := st.byKey[ev.order]
	if !ok {
		return fmt.Errorf("%w: %s of unknown order", errCorrupt, ev.kind)
	}
	o := st.orders.mut(idx)
	sl := st.sales[o.sale]
	st.touch(o.sale)
	rs := &st.refunds
	re := ev.refund
	switch ev.kind {
	case evRefundRequested:
		if rs.requests[o.key] != nil || o.status != StatusPaid {
			return fmt.Errorf("%w: RefundRequested twice or of a %s order", errCorrupt, o.status)
		}
		putLazy(&rs.requests, o.key, &RefundRequest{AtMs: ev.at, Reason: re.text, AmountCents: re.amount, FeeCents: re.fee, Status: RefundRequestPending})
	case evRefundRequestRejected:
		req := rs.requests[o.key]
		if req == nil || req.Status != RefundRequestPending {
			return fmt.Errorf("%w: RefundRequestRejected without a pending request", errCorrupt)
		}
		r := *req
		r.Status, r.SettledAtMs, r.Note = RefundRequestRejected, ev.at, re.text
		rs.requests[o.key] = &r
	case evRefundSettled:
		if re.source == RefundApproved {
			req := rs.requests[o.key]
			if req == nil || req.Status != RefundRequestPending {
				return fmt.Errorf("%w: approved RefundSettled without a pending request", errCorrupt)
			}
			r := *req
			r.Status, r.SettledAtMs, r.Note = RefundRequestApproved, ev.at, re.text
			rs.requests[o.key] = &r
		}
		if rs.records[o.key] != nil {
			return fmt.Errorf("%w: RefundSettled twice", errCorrupt)
		}
		st.revokeOnRefund(o, sl, ev.at) // revocations.go
		if o.status == StatusPaid {
			st.payoutsOnRefundSettled(o, sl, re, ev.at) // refundpayouts.go
			sl.countPayment(ev.at, re.amount, true)     // paycurve.go: the money given back
		}
		if err := st.applyRefund(o, sl, ev); err != nil {
			return err
		}
		putLazy(&rs.records, o.key, &RefundRecord{AtMs: ev.at, AmountCents: re.amount, FeeCents: re.fee, Source: re.source, Note: re.text})
	case evExchangeOpened:
		return st.applyExchangeOpened(ev) // exchanges.go
	case evOrderExchanged:
		if rs.exchangedTo[o.key] != nil || rs.exchangedFrom[re.to] != nil {
			return fmt.Errorf("%w: OrderExchanged twice", errCorrupt)
		}
		if to, _ := st.orderByKey(re.to); to == nil || to.sale != o.sale || to.status != StatusPaid {
			return fmt.Errorf("%w: OrderExchanged to an order not paid in its sale", errCorrupt)
		}
		st.revokeOnRefund(o, sl, ev.at)
		st.payoutsOnExchange(o, sl, re, ev.at) // refundpayouts.go
		if err := st.applyRefund(o, sl, ev); err != nil {
			return err
		}
		rs.linkExchange(&exchangeLink{from: o.key, to: re.to, difference: re.amount, fee: re.fee, at: ev.at})
	case evChargeRefunded:
		if re.charge >= len(st.charges[o.key]) || st.chargeReturned(o.key, re.charge) {
			return fmt.Errorf("%w: ChargeRefunded of no charge, or twice", errCorrupt)
		}
		if rs.charges == nil {
			rs.charges = make(map[orderKey][]chargeReturn)
		}
		rs.charges[o.key] = append(slices.Clip(rs.charges[o.key]), chargeReturn{index: int32(re.charge), at: ev.at, note: re.text})
		st.payoutsOnChargeRefunded(o, re.charge, re.text, ev.at) // refundpayouts.go
	default:
		return fmt.Errorf("%w: cannot apply %s", errCorrupt, ev.kind)
	}
	o.updatedAt = ev.at
	checkTier(sl, int(o.tier))
	return nil
}

func (rs *refundState) linkExchange(l *exchangeLink) {
	if rs.exchangedTo == nil {
		rs.exchangedTo = make(map[orderKey]*exchangeLink)
		rs.exchangedFrom = make(map[orderKey]*exchangeLink)
	}
	rs.exchangedTo[l.from] = l
	rs.exchangedFrom[l.to] = l
}

func (l *exchangeLink) view(saleID string) *Exchange {
	if l == nil {
		return nil
	}
	return &Exchange{FromOrderID: formatOrderID(saleID, l.from), ToOrderID: formatOrderID(saleID, l.to),
		DifferenceCents: l.difference, FeeCents: l.fee, AtMs: l.at, Status: ExchangeCompleted}
}

// fillRefunds completes an order's view with its refund records.
func (st *state) fillRefunds(o *order, v *Order) {
	rs := &st.refunds
	if len(rs.requests) == 0 && len(rs.records) == 0 && len(rs.exchangedTo) == 0 && len(rs.charges) == 0 && len(rs.attempts) == 0 {
		return // a shard without any: no map lookups on its reads
	}
	req, rec := rs.requests[o.key], rs.records[o.key]
	to, from := rs.exchangedTo[o.key], rs.exchangedFrom[o.key]
	opened, attempt := rs.attempts[o.key], rs.latest[o.key] // exchanges.go
	if attempt != nil && to != nil {
		attempt = nil // completed: exchanged_to says so
	}
	if req != nil || rec != nil || to != nil || from != nil || opened != nil || attempt != nil {
		id := st.sales[o.sale].cfg.ID
		v.Refunds = &OrderRefunds{Request: req, Refund: rec, ExchangedTo: to.view(id), ExchangedFrom: from.view(id)}
		if opened != nil {
			v.Refunds.ExchangedFrom = st.attemptView(opened, id)
			v.Refunds.AmountDueCents = opened.difference
		}
		if attempt != nil {
			v.Refunds.ExchangeAttempt = st.attemptView(attempt, id)
		}
	}
	for _, c := range rs.charges[o.key] {
		if int(c.index) < len(v.DuplicateCharges) {
			v.DuplicateCharges[c.index].RefundedAtMs = c.at
			v.DuplicateCharges[c.index].Note = c.note
		}
	}
}

// answerRefundRules fills the result of a refund command: the order, or
// for an exchange the new order.
func (st *state) answerRefundRules(cmd *command, res *result) {
	o, _ := st.orderByKey(cmd.order)
	if cmd.kind == cmdExchange {
		if l := st.refunds.exchangedTo[o.key]; l != nil {
			o, _ = st.orderByKey(l.to)
		} else if l := st.refunds.latest[o.key]; l != nil { // exchanges.go: the one just opened, or awaiting payment
			o, _ = st.orderByKey(l.to)
		}
	}
	res.orderKey = o.key
	res.order = st.orderView(o)
}

// queue lists this shard's refund queue items, oldest first: of one sale
// (saleID) or all, of one kind or all.
func (st *state) queue(cmd *command, res *result) {
	want := func(k RefundQueueKind) bool { return cmd.refund.kind == 0 || cmd.refund.kind == k }
	item := func(o *order, k RefundQueueKind, since int64) RefundQueueItem {
		sl := st.sales[o.sale]
		id := formatOrderID(sl.cfg.ID, o.key)
		return RefundQueueItem{ID: k.String() + "." + id, Kind: k, OrderID: id, SaleID: sl.cfg.ID, UserID: o.userID,
			AmountCents: o.amount, Currency: sl.cfg.Currency, SinceMs: since}
	}
	si := int32(-1)
	if cmd.saleID != "" {
		_, si = st.saleByID(cmd.saleID)
	}
	var items []RefundQueueItem
	if want(QueueRefundRequest) {
		for k, r := range st.refunds.requests {
			if o, _ := st.orderByKey(k); r.Status == RefundRequestPending && (si < 0 || o.sale == si) {
				it := item(o, QueueRefundRequest, r.AtMs)
				it.AmountCents, it.FeeCents, it.Reason = r.AmountCents, r.FeeCents, r.Reason
				items = append(items, it)
			}
		}
	}
	if want(QueueDuplicateCharge) {
		for k, cs := range st.charges {
			o, _ := st.orderByKey(k)
			if si >= 0 && o.sale != si {
				continue
			}
			for i, c := range cs {
				if !st.chargeReturned(k, i) && !st.payoutRefunded(k, PayoutDuplicateCharge, c.EventID) { // refundpayouts.go
					it := item(o, QueueDuplicateCharge, c.AtMs)
					it.ID = QueueDuplicateCharge.String() + "." + strconv.Itoa(i) + "." + it.OrderID
					it.AmountCents, it.EventID = c.AmountCents, c.EventID
					items = append(items, it)
				}
			}
		}
	}
	if want(QueueNeedsRefund) {
		// A scan: late payments are rare and the queue is an admin's page,
		// so no index on the purchase path pays for it.
		for i := int32(0); i < st.orders.n; i++ {
			if o := st.orders.at(i); o.needsRefund && o.status == StatusPaid && (si < 0 || o.sale == si) &&
				!st.payoutRefunded(o.key, PayoutLatePayment, o.paymentID) { // refundpayouts.go
				items = append(items, item(o, QueueNeedsRefund, o.updatedAt))
			}
		}
	}
	slices.SortFunc(items, func(a, b RefundQueueItem) int {
		return cmp.Or(cmp.Compare(a.SinceMs, b.SinceMs), strings.Compare(a.ID, b.ID))
	})
	res.refundQueue = items[:min(len(items), cmd.refund.limit)]
}

// parseQueueItemID splits an item id into its kind, charge index and order.
func parseQueueItemID(id string) (RefundQueueKind, int, string, bool) {
	name, rest, ok := strings.Cut(id, ".")
	k, known := ParseRefundQueueKind(name)
	if !ok || !known {
		return 0, 0, "", false
	}
	charge := 0
	if k == QueueDuplicateCharge {
		n, order, ok := strings.Cut(rest, ".")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i >= duplicateChargesPerOrderMax || strconv.Itoa(i) != n {
			return 0, 0, "", false
		}
		charge, rest = i, order
	}
	return k, charge, rest, true
}

// RequestRefund is a buyer's refund request under the sale's rule. The
// order comes back refunded (approval auto) or with a pending request
// (approval admin); asking again answers the same.
func (e *Engine) RequestRefund(ctx context.Context, orderID, userID, reason string) (Order, error) {
	if len(reason) > RefundNoteLenMax || !validText(reason, RefundNoteLenMax, true) {
		return Order{}, reject(CodeInvalidRequest, "reason must be up to %d bytes of UTF-8 text", RefundNoteLenMax)
	}
	return e.orderCommand(ctx, orderID, command{kind: cmdRefundRequest, userID: userID, refund: &refundCommand{text: reason}})
}

// Exchange moves a buyer's paid order to another tier of its sale and
// returns the new order (Exchange says how it came to be).
func (e *Engine) Exchange(ctx context.Context, orderID, userID string, req ExchangeRequest) (Order, error) {
	saleID, _, ok := parseOrderID(orderID)
	if ok && req.SaleID != "" && req.SaleID != saleID {
		return e.exchangeAcross(ctx, orderID, userID, req) // xsession.go: another session of the event
	}
	r := getRequest()
	o, err := e.orderCall(ctx, orderID, command{kind: cmdExchange, userID: userID, tierID: req.TierID, newOrder: newOrderKey()}, r)
	if err != nil {
		return Order{}, err
	}
	o.ID = formatOrderID(o.SaleID, r.res.orderKey)
	putRequest(r)
	return o, nil
}

// RefundQueue lists what an admin must see refunded, oldest first: of one
// sale or all (saleID ""), of one kind or all (kind 0), at most limit.
func (e *Engine) RefundQueue(ctx context.Context, saleID string, kind RefundQueueKind, limit int) ([]RefundQueueItem, error) {
	limit = min(max(limit, 1), RefundQueueLimitMax)
	cmd := command{kind: cmdRefundQueue, saleID: saleID, refund: &refundCommand{kind: kind, limit: limit}}
	var out []RefundQueueItem
	collect := func(r *result) { out = append(out, r.refundQueue...) }
	var err error
	if saleID != "" {
		err = e.one(ctx, saleID, cmd, collect)
	} else {
		err = e.fanOut(ctx, cmd, collect)
	}
	slices.SortFunc(out, func(a, b RefundQueueItem) int {
		return cmp.Or(cmp.Compare(a.SinceMs, b.SinceMs), strings.Compare(a.ID, b.ID))
	})
	return out[:min(len(out), limit)], err
}

// SettleRefundQueueItem approves or rejects a refund request, or records
// money returned by hand; the order comes back as it is after.
func (e *Engine) SettleRefundQueueItem(ctx context.Context, itemID string, action SettleAction, note string) (Order, error) {
	if !validText(note, RefundNoteLenMax, true) {
		return Order{}, reject(CodeInvalidRequest, "note must be up to %d bytes of UTF-8 text", RefundNoteLenMax)
	}
	kind, charge, orderID, ok := parseQueueItemID(itemID)
	if !ok {
		return Order{}, reject(CodeUnknownQueueItem, "no queue item %q", itemID)
	}
	return e.orderCommand(ctx, orderID, command{kind: cmdSettleRefund, refund: &refundCommand{kind: kind, charge: charge, action: action, text: note}})
}

// Event bodies:
//
//	RefundRules            saleID refund exchange
//	RefundRequested        at key amount fee reason
//	RefundRequestRejected  at key note
//	RefundSettled          at key source amount fee note
//	OrderExchanged         at key newKey difference fee   (after the new order's OrderPlaced and OrderPaid)
//	ExchangeOpened         at key newKey difference fee   (after the new order's OrderPlaced; exchanges.go)
//	ChargeRefunded         at key chargeIndex note
//
// refund := selfService(0|1) untilBeforeStartMs feePercent feeCents approval
// exchange := allowed(0|1) untilBeforeStartMs feeCents
func appendRefundEvent(b []byte, ev *event) []byte {
	re := ev.refund
	if ev.kind == evRefundRules {
		b = appendString(b, ev.saleID)
		return appendRefundRules(b, re.refund, re.exchange)
	}
	b = binary.AppendVarint(b, ev.at)
	b = append(b, ev.order[:]...)
	switch ev.kind {
	case evRefundRequested:
		b = binary.AppendVarint(b, re.amount)
		b = binary.AppendVarint(b, re.fee)
	case evRefundSettled:
		b = binary.AppendUvarint(b, uint64(re.source))
		b = binary.AppendVarint(b, re.amount)
		b = binary.AppendVarint(b, re.fee)
	case evOrderExchanged, evExchangeOpened:
		b = append(b, re.to[:]...)
		b = binary.AppendVarint(b, re.amount)
		return binary.AppendVarint(b, re.fee)
	case evChargeRefunded:
		b = binary.AppendUvarint(b, uint64(re.charge))
	}
	return appendString(b, re.text)
}

func appendRefundRules(b []byte, r RefundRule, x ExchangeRule) []byte {
	b = appendBool(b, r.SelfService)
	b = binary.AppendVarint(b, r.UntilBeforeStartMs)
	b = binary.AppendUvarint(b, uint64(r.FeePercent))
	b = binary.AppendVarint(b, r.FeeCents)
	b = binary.AppendUvarint(b, uint64(r.Approval))
	b = appendBool(b, x.Allowed)
	b = binary.AppendVarint(b, x.UntilBeforeStartMs)
	return binary.AppendVarint(b, x.FeeCents)
}

func (d *decoder) refundRules() (RefundRule, ExchangeRule) {
	r := RefundRule{SelfService: d.bool(), UntilBeforeStartMs: d.varint(), FeePercent: int(d.uvarint(100)),
		FeeCents: d.varint(), Approval: RefundApproval(d.uvarint(uint64(RefundApprovalAdmin)))}
	x := ExchangeRule{Allowed: d.bool(), UntilBeforeStartMs: d.varint(), FeeCents: d.varint()}
	return r, x
}

func decodeRefundEvent(d *decoder, ev *event) {
	re := &refundEvent{}
	ev.refund = re
	if ev.kind == evRefundRules {
		ev.saleID = d.str(IDLenMax)
		re.refund, re.exchange = d.refundRules()
		cfg := SaleConfig{RefundPolicy: &RefundPolicy{re.refund, re.exchange}, Catalogue: Catalogue{StartsAtMs: 1}}
		if d.err == nil && validateRefundRules(&cfg) != nil {
			d.fail("invalid refund rules")
		}
		return
	}
	ev.at = d.varint()
	ev.order = d.key()
	switch ev.kind {
	case evRefundRequested:
		re.amount, re.fee = d.varint(), d.varint()
	case evRefundSettled:
		re.source = RefundSource(d.uvarint(uint64(RefundByHand)))
		re.amount, re.fee = d.varint(), d.varint()
		if d.err == nil && re.source == 0 {
			d.fail("refund source 0")
		}
	case evOrderExchanged, evExchangeOpened:
		re.to = d.key()
		re.amount, re.fee = d.varint(), d.varint()
		return
	case evChargeRefunded:
		re.charge = int(d.uvarint(duplicateChargesPerOrderMax - 1))
	}
	re.text = d.str(RefundNoteLenMax)
}

// The rules' snapshot section (tag 70): the rules of the sales that have
// any, in sale order.
//
//	nsales | {saleID refund exchange}*
//
// The records' section (tag 71), each list by order key:
//
//	nrequests | {key atMs reason amount fee status settledAtMs note}*
//	nrecords  | {key atMs amount fee source note}*
//	nexchanges| {fromKey toKey difference fee atMs}*
//	ncharged  | {key n {index atMs note}}*
func init() {
	registerSnapshotSection(snapshotSection{tag: refundRulesSectionTag, freeze: freezeRefundRules, restore: restoreRefundRules})
	registerSnapshotSection(snapshotSection{tag: refundRecordsSectionTag, freeze: freezeRefundRecords, restore: restoreRefundRecords})
}

func freezeRefundRules(st *state) func([]byte) []byte {
	type rule struct {
		id string
		r  RefundRule
		x  ExchangeRule
	}
	var rules []rule
	for _, sl := range st.sales {
		if p := sl.cfg.refundPolicy(); p != (RefundPolicy{}) {
			rules = append(rules, rule{sl.cfg.ID, p.Refund, p.Exchange})
		}
	}
	if len(rules) == 0 {
		return nil
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(rules)))
		for _, r := range rules {
			b = appendString(b, r.id)
			b = appendRefundRules(b, r.r, r.x)
		}
		return b
	}
}

func restoreRefundRules(st *state, body []byte) error {
	d := decoder{b: body}
	for range d.uvarint(uint64(len(st.sales))) {
		id := d.str(IDLenMax)
		r, x := d.refundRules()
		if d.err != nil {
			break
		}
		sl, _ := st.saleByID(id)
		if sl == nil {
			return fmt.Errorf("%w: snapshot has refund rules of a sale it does not hold", errCorrupt)
		}
		sl.cfg.RefundPolicy = &RefundPolicy{r, x}
		if validateRefundRules(&sl.cfg) != nil {
			return fmt.Errorf("%w: snapshot has invalid refund rules for sale %q", errCorrupt, id)
		}
	}
	return d.finish("refund rules section")
}

func (d *decoder) finish(what string) error {
	if err := d.check(what); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %s: %d bytes left over", errCorrupt, what, len(d.b))
	}
	return nil
}

func sortedKeys[V any](m map[orderKey]V) []orderKey {
	ks := make([]orderKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b orderKey) int { return bytes.Compare(a[:], b[:]) })
	return ks
}

func freezeRefundRecords(st *state) func([]byte) []byte {
	rs := st.refunds
	if len(rs.requests) == 0 && len(rs.records) == 0 && len(rs.exchangedTo) == 0 && len(rs.charges) == 0 {
		return nil
	}
	// Records are replaced, never modified, and charge lists only grow
	// (clipped on append): the maps are copied, their values shared.
	requests, records, charges := clonedMap(rs.requests), clonedMap(rs.records), clonedMap(rs.charges)
	var links []*exchangeLink
	for _, k := range sortedKeys(rs.exchangedTo) {
		links = append(links, rs.exchangedTo[k])
	}
	return func(b []byte) []byte {
		ks := sortedKeys(requests)
		b = binary.AppendUvarint(b, uint64(len(ks)))
		for _, k := range ks {
			r := requests[k]
			b = append(b, k[:]...)
			b = binary.AppendVarint(b, r.AtMs)
			b = appendString(b, r.Reason)
			b = binary.AppendVarint(b, r.AmountCents)
			b = binary.AppendVarint(b, r.FeeCents)
			b = binary.AppendUvarint(b, uint64(r.Status))
			b = binary.AppendVarint(b, r.SettledAtMs)
			b = appendString(b, r.Note)
		}
		ks = sortedKeys(records)
		b = binary.AppendUvarint(b, uint64(len(ks)))
		for _, k := range ks {
			r := records[k]
			b = append(b, k[:]...)
			b = binary.AppendVarint(b, r.AtMs)
			b = binary.AppendVarint(b, r.AmountCents)
			b = binary.AppendVarint(b, r.FeeCents)
			b = binary.AppendUvarint(b, uint64(r.Source))
			b = appendString(b, r.Note)
		}
		b = binary.AppendUvarint(b, uint64(len(links)))
		for _, l := range links {
			b = append(b, l.from[:]...)
			b = append(b, l.to[:]...)
			b = binary.AppendVarint(b, l.difference)
			b = binary.AppendVarint(b, l.fee)
			b = binary.AppendVarint(b, l.at)
		}
		ks = sortedKeys(charges)
		b = binary.AppendUvarint(b, uint64(len(ks)))
		for _, k := range ks {
			b = append(b, k[:]...)
			b = binary.AppendUvarint(b, uint64(len(charges[k])))
			for _, c := range charges[k] {
				b = binary.AppendUvarint(b, uint64(c.index))
				b = binary.AppendVarint(b, c.at)
				b = appendString(b, c.note)
			}
		}
		return b
	}
}

func clonedMap[V any](m map[orderKey]V) map[orderKey]V {
	out := make(map[orderKey]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func restoreRefundRecords(st *state, body []byte) error {
	d := decoder{b: body}
	rs := &st.refunds
	known := func(k orderKey) bool {
		_, ok := st.byKey[k]
		return ok
	}
	for range d.uvarint(uint64(len(st.byKey))) {
		k := d.key()
		r := &RefundRequest{AtMs: d.varint(), Reason: d.str(RefundNoteLenMax), AmountCents: d.varint(), FeeCents: d.varint(),
			Status: RefundRequestStatus(d.uvarint(uint64(RefundRequestRejected))), SettledAtMs: d.varint(), Note: d.str(RefundNoteLenMax)}
		if d.err != nil || !known(k) || r.Status == 0 || rs.requests[k] != nil {
			d.fail("a refund request of an order not held, or twice")
			break
		}
		putLazy(&rs.requests, k, r)
	}
	for range d.uvarint(uint64(len(st.byKey))) {
		k := d.key()
		r := &RefundRecord{AtMs: d.varint(), AmountCents: d.varint(), FeeCents: d.varint(),
			Source: RefundSource(d.uvarint(uint64(RefundByHand))), Note: d.str(RefundNoteLenMax)}
		if d.err != nil || !known(k) || r.Source == 0 || rs.records[k] != nil {
			d.fail("a refund record of an order not held, or twice")
			break
		}
		putLazy(&rs.records, k, r)
	}
	for range d.uvarint(uint64(len(st.byKey))) {
		l := &exchangeLink{from: d.key(), to: d.key(), difference: d.varint(), fee: d.varint(), at: d.varint()}
		if d.err != nil || !known(l.from) || !known(l.to) || rs.exchangedTo[l.from] != nil || rs.exchangedFrom[l.to] != nil {
			d.fail("an exchange of orders not held, or twice")
			break
		}
		rs.linkExchange(l)
	}
	for range d.uvarint(uint64(len(st.byKey))) {
		k := d.key()
		n := d.uvarint(duplicateChargesPerOrderMax)
		if d.err != nil || !known(k) || n == 0 || rs.charges[k] != nil {
			d.fail("returned charges of an order not held, or twice")
			break
		}
		if rs.charges == nil {
			rs.charges = make(map[orderKey][]chargeReturn)
		}
		for range n {
			c := chargeReturn{index: int32(d.uvarint(duplicateChargesPerOrderMax - 1)), at: d.varint(), note: d.str(RefundNoteLenMax)}
			if d.err != nil || int(c.index) >= len(st.charges[k]) || st.chargeReturned(k, int(c.index)) {
				d.fail("a returned charge the order does not carry, or twice")
				break
			}
			rs.charges[k] = append(rs.charges[k], c)
		}
	}
	return d.finish("refund records section")
}

// moveRefunds files the records on the new shard of their order's sale
// (repartition); the rules travel in the sales' configs.
func moveRefunds(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		dst := func(k orderKey) *state {
			o, _ := st.orderByKey(k)
			return states[route(st.sales[o.sale].cfg.ID)]
		}
		for k, r := range st.refunds.requests {
			d := dst(k)
			putLazy(&d.refunds.requests, k, r)
		}
		for k, r := range st.refunds.records {
			d := dst(k)
			putLazy(&d.refunds.records, k, r)
		}
		for k, l := range st.refunds.exchangedTo {
			dst(k).refunds.linkExchange(l)
		}
		for k, cs := range st.refunds.charges {
			d := dst(k)
			if d.refunds.charges == nil {
				d.refunds.charges = make(map[orderKey][]chargeReturn)
			}
			d.refunds.charges[k] = cs
		}
	}
}
