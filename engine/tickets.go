package engine

import (
	"context"
	"fmt"
	"strconv"
)

// Tickets. An order has Quantity tickets, numbered 0 to Quantity-1, once it
// is paid (and not NeedsRefund, which issued none). A ticket is
//
//	valid       the order is paid and the ticket was not admitted
//	checked_in  admitted once, at a gate and a time; later scans are refused
//	revoked     the order was refunded before the ticket was used
//
// Its code (ticketcode.go) is signed outside the engine with the key of the
// order's kid; Tickets says everything the signer and a printed ticket
// need.

// TicketState is where a ticket is in its life.
type TicketState uint8

const (
	TicketValid TicketState = iota + 1
	TicketCheckedIn
	TicketRevoked
)

var ticketStateNames = [...]string{TicketValid: "valid", TicketCheckedIn: "checked_in", TicketRevoked: "revoked"}

func (s TicketState) String() string {
	if int(s) < len(ticketStateNames) && ticketStateNames[s] != "" {
		return ticketStateNames[s]
	}
	return fmt.Sprintf("ticket_state(%d)", uint8(s))
}

// OrderTickets is an order with its tickets, and what a printed ticket
// shows of its sale.
type OrderTickets struct {
	Order     Order
	OrderKey  [16]byte // the order id's random part, as the code carries it
	SaleName  string
	TierIndex int // the tier's place in the sale, as the code carries it
	TierName  string
	Tickets   []Ticket // none until the order is paid; none if it never issued any
}

// Ticket is one ticket of an order.
type Ticket struct {
	N          int
	ID         string // "<order_id>.<n>"
	Kid        int    // the sale's key that signs it
	IssuedAtMs int64  // the order's creation: the code's issued-at
	State      TicketState
	Gate       string // checked_in: where ("" if admitted before gates were recorded)
	AtMs       int64  // checked_in: when admitted; revoked: when revoked (0 if not known)
}

// Payload returns what the code of ticket i says, ready to sign with the key
// of t.Kid (SignTicketCode).
func (ot *OrderTickets) Payload(i int) TicketPayload {
	t := &ot.Tickets[i]
	return TicketPayload{
		Kid: uint8(t.Kid), SaleID: ot.Order.SaleID, Order: ot.OrderKey, Ticket: uint8(t.N),
		Tier: uint8(ot.TierIndex), IssuedAt: t.IssuedAtMs / 1000,
	}
}

// Tickets returns an order and its tickets. Callers check who may see it.
func (e *Engine) Tickets(ctx context.Context, orderID string) (OrderTickets, error) {
	r := getRequest()
	o, err := e.orderCall(ctx, orderID, command{kind: cmdTickets}, r)
	if err != nil {
		return OrderTickets{}, err
	}
	ot := r.res.door.tickets
	ot.Order = o
	for i := range ot.Tickets {
		ot.Tickets[i].ID = orderID + "." + strconv.Itoa(ot.Tickets[i].N)
	}
	putRequest(r)
	return ot, nil
}

// answerTickets fills the tickets of cmd's order (its Order is filled by
// answer).
func (st *state) answerTickets(o *order, res *result) {
	sl := st.sales[o.sale]
	ot := OrderTickets{OrderKey: o.key, SaleName: sl.cfg.Name, TierIndex: int(o.tier), TierName: sl.cfg.Tiers[o.tier].Name}
	issued := o.status == StatusPaid && !o.needsRefund || o.status == StatusRefunded
	if issued {
		ot.Tickets = make([]Ticket, o.qty)
		for n := range ot.Tickets {
			t := &ot.Tickets[n]
			*t = Ticket{N: n, Kid: int(o.orderKid()), IssuedAtMs: o.createdAt, State: TicketValid}
			switch {
			case o.checkedIn&(1<<n) != 0:
				a := st.admissionOf(o, n)
				t.State, t.Gate, t.AtMs = TicketCheckedIn, a.Gate, a.AtMs
			case o.status == StatusRefunded:
				t.State = TicketRevoked
				t.AtMs, _ = sl.revokedAt(o.key, n)
			}
		}
	}
	res.door = &doorResult{tickets: ot}
}
