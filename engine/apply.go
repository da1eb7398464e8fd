package engine

import (
	"fmt"
	"slices"
	"time"
)

// apply carries out one event. Live, decide has already checked it, so an
// error is a bug; in replay, an error means the log names a sale or order it
// never created, and recovery stops with it.
func (st *state) apply(ev *event) error {
	switch ev.kind {
	case evSalePut:
		sl, si := st.saleByID(ev.saleID)
		cfg := *ev.sale
		cfg.Tiers = slices.Clone(cfg.Tiers) // the event's slice may be reused
		if sl == nil {
			sl = st.insertSale(cfg, false)
			st.touch(int32(len(st.sales) - 1))
			return st.indexPackages(sl) // packages.go
		}
		st.touch(si)
		if len(cfg.Tiers) < len(sl.cfg.Tiers) {
			return fmt.Errorf("%w: SalePut of %q drops tiers", errCorrupt, ev.saleID)
		}
		sl.cfg = cfg
		for len(sl.tiers) < len(cfg.Tiers) {
			sl.tiers = append(sl.tiers, tierCount{})
		}
		return st.indexPackages(sl) // checks every tier
	case evTierRules:
		return st.applyTierRules(ev) // pricing.go
	case evCouponPut:
		return st.applyCouponPut(ev) // coupons.go
	case evRefundRules, evRefundRequested, evRefundRequestRejected, evRefundSettled, evOrderExchanged, evChargeRefunded, evExchangeOpened:
		return st.applyRefundRules(ev) // refundrules.go, exchanges.go
	case evExchangeIn, evExchangedOut, evExchangeInSettled, evExchangeInUndone, evExchangeInPayments:
		return st.applyXSession(ev) // xsession.go
	case evSaleClosed:
		sl, si := st.saleByID(ev.saleID)
		if sl == nil {
			return fmt.Errorf("%w: SaleClosed of unknown sale %q", errCorrupt, ev.saleID)
		}
		st.touch(si)
		sl.closed = ev.closed
		return nil
	case evCredentialCreated, evCredentialRevoked:
		return st.applyCredential(ev)
	case evWebhookPut, evWebhookDeleted:
		return st.applyWebhook(ev) // webhooks.go
	case evFollowed, evUnfollowed:
		return st.applyFollow(ev) // follows.go
	case evBoxOfficeSold, evCounterPaid:
		return st.applyBoxOffice(ev)
	case evAuditRecorded:
		return st.applyAudit(ev)
	case evRealNameRule, evAttendeesNamed:
		return st.applyRealName(ev) // realname.go
	case evQueueRule, evQueueJoined, evQueueDrawn, evQueueAdmitted, evAdmissionUsed:
		return st.applyQueue(ev) // queue.go
	case evOffersRule, evOfferRegistered, evLotteryDrawn, evOfferMade, evOfferPassed, evOfferLeft, evQueueDocument:
		return st.applyOffers(ev) // offers.go
	case evOrderPlaced:
		sl, si := st.saleByID(ev.saleID)
		if sl == nil || int(ev.tier) >= len(sl.tiers) || ev.qty == 0 {
			return fmt.Errorf("%w: OrderPlaced in unknown sale or tier %q/%d", errCorrupt, ev.saleID, ev.tier)
		}
		if !st.replaying { // replay counts byKey once at its end (endReplay)
			if _, dup := st.byKey[ev.order]; dup {
				return fmt.Errorf("%w: OrderPlaced twice for one order", errCorrupt)
			}
		}
		st.touch(si)
		st.insertOrder(order{
			key: ev.order, userID: ev.userID, idemKey: ev.key, amount: ev.amount,
			createdAt: ev.at, expiresAt: ev.expiresAt, updatedAt: ev.at,
			sale: si, tier: ev.tier, qty: ev.qty, status: StatusPending, kid: sl.currentKid(),
		})
		return nil
	case evTicketKeyAdded, evTicketKeyRetired:
		return st.applyTicketKey(ev)
	case evCouponApplied:
		return st.applyCouponUse(ev) // coupons.go
	case evSaleArchived:
		return st.applyArchived(ev) // archive.go
	case evSaleUnarchived:
		return st.applyUnarchived(ev)
	}

	idx, ok := st.byKey[ev.order]
	if !ok {
		return fmt.Errorf("%w: %s of unknown order", errCorrupt, ev.kind)
	}
	o := st.orders.mut(idx)
	sl := st.sales[o.sale]
	st.touch(o.sale)
	tc := &sl.tiers[o.tier]
	q := int(o.qty)
	tickets := q * sl.ticketsPer(int(o.tier)) // a package's tickets (packages.go)
	switch ev.kind {
	case evOrderPaid:
		switch o.status {
		case StatusPending:
			tc.held -= q
			tc.sold += q
			st.pending--
		case StatusExpired, StatusCancelled:
			if !ev.needsRefund {
				tc.sold += q
				st.addTickets(sl, o.userID, tickets)
				st.retakeCoupon(sl, o) // coupons.go
			}
		default:
			return fmt.Errorf("%w: OrderPaid of a %s order", errCorrupt, o.status)
		}
		o.status = StatusPaid
		o.needsRefund = ev.needsRefund
		o.paymentID = ev.paymentID
		sl.countPayment(ev.at, st.amountDue(o), false) // paycurve.go; an exchange's order is paid its difference
		if ev.needsRefund {                            // payouts.go: late money goes back
			st.addPayout(o, PayoutLatePayment, ev.paymentID, st.amountDue(o), sl.cfg.Currency, false, ev.at) // exchanges.go: the difference
		}
		o.kid = sl.currentKid() // its tickets are signed with the key current now
	case evOrderCancelled, evOrderExpired:
		if o.status != StatusPending {
			return fmt.Errorf("%w: %s of a %s order", errCorrupt, ev.kind, o.status)
		}
		tc.held -= q
		st.pending--
		st.addTickets(sl, o.userID, -tickets)
		st.giveBackCoupon(sl, o) // coupons.go
		o.status = StatusExpired
		if ev.kind == evOrderCancelled {
			o.status = StatusCancelled
			if ev.paymentID != "" {
				o.paymentID = ev.paymentID
			}
		}
	case evOrderRefunded, evOrderRefundedAfterEntry:
		st.revokeOnRefund(o, sl, ev.at) // revocations.go
		if o.status == StatusPaid {
			st.payoutsOnRefund(o, sl, ev.at)       // payouts.go
			sl.countPayment(ev.at, o.amount, true) // paycurve.go
		}
		if err := st.applyRefund(o, sl, ev); err != nil {
			return err
		}
	case evDuplicateCharge:
		st.applyDuplicateCharge(o, ev)
		st.addPayout(o, PayoutDuplicateCharge, ev.paymentID, ev.amount, sl.cfg.Currency, false, ev.at) // payouts.go
	case evPaymentMismatch:
		st.addPayout(o, PayoutPaymentMismatch, ev.paymentID, ev.amount, ev.currency, false, ev.at) // payouts.go
	case evPayoutUpdated:
		if err := st.applyPayoutUpdated(o, ev); err != nil { // payouts.go
			return err
		}
	case evTicketCheckedIn, evTicketAdmitted:
		if err := st.applyCheckIn(o, ev); err != nil { // checkin.go
			return err
		}
	default:
		return fmt.Errorf("%w: cannot apply %s", errCorrupt, ev.kind)
	}
	o.updatedAt = ev.at
	checkTier(sl, int(o.tier))
	return nil
}

