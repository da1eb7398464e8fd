package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
)

// Revocations. A scanner that works offline verifies codes with the sale's
// public keys alone, so it must also learn which valid signatures no longer
// admit. When a paid order's tickets stop being valid (a refund, including
// a refund after entry for the tickets not used), apply appends each of
// them to the sale's revocation list, in log order, so replay builds the
// same list. Scanners page through it with a cursor (a list index) and
// poll from the last one. Retiring a key does not revoke: it re-issues
// (ticketkeys.go), and the feed of a leaked key is its kid.

// Revocation is one ticket that no longer admits.
type Revocation struct {
	TicketID string // "<order_id>.<n>"
	OrderID  string
	Ticket   int
	AtMs     int64
}

type revokedTicket struct {
	order  orderKey
	at     int64
	ticket uint8
}

// RevocationsPerPageMax bounds a page of Revocations.
const RevocationsPerPageMax = 10_000

// revokeOnRefund appends the tickets that a refund voids: every ticket of a
// paid order that was issued (not NeedsRefund) and not used. apply calls it
// before the refund changes the order.
func (st *state) revokeOnRefund(o *order, sl *sale, at int64) {
	if o.status != StatusPaid || o.needsRefund {
		return
	}
	t := sl.ticketsState()
	for n := uint8(0); n < uint8(o.qty); n++ {
		if o.checkedIn&(1<<n) == 0 {
			t.revoked = append(t.revoked, revokedTicket{order: o.key, at: at, ticket: n})
		}
	}
}

// revokedAt returns when ticket n of an order was revoked, searching from
// the newest revocation.
func (sl *sale) revokedAt(k orderKey, n int) (int64, bool) {
	if sl.tickets == nil {
		return 0, false
	}
	r := sl.tickets.revoked
	for i := len(r) - 1; i >= 0; i-- {
		if r[i].order == k && int(r[i].ticket) == n {
			return r[i].at, true
		}
	}
	return 0, false
}

// Revocations returns up to limit revoked tickets of a sale from the cursor
// on ("" for the start), oldest first, and the cursor to ask from next
// time (also when the page is empty: poll with it).
func (e *Engine) Revocations(ctx context.Context, saleID, cursor string, limit int) ([]Revocation, string, error) {
	after := 0
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 0 || strconv.Itoa(n) != cursor {
			return nil, "", reject(CodeInvalidRequest, "cursor %q is not one this server gave", cursor)
		}
		after = n
	}
	limit = min(max(limit, 1), RevocationsPerPageMax)
	var out []Revocation
	next := 0
	err := e.one(ctx, saleID, command{kind: cmdRevocations, saleID: saleID, door: &doorCommand{after: after, limit: limit}},
		func(res *result) { out, next = res.door.revocations, res.door.next })
	if err != nil {
		return nil, "", err
	}
	return out, strconv.Itoa(next), nil
}

func (st *state) decideRevocations(cmd *command) *Rejection {
	sl, _ := st.saleByID(cmd.saleID)
	if sl == nil {
		return reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	n := 0
	if sl.tickets != nil {
		n = len(sl.tickets.revoked)
	}
	if cmd.door.after > n {
		return reject(CodeInvalidRequest, "cursor %d is past the end of the list (%d)", cmd.door.after, n)
	}
	return nil
}

func (st *state) answerRevocations(cmd *command, res *result) {
	sl, _ := st.saleByID(cmd.saleID)
	d := &doorResult{next: cmd.door.after}
	res.door = d
	if sl.tickets == nil {
		return
	}
	r := sl.tickets.revoked
	end := min(len(r), cmd.door.after+cmd.door.limit)
	for _, v := range r[cmd.door.after:end] {
		orderID := formatOrderID(sl.cfg.ID, v.order)
		d.revocations = append(d.revocations, Revocation{
			TicketID: orderID + "." + strconv.Itoa(int(v.ticket)), OrderID: orderID, Ticket: int(v.ticket), AtMs: v.at,
		})
	}
	d.next = end
}

// The revocations' snapshot section (tag 12): each sale's list.
//
//	nsales | {sale n {key(16) ticket at}}
const snapshotTagRevocations = 12

func init() {
	registerSnapshotSection(perSaleListSection(snapshotTagRevocations, "revocations section",
		func(sl *sale) []revokedTicket {
			if sl.tickets == nil {
				return nil
			}
			r := sl.tickets.revoked
			return r[:len(r):len(r)] // shared: only appended to
		},
		func(b []byte, v revokedTicket) []byte {
			b = append(b, v.order[:]...)
			b = append(b, v.ticket)
			return binary.AppendVarint(b, v.at)
		},
		func(st *state, si int, m uint64, d *decoder) error {
			t := st.sales[si].ticketsState()
			t.revoked = slices.Grow(t.revoked, int(m))
			for range m {
				v := revokedTicket{order: d.key()}
				v.ticket = uint8(d.uvarint(QuantityPerOrderMax - 1))
				v.at = d.varint()
				if d.err != nil {
					return nil // the section's check reports it
				}
				if o, _ := st.orderByKey(v.order); o == nil || int(o.sale) != si {
					return fmt.Errorf("%w: revocations section: a ticket of an order the sale does not hold", errCorrupt)
				}
				t.revoked = append(t.revoked, v)
			}
			return nil
		}))
}
