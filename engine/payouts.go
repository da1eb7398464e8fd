package engine

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// payoutsSectionTag is the payouts' snapshot section (tag 91 is kept for
// this feature too, unused yet).
const payoutsSectionTag = 90

// Payouts: money that must go back to a buyer. Every refund obligation gets
// a durable record on its order, created by apply from the event that
// decided it, in the same log entry, so it costs a purchase nothing and
// replay recreates it exactly:
//
//	OrderRefunded, OrderRefundedAfterEntry   admin_refund      (approved: always sent)
//	DuplicateCharge                          duplicate_charge
//	PaymentMismatch                          payment_mismatch  (a success whose amount or currency is not the order's)
//	OrderPaid with needs_refund              late_payment
//	ExchangeInUndone of a paid difference    exchange_undone   (always sent; xsession.go)
//
// The payment event id names the provider that took the money
// ("<provider>:<transaction id>", as httpapi/payments writes it); a payout
// of a payment no provider took (the generic webhook, the counter) is
// manual: an admin gives the money back and marks it refunded.
//
// A payout is refund_pending until the refund worker (httpapi/payouts),
// beside the shards, gets the provider's answer and logs it through
// cmdPayoutUpdate: refunded, refund_failed with the provider's reason, or
// still pending with the time of the next attempt. The worker reads no
// state but what Payouts answers, so a restart resumes from the log.
//
// A provider may accept a refund and finish it later (Stripe pending,
// WeChat Pay PROCESSING, Alipay without fund_change, UnionPay's respCode
// 00): the payout stays refund_pending, now with the provider's refund id,
// and the worker queries the provider until it says how it ended; the
// provider's notification (ConfirmPayout) may say it first. Either way
// the end is one more PayoutUpdated.
//
//	refund_pending ──► refunded
//	      │   ▲
//	      ▼   │ retry (admin)
//	refund_failed ──► refunded (marked by an admin)
//	manual ─────────► refunded (marked by an admin)

// PayoutStatus is where a payout is.
type PayoutStatus uint8

const (
	PayoutPending  PayoutStatus = iota + 1 // refund_pending: the worker sends it
	PayoutRefunded                         // refunded: the provider took it, or an admin marked it
	PayoutFailed                           // refund_failed: the provider refused; Detail says why
	PayoutManual                           // manual: no provider to call; an admin settles it
)

var payoutStatusNames = [...]string{
	PayoutPending: "refund_pending", PayoutRefunded: "refunded", PayoutFailed: "refund_failed", PayoutManual: "manual",
}

func (s PayoutStatus) String() string {
	if int(s) < len(payoutStatusNames) && payoutStatusNames[s] != "" {
		return payoutStatusNames[s]
	}
	return fmt.Sprintf("payout_status(%d)", uint8(s))
}

// ParsePayoutStatus reads a status name; ok is false for an unknown one.
func ParsePayoutStatus(s string) (PayoutStatus, bool) {
	for i, n := range payoutStatusNames {
		if n != "" && n == s {
			return PayoutStatus(i), true
		}
	}
	return 0, false
}

// PayoutReason is why the money goes back.
type PayoutReason uint8

const (
	PayoutAdminRefund PayoutReason = iota + 1
	PayoutDuplicateCharge
	PayoutPaymentMismatch
	PayoutLatePayment
	PayoutRefundRequest      // refundpayouts.go: a refund under the sale's rules, less its fee
	PayoutExchangeDifference // refundpayouts.go: an exchange to a cheaper ticket
	PayoutExchangeUndone     // xsession.go: a difference paid for an exchange into another session that could not complete

	payoutReasonMax = PayoutExchangeUndone
)

var payoutReasonNames = [...]string{
	PayoutAdminRefund: "admin_refund", PayoutDuplicateCharge: "duplicate_charge",
	PayoutPaymentMismatch: "payment_mismatch", PayoutLatePayment: "late_payment",
	PayoutRefundRequest: "refund_request", PayoutExchangeDifference: "exchange_difference",
	PayoutExchangeUndone: "exchange_undone",
}

