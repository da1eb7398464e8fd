package httpapi

import (
	"bytes"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Refunds sent to payment providers (engine payouts.go, httpapi/payouts):
//
//	GET  /v1/admin/refunds?sale_id=&status=&limit=     every payout, oldest first
//	POST /v1/admin/refunds/{refund_id}:retry           send a pending or failed one now, automatic refunds or not
//	POST /v1/admin/refunds/{refund_id}:mark-refunded   settled by hand (manual, failed, pending)
//
// An order's JSON carries its payouts as "refunds".

var (
	prefixAdminRefunds = []byte("/v1/admin/refunds/")
	suffixRetry        = []byte(":retry")
	suffixMarkRefunded = []byte(":mark-refunded")
)

// matchPayoutRoute matches the routes under /v1/admin/refunds.
func matchPayoutRoute(path []byte) (route, []byte, bool) {
	switch string(path) {
	case "/v1/admin/refunds":
		return routeAdminRefunds, nil, true
	case "/v1/admin/reconciliation": // reconcile.go
		return routeAdminReconciliation, nil, true
	}
	rest, ok := bytes.CutPrefix(path, prefixAdminRefunds)
	if !ok || bytes.IndexByte(rest, '/') >= 0 {
		return routeNone, nil, false
	}
	if id, ok := bytes.CutSuffix(rest, suffixRetry); ok && len(id) > 0 {
		return routeAdminRetryRefund, id, true
	}
	if id, ok := bytes.CutSuffix(rest, suffixMarkRefunded); ok && len(id) > 0 {
		return routeAdminMarkRefunded, id, true
	}
	return routeNone, nil, true
}

func (s *Server) listRefunds(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	args := ctx.QueryArgs()
	q := engine.PayoutQuery{SaleID: string(args.Peek("sale_id")), Limit: 1000}
	if v := args.Peek("status"); len(v) > 0 {
		st, ok := engine.ParsePayoutStatus(string(v))
		if !ok {
			writeProblem(ctx, codeInvalidQuery, "status must be refund_pending, refunded, refund_failed or manual", -1)
			return
		}
		q.Status = st
	}
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 10_000 {
			writeProblem(ctx, codeInvalidQuery, "limit must be 1 to 10000", -1)
			return
		}
		q.Limit = n
	}
	all, err := s.eng.Payouts(s.reqCtx(), q)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	b := append([]byte(nil), `{"refunds":[`...)
	for i := range all {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPayout(b, &all[i])
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (s *Server) retryRefund(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	s.updateRefund(ctx, engine.PayoutUpdate{PayoutID: string(id), Action: engine.PayoutRetry})
	if ctx.Response.StatusCode() == fasthttp.StatusOK && s.cfg.RefundsWake != nil {
		s.cfg.RefundsWake()
	}
}

func (s *Server) markRefunded(ctx *fasthttp.RequestCtx, id []byte, _ principal) {
	s.updateRefund(ctx, engine.PayoutUpdate{PayoutID: string(id), Action: engine.PayoutMarkRefunded, Detail: "marked refunded by an admin"})
}

func (s *Server) updateRefund(ctx *fasthttp.RequestCtx, u engine.PayoutUpdate) {
	p, err := s.eng.UpdatePayout(s.reqCtx(), u)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(appendPayout(nil, &p), '\n'))
}

// appendRefunds appends an order's payouts as its "refunds" member; an
// order without any has none.
func appendRefunds(b []byte, o *engine.Order) []byte {
	if len(o.Payouts) == 0 {
		return b
	}
	b = append(b, `,"refunds":[`...)
	for i := range o.Payouts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPayout(b, &o.Payouts[i])
	}
	return append(b, ']')
}

func appendPayout(b []byte, p *engine.Payout) []byte {
	b = append(b, `{"refund_id":`...)
	b = appendString(b, p.ID)
	b = append(b, `,"order_id":`...)
	b = appendString(b, p.OrderID)
	b = append(b, `,"reason":`...)
	b = appendString(b, p.Reason.String())
	b = append(b, `,"status":`...)
	b = appendString(b, p.Status.String())
	b = append(b, `,"amount_cents":`...)
	b = strconv.AppendInt(b, p.AmountCents, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, p.Currency)
	b = append(b, `,"provider":`...)
	b = appendString(b, p.Provider)
	b = append(b, `,"transaction_id":`...)
	b = appendString(b, p.TransactionID)
	b = append(b, `,"payment_id":`...)
	b = appendString(b, p.PaymentID)
	b = append(b, `,"approved":`...)
	b = strconv.AppendBool(b, p.Approved)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(p.Attempts), 10)
	b = append(b, `,"detail":`...)
	b = appendString(b, p.Detail)
	b = append(b, `,"provider_refund_id":`...)
	b = appendString(b, p.ProviderRefundID)
	if p.Status == engine.PayoutPending {
		b = append(b, `,"next_attempt_at":`...)
		b = appendTime(b, p.NextAttemptAtMs)
	}
	b = append(b, `,"created_at":`...)
	b = appendTime(b, p.CreatedAtMs)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, p.UpdatedAtMs)
	return append(b, '}')
}
