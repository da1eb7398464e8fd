package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
)

// Box office: a seller (a credential of role seller) sells at a counter for
// a named buyer, and takes payment there. A box-office order is an order
// like any other (same stock, same per-user limit, same hold), placed for a
// user id the caller derives from the buyer's email, with a record beside
// it: the seller's credential id and the buyer's contact, which the caller
// encrypts (the engine stores opaque bytes and never sees a name or an
// email). A counter payment adds the seller, the method and a reference to
// the record.
//
// Records live in a map keyed by order, like duplicate charges
// (charges.go): online orders pay nothing for it. A record is never
// modified in place, only replaced, so snapshots and answers share it.

// Limits of box-office data.
const (
	ContactLenMax           = 1024 // the buyer's encrypted contact
	CounterMethodLenMax     = 16
	CounterReferenceLenMax  = 100
	CounterKeyLenMax        = 128 // the Idempotency-Key of a counter payment, part of its payment id
	boxOfficeSectionTag     = 21
	counterPaymentIDPrefix  = "counter:"
	boxOfficeFlagHasCounter = 1
	boxOfficeFlagsKnownMax  = boxOfficeFlagHasCounter
)

// BoxOffice is an order's box-office record.
type BoxOffice struct {
	SellerID string // the credential that sold it; "" for an online order paid at the counter
	Contact  []byte // the buyer's contact as the caller sealed it; nil if not sold at the box office
	Counter  *CounterPayment
}

// CounterPayment is a payment taken at a box-office counter.
type CounterPayment struct {
	SellerID  string
	Method    string // cash or card: the caller's vocabulary
	Reference string // the caller's: a receipt or terminal number, may be ""
	AtMs      int64
}

// Channel names how the order was sold.
func (b *BoxOffice) Channel() string {
	if b != nil && b.SellerID != "" {
		return "box_office"
	}
	return "online"
}

// counterPaymentID is the payment id a counter payment gives its order. The
// Idempotency-Key in it makes a retry find its own payment.
func counterPaymentID(sellerID, method, key string) string {
	return counterPaymentIDPrefix + sellerID + ":" + method + ":" + key
}

// decideBoxOfficePurchase is a purchase, and the record of who sold it to
// whom in the same entry. A retry with the same key finds the order and
// adds nothing.
func (st *state) decideBoxOfficePurchase(cmd *command, now int64, evs []event) ([]event, *Rejection) {
	start := len(evs)
	evs, rej := st.decidePurchase(cmd, now, evs)
	if rej != nil || len(evs) == start {
		return evs, rej
	}
	return append(evs, event{kind: evBoxOfficeSold, at: now, order: cmd.newOrder,
		box: &BoxOffice{SellerID: cmd.box.SellerID, Contact: cmd.box.Contact}}), nil
}

// decideCounterPay takes money at the counter for an order. A pending order
// becomes paid. An order paid already (online or at a counter) is answered as
// it is: the seller sees it is paid and takes nothing. An expired or
// cancelled one follows decidePay's late-money rule: it takes its tickets
// again if the tier and the buyer's limit allow, else it is paid with
// needs_refund, and the seller hands the money back. A refunded order takes
// no money.
func (st *state) decideCounterPay(o *order, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	c := cmd.box.Counter
	id := counterPaymentID(c.SellerID, c.Method, cmd.key)
	if o.paymentID == id {
		return evs, nil // this payment, again
	}
	ok := true
	switch o.status {
	case StatusPaid:
		return evs, nil
	case StatusRefunded:
		return evs, reject(CodeInvalidOrderState, "order is refunded; take no money for it")
	case StatusExpired, StatusCancelled:
		sl := st.sales[o.sale]
		ok = sl.available(int(o.tier)) >= int(o.qty) && int(sl.users[o.userID].tickets)+int(o.qty)*sl.ticketsPer(int(o.tier)) <= sl.cfg.PerUserLimit &&
			st.couponRetakable(sl, o) && st.attendeesFit(o)
	}
	return append(evs, event{kind: evCounterPaid, at: now, order: o.key, paymentID: id, needsRefund: !ok,
		box: &BoxOffice{Counter: &CounterPayment{SellerID: c.SellerID, Method: c.Method, Reference: c.Reference, AtMs: now}}}), nil
}

