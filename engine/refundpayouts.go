package engine

// Where the refund rules meet the money. A refund the rules decide
// (refundrules.go) owes the buyer money that a provider took, so it becomes
// a payout (payouts.go) in the same apply, like an admin refund; a refund
// an admin settled by hand from the queue closes the payout that was owed
// for it, so that the refund worker never sends money that went back by
// other means.

// payoutsOnRefundSettled is apply's part of a RefundSettled. A refund
// under the rules sends back the amount less the fee; one settled by hand
// (a needs_refund order) closes its late_payment payout.
func (st *state) payoutsOnRefundSettled(o *order, sl *sale, re *refundEvent, at int64) {
	if re.source == RefundByHand {
		st.closePayout(o, PayoutLatePayment, o.paymentID, "refunded by hand: "+re.text, at)
		return
	}
	if back := re.amount - re.fee; back > 0 {
		st.refundPayouts(o, PayoutRefundRequest, back, sl.cfg.Currency, at) // exchanges.go: out of the payments that took it
	}
}

// payoutsOnExchange is apply's part of an OrderExchanged: a negative
// difference is the buyer's money, sent back through the provider that
// took the old order's payment; a positive one was paid on the new order
// (exchanges.go), and nothing goes out.
func (st *state) payoutsOnExchange(o *order, sl *sale, re *refundEvent, at int64) {
	if re.amount < 0 { // out of the payments that took o's money (exchanges.go): o may come from a dearer exchange
		st.refundPayouts(o, PayoutExchangeDifference, -re.amount, sl.cfg.Currency, at)
	}
}

// payoutsOnChargeRefunded closes the duplicate_charge payout of the charge
// an admin settled by hand.
func (st *state) payoutsOnChargeRefunded(o *order, charge int, text string, at int64) {
	if cs := st.charges[o.key]; charge < len(cs) {
		st.closePayout(o, PayoutDuplicateCharge, cs[charge].EventID, "refunded by hand: "+text, at)
	}
}

// closePayout marks the order's payout of that reason and payment refunded,
// as PayoutUpdated's mark-refunded would, unless it is refunded already.
func (st *state) closePayout(o *order, reason PayoutReason, paymentID, detail string, at int64) {
	ps := st.payouts[o.key]
	for i := range ps {
		if p := &ps[i]; p.reason == reason && p.paymentID == paymentID && p.status != PayoutRefunded {
			p.status, p.detail, p.updatedAt = PayoutRefunded, truncateUTF8(detail, PayoutDetailLenMax), at
			return
		}
	}
}

// payoutRefunded reports whether the order's payout of that reason and
// payment went back already (the refund queue leaves such items out).
func (st *state) payoutRefunded(k orderKey, reason PayoutReason, paymentID string) bool {
	for _, p := range st.payouts[k] {
		if p.reason == reason && p.paymentID == paymentID {
			return p.status == PayoutRefunded
		}
	}
	return false
}

// hasPayout reports whether o carries a payout of that reason and payment.
func (st *state) hasPayout(o *order, reason PayoutReason, paymentID string) bool {
	for _, p := range st.payouts[o.key] {
		if p.reason == reason && p.paymentID == paymentID {
			return true
		}
	}
	return false
}
