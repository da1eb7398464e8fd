package engine

import "fmt"

// Duplicate charges. A provider can take a buyer's money twice for one
// order: two checkouts in two tabs, a retry after a timeout, a payment that
// lands after an admin refunded the order. Only the first success pays for
// the order; every later success with another event id is money the buyer
// must get back, so it is recorded on the order, durably, in the same log
// entry as any decision, and shown to admins (the order's
// duplicate_charges, the export, a metric). The provider retrying the same
// event finds it recorded and nothing changes.

// duplicateChargesPerOrderMax bounds what one order can carry; a provider
// that charges a single order more often than this has a problem no list
// will fix, and later charges are refused so it retries and gets noticed.
const duplicateChargesPerOrderMax = 64

// decideDuplicateCharge decides a successful payment for an order that is
// paid (needing a refund or not) or refunded already.
func (st *state) decideDuplicateCharge(o *order, p *Payment, now int64, res *result, evs []event) ([]event, *Rejection) {
	charges := st.charges[o.key]
	for i := range charges {
		if charges[i].EventID == p.EventID {
			res.payment = PaymentDuplicateChargeSeen
			return evs, nil
		}
	}
	if len(charges) >= duplicateChargesPerOrderMax {
		return evs, reject(CodeInvalidOrderState, "order already carries %d duplicate charges; settle them first", len(charges))
	}
	res.payment = PaymentDuplicateCharge
	return append(evs, event{kind: evDuplicateCharge, at: now, order: o.key, paymentID: p.EventID, amount: p.AmountCents}), nil
}

func (st *state) applyDuplicateCharge(o *order, ev *event) {
	if st.charges == nil {
		st.charges = make(map[orderKey][]DuplicateCharge)
	}
	st.charges[o.key] = append(st.charges[o.key], DuplicateCharge{EventID: ev.paymentID, AmountCents: ev.amount, AtMs: ev.at})
}

// formatAmount spells an amount in the unit the API uses, so that 5000 is
// not read as five thousand euros.
func formatAmount(cents int64, currency string) string {
	return fmt.Sprintf("%d cents %s", cents, currency)
}
