package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// Payments per minute: the rush curve of money. An order keeps no
// payment time (8 bytes more per order, for a million-order sale 8 MB),
// so each sale keeps instead, per UTC minute in which it had any, how
// many payments arrived and their sum, and likewise refunds. apply
// counts them from OrderPaid (every payment taken, a late one owed back
// included: money came in that minute), OrderRefunded /
// OrderRefundedAfterEntry (the order's amount) and RefundSettled (the
// amount given back, after any fee), at the event's time, so
// replay builds the same list. It costs 32 bytes per minute with
// payments, nothing per order; it moves with its sale (partitionSales)
// and is in snapshots (section 74) and so in the archive.

// PaymentMinute is one minute of a sale's payments and refunds.
type PaymentMinute struct {
	AtMs          int64 // the UTC minute's start
	Payments      int
	PaidCents     int64
	Refunds       int
	RefundedCents int64
}

type payMinute struct {
	minute        int64 // unix ms / 60_000
	paid, refunds int32
	paidCents     int64
	refundedCents int64
}

// countPayment adds a payment (or a refund) of cents at ms to the sale's
// minutes. Events come in log order, nearly in time order: the minute is
// almost always the last one.
func (sl *sale) countPayment(ms, cents int64, refund bool) {
	m := floorDiv(ms, 60_000)
	i := len(sl.pays)
	if i == 0 || sl.pays[i-1].minute != m {
		var found bool
		i, found = slices.BinarySearchFunc(sl.pays, m, func(p payMinute, m int64) int {
			switch {
			case p.minute < m:
				return -1
			case p.minute > m:
				return 1
			}
			return 0
		})
		if !found {
			sl.pays = slices.Insert(sl.pays, i, payMinute{minute: m})
		}
	} else {
		i--
	}
	p := &sl.pays[i]
	if refund {
		p.refunds++
		p.refundedCents += cents
	} else {
		p.paid++
		p.paidCents += cents
	}
}

// paymentMinutes sums the minutes of frozen sales, in time order.
func paymentMinutes(frozen []*frozenSale) []PaymentMinute {
	var all []payMinute
	for _, f := range frozen {
		all = append(all, f.pays...)
	}
	slices.SortStableFunc(all, func(a, b payMinute) int {
		switch {
		case a.minute < b.minute:
			return -1
		case a.minute > b.minute:
			return 1
		}
		return 0
	})
	var out []PaymentMinute
	for _, p := range all {
		at := p.minute * 60_000
		if k := len(out); k > 0 && out[k-1].AtMs == at {
			o := &out[k-1]
			o.Payments += int(p.paid)
			o.PaidCents += p.paidCents
			o.Refunds += int(p.refunds)
			o.RefundedCents += p.refundedCents
			continue
		}
		out = append(out, PaymentMinute{AtMs: at, Payments: int(p.paid), PaidCents: p.paidCents,
			Refunds: int(p.refunds), RefundedCents: p.refundedCents})
	}
	return out
}

// The payments' snapshot section (tag 74): each sale's minutes.
//
//	nsales | {sale n {minute paid paidCents refunds refundedCents}}
const snapshotTagPayMinutes = 74

func init() {
	registerSnapshotSection(perSaleListSection(snapshotTagPayMinutes, "payments section",
		func(sl *sale) []payMinute { return slices.Clone(sl.pays) }, // a copy: apply updates minutes in place
		func(b []byte, p payMinute) []byte {
			b = binary.AppendVarint(b, p.minute)
			b = binary.AppendUvarint(b, uint64(p.paid))
			b = binary.AppendVarint(b, p.paidCents)
			b = binary.AppendUvarint(b, uint64(p.refunds))
			return binary.AppendVarint(b, p.refundedCents)
		},
		func(st *state, si int, m uint64, d *decoder) error {
			sl := st.sales[si]
			sl.pays = make([]payMinute, 0, m)
			for range m {
				p := payMinute{minute: d.varint()}
				p.paid = int32(d.uvarint(math.MaxInt32))
				p.paidCents = d.varint()
				p.refunds = int32(d.uvarint(math.MaxInt32))
				p.refundedCents = d.varint()
				if d.err != nil {
					return nil // the section's check reports it
				}
				if k := len(sl.pays); k > 0 && sl.pays[k-1].minute >= p.minute {
					return fmt.Errorf("%w: payments section: minutes out of order", errCorrupt)
				}
				sl.pays = append(sl.pays, p)
			}
			return nil
		}))
}