func (r PayoutReason) String() string {
	if int(r) < len(payoutReasonNames) && payoutReasonNames[r] != "" {
		return payoutReasonNames[r]
	}
	return fmt.Sprintf("payout_reason(%d)", uint8(r))
}

// Payout is a refund obligation as queried.
type Payout struct {
	ID            string // "<order id>.<n>": routes to its sale; n counts the order's payouts from 0
	OrderID       string
	Reason        PayoutReason
	AmountCents   int64  // what goes back, in Currency
	TotalCents    int64  // what the payment took (providers want both)
	Currency      string // the payment's currency (a mismatched payment's own)
	Provider      string // "stripe", "alipay", "wechatpay", "unionpay"; "" for a manual payout
	TransactionID string // the provider's id of the payment
	PaymentID     string // the engine's payment event id
	Status        PayoutStatus
	// Approved: sent even while automatic refunds are off (an admin
	// refund, or a payout an admin retried).
	Approved         bool
	Attempts         int
	Detail           string // the provider's reason of the last failure or retry
	ProviderRefundID string // the provider's id of the refund, once refunded
	NextAttemptAtMs  int64  // while pending: not before
	CreatedAtMs      int64
	UpdatedAtMs      int64
}

// Limits.
const (
	PayoutsPerOrderMax     = 80 // duplicate charges (64) and then some
	PayoutDetailLenMax     = 300
	ProviderRefundIDLenMax = 128
)

// payoutProviders are the payment id prefixes that name a provider.
var payoutProviders = []string{"stripe", "alipay", "wechatpay", "unionpay"}

// PaymentProvider splits a payment event id into the provider that took
// the money and its transaction id; provider is "" for a payment no
// provider adapter recorded.
func PaymentProvider(paymentID string) (provider, transactionID string) {
	p, tx, ok := strings.Cut(paymentID, ":")
	if !ok || tx == "" || !slices.Contains(payoutProviders, p) {
		return "", ""
	}
	return p, tx
}

// payout is a Payout in a shard's state.
type payout struct {
	reason    PayoutReason
	status    PayoutStatus
	approved  bool
	attempts  uint32
	amount    int64
	total     int64
	currency  string
	paymentID string
	detail    string
	refundID  string
	nextAt    int64
	createdAt int64
	updatedAt int64
}

// addPayout records a refund obligation of order o; apply calls it.
func (st *state) addPayout(o *order, reason PayoutReason, paymentID string, amount int64, currency string, approved bool, at int64) {
	st.addPayoutOf(o, reason, paymentID, amount, amount, currency, approved, at)
}

// addPayoutOf records a refund of amount out of a payment of total.
func (st *state) addPayoutOf(o *order, reason PayoutReason, paymentID string, amount, total int64, currency string, approved bool, at int64) {
	if st.payouts == nil {
		st.payouts = make(map[orderKey][]payout)
	}
	status := PayoutPending
	if p, _ := PaymentProvider(paymentID); p == "" {
		status = PayoutManual
	}
	st.payouts[o.key] = append(st.payouts[o.key], payout{
		reason: reason, status: status, approved: approved, amount: amount, total: total, currency: currency,
		paymentID: paymentID, nextAt: at, createdAt: at, updatedAt: at,
	})
}

// payoutsOnRefund is apply's part of an admin refund. An order that is
// paid with needs_refund carries a late_payment payout for the same money
// already: the admin's refund approves it rather than adding a second.
func (st *state) payoutsOnRefund(o *order, sl *sale, at int64) {
	if o.needsRefund {
		ps := st.payouts[o.key]
		for i := range ps {
			if ps[i].reason == PayoutLatePayment && ps[i].paymentID == o.paymentID {
				ps[i].approved = true
				ps[i].updatedAt = at
				return
			}
		}
	}
	st.refundPayouts(o, PayoutAdminRefund, o.amount, sl.cfg.Currency, at) // exchanges.go: out of the payments that took it
}

