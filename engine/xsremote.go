package engine

import (
	"context"
	"fmt"
)

// The steps of an exchange into another session (xsession.go) run in the
// shards of their sales. On a fleet a node's engine holds one partition's
// sales only, so a step whose sale is another partition's goes through
// Config.Remote to the node that holds it, which runs it with
// Engine.ExchangeStep. Every step is idempotent in its shard (step (a) by
// its key "exchange of <old order id>", (b) and (c) by the old and new
// order), so a remote call that times out and is asked again decides
// nothing twice. A remote call that gets no answer fails with ErrStopped
// (it may or may not have been decided): the caller's request answers 503
// and the buyer asks again, or the sweeper of the target's node
// (SettleExchanges) tries again.

// ExchangeRemote reaches the engine holding a sale this one does not.
type ExchangeRemote interface {
	// Holds reports whether this engine holds sale saleID.
	Holds(saleID string) bool
	// ExchangeStep runs s on the engine holding sale saleID (its
	// ExchangeStep). A refusal there is a *Rejection here.
	ExchangeStep(ctx context.Context, saleID string, s ExchangeStep) (ExchangeStepResult, error)
}

// ExchangeStep is one step of an exchange into another session as it
// travels between nodes. Order keys are spelled as in order ids (26
// base32 characters).
type ExchangeStep struct {
	Op        string `json:"op"` // check, in, out, settle, list, order
	Order     string `json:"order,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	TierID    string `json:"tier_id,omitempty"`
	NewOrder  string `json:"new_order,omitempty"`
	OtherSale string `json:"other_sale,omitempty"`
	Other     string `json:"other,omitempty"`
	Event     string `json:"event,omitempty"`
	OldAmount int64  `json:"old_amount,omitempty"`
	Qty       int    `json:"qty,omitempty"`
	Diff      int64  `json:"diff,omitempty"`
	Fee       int64  `json:"fee,omitempty"`
	OK        bool   `json:"ok,omitempty"`
	// Parts are the payments that took the old order's money.
	Parts []ExchangePart `json:"parts,omitempty"`
}

// ExchangePart is a paymentPart on the wire.
type ExchangePart struct {
	PaymentID string `json:"payment_id"`
	Took      int64  `json:"took"`
	Total     int64  `json:"total"`
}

// ExchangeStepResult answers an ExchangeStep.
type ExchangeStepResult struct {
	OrderKey string            `json:"order_key,omitempty"` // in: the new order
	Amount   int64             `json:"amount,omitempty"`    // check
	Qty      int               `json:"qty,omitempty"`
	Fee      int64             `json:"fee,omitempty"`
	User     string            `json:"user,omitempty"`
	Event    string            `json:"event,omitempty"`
	Done     string            `json:"done,omitempty"`
	Parts    []ExchangePart    `json:"parts,omitempty"`
	Open     []ExchangePending `json:"open,omitempty"` // list
	Has      bool              `json:"has,omitempty"`  // check, list: a result was given
	Order    *Order            `json:"order,omitempty"`
}

// ExchangePending is an xsPending on the wire.
type ExchangePending struct {
	SaleID   string `json:"sale_id"`
	FromSale string `json:"from_sale"`
	Key      string `json:"key"`
	From     string `json:"from"`
	Diff     int64  `json:"diff"`
	Fee      int64  `json:"fee"`
}

var xsOpNames = [...]string{xsCheck: "check", xsInOp: "in", xsOutOp: "out", xsSettle: "settle", xsList: "list"}

const xsOrderOp = "order"

// ExchangeStep runs s, asked by another node's engine, in the shard of
// sale saleID of this one.
func (e *Engine) ExchangeStep(ctx context.Context, saleID string, s ExchangeStep) (ExchangeStepResult, error) {
	if s.Op == xsOrderOp {
		o, err := e.Order(ctx, s.Order)
		if err != nil {
			return ExchangeStepResult{}, err
		}
		return ExchangeStepResult{Order: &o}, nil
	}
	cmd, ok := commandOfStep(saleID, s)
	if !ok {
		// not a Rejection: a refused step (b) would undo the exchange
		return ExchangeStepResult{}, fmt.Errorf("engine: bad exchange step %q", s.Op)
	}
	key, xs, err := e.xsLocal(ctx, saleID, cmd)
	if err != nil {
		return ExchangeStepResult{}, err
	}
	return stepResultOf(key, xs), nil
}

// xsRun runs cmd, a step of an exchange into another session, in the
// shard of sale saleID: this engine's, or the remote one's.
func (e *Engine) xsRun(ctx context.Context, saleID string, cmd command) (orderKey, *xsResult, error) {
	if rm := e.cfg.Remote; rm != nil && !rm.Holds(saleID) {
		r, err := rm.ExchangeStep(ctx, saleID, stepOf(cmd))
		if err != nil {
			return orderKey{}, nil, err
		}
		return resultOfStep(r)
	}
	return e.xsLocal(ctx, saleID, cmd)
}

func (e *Engine) xsLocal(ctx context.Context, saleID string, cmd command) (key orderKey, xs *xsResult, err error) {
	err = e.one(ctx, saleID, cmd, func(r *result) { key, xs = r.orderKey, r.xs })
	return key, xs, err
}

// xsOrder is Order of an order held here or remotely.
func (e *Engine) xsOrder(ctx context.Context, orderID string) (Order, error) {
	saleID, _, _ := parseOrderID(orderID)
	if rm := e.cfg.Remote; rm != nil && !rm.Holds(saleID) {
		r, err := rm.ExchangeStep(ctx, saleID, ExchangeStep{Op: xsOrderOp, Order: orderID})
		if err != nil {
			return Order{}, err
		}
		if r.Order == nil {
			return Order{}, fmt.Errorf("%w: the order's node answered no order", ErrStopped)
		}
		return *r.Order, nil
	}
	return e.Order(ctx, orderID)
}

func keyText(k orderKey) string {
	if k == (orderKey{}) {
		return ""
	}
	return orderKeyEncoding.EncodeToString(k[:])
}

func keyOfText(s string) (orderKey, bool) {
	var k orderKey
	if s == "" {
		return k, true
	}
	if len(s) != orderKeyLen {
		return k, false
	}
	n, err := orderKeyEncoding.Decode(k[:], []byte(s))
	return k, err == nil && n == len(k)
}

func partsOut(ps []paymentPart) []ExchangePart {
	var out []ExchangePart
	for _, p := range ps {
		out = append(out, ExchangePart{PaymentID: p.paymentID, Took: p.took, Total: p.total})
	}
	return out
}

func partsIn(ps []ExchangePart) []paymentPart {
	var out []paymentPart
	for _, p := range ps {
		out = append(out, paymentPart{paymentID: p.PaymentID, took: p.Took, total: p.Total})
	}
	return out
}

func stepOf(cmd command) ExchangeStep {
	x := cmd.xs
	return ExchangeStep{Op: xsOpNames[x.op], Order: keyText(cmd.order), UserID: cmd.userID, TierID: cmd.tierID,
		NewOrder: keyText(cmd.newOrder), OtherSale: x.otherSale, Other: keyText(x.other), Event: x.event,
		OldAmount: x.oldAmount, Qty: x.qty, Diff: x.diff, Fee: x.fee, OK: x.ok, Parts: partsOut(x.parts)}
}

func commandOfStep(saleID string, s ExchangeStep) (command, bool) {
	var op xsOp
	for i, n := range xsOpNames {
		if n != "" && n == s.Op {
			op = xsOp(i)
		}
	}
	order, ok1 := keyOfText(s.Order)
	newOrder, ok2 := keyOfText(s.NewOrder)
	other, ok3 := keyOfText(s.Other)
	if op == 0 || !ok1 || !ok2 || !ok3 || len(s.Parts) > xsPartsMax || op == xsInOp && newOrder == (orderKey{}) {
		return command{}, false
	}
	cmd := command{kind: cmdXSession, order: order, userID: s.UserID, tierID: s.TierID, newOrder: newOrder,
		xs: &xsCommand{op: op, otherSale: s.OtherSale, other: other, event: s.Event, oldAmount: s.OldAmount, qty: s.Qty,
			diff: s.Diff, fee: s.Fee, ok: s.OK, parts: partsIn(s.Parts)}}
	if op != xsList {
		cmd.saleID = saleID
	}
	return cmd, true
}

func stepResultOf(key orderKey, xs *xsResult) ExchangeStepResult {
	r := ExchangeStepResult{OrderKey: keyText(key)}
	if xs == nil {
		return r
	}
	r.Has = true
	r.Amount, r.Qty, r.Fee, r.User, r.Event, r.Done, r.Parts = xs.amount, xs.qty, xs.fee, xs.user, xs.event, xs.done, partsOut(xs.parts)
	for _, p := range xs.open {
		r.Open = append(r.Open, ExchangePending{SaleID: p.saleID, FromSale: p.fromSale, Key: keyText(p.key), From: keyText(p.from),
			Diff: p.diff, Fee: p.fee})
	}
	return r
}

func resultOfStep(r ExchangeStepResult) (orderKey, *xsResult, error) {
	bad := fmt.Errorf("%w: a bad exchange step answer from the sale's node", ErrStopped)
	key, ok := keyOfText(r.OrderKey)
	if !ok {
		return orderKey{}, nil, bad
	}
	if !r.Has {
		return key, nil, nil
	}
	xs := &xsResult{amount: r.Amount, qty: r.Qty, fee: r.Fee, user: r.User, event: r.Event, done: r.Done, parts: partsIn(r.Parts)}
	for _, p := range r.Open {
		k, ok1 := keyOfText(p.Key)
		from, ok2 := keyOfText(p.From)
		if !ok1 || !ok2 {
			return orderKey{}, nil, bad
		}
		xs.open = append(xs.open, xsPending{saleID: p.SaleID, fromSale: p.FromSale, key: k, from: from, diff: p.Diff, fee: p.Fee})
	}
	return key, xs, nil
}