func (st *state) applyBoxOffice(ev *event) error {
	if _, ok := st.byKey[ev.order]; !ok { // complete while replaying too
		return fmt.Errorf("%w: %s of unknown order", errCorrupt, ev.kind)
	}
	rec := BoxOffice{}
	if old := st.boxOffice[ev.order]; old != nil {
		rec = *old
	}
	switch ev.kind {
	case evBoxOfficeSold:
		if rec.SellerID != "" {
			return fmt.Errorf("%w: BoxOfficeSold twice for one order", errCorrupt)
		}
		rec.SellerID, rec.Contact = ev.box.SellerID, ev.box.Contact
	case evCounterPaid:
		paid := event{kind: evOrderPaid, at: ev.at, order: ev.order, paymentID: ev.paymentID, needsRefund: ev.needsRefund}
		if err := st.apply(&paid); err != nil {
			return err
		}
		cp := *ev.box.Counter
		cp.AtMs = ev.at
		rec.Counter = &cp
	}
	if st.boxOffice == nil {
		st.boxOffice = make(map[orderKey]*BoxOffice)
	}
	st.boxOffice[ev.order] = &rec
	return nil
}

// Event bodies:
//
//	BoxOfficeSold at key sellerID contact
//	CounterPaid   at key paymentID needsRefund sellerID method reference
func appendBoxOfficeEvent(b []byte, ev *event) []byte {
	b = binary.AppendVarint(b, ev.at)
	b = append(b, ev.order[:]...)
	if ev.kind == evBoxOfficeSold {
		b = appendString(b, ev.box.SellerID)
		return appendString(b, string(ev.box.Contact))
	}
	b = appendString(b, ev.paymentID)
	b = appendBool(b, ev.needsRefund)
	return appendCounter(b, ev.box.Counter)
}

func appendCounter(b []byte, c *CounterPayment) []byte {
	b = appendString(b, c.SellerID)
	b = appendString(b, c.Method)
	return appendString(b, c.Reference)
}

func decodeBoxOfficeEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	ev.order = d.key()
	ev.box = &BoxOffice{}
	if ev.kind == evBoxOfficeSold {
		ev.box.SellerID = d.str(CredentialIDLenMax)
		ev.box.Contact = []byte(d.str(ContactLenMax))
		if d.err == nil && ev.box.SellerID == "" {
			d.fail("box-office sale without a seller")
		}
		return
	}
	ev.paymentID = d.str(PaymentIDLenMax)
	ev.needsRefund = d.bool()
	ev.box.Counter = d.counter()
}

func (d *decoder) counter() *CounterPayment {
	return &CounterPayment{SellerID: d.str(CredentialIDLenMax), Method: d.str(CounterMethodLenMax), Reference: d.str(CounterReferenceLenMax)}
}

// The box office's snapshot section: every record, by order key.
//
//	n | {key sellerID contact flags [counter: sellerID method reference at]}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag: boxOfficeSectionTag,
		freeze: func(st *state) func([]byte) []byte {
			if len(st.boxOffice) == 0 {
				return nil
			}
			type kv struct {
				k orderKey
				r *BoxOffice // never modified: shared with the state
			}
			recs := make([]kv, 0, len(st.boxOffice))
			for k, r := range st.boxOffice {
				recs = append(recs, kv{k, r})
			}
			slices.SortFunc(recs, func(a, b kv) int { return bytes.Compare(a.k[:], b.k[:]) })
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(len(recs)))
				for _, x := range recs {
					b = append(b, x.k[:]...)
					b = appendString(b, x.r.SellerID)
					b = appendString(b, string(x.r.Contact))
					if x.r.Counter == nil {
						b = append(b, 0)
						continue
					}
					b = append(b, boxOfficeFlagHasCounter)
					b = appendCounter(b, x.r.Counter)
					b = binary.AppendVarint(b, x.r.Counter.AtMs)
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(uint64(len(st.byKey)))
			for range n {
				k := d.key()
				r := &BoxOffice{SellerID: d.str(CredentialIDLenMax)}
				if contact := d.str(ContactLenMax); contact != "" {
					r.Contact = []byte(contact)
				}
				if flags := d.uvarint(boxOfficeFlagsKnownMax); flags&boxOfficeFlagHasCounter != 0 {
					r.Counter = d.counter()
					r.Counter.AtMs = d.varint()
				}
				if d.err != nil {
					break
				}
				if _, ok := st.byKey[k]; !ok {
					return fmt.Errorf("%w: snapshot has a box-office record of an order it does not hold", errCorrupt)
				}
				if st.boxOffice == nil {
					st.boxOffice = make(map[orderKey]*BoxOffice, n)
				}
				if _, dup := st.boxOffice[k]; dup {
					return fmt.Errorf("%w: snapshot lists an order's box-office record twice", errCorrupt)
				}
				st.boxOffice[k] = r
			}
			if err := d.check("box-office section"); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: box-office section: %d bytes left over", errCorrupt, len(d.b))
			}
			return nil
		},
	})
}

