package engine

// execute runs one command against the state: decide, apply what was
// decided, and fill the answer. It appends the command's events to evs and
// returns it. It is the only entry point of the live state machine; replay
// calls apply alone.
func (st *state) execute(cmd *command, now int64, res *result, evs []event) []event {
	if cmd.kind == cmdScans { // decided and applied scan by scan (checkin.go)
		return st.executeScans(cmd, now, res, evs)
	}
	start := len(evs)
	evs, rej := st.decide(cmd, now, res, evs)
	if rej != nil {
		res.rej = rej
		return evs[:start]
	}
	for i := start; i < len(evs); i++ {
		if err := st.apply(&evs[i]); err != nil {
			panic(newInvariantError("apply of a decided event failed: %v", err))
		}
	}
	st.answer(cmd, res, len(evs) > start)
	if len(st.offered) > 0 && len(evs) > start {
		evs = st.offersAfter(cmd, now, evs) // offers.go: freed tickets go to the books
	}
	return evs
}

// decide validates cmd against the state and appends the events that carry
// it out. It changes nothing.
func (st *state) decide(cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	if len(st.archived) > 0 && cmd.kind != cmdArchive && cmd.kind != cmdUnarchive {
		if rej := st.archivedRejection(cmd); rej != nil { // archive.go
			return evs, rej
		}
	}
	switch cmd.kind {
	case cmdPurchase:
		return st.decidePurchase(cmd, now, evs)
	case cmdBoxOfficePurchase:
		return st.decideBoxOfficePurchase(cmd, now, evs)
	case cmdCreateCredential:
		return st.decideCreateCredential(cmd.cred, now, evs)
	case cmdRevokeCredential:
		return st.decideRevokeCredential(cmd.key, now, evs)
	case cmdPutSale:
		sl, _ := st.saleByID(cmd.sale.ID)
		res.created = sl == nil
		packageStock(cmd.sale) // packages.go
		evs, rej := st.decidePutSale(cmd.sale, evs)
		if rej == nil {
			evs, rej = st.decideTierRules(evs) // pricing.go: phases and packages
		}
		if rej == nil && sl == nil {
			evs = firstTicketKey(evs, cmd.sale.ID, now) // ticketkeys.go
		}
		if rej == nil {
			evs = realNameRuleEvent(evs, cmd.sale) // realname.go
			evs = refundRulesEvent(evs, cmd.sale)  // refundrules.go
		}
		if rej == nil {
			evs, rej = st.decideQueueRule(evs, cmd.sale) // queue.go
		}
		if rej == nil {
			evs = st.offersRuleEvent(evs, cmd.sale) // offers.go
		}
		return evs, rej
	case cmdSetClosed:
		sl, _ := st.saleByID(cmd.saleID)
		if sl == nil {
			return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
		}
		if sl.closed == cmd.closed {
			return evs, nil
		}
		return append(evs, event{kind: evSaleClosed, at: now, saleID: cmd.saleID, closed: cmd.closed}), nil
	case cmdSaleOrders:
		if sl, _ := st.saleByID(cmd.saleID); sl == nil {
			return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
		}
		return evs, nil
	case cmdUserOrders:
		if cmd.saleID == "" {
			return evs, nil
		}
		if sl, _ := st.saleByID(cmd.saleID); sl == nil {
			return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
		}
		return evs, nil
	case cmdTicketKeys, cmdRotateKey, cmdRetireKey:
		return st.decideTicketKeys(cmd, now, evs)
	case cmdRevocations:
		return evs, st.decideRevocations(cmd)
	case cmdSaleReport, cmdSaleAttendees:
		return evs, st.decideReportRead(cmd) // reports.go
	case cmdPutCoupon, cmdPatchCoupon, cmdCoupons:
		return st.decideCouponCommand(cmd, now, evs) // coupons.go
	case cmdPutWebhook, cmdDeleteWebhook, cmdWebhooks:
		return st.decideWebhook(cmd, now, res, evs) // webhooks.go
	case cmdFollow, cmdUnfollow, cmdFollows, cmdFollowers:
		return st.decideFollow(cmd, now, res, evs) // follows.go
	case cmdRefundQueue:
		if sl, _ := st.saleByID(cmd.saleID); sl == nil && cmd.saleID != "" {
			return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
		}
		return evs, nil
	case cmdArchive, cmdUnarchive:
		return st.decideArchive(cmd, now, res, evs) // archive.go
	case cmdPayouts:
		return evs, nil // payouts.go: a read
	case cmdPayoutUpdate:
		return st.decidePayoutUpdate(cmd, now, evs) // payouts.go
	case cmdOrderByNumber:
		return evs, st.decideOrderByNumber(cmd) // ordernumber.go: a read
	case cmdQueueJoin, cmdQueueStatus, cmdQueueDraw:
		return st.decideQueue(cmd, now, res, evs) // queue.go
	case cmdOfferRegister, cmdOfferStatus, cmdOfferLeave:
		return st.decideOffer(cmd, now, res, evs) // offers.go
	case cmdXSession:
		return st.decideXSession(cmd, now, res, evs) // xsession.go
	case cmdGetOrder, cmdCancel, cmdPay, cmdRefund, cmdCheckIn, cmdCounterPay, cmdTickets, cmdRefundRequest, cmdExchange, cmdSettleRefund:
		o, _ := st.orderByKey(cmd.order)
		if o == nil || st.sales[o.sale].cfg.ID != cmd.saleID || cmd.userID != "" && o.userID != cmd.userID {
			// Another user's order is reported exactly like a missing one.
			return evs, reject(CodeUnknownOrder, "no order %q", formatOrderID(cmd.saleID, cmd.order))
		}
		switch cmd.kind {
		case cmdCancel:
			return st.decideCancel(o, now, evs)
		case cmdPay:
			return st.decidePay(o, &cmd.payment, now, res, evs)
		case cmdRefund:
			return st.decideRefund(o, cmd.force, now, evs)
		case cmdCheckIn:
			return st.decideCheckIn(o, cmd, now, evs) // checkin.go
		case cmdCounterPay:
			return st.decideCounterPay(o, cmd, now, evs)
		case cmdRefundRequest:
			return st.decideRefundRequest(o, cmd, now, evs) // refundrules.go
		case cmdExchange:
			return st.decideExchange(o, cmd, now, evs)
		case cmdSettleRefund:
			return st.decideSettle(o, cmd, now, evs)
		}
		return evs, nil
	}
	panic(newInvariantError("decide: unknown command kind %d", cmd.kind))
}

