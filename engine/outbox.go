package engine

import (
	"context"
	"strconv"
)

// The outbox, the engine's side. A notification (order.created,
// order.paid, ...) is not written as an extra record: it is derived from
// the events a shard already logs, so it is in the same log entry as the
// decision that caused it by construction and the purchase path writes no
// extra byte. Whoever delivers notifications (httpapi/notify) reads the
// committed entries of each shard back from the journal, up to the seq the
// shard has made durable, and keeps its own progress.
//
// The engine gives it three things:
//
//   - Config.Outbox.Durable(shard, seq), called by the shard's acker after
//     each synced entry: a wake-up that must not block (an atomic store and
//     a non-blocking send). DurableSeq returns the same number.
//   - Config.Outbox.BeforeTruncate(shard, seq), called by the shard's
//     snapshot writer before the snapshot that deletes the log up to seq:
//     it returns true once the reader has durably taken every entry <= seq,
//     and false if the reader stopped first, in which case the snapshot is
//     skipped and the log kept: truncation never deletes an entry the
//     reader has not taken. The snapshot
//     writer is off the purchase path; a slow reader delays snapshots (and
//     keeps more log on disk), never a purchase.
//   - DecodeNotifications turns an entry into notifications, and
//     LookupOrders reads the orders they are about (one read command per
//     shard and round, beside the purchases, not one per event).

// OutboxTap is what the engine tells an outbox reader. Both methods may be
// called from any shard's goroutines concurrently.
type OutboxTap interface {
	// Durable says shard's entries up to seq are synced. It must not block.
	Durable(shard int, seq uint64)
	// BeforeTruncate returns true once the reader has durably consumed
	// shard's entries up to seq; false when it stopped first, and then the
	// snapshot is not taken (the log is kept).
	BeforeTruncate(shard int, seq uint64) bool
}

// DurableSeq returns the last synced seq of shard i's log.
func (e *Engine) DurableSeq(i int) uint64 { return e.shards[i].durableSeq.Load() }

// OrderRef names an order by its key, as a log entry does (its sale is in
// the shard's state, not in every event).
type OrderRef [16]byte

// Notification kinds.
const (
	NotifyOrderCreated     = "order.created"
	NotifyOrderPaid        = "order.paid"
	NotifyOrderExpired     = "order.expired"
	NotifyOrderCancelled   = "order.cancelled"
	NotifyOrderRefunded    = "order.refunded"
	NotifyOrderNeedsRefund = "order.needs_refund"
	// NotifyOrderExchanged: the order was released for the new order an
	// exchange gave its buyer (refundrules.go, exchanges.go); the new one
	// has its own order.created and order.paid.
	NotifyOrderExchanged  = "order.exchanged"
	NotifyTicketCheckedIn = "ticket.checked_in"
	NotifySaleAnnounced   = "sale.put"
	// NotifyEventOnSale: a sale with a catalogue was created (phase
	// "announced", from its creation entry) or opened (phase "open",
	// noticed by the deliverer once opens_at has passed; follows.go).
	NotifyEventOnSale = "event.on_sale"
	// NotifyOrderOffered: a lottery or waitlist offer was made (offers.go):
	// an order waits for the buyer's payment until its expires_at.
	NotifyOrderOffered = "order.offered"
	// notifyWebhooksChanged is not delivered: it tells the reader to read
	// the endpoints again.
	NotifyWebhooksChanged = "~webhooks.changed"
)

// NotificationKinds are the kinds an endpoint may subscribe to.
var NotificationKinds = []string{
	NotifyOrderCreated, NotifyOrderPaid, NotifyOrderExpired, NotifyOrderCancelled,
	NotifyOrderRefunded, NotifyOrderNeedsRefund, NotifyTicketCheckedIn, NotifySaleAnnounced,
	NotifyEventOnSale, NotifyOrderExchanged, NotifyOrderOffered,
}

// Notification is one deliverable fact of a log entry. Order is set for
// order and ticket kinds; SaleID for sale kinds (and order.created).
type Notification struct {
	Kind        string
	Index       int // position among the entry's events: with shard and seq, a stable id
	AtMs        int64
	SaleID      string
	Order       OrderRef
	HasOrder    bool
	AmountCents int64    // order.needs_refund of a duplicate charge
	PaymentID   string   // order.paid, order.cancelled, duplicate charges
	Ticket      int      // ticket.checked_in
	Gate        string   // ticket.checked_in at a gate
	Sale        SaleInfo // sale.put and event.on_sale: the sale as put
}

// SaleInfo is what a sale notification says of the sale.
type SaleInfo struct {
	Name      string
	OpensAtMs int64
	Catalogue
}