// BoxOfficePurchase is Purchase by a seller for a named buyer: req.UserID is
// the id the caller derived for the buyer (per-user limits count per
// buyer), contact the buyer's sealed contact, stored beside the order.
func (e *Engine) BoxOfficePurchase(ctx context.Context, req PurchaseRequest, sellerID string, contact []byte) (Order, bool, error) {
	switch {
	case len(req.UserID) == 0 || len(req.UserID) > UserLenMax:
		return Order{}, false, reject(CodeInvalidRequest, "user id must have 1 to %d bytes", UserLenMax)
	case len(req.IdempotencyKey) == 0 || len(req.IdempotencyKey) > IdempotencyKeyLenMax:
		return Order{}, false, reject(CodeInvalidRequest, "idempotency key must have 1 to %d bytes", IdempotencyKeyLenMax)
	case len(sellerID) == 0 || len(sellerID) > CredentialIDLenMax:
		return Order{}, false, reject(CodeInvalidRequest, "seller id must have 1 to %d bytes", CredentialIDLenMax)
	case len(contact) == 0 || len(contact) > ContactLenMax:
		return Order{}, false, reject(CodeInvalidRequest, "the buyer's contact must have 1 to %d bytes sealed", ContactLenMax)
	}
	r := getRequest()
	r.cmd = command{
		kind: cmdBoxOfficePurchase, saleID: req.SaleID, tierID: req.TierID, qty: req.Quantity,
		userID: req.UserID, key: req.IdempotencyKey, newOrder: newOrderKey(),
		box: &BoxOffice{SellerID: sellerID, Contact: slices.Clone(contact)},
	}
	if err := e.call(ctx, req.SaleID, r); err != nil {
		return Order{}, false, err
	}
	o, created := r.res.order, r.res.created
	o.ID = formatOrderID(o.SaleID, r.res.orderKey)
	putRequest(r)
	return o, created, nil
}

// PayAtCounter records a payment taken at the counter by seller p.SellerID
// (decideCounterPay says what it does). key is the request's
// Idempotency-Key: the same key finds the same payment.
func (e *Engine) PayAtCounter(ctx context.Context, orderID, key string, p CounterPayment) (Order, error) {
	switch {
	case len(key) == 0 || len(key) > CounterKeyLenMax:
		return Order{}, reject(CodeInvalidRequest, "the Idempotency-Key of a counter payment must have 1 to %d bytes", CounterKeyLenMax)
	case len(p.SellerID) == 0 || len(p.SellerID) > CredentialIDLenMax:
		return Order{}, reject(CodeInvalidRequest, "seller id must have 1 to %d bytes", CredentialIDLenMax)
	case len(p.Method) == 0 || len(p.Method) > CounterMethodLenMax:
		return Order{}, reject(CodeInvalidRequest, "method must have 1 to %d bytes", CounterMethodLenMax)
	case len(p.Reference) > CounterReferenceLenMax:
		return Order{}, reject(CodeInvalidRequest, "reference must have at most %d bytes", CounterReferenceLenMax)
	}
	o, err := e.orderCommand(ctx, orderID, command{kind: cmdCounterPay, key: key, box: &BoxOffice{Counter: &p}})
	if err == nil && !e.xsNoKick {
		e.kickExchange(&o) // xsession.go: a difference paid at the counter settles like one paid online
	}
	return o, err
}

// moveBoxOffice moves each box-office record to the new shard of its order's
// sale (repartition).
func moveBoxOffice(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		for k, r := range st.boxOffice {
			o, _ := st.orderByKey(k)
			dst := states[route(st.sales[o.sale].cfg.ID)]
			if dst.boxOffice == nil {
				dst.boxOffice = make(map[orderKey]*BoxOffice)
			}
			dst.boxOffice[k] = r
		}
	}
}