// decideMismatch decides a successful payment whose amount or currency is
// not the order's: money taken that pays for nothing. It is recorded once
// per event id as a payment_mismatch payout. A failure, or an amount that
// is no money at all, changes nothing and is refused.
func (st *state) decideMismatch(o *order, p *Payment, now int64, res *result, evs []event) ([]event, *Rejection) {
	sl := st.sales[o.sale]
	rej := reject(CodePaymentMismatch, "order is %s; payment says %s",
		formatAmount(st.amountDue(o), sl.cfg.Currency), formatAmount(p.AmountCents, p.Currency))
	if !p.Succeeded || p.AmountCents <= 0 || p.AmountCents > PriceCentsMax*QuantityPerOrderMax || !validCurrency(p.Currency) {
		return evs, rej
	}
	ps := st.payouts[o.key]
	for i := range ps {
		if ps[i].reason == PayoutPaymentMismatch && ps[i].paymentID == p.EventID {
			res.payment = PaymentMismatchSeen
			return evs, nil
		}
	}
	if len(ps) >= PayoutsPerOrderMax {
		return evs, reject(CodeInvalidOrderState, "order already carries %d refunds; settle them first", len(ps))
	}
	res.payment = PaymentMismatch
	return append(evs, event{kind: evPaymentMismatch, at: now, order: o.key, paymentID: p.EventID, amount: p.AmountCents, currency: p.Currency}), nil
}

// PayoutUpdate is what the refund worker or an admin logs about a payout.
type PayoutUpdate struct {
	PayoutID string
	// For PayoutConfirmed: the order, and the provider whose
	// ProviderRefundID names the payout.
	OrderID, Provider string
	Action            PayoutAction
	// For PayoutAttempted: the attempt count the worker read (a stale
	// worker's answer changes nothing), the outcome, the provider's
	// reason or refund id, and when to try again while still pending.
	AttemptsSeen     int
	Outcome          PayoutStatus // PayoutRefunded, PayoutFailed, or PayoutPending (try again)
	Detail           string
	ProviderRefundID string
	NextAttemptAtMs  int64
}

// PayoutAction says who updates a payout and why.
type PayoutAction uint8

const (
	PayoutAttempted    PayoutAction = iota + 1 // the worker called the provider
	PayoutRetry                                // an admin: send it (again) now, automatic refunds or not
	PayoutMarkRefunded                         // an admin settled it by hand
	// PayoutConfirmed: the provider notified the end of a refund it had
	// accepted; the payout is the order's one of Provider with
	// ProviderRefundID (ConfirmPayout).
	PayoutConfirmed
)

type payoutCommand struct {
	n      int
	update PayoutUpdate
	query  PayoutQuery
}

// PayoutQuery selects payouts: of one sale or all, of one status or all,
// and (DueAtMs > 0) only pending ones due by then.
type PayoutQuery struct {
	SaleID  string
	Status  PayoutStatus // 0: any
	DueAtMs int64
	// ApprovedOnly keeps payouts that go out without automatic refunds:
	// admin refunds and those an admin retried.
	ApprovedOnly bool
	// UpdatedSinceMs keeps payouts created or changed at or after it: the
	// refund worker's guard against refunds a log replayed from before
	// payouts existed (main sets it to when this data directory first ran
	// with them).
	UpdatedSinceMs int64
	Limit          int
}