// The phases of an event.on_sale notification.
const (
	OnSaleAnnounced = "announced"
	OnSaleOpen      = "open"
)

// ID is the notification's stable id: the same after a restart or a
// redelivery, so receivers can drop duplicates by it.
func (n *Notification) ID(shard int, seq uint64) string {
	b := []byte("evt_")
	b = strconv.AppendInt(b, int64(shard), 10)
	b = append(b, '_')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '_')
	b = strconv.AppendInt(b, int64(n.Index), 10)
	return string(b)
}

// ChangesWebhooks reports whether a log entry creates, changes or deletes
// a webhook endpoint (a NotifyWebhooksChanged in DecodeNotifications). It
// reads each record's kind only: a reader that wants no other notification
// skips the decoding of every order the entry holds.
func ChangesWebhooks(entry []byte) bool {
	changes := false
	eachEventKind(entry, func(k eventKind) bool {
		changes = k == evWebhookPut || k == evWebhookDeleted
		return !changes
	})
	return changes
}

// DecodeNotifications calls fn for each notification of a log entry, in
// log order. n is reused between calls.
func DecodeNotifications(entry []byte, fn func(n *Notification)) error {
	var n Notification
	var put *SaleConfig // the entry's last SalePut (the decoder reuses it)
	i := -1
	return decodeEntry(entry, func(ev *event) error {
		i++
		if ev.kind == evSalePut {
			put = ev.sale
		}
		kind := notificationKind(ev)
		if ev.kind == evTicketKeyAdded && ev.kid == 1 && put != nil && put.ID == ev.saleID && put.Catalogue != (Catalogue{}) {
			// kid 1 is added in the entry that creates the sale, after its
			// SalePut (decide.go): the sale is new, so it is announced.
			kind = NotifyEventOnSale
		}
		if kind == "" {
			return nil
		}
		n = Notification{Kind: kind, Index: i, AtMs: ev.at, SaleID: ev.saleID, PaymentID: ev.paymentID}
		switch ev.kind {
		case evTicketKeyAdded, evSalePut:
			n.Sale = SaleInfo{Name: put.Name, OpensAtMs: put.OpensAtMs, Catalogue: put.Catalogue}
		case evWebhookPut, evWebhookDeleted:
		case evDuplicateCharge:
			n.AmountCents = ev.amount
			fallthrough
		default:
			n.Order, n.HasOrder = OrderRef(ev.order), true
		}
		if ev.kind == evTicketCheckedIn || ev.kind == evTicketAdmitted {
			n.Ticket, n.Gate = int(ev.ticket), ev.gate
		}
		fn(&n)
		return nil
	})
}

func notificationKind(ev *event) string {
	switch ev.kind {
	case evOrderPlaced:
		return NotifyOrderCreated
	case evOrderPaid, evCounterPaid:
		if ev.needsRefund {
			return NotifyOrderNeedsRefund
		}
		return NotifyOrderPaid
	case evDuplicateCharge:
		return NotifyOrderNeedsRefund
	case evOrderExpired:
		return NotifyOrderExpired
	case evOrderCancelled:
		return NotifyOrderCancelled
	case evOrderRefunded, evOrderRefundedAfterEntry, evExchangeInUndone: // xsession.go: the undo revokes the new order
		return NotifyOrderRefunded
	case evOrderExchanged, evExchangedOut:
		return NotifyOrderExchanged
	case evTicketCheckedIn, evTicketAdmitted:
		return NotifyTicketCheckedIn
	case evSalePut:
		return NotifySaleAnnounced
	case evWebhookPut, evWebhookDeleted:
		return NotifyWebhooksChanged
	case evOfferMade:
		return NotifyOrderOffered // offers.go
	}
	return ""
}

// LookupOrders reads the orders of refs from shard i, in the order asked;
// an order the shard does not hold comes back with an empty ID.
func (e *Engine) LookupOrders(ctx context.Context, shard int, refs []OrderRef) ([]Order, error) {
	r := &request{cmd: command{kind: cmdOrderRefs, refs: refs}, done: make(chan struct{}, 1)}
	if err := e.send(e.shards[shard], r); err != nil {
		return nil, err
	}
	if err := e.wait(ctx, r); err != nil {
		return nil, err
	}
	return r.res.orders, nil
}

// lookupOrders is cmdOrderRefs on the shard's loop: a read.
func (st *state) lookupOrders(refs []OrderRef, res *result) {
	res.orders = make([]Order, len(refs))
	for i, ref := range refs {
		o, _ := st.orderByKey(orderKey(ref))
		if o == nil {
			continue
		}
		v := st.orderView(o)
		v.ID = formatOrderID(v.SaleID, o.key)
		res.orders[i] = v
	}
}