func (st *state) addTickets(sl *sale, user string, n int) {
	u := sl.users[user]
	u.tickets += int32(n)
	sl.users[user] = u
}

// answer fills the result of a command that was not rejected, after its
// events (if any) were applied.
func (st *state) answer(cmd *command, res *result, changed bool) {
	switch cmd.kind {
	case cmdPurchase, cmdBoxOfficePurchase:
		sl, _ := st.saleByID(cmd.saleID)
		idx, _ := st.findIdem(sl, cmd.userID, cmd.key)
		o := st.orders.at(idx)
		res.created = changed
		res.orderKey = o.key
		res.order = st.orderView(o)
	case cmdPutSale:
		sl, _ := st.saleByID(cmd.saleID)
		res.sale = saleView(sl)     // res.created was set by decide
		st.viewQueue(sl, &res.sale) // queue.go
	case cmdSetClosed:
		sl, _ := st.saleByID(cmd.saleID)
		res.sale = saleView(sl)
	case cmdPayouts:
		st.answerPayouts(cmd, res) // payouts.go
	case cmdOfferRegister, cmdOfferLeave:
		st.answerOffer(cmd, res, changed) // offers.go
	case cmdOrderByNumber:
		st.answerOrderByNumber(cmd, res) // ordernumber.go
	case cmdGetOrder, cmdCancel, cmdPay, cmdRefund, cmdCheckIn, cmdCounterPay, cmdTickets, cmdPayoutUpdate:
		o, _ := st.orderByKey(cmd.order)
		res.orderKey = o.key
		res.order = st.orderView(o)
		if cmd.kind == cmdTickets {
			st.answerTickets(o, res) // tickets.go
		}
	case cmdCreateCredential, cmdRevokeCredential:
		st.answerCredential(cmd, res)
	case cmdTicketKeys, cmdRotateKey, cmdRetireKey:
		sl, _ := st.saleByID(cmd.saleID)
		res.door = &doorResult{keys: sl.ticketKeys()}
	case cmdRevocations:
		st.answerRevocations(cmd, res) // revocations.go
	case cmdSaleReport, cmdSaleAttendees:
		st.answerReport(cmd, res) // reports.go
	case cmdPutCoupon, cmdPatchCoupon, cmdCoupons:
		st.answerCoupons(cmd, res) // coupons.go
	case cmdPutWebhook, cmdDeleteWebhook, cmdWebhooks:
		st.answerWebhook(cmd, res) // webhooks.go
	case cmdFollow, cmdUnfollow, cmdFollows, cmdFollowers:
		st.answerFollow(cmd, res, changed) // follows.go
	case cmdRefundRequest, cmdExchange, cmdSettleRefund:
		st.answerRefundRules(cmd, res) // refundrules.go
	case cmdRefundQueue:
		st.queue(cmd, res) // refundrules.go
	case cmdArchive, cmdUnarchive:
		st.answerArchive(cmd, res) // archive.go
	case cmdQueueJoin, cmdQueueStatus:
		st.answerQueue(cmd, res, changed) // queue.go
	case cmdUserOrders:
		for i, sl := range st.sales {
			if cmd.saleID != "" && sl.cfg.ID != cmd.saleID {
				continue
			}
			u, ok := sl.users[cmd.userID]
			if !ok {
				continue
			}
			for idx := u.last; idx >= 0; {
				o := st.orders.at(idx)
				v := st.orderView(o)
				v.ID = formatOrderID(st.sales[i].cfg.ID, o.key)
				res.orders = append(res.orders, v)
				idx = o.prevByUser
			}
		}
	case cmdSaleOrders:
		sl, si := st.saleByID(cmd.saleID)
		res.next = -1
		for idx := int32(cmd.after + 1); idx < st.orders.n; idx++ {
			o := st.orders.at(idx)
			if o.sale != si {
				continue
			}
			if len(res.orders) == cmd.limit {
				res.next = int(idx) - 1
				break
			}
			v := st.orderView(o)
			v.ID = formatOrderID(sl.cfg.ID, o.key)
			res.orders = append(res.orders, v)
		}
	}
}