// decidePayoutUpdate decides cmdPayoutUpdate.
func (st *state) decidePayoutUpdate(cmd *command, now int64, evs []event) ([]event, *Rejection) {
	o, _ := st.orderByKey(cmd.order)
	ps := st.payouts[cmd.order]
	n := cmd.payouts.n
	if o == nil || st.sales[o.sale].cfg.ID != cmd.saleID || n >= len(ps) || n < 0 && cmd.payouts.update.Action != PayoutConfirmed {
		return evs, reject(CodeUnknownRefund, "no refund %q", cmd.payouts.update.PayoutID)
	}
	u := &cmd.payouts.update
	if u.Action == PayoutConfirmed {
		if n = st.payoutByRefundID(ps, u.Provider, u.ProviderRefundID); n < 0 {
			return evs, reject(CodeUnknownRefund, "order %s has no %s refund %q", cmd.payouts.update.OrderID, u.Provider, u.ProviderRefundID)
		}
	}
	p := ps[n]
	ev := event{kind: evPayoutUpdated, at: now, order: o.key, ticket: uint8(n), payout: &payoutChange{
		status: p.status, approved: p.approved, attempts: p.attempts, detail: p.detail, refundID: p.refundID, nextAt: p.nextAt,
	}}
	c := ev.payout
	switch u.Action {
	case PayoutAttempted:
		switch u.Outcome {
		case PayoutRefunded, PayoutFailed, PayoutPending:
		default:
			return evs, reject(CodeInvalidRequest, "an attempt ends refunded, refund_failed or refund_pending, not %s", u.Outcome)
		}
		if p.status != PayoutPending || int(p.attempts) != u.AttemptsSeen {
			return evs, nil // settled or attempted meanwhile: this answer is stale
		}
		c.attempts++
		c.status, c.detail, c.nextAt = u.Outcome, truncateUTF8(u.Detail, PayoutDetailLenMax), u.NextAttemptAtMs
		switch {
		case u.Outcome == PayoutPending:
			// Accepted by the provider (the refund's id: the worker
			// confirms it), or to be sent (again): no id.
			c.refundID = truncateUTF8(u.ProviderRefundID, ProviderRefundIDLenMax)
		case u.Outcome == PayoutRefunded && u.ProviderRefundID != "":
			c.refundID = truncateUTF8(u.ProviderRefundID, ProviderRefundIDLenMax)
		}
	case PayoutConfirmed:
		// The provider's notification of a refund it accepted: pending
		// ends refunded or refund_failed; a refund that went through may
		// still fail later (Stripe: refund.failed after succeeded);
		// anything else is a replay and changes nothing.
		switch {
		case u.Outcome != PayoutRefunded && u.Outcome != PayoutFailed:
			return evs, reject(CodeInvalidRequest, "a confirmation ends refunded or refund_failed, not %s", u.Outcome)
		case p.status == PayoutPending, p.status == PayoutRefunded && u.Outcome == PayoutFailed:
		default:
			return evs, nil
		}
		c.status, c.detail, c.nextAt = u.Outcome, truncateUTF8(u.Detail, PayoutDetailLenMax), 0
	case PayoutRetry:
		switch p.status {
		case PayoutPending, PayoutFailed:
		default:
			return evs, reject(CodeInvalidOrderState, "refund is %s; only a pending or failed refund can be retried", p.status)
		}
		c.status, c.approved, c.nextAt = PayoutPending, true, now
		if p.status == PayoutFailed {
			c.refundID = "" // sent again, not confirmed again
		}
	case PayoutMarkRefunded:
		if p.status == PayoutRefunded {
			return evs, nil
		}
		c.status, c.detail = PayoutRefunded, truncateUTF8(u.Detail, PayoutDetailLenMax)
	default:
		return evs, reject(CodeInvalidRequest, "unknown payout action %d", u.Action)
	}
	return append(evs, ev), nil
}

// payoutChange is a PayoutUpdated event's body: the payout's new state.
type payoutChange struct {
	status   PayoutStatus
	approved bool
	attempts uint32
	detail   string
	refundID string
	nextAt   int64
}

