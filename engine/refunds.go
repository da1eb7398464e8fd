package engine

import (
	"fmt"
	"math/bits"
)

// Refunds. A refund returns the buyer's money and the order's tickets to
// the tier, so they can be sold again. A ticket that has already been
// checked in has been used: selling its seat again would put two people in
// it. So an order with checked-in tickets is refunded only when the admin
// forces it, and then its checked-in tickets stay sold (the order is
// refunded; only its unused tickets go back on sale).

func (st *state) decideRefund(o *order, force bool, now int64, evs []event) ([]event, *Rejection) {
	if o.status != StatusPaid {
		return evs, reject(CodeInvalidOrderState, "order is %s; only a paid order can be refunded", o.status)
	}
	if st.xsInProgress(o) { // xsession.go
		return evs, reject(CodeInvalidOrderState, "its exchange from another session is not settled yet; ask again once it is")
	}
	if used := bits.OnesCount64(o.checkedIn); used > 0 {
		if !force {
			return evs, reject(CodeTicketUsed, "%d of the order's %d tickets were checked in; refund with force to return the money and keep those tickets sold", used, o.qty)
		}
		evs = st.cancelOpenExchange(o, now, evs) // exchanges.go
		return append(evs, event{kind: evOrderRefundedAfterEntry, at: now, order: o.key}), nil
	}
	evs = st.cancelOpenExchange(o, now, evs) // exchanges.go
	return append(evs, event{kind: evOrderRefunded, at: now, order: o.key}), nil
}

// applyRefund carries out OrderRefunded and OrderRefundedAfterEntry. Logs
// written before OrderRefundedAfterEntry existed may hold an OrderRefunded
// of an order with checked-in tickets: those returned every ticket, and
// replay keeps doing so, or the stock they freed and sold again would be
// oversold.
func (st *state) applyRefund(o *order, sl *sale, ev *event) error {
	if o.status != StatusPaid {
		return fmt.Errorf("%w: %s of a %s order", errCorrupt, ev.kind, o.status)
	}
	before := o.ticketsTaken()
	o.status = StatusRefunded
	o.needsRefund = false
	o.usedKept = ev.kind == evOrderRefundedAfterEntry
	back := before - o.ticketsTaken()
	sl.tiers[o.tier].sold -= back
	st.addTickets(sl, o.userID, -back*sl.ticketsPer(int(o.tier)))
	return nil
}
