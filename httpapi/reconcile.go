package httpapi

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/payments"
)

// Reconciliation (对账): POST /v1/admin/reconciliation?provider=stripe|alipay|wechatpay
// with a provider's settlement file as the body (payments/settlement.go
// names the formats) answers the differences between the file and the
// payments and refunds onsale recorded through that provider:
//
//	paid_at_provider_not_here   a payment in the file whose transaction no order knows
//	paid_here_not_at_provider   a payment recorded here (within the file's period) missing from the file
//	amount_mismatch             both have it, with another amount or currency
//	refund_not_landed           a refund recorded here as refunded (within the period) with no refund in the file
//
// The file is parsed row by row; what is kept is one entry per transaction
// of the file. The period is the file's first and last row time, or from
// and to (RFC 3339) when given: payments here are taken by the order's
// last update (a duplicate charge: its time), refunds by their last update.

const reconcileDifferencesMax = 10_000

var reconciliationPath = []byte("/v1/admin/reconciliation")

type settled struct {
	amount   int64
	currency string
	line     int
	refunded int64 // refund rows' total
	paid     bool
}

type paidHere struct {
	orderID  string
	amount   int64
	currency string
	atMs     int64
}

type difference struct {
	kind, transactionID, orderID, refundID, currency string
	here, provider                                   int64
	line                                             int
}

func (s *Server) reconcile(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	args := ctx.QueryArgs()
	provider := string(args.Peek("provider"))
	switch provider {
	case payments.ProviderStripe, payments.ProviderAlipay, payments.ProviderWeChatPay:
	default:
		writeProblem(ctx, codeInvalidQuery, "provider must be stripe, alipay or wechatpay", -1)
		return
	}
	var from, to int64
	for _, t := range []struct {
		name string
		dst  *int64
	}{{"from", &from}, {"to", &to}} {
		if v := args.Peek(t.name); len(v) > 0 {
			at, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil {
				writeProblem(ctx, codeInvalidQuery, t.name+" must be an RFC 3339 time such as 2026-03-01T00:00:00+08:00", -1)
				return
			}
			*t.dst = at.UnixMilli()
		}
	}
	file := map[string]*settled{}
	var minAt, maxAt int64
	rows := 0
	err := payments.ParseSettlement(provider, bytes.NewReader(ctx.PostBody()), func(r *payments.SettlementRow) error {
		rows++
		st := file[r.TransactionID]
		if st == nil {
			st = &settled{line: r.Line}
			file[r.TransactionID] = st
		}
		if r.Kind == payments.SettlementPayment {
			st.paid, st.amount, st.currency, st.line = true, st.amount+r.AmountMinor, r.Currency, r.Line
		} else {
			st.refunded += r.AmountMinor
		}
		if r.AtMs > 0 && (minAt == 0 || r.AtMs < minAt) {
			minAt = r.AtMs
		}
		maxAt = max(maxAt, r.AtMs)
		return nil
	})
	if err != nil {
		writeProblem(ctx, codeInvalidRequest, "the "+provider+" settlement file does not parse: "+err.Error(), -1)
		return
	}
	if from == 0 {
		from = minAt
	}
	if to == 0 {
		to = maxAt
	}
	here, refunded, err := s.providerMoney(provider)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	inPeriod := func(at int64) bool { return (from == 0 || at >= from) && (to == 0 || at <= to) }
	var diffs []difference
	for tx, st := range file {
		h, ok := here[tx]
		switch {
		case !st.paid:
		case !ok:
			diffs = append(diffs, difference{kind: "paid_at_provider_not_here", transactionID: tx, provider: st.amount, currency: st.currency, line: st.line})
		case h.amount != st.amount || st.currency != "" && h.currency != st.currency:
			diffs = append(diffs, difference{kind: "amount_mismatch", transactionID: tx, orderID: h.orderID, here: h.amount,
				provider: st.amount, currency: st.currency, line: st.line})
		}
	}
	for tx, h := range here {
		if st := file[tx]; (st == nil || !st.paid) && inPeriod(h.atMs) {
			diffs = append(diffs, difference{kind: "paid_here_not_at_provider", transactionID: tx, orderID: h.orderID, here: h.amount, currency: h.currency})
		}
	}
	for tx, ps := range refunded {
		var want int64
		for _, p := range ps {
			if inPeriod(p.UpdatedAtMs) {
				want += p.AmountCents
			}
		}
		if st := file[tx]; want > 0 && (st == nil || st.refunded < want) {
			got := int64(0)
			if st != nil {
				got = st.refunded
			}
			diffs = append(diffs, difference{kind: "refund_not_landed", transactionID: tx, orderID: ps[0].OrderID, refundID: ps[0].ID,
				here: want, provider: got, currency: ps[0].Currency})
		}
	}
	slices.SortFunc(diffs, func(a, b difference) int {
		if c := cmp.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		return cmp.Compare(a.transactionID, b.transactionID)
	})
	s.writeReconciliation(ctx, provider, from, to, rows, len(here), diffs)
}