func (st *state) applyPayoutUpdated(o *order, ev *event) error {
	ps := st.payouts[o.key]
	if int(ev.ticket) >= len(ps) {
		return fmt.Errorf("%w: PayoutUpdated of payout %d of an order with %d", errCorrupt, ev.ticket, len(ps))
	}
	p, c := &ps[ev.ticket], ev.payout
	p.status, p.approved, p.attempts, p.detail, p.refundID, p.nextAt, p.updatedAt =
		c.status, c.approved, c.attempts, c.detail, c.refundID, c.nextAt, ev.at
	return nil
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

// payoutViews answers an order's payouts, nil for the many orders
// without any.
func (st *state) payoutViews(o *order) []Payout {
	ps := st.payouts[o.key]
	if len(ps) == 0 {
		return nil
	}
	orderID := formatOrderID(st.sales[o.sale].cfg.ID, o.key)
	out := make([]Payout, len(ps))
	for i := range ps {
		out[i] = ps[i].view(i)
		out[i].OrderID, out[i].ID = orderID, orderID+"."+out[i].ID
	}
	return out
}

func (p *payout) view(n int) Payout {
	prov, tx := PaymentProvider(p.paymentID)
	return Payout{
		ID: strconv.Itoa(n), Reason: p.reason, AmountCents: p.amount, TotalCents: p.total, Currency: p.currency,
		Provider: prov, TransactionID: tx, PaymentID: p.paymentID, Status: p.status, Approved: p.approved,
		Attempts: int(p.attempts), Detail: p.detail, ProviderRefundID: p.refundID, NextAttemptAtMs: p.nextAt,
		CreatedAtMs: p.createdAt, UpdatedAtMs: p.updatedAt,
	}
}

// answerPayouts answers cmdPayouts: the shard's payouts that match, in
// creation order, IDs complete.
func (st *state) answerPayouts(cmd *command, res *result) {
	q := &cmd.payouts.query
	type hit struct {
		k orderKey
		p Payout
	}
	var hits []hit
	for k, ps := range st.payouts {
		o, _ := st.orderByKey(k)
		sl := st.sales[o.sale]
		if q.SaleID != "" && sl.cfg.ID != q.SaleID {
			continue
		}
		orderID := formatOrderID(sl.cfg.ID, k)
		for i := range ps {
			p := &ps[i]
			if q.Status != 0 && p.status != q.Status || q.DueAtMs > 0 && (p.status != PayoutPending || p.nextAt > q.DueAtMs) ||
				q.ApprovedOnly && !p.approved || p.updatedAt < q.UpdatedSinceMs {
				continue
			}
			v := p.view(i)
			v.OrderID, v.ID = orderID, orderID+"."+v.ID
			hits = append(hits, hit{k, v})
		}
	}
	// Map order is not an output order: sort by creation, then id.
	slices.SortFunc(hits, func(a, b hit) int {
		if c := cmp.Compare(a.p.CreatedAtMs, b.p.CreatedAtMs); c != 0 {
			return c
		}
		return strings.Compare(a.p.ID, b.p.ID)
	})
	if q.Limit > 0 && len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	for _, h := range hits {
		res.payouts = append(res.payouts, h.p)
	}
}

// Payouts lists payouts, oldest first, up to q.Limit (0: 10,000, the most).
func (e *Engine) Payouts(ctx context.Context, q PayoutQuery) ([]Payout, error) {
	if q.Limit <= 0 || q.Limit > 10_000 {
		q.Limit = 10_000
	}
	cmd := command{kind: cmdPayouts, payouts: &payoutCommand{query: q}}
	var out []Payout
	collect := func(res *result) { out = append(out, res.payouts...) }
	var err error
	if q.SaleID != "" {
		err = e.one(ctx, q.SaleID, cmd, collect)
	} else {
		err = e.fanOut(ctx, cmd, collect)
	}
	slices.SortStableFunc(out, func(a, b Payout) int { return cmp.Compare(a.CreatedAtMs, b.CreatedAtMs) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, err
}

// UpdatePayout logs what the worker or an admin says of a payout and
// returns it as it is after.
func (e *Engine) UpdatePayout(ctx context.Context, u PayoutUpdate) (Payout, error) {
	orderID, n, ok := ParsePayoutID(u.PayoutID)
	if !ok {
		return Payout{}, reject(CodeUnknownRefund, "no refund %q", u.PayoutID)
	}
	o, err := e.orderCommand(ctx, orderID, command{kind: cmdPayoutUpdate, payouts: &payoutCommand{n: n, update: u}})
	if err != nil {
		return Payout{}, err
	}
	return o.Payouts[n], nil
}

// ConfirmPayout logs a provider's notification that a refund it accepted
// (the payout of orderID through provider whose refund id is
// providerRefundID) ended: outcome is PayoutRefunded or PayoutFailed. A
// notification seen before changes nothing; a refund id the order does
// not carry is CodeUnknownRefund (a refund made at the provider, or one
// whose acceptance is not logged yet).
func (e *Engine) ConfirmPayout(ctx context.Context, orderID, provider, providerRefundID string, outcome PayoutStatus, detail string) (Payout, error) {
	if provider == "" || providerRefundID == "" {
		return Payout{}, reject(CodeUnknownRefund, "a confirmation names the provider and its refund id")
	}
	u := PayoutUpdate{Action: PayoutConfirmed, OrderID: orderID, Provider: provider, ProviderRefundID: providerRefundID,
		Outcome: outcome, Detail: detail}
	o, err := e.orderCommand(ctx, orderID, command{kind: cmdPayoutUpdate, payouts: &payoutCommand{n: -1, update: u}})
	if err != nil {
		return Payout{}, err
	}
	for _, p := range o.Payouts {
		if p.Provider == provider && p.ProviderRefundID == providerRefundID {
			return p, nil
		}
	}
	return Payout{}, reject(CodeUnknownRefund, "order %s has no %s refund %q", orderID, provider, providerRefundID)
}

// payoutByRefundID is the index of the payout of provider whose refund
// id is id, or -1.
func (st *state) payoutByRefundID(ps []payout, provider, id string) int {
	for i := range ps {
		if p, _ := PaymentProvider(ps[i].paymentID); p == provider && id != "" && ps[i].refundID == id {
			return i
		}
	}
	return -1
}

// ParsePayoutID splits "<order id>.<n>".
func ParsePayoutID(id string) (orderID string, n int, ok bool) {
	dot := strings.LastIndexByte(id, '.')
	if dot < 0 || dot+1 == len(id) || len(id)-dot > 3 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[dot+1:])
	if err != nil || n < 0 || n >= PayoutsPerOrderMax || strconv.Itoa(n) != id[dot+1:] {
		return "", 0, false
	}
	if _, _, ok := parseOrderID(id[:dot]); !ok {
		return "", 0, false
	}
	return id[:dot], n, true
}

// Events.
//
//	PaymentMismatch at key paymentID amount currency
//	PayoutUpdated   at key n status approved(0|1) attempts detail refundID nextAt
func appendPayoutEvent(b []byte, ev *event) []byte {
	b = binary.AppendVarint(b, ev.at)
	b = append(b, ev.order[:]...)
	switch ev.kind {
	case evPaymentMismatch:
		b = appendString(b, ev.paymentID)
		b = binary.AppendVarint(b, ev.amount)
		b = appendString(b, ev.currency)
	case evPayoutUpdated:
		c := ev.payout
		b = binary.AppendUvarint(b, uint64(ev.ticket))
		b = append(b, byte(c.status))
		b = appendBool(b, c.approved)
		b = binary.AppendUvarint(b, uint64(c.attempts))
		b = appendString(b, c.detail)
		b = appendString(b, c.refundID)
		b = binary.AppendVarint(b, c.nextAt)
	}
	return b
}

func decodePayoutEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	ev.order = d.key()
	switch ev.kind {
	case evPaymentMismatch:
		ev.paymentID = d.str(PaymentIDLenMax)
		ev.amount = d.varint()
		ev.currency = d.str(3)
	case evPayoutUpdated:
		ev.ticket = uint8(d.uvarint(PayoutsPerOrderMax - 1))
		c := &payoutChange{}
		c.status = d.payoutStatus()
		c.approved = d.bool()
		c.attempts = uint32(d.uvarint(1 << 31))
		c.detail = d.str(PayoutDetailLenMax)
		c.refundID = d.str(ProviderRefundIDLenMax)
		c.nextAt = d.varint()
		ev.payout = c
	}
}

func (d *decoder) payoutStatus() PayoutStatus {
	s := PayoutStatus(d.uvarint(uint64(PayoutManual)))
	if s == 0 && d.err == nil {
		d.fail("payout status 0")
	}
	return s
}

// The payouts' snapshot section: every payout of every order with any.
//
//	norders | {key npayouts {reason status approved attempts amount total
//	          currency paymentID detail refundID nextAt createdAt updatedAt}}*
func init() {
	registerSnapshotSection(snapshotSection{tag: payoutsSectionTag, freeze: freezePayouts, restore: restorePayouts})
}

func freezePayouts(st *state) func([]byte) []byte {
	type kv struct {
		k  orderKey
		ps []payout
	}
	if len(st.payouts) == 0 {
		return nil
	}
	all := make([]kv, 0, len(st.payouts))
	for k, ps := range st.payouts {
		all = append(all, kv{k, slices.Clone(ps)}) // elements change: copied
	}
	slices.SortFunc(all, func(a, b kv) int { return bytes.Compare(a.k[:], b.k[:]) })
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(all)))
		for _, x := range all {
			b = append(b, x.k[:]...)
			b = binary.AppendUvarint(b, uint64(len(x.ps)))
			for i := range x.ps {
				p := &x.ps[i]
				b = append(b, byte(p.reason), byte(p.status))
				b = appendBool(b, p.approved)
				b = binary.AppendUvarint(b, uint64(p.attempts))
				b = binary.AppendVarint(b, p.amount)
				b = binary.AppendVarint(b, p.total)
				b = appendString(b, p.currency)
				b = appendString(b, p.paymentID)
				b = appendString(b, p.detail)
				b = appendString(b, p.refundID)
				b = binary.AppendVarint(b, p.nextAt)
				b = binary.AppendVarint(b, p.createdAt)
				b = binary.AppendVarint(b, p.updatedAt)
			}
		}
		return b
	}
}