func (st *state) decidePurchase(cmd *command, now int64, evs []event) ([]event, *Rejection) {
	sl, _ := st.saleByID(cmd.saleID)
	if sl == nil {
		return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	// A retry returns the original order even after the sale has closed.
	if idx, ok := st.findIdem(sl, cmd.userID, cmd.key); ok {
		o := st.orders.at(idx)
		if sl.cfg.Tiers[o.tier].ID != cmd.tierID || int(o.qty) != cmd.qty {
			return evs, reject(CodeIdempotencyConflict,
				"idempotency key was used for %d of tier %q; use a new key for a different purchase",
				o.qty, sl.cfg.Tiers[o.tier].ID)
		}
		if code := sl.orderCoupon(o); code != cmd.coupon { // coupons.go
			return evs, reject(CodeIdempotencyConflict,
				"idempotency key was used with coupon %q; use a new key for a different purchase", code)
		}
		if !st.sameDocuments(o, cmd.attendees) { // realname.go
			return evs, reject(CodeIdempotencyConflict,
				"idempotency key was used with other attendees' documents; use a new key for a different purchase")
		}
		return evs, nil
	}
	if sl.closed || now >= sl.cfg.ClosesAtMs {
		return evs, reject(CodeSaleClosed, "sale %q is closed", cmd.saleID)
	}
	if now < sl.cfg.OpensAtMs {
		return evs, reject(CodeSaleNotOpen, "sale %q opens at %s", cmd.saleID, formatMs(sl.cfg.OpensAtMs))
	}
	t := sl.tierIndex(cmd.tierID)
	if t < 0 {
		return evs, reject(CodeUnknownTier, "sale %q has no tier %q", cmd.saleID, cmd.tierID)
	}
	if cmd.qty < 1 || cmd.qty > QuantityPerOrderMax {
		return evs, reject(CodeInvalidQuantity, "quantity must be 1 to %d", QuantityPerOrderMax)
	}
	if have := int(sl.users[cmd.userID].tickets); have+cmd.qty*sl.ticketsPer(t) > sl.cfg.PerUserLimit {
		return evs, reject(CodeLimitExceeded, "at most %d tickets per user; you hold %d", sl.cfg.PerUserLimit, have)
	}
	if sl.offers != nil || sl.cfg.Offers != nil {
		if rej := sl.lotteryBlocks(now); rej != nil { // offers.go
			return evs, rej
		}
	}
	var rej *Rejection
	if evs, rej = st.decideAdmission(sl, cmd, now, evs); rej != nil { // queue.go
		return evs, rej
	}
	if evs, rej = st.decideAttendees(sl, cmd, now, evs); rej != nil { // realname.go
		return evs, rej
	}
	if avail := sl.available(t); avail < cmd.qty {
		rej := reject(CodeSoldOut, "%d tickets of tier %q left", avail, cmd.tierID)
		rej.Available = avail
		return evs, rej
	}
	if _, taken := st.byKey[cmd.newOrder]; taken {
		panic(newInvariantError("order key drawn twice"))
	}
	return st.placeOrder(sl, t, cmd, now, evs) // pricing.go: price phases, coupons
}

func (st *state) decidePutSale(cfg *SaleConfig, evs []event) ([]event, *Rejection) {
	sl, _ := st.saleByID(cfg.ID)
	if sl == nil {
		return append(evs, event{kind: evSalePut, sale: cfg, saleID: cfg.ID}), nil
	}
	if sl.orders > 0 && cfg.Currency != sl.cfg.Currency {
		return evs, reject(CodeCurrencyChange, "sale %q has orders in %s; its currency cannot change", cfg.ID, sl.cfg.Currency)
	}
	// Tiers keep their place: existing ones first in stored order, new ones
	// after, so an order's tier index never changes.
	stored := SaleConfig{
		ID: cfg.ID, Name: cfg.Name, Currency: cfg.Currency, OpensAtMs: cfg.OpensAtMs,
		ClosesAtMs: cfg.ClosesAtMs, HoldMs: cfg.HoldMs, PerUserLimit: cfg.PerUserLimit,
		Tiers: make([]TierConfig, 0, len(cfg.Tiers)), Catalogue: cfg.Catalogue,
	}
	used := make([]bool, len(cfg.Tiers))
	for t, old := range sl.cfg.Tiers {
		j := -1
		for k := range cfg.Tiers {
			if cfg.Tiers[k].ID == old.ID {
				j = k
			}
		}
		if j < 0 {
			return evs, reject(CodeTierRemoved, "tier %q of sale %q cannot be removed; set its stock to %d to stop selling it",
				old.ID, cfg.ID, sl.committed(t))
		}
		if committed := sl.committed(t); cfg.Tiers[j].Stock < committed {
			return evs, reject(CodeStockBelowCommitted, "tier %q has %d tickets sold or held; stock cannot go below that",
				old.ID, committed)
		}
		used[j] = true
		stored.Tiers = append(stored.Tiers, cfg.Tiers[j])
	}
	for k := range cfg.Tiers {
		if !used[k] {
			stored.Tiers = append(stored.Tiers, cfg.Tiers[k])
		}
	}
	if len(stored.Tiers) > TiersPerSaleMax {
		return evs, reject(CodeInvalidRequest, "a sale has at most %d tiers", TiersPerSaleMax)
	}
	return append(evs, event{kind: evSalePut, sale: &stored, saleID: cfg.ID}), nil
}

func (st *state) decideCancel(o *order, now int64, evs []event) ([]event, *Rejection) {
	switch o.status {
	case StatusPending:
		return append(evs, event{kind: evOrderCancelled, at: now, order: o.key}), nil
	case StatusCancelled:
		return evs, nil
	}
	return evs, reject(CodeInvalidOrderState, "order is %s; only a pending order can be cancelled", o.status)
}

// decidePay applies a payment provider's event. An event moves an order at
// most once, without a table of seen ids: a failure acts only on a pending
// order and a success only on an order that is not paid yet, and no order
// ever goes back to either. A success for an order that is paid or refunded
// already is money taken twice: it is recorded on the order as a duplicate
// charge (charges.go), once per event id. Any other event that would change
// nothing is answered with the order as it is.
func (st *state) decidePay(o *order, p *Payment, now int64, res *result, evs []event) ([]event, *Rejection) {
	if p.EventID == o.paymentID {
		return evs, nil // the event that moved it last, again
	}
	sl := st.sales[o.sale]
	due, x := st.amountDue(o), st.attemptOf(o) // exchanges.go: an exchange's new order is paid the difference
	if p.AmountCents != due || p.Currency != sl.cfg.Currency {
		return st.decideMismatch(o, p, now, res, evs) // payouts.go: recorded to go back
	}
	if !p.Succeeded {
		if o.status != StatusPending {
			return evs, nil
		}
		res.payment = PaymentApplied
		return append(evs, event{kind: evOrderCancelled, at: now, order: o.key, paymentID: p.EventID}), nil
	}
	if x != nil && o.status != StatusPaid && o.status != StatusRefunded {
		return st.payExchange(o, x, p, now, res, evs), nil // exchanges.go
	}
	switch o.status {
	case StatusPending:
		// Paid before the expiry tick reached it: its tickets are still
		// held, so the payment takes them, even at expires_at.
		res.payment = PaymentApplied
		return append(evs, event{kind: evOrderPaid, at: now, order: o.key, paymentID: p.EventID}), nil
	case StatusExpired, StatusCancelled:
		// Late money: take the tickets again if they are there, else keep
		// the money on record for a refund. Never oversell, never lose it.
		u := sl.users[o.userID]
		ok := sl.available(int(o.tier)) >= int(o.qty) && int(u.tickets)+int(o.qty)*sl.ticketsPer(int(o.tier)) <= sl.cfg.PerUserLimit &&
			st.couponRetakable(sl, o) && st.attendeesFit(o) // coupons.go, realname.go
		res.payment = PaymentApplied
		return append(evs, event{kind: evOrderPaid, at: now, order: o.key, paymentID: p.EventID, needsRefund: !ok}), nil
	}
	return st.decideDuplicateCharge(o, p, now, res, evs) // paid or refunded already
}

func (o *order) statusText() string {
	if o.needsRefund {
		return o.status.String() + " (needs refund)"
	}
	return o.status.String()
}

// expireDue expires up to limit pending orders whose hold ended at or before
// now, through the same decide-apply path as commands.
func (st *state) expireDue(now int64, limit int, evs []event) []event {
	for n := 0; n < 4*min(limit, 1<<28) && len(st.holds) > 0 && st.holds[0].expiresAt <= now; n++ {
		h := st.holds[0]
		popHold(&st.holds)
		o := st.orders.at(h.idx)
		if o.status != StatusPending {
			continue // paid or cancelled before its deadline
		}
		evs = append(evs, event{kind: evOrderExpired, at: now, order: o.key})
		if err := st.apply(&evs[len(evs)-1]); err != nil {
			panic(newInvariantError("apply of expiry failed: %v", err))
		}
		if limit--; limit == 0 {
			break
		}
	}
	freed := len(evs) > 0
	evs = st.queueTick(now, evs)          // queue.go: admit into what the expiries freed
	return st.offersTick(now, freed, evs) // offers.go: draw the lotteries due, offer what the expiries freed
}