// providerMoney gathers what onsale recorded through a provider: the
// payments by transaction id (orders paid through it, duplicate charges,
// mismatched payments) and its refunds that are refunded, by transaction.
func (s *Server) providerMoney(provider string) (map[string]paidHere, map[string][]engine.Payout, error) {
	here := map[string]paidHere{}
	refunded := map[string][]engine.Payout{}
	sales, err := s.eng.Sales(s.reqCtx())
	if err != nil {
		return nil, nil, err
	}
	for _, sl := range sales {
		for cursor, first := "", true; first || cursor != ""; first = false {
			var page []engine.Order
			page, cursor, err = s.eng.SaleOrders(s.reqCtx(), sl.ID, cursor, 10_000)
			if err != nil {
				return nil, nil, err
			}
			for i := range page {
				o := &page[i]
				if p, tx := engine.PaymentProvider(o.PaymentID); p == provider && (o.Status == engine.StatusPaid || o.Status == engine.StatusRefunded) {
					here[tx] = paidHere{orderID: o.ID, amount: o.AmountCents, currency: o.Currency, atMs: o.UpdatedAtMs}
				}
				for _, c := range o.DuplicateCharges {
					if p, tx := engine.PaymentProvider(c.EventID); p == provider {
						here[tx] = paidHere{orderID: o.ID, amount: c.AmountCents, currency: o.Currency, atMs: c.AtMs}
					}
				}
				for _, p := range o.Payouts {
					if p.Provider != provider {
						continue
					}
					if p.Reason == engine.PayoutPaymentMismatch {
						here[p.TransactionID] = paidHere{orderID: o.ID, amount: p.TotalCents, currency: p.Currency, atMs: p.CreatedAtMs}
					}
					if p.Status == engine.PayoutRefunded && p.Attempts > 0 { // sent by onsale, not marked by hand
						refunded[p.TransactionID] = append(refunded[p.TransactionID], p)
					}
				}
			}
		}
	}
	return here, refunded, nil
}

func (s *Server) writeReconciliation(ctx *fasthttp.RequestCtx, provider string, from, to int64, rows, here int, diffs []difference) {
	counts := map[string]int{}
	for _, d := range diffs {
		counts[d.kind]++
	}
	b := append([]byte(nil), `{"provider":`...)
	b = appendString(b, provider)
	if from > 0 {
		b = append(b, `,"from":`...)
		b = appendTime(b, from)
	}
	if to > 0 {
		b = append(b, `,"to":`...)
		b = appendTime(b, to)
	}
	b = append(b, `,"rows":`...)
	b = strconv.AppendInt(b, int64(rows), 10)
	b = append(b, `,"payments_here":`...)
	b = strconv.AppendInt(b, int64(here), 10)
	b = append(b, `,"counts":{`...)
	for i, k := range []string{"amount_mismatch", "paid_at_provider_not_here", "paid_here_not_at_provider", "refund_not_landed"} {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(counts[k]), 10)
	}
	b = append(b, `},"differences":[`...)
	for i, d := range diffs {
		if i == reconcileDifferencesMax {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"kind":`...)
		b = appendString(b, d.kind)
		b = append(b, `,"transaction_id":`...)
		b = appendString(b, d.transactionID)
		b = append(b, `,"order_id":`...)
		b = appendString(b, d.orderID)
		if d.refundID != "" {
			b = append(b, `,"refund_id":`...)
			b = appendString(b, d.refundID)
		}
		b = append(b, `,"amount_here_cents":`...)
		b = strconv.AppendInt(b, d.here, 10)
		b = append(b, `,"amount_at_provider_cents":`...)
		b = strconv.AppendInt(b, d.provider, 10)
		b = append(b, `,"currency":`...)
		b = appendString(b, d.currency)
		if d.line > 0 {
			b = append(b, `,"line":`...)
			b = strconv.AppendInt(b, int64(d.line), 10)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