func (st *state) orderView(o *order) Order {
	sl := st.sales[o.sale]
	v := Order{
		SaleID: sl.cfg.ID, TierID: sl.cfg.Tiers[o.tier].ID, UserID: o.userID, IdempotencyKey: o.idemKey,
		Quantity: int(o.qty), AmountCents: o.amount, Currency: sl.cfg.Currency,
		Status: o.status, NeedsRefund: o.needsRefund, PaymentID: o.paymentID,
		CreatedAtMs: o.createdAt, ExpiresAtMs: o.expiresAt, UpdatedAtMs: o.updatedAt, CheckedIn: o.checkedIn,
		DuplicateCharges: slices.Clone(st.charges[o.key]), BoxOffice: st.boxOffice[o.key],
		Attendees: st.realName.attendees[o.key], Payouts: st.payoutViews(o), // payouts.go
	}
	st.fillPrice(o, &v) // pricing.go

	st.fillRefunds(o, &v)  // refundrules.go
	st.fillXSession(o, &v) // xsession.go
	return v
}

func saleView(sl *sale) Sale {
	v := Sale{SaleConfig: sl.cfg, Closed: sl.closed, OrderCount: sl.orders}
	v.Tiers = slices.Clone(sl.cfg.Tiers)
	v.TierCounts = make([]TierCounts, len(sl.tiers))
	for t := range sl.tiers {
		v.TierCounts[t] = sl.tierCounts(t) // packages.go
	}
	return v
}

func formatMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}