func restorePayouts(st *state, body []byte) error {
	d := decoder{b: body}
	n := d.uvarint(1 << 31)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.key()
		np := d.uvarint(PayoutsPerOrderMax)
		if _, ok := st.byKey[k]; (!ok || np == 0) && d.err == nil {
			d.fail("payouts of an unknown order, or none")
			break
		}
		if _, dup := st.payouts[k]; dup {
			d.fail("an order's payouts twice")
			break
		}
		ps := make([]payout, 0, np)
		for range np {
			var p payout
			p.reason = PayoutReason(d.uvarint(uint64(payoutReasonMax)))
			p.status = d.payoutStatus()
			p.approved = d.bool()
			p.attempts = uint32(d.uvarint(1 << 31))
			p.amount, p.total = d.varint(), d.varint()
			p.currency, p.paymentID = d.str(3), d.str(PaymentIDLenMax)
			p.detail, p.refundID = d.str(PayoutDetailLenMax), d.str(ProviderRefundIDLenMax)
			p.nextAt, p.createdAt, p.updatedAt = d.varint(), d.varint(), d.varint()
			if p.reason == 0 && d.err == nil {
				d.fail("payout reason 0")
			}
			ps = append(ps, p)
		}
		if st.payouts == nil {
			st.payouts = make(map[orderKey][]payout)
		}
		st.payouts[k] = ps
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d bytes left over", len(d.b)))
	}
	if d.err != nil {
		return fmt.Errorf("%w: snapshot payouts section: %v", errCorrupt, d.err)
	}
	return nil
}
