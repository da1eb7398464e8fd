package httpapi

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
)

// Refund and exchange rules, the HTTP side (engine/refundrules.go holds the
// rules):
//
//	POST /v1/orders/{order_id}/refund-request       the buyer; {"reason"?}
//	POST /v1/orders/{order_id}/exchange             the buyer; {"sale_id"?, "tier"}
//	GET  /v1/admin/refund-queue?sale_id=&kind=&limit=
//	POST /v1/admin/refund-queue/{item_id}:settle    {"action", "note"?}
//
// A sale's rules are members of its JSON: "refunds" and "exchange".

// refundsBody is a sale's "refunds" member.
type refundsBody struct {
	SelfService      bool   `json:"self_service"`
	UntilBeforeStart string `json:"until_before_start"` // a Go duration: "48h", "90m"
	FeePercent       int    `json:"fee_percent"`
	FeeCents         int64  `json:"fee_cents"`
	Approval         string `json:"approval"` // "auto" or "admin"
}

// exchangeBody is a sale's "exchange" member.
type exchangeBody struct {
	Allowed          bool   `json:"allowed"`
	UntilBeforeStart string `json:"until_before_start"`
	FeeCents         int64  `json:"fee_cents"`
}

type refundRequestBody struct {
	Reason string `json:"reason"`
}

type exchangeRequestBody struct {
	SaleID string `json:"sale_id"`
	Tier   string `json:"tier"`
}

type settleBody struct {
	Action string `json:"action"`
	Note   string `json:"note"`
}

// refundRules converts a sale's members; the engine validates the values.
func refundRules(r *refundsBody, x *exchangeBody, cfg *engine.SaleConfig) string {
	if r == nil && x == nil {
		return ""
	}
	p := &engine.RefundPolicy{}
	cfg.RefundPolicy = p
	if r != nil {
		ms, msg := beforeStartMs("refunds", r.UntilBeforeStart)
		if msg != "" {
			return msg
		}
		p.Refund = engine.RefundRule{SelfService: r.SelfService, UntilBeforeStartMs: ms, FeePercent: r.FeePercent, FeeCents: r.FeeCents}
		switch r.Approval {
		case "auto":
			p.Refund.Approval = engine.RefundApprovalAuto
		case "admin":
			p.Refund.Approval = engine.RefundApprovalAdmin
		case "":
		default:
			return `refunds.approval must be "auto" or "admin"`
		}
	}
	if x != nil {
		ms, msg := beforeStartMs("exchange", x.UntilBeforeStart)
		if msg != "" {
			return msg
		}
		p.Exchange = engine.ExchangeRule{Allowed: x.Allowed, UntilBeforeStartMs: ms, FeeCents: x.FeeCents}
	}
	return ""
}

func beforeStartMs(member, s string) (int64, string) {
	if s == "" {
		return 0, ""
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > engine.RefundWindowMsMax*time.Millisecond {
		return 0, fmt.Sprintf(`%s.until_before_start must be a duration such as "48h" or "90m", 0 to 8784h`, member)
	}
	return d.Milliseconds(), ""
}

// appendRefundRules appends a sale's "refunds" and "exchange" members,
// nothing for a sale without them.
func appendRefundRules(b []byte, p *engine.RefundPolicy) []byte {
	if p == nil {
		return b
	}
	r, x := p.Refund, p.Exchange
	if r != (engine.RefundRule{}) {
		b = append(b, `,"refunds":{"self_service":`...)
		b = strconv.AppendBool(b, r.SelfService)
		b = append(b, `,"until_before_start":`...)
		b = appendString(b, (time.Duration(r.UntilBeforeStartMs) * time.Millisecond).String())
		b = append(b, `,"fee_percent":`...)
		b = strconv.AppendInt(b, int64(r.FeePercent), 10)
		b = append(b, `,"fee_cents":`...)
		b = strconv.AppendInt(b, r.FeeCents, 10)
		b = append(b, `,"approval":`...)
		b = appendString(b, r.Approval.String())
		b = append(b, '}')
	}
	if x != (engine.ExchangeRule{}) {
		b = append(b, `,"exchange":{"allowed":`...)
		b = strconv.AppendBool(b, x.Allowed)
		b = append(b, `,"until_before_start":`...)
		b = appendString(b, (time.Duration(x.UntilBeforeStartMs) * time.Millisecond).String())
		b = append(b, `,"fee_cents":`...)
		b = strconv.AppendInt(b, x.FeeCents, 10)
		b = append(b, '}')
	}
	return b
}

// appendOrderRefunds appends an order's refund records: "refund_request",
// "refund", "exchanged_to", "exchanged_from", "exchange_attempt" and
// "amount_due_cents", each only when there is one.
func appendOrderRefunds(b []byte, o *engine.Order) []byte {
	rs := o.Refunds
	if rs == nil {
		return b
	}
	if r := rs.Request; r != nil {
		b = append(b, `,"refund_request":{"status":"`...)
		b = append(b, r.Status.String()...)
		b = append(b, `","at":`...)
		b = appendTime(b, r.AtMs)
		b = append(b, `,"reason":`...)
		b = appendString(b, r.Reason)
		b = append(b, `,"amount_cents":`...)
		b = strconv.AppendInt(b, r.AmountCents, 10)
		b = append(b, `,"fee_cents":`...)
		b = strconv.AppendInt(b, r.FeeCents, 10)
		if r.SettledAtMs != 0 {
			b = append(b, `,"settled_at":`...)
			b = appendTime(b, r.SettledAtMs)
			b = append(b, `,"note":`...)
			b = appendString(b, r.Note)
		}
		b = append(b, '}')
	}
	if r := rs.Refund; r != nil {
		b = append(b, `,"refund":{"amount_cents":`...)
		b = strconv.AppendInt(b, r.AmountCents, 10)
		b = append(b, `,"fee_cents":`...)
		b = strconv.AppendInt(b, r.FeeCents, 10)
		b = append(b, `,"refunded_cents":`...)
		b = strconv.AppendInt(b, r.AmountCents-r.FeeCents, 10)
		b = append(b, `,"at":`...)
		b = appendTime(b, r.AtMs)
		b = append(b, `,"source":"`...)
		b = append(b, r.Source.String()...)
		b = append(b, `","note":`...)
		b = appendString(b, r.Note)
		b = append(b, '}')
	}
	b = appendExchange(b, `,"exchanged_to":`, rs.ExchangedTo)
	b = appendExchange(b, `,"exchanged_from":`, rs.ExchangedFrom)
	b = appendExchange(b, `,"exchange_attempt":`, rs.ExchangeAttempt)
	if rs.AmountDueCents != 0 {
		b = append(b, `,"amount_due_cents":`...)
		b = strconv.AppendInt(b, rs.AmountDueCents, 10)
	}
	return b
}

func appendExchange(b []byte, member string, x *engine.Exchange) []byte {
	if x == nil {
		return b
	}
	b = append(b, member...)
	b = append(b, `{"from_order_id":`...)
	b = appendString(b, x.FromOrderID)
	b = append(b, `,"to_order_id":`...)
	b = appendString(b, x.ToOrderID)
	b = append(b, `,"difference_cents":`...)
	b = strconv.AppendInt(b, x.DifferenceCents, 10)
	b = append(b, `,"fee_cents":`...)
	b = strconv.AppendInt(b, x.FeeCents, 10)
	b = append(b, `,"at":`...)
	b = appendTime(b, x.AtMs)
	b = append(b, `,"status":"`...)
	b = append(b, x.Status...)
	return append(b, `"}`...)
}

// appendChargeRefunded completes a duplicate charge returned by hand.
func appendChargeRefunded(b []byte, c *engine.DuplicateCharge) []byte {
	if c.RefundedAtMs == 0 {
		return b
	}
	b = append(b, `,"refunded_at":`...)
	b = appendTime(b, c.RefundedAtMs)
	b = append(b, `,"note":`...)
	return appendString(b, c.Note)
}

var (
	prefixRefundQueue = []byte("/v1/admin/refund-queue/")
	suffixSettle      = []byte(":settle")
)

// matchRefundRoute matches the order routes' tails and the queue's paths.
func matchRefundRoute(path []byte) (route, []byte, bool) {
	if string(path) == "/v1/admin/refund-queue" {
		return routeAdminRefundQueue, nil, true
	}
	if rest, ok := bytes.CutPrefix(path, prefixRefundQueue); ok {
		if id, ok := bytes.CutSuffix(rest, suffixSettle); ok && len(id) > 0 && bytes.IndexByte(id, '/') < 0 {
			return routeAdminSettleRefund, id, true
		}
		return routeNone, nil, true
	}
	return routeNone, nil, false
}

// Outcomes counted besides the problems' codes.
const (
	outcomeRefunded  = "refunded"
	outcomeRequested = "requested"
	outcomeExchanged = "exchanged"
	outcomeAwaiting  = engine.ExchangeAwaitingPayment // a dearer exchange opened (exchanges.go)
)

// registerRefundMetrics registers the successes' series at start, so that
// a rate over them sees their first increment; problems' series appear when
// they first happen.
func (s *Server) registerRefundMetrics() {
	for _, o := range []string{outcomeRefunded, outcomeRequested} {
		s.m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_refund_requests_total{outcome=%q}`, o))
	}
	for _, o := range []string{outcomeExchanged, outcomeAwaiting} {
		s.m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_exchanges_total{outcome=%q}`, o))
	}
}

func (s *Server) countRefundRequest(outcome string) {
	s.m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_refund_requests_total{outcome=%q}`, outcome)).Inc()
}

func (s *Server) countExchange(outcome string) {
	s.m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_exchanges_total{outcome=%q}`, outcome)).Inc()
}

// refundRequest: POST /v1/orders/{order_id}/refund-request. 200 with the
// order: refunded (approval auto) or with its pending request (admin).
// Asking again answers the same.
func (s *Server) refundRequest(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	if s.overUserRate(ctx, routeCancelOrder, who) { // the buyer's bucket, as cancels
		return
	}
	var body refundRequestBody
	if raw := ctx.PostBody(); len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeStrict(raw, &body); err != nil {
			s.countRefundRequest(writeDecodeError(ctx, err))
			return
		}
	}
	o, err := s.eng.RequestRefund(s.engineCtx(ctx), string(id), who.userID, body.Reason)
	if err != nil {
		s.countRefundRequest(s.writeError(ctx, err))
		return
	}
	if o.Status == engine.StatusRefunded {
		s.countRefundRequest(outcomeRefunded)
	} else {
		s.countRefundRequest(outcomeRequested)
	}
	writeOrder(ctx, fasthttp.StatusOK, &o, viewWithTickets)
}

// exchange: POST /v1/orders/{order_id}/exchange. 200 with the new order;
// its exchanged_from says what it replaced and the price difference, and
// its status (awaiting_payment: pay amount_due_cents on the new order).
func (s *Server) exchange(ctx *fasthttp.RequestCtx, id []byte, who principal) {
	if s.overUserRate(ctx, routeCancelOrder, who) {
		return
	}
	var body exchangeRequestBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		s.countExchange(writeDecodeError(ctx, err))
		return
	}
	if body.Tier == "" {
		writeProblem(ctx, codeInvalidRequest, "tier is required", -1)
		s.countExchange(codeInvalidRequest)
		return
	}
	o, err := s.eng.Exchange(s.engineCtx(ctx), string(id), who.userID, engine.ExchangeRequest{SaleID: body.SaleID, TierID: body.Tier})
	if err != nil {
		s.countExchange(s.writeError(ctx, err))
		return
	}
	if x := o.Refunds; x != nil && x.ExchangedFrom != nil && x.ExchangedFrom.Status == engine.ExchangeAwaitingPayment {
		s.countExchange(outcomeAwaiting)
	} else {
		s.countExchange(outcomeExchanged)
	}
	writeOrder(ctx, fasthttp.StatusOK, &o, viewWithTickets)
}

// refundQueue: GET /v1/admin/refund-queue?sale_id=&kind=&limit=, oldest
// first.
func (s *Server) refundQueue(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	args := ctx.QueryArgs()
	var kind engine.RefundQueueKind
	if k := args.Peek("kind"); len(k) > 0 {
		var ok bool
		if kind, ok = engine.ParseRefundQueueKind(string(k)); !ok {
			writeProblem(ctx, codeInvalidQuery, "kind must be refund_request, needs_refund or duplicate_charge", -1)
			return
		}
	}
	limit := 1000
	if l := args.Peek("limit"); len(l) > 0 {
		n, err := strconv.Atoi(string(l))
		if err != nil || n < 1 || n > engine.RefundQueueLimitMax {
			writeProblem(ctx, codeInvalidQuery, fmt.Sprintf("limit must be 1 to %d", engine.RefundQueueLimitMax), -1)
			return
		}
		limit = n
	}
	items, err := s.eng.RefundQueue(s.reqCtx(), string(args.Peek("sale_id")), kind, limit)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	nowMs := s.now().UnixMilli()
	b := []byte(`{"items":[`)
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQueueItem(b, &items[i], nowMs)
	}
	b = append(b, "]}\n"...)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func appendQueueItem(b []byte, it *engine.RefundQueueItem, nowMs int64) []byte {
	b = append(b, `{"item_id":`...)
	b = appendString(b, it.ID)
	b = append(b, `,"kind":"`...)
	b = append(b, it.Kind.String()...)
	b = append(b, `","order_id":`...)
	b = appendString(b, it.OrderID)
	b = append(b, `,"sale_id":`...)
	b = appendString(b, it.SaleID)
	b = append(b, `,"user_id":`...)
	b = appendString(b, it.UserID)
	b = append(b, `,"amount_cents":`...)
	b = strconv.AppendInt(b, it.AmountCents, 10)
	b = append(b, `,"fee_cents":`...)
	b = strconv.AppendInt(b, it.FeeCents, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, it.Currency)
	b = append(b, `,"since":`...)
	b = appendTime(b, it.SinceMs)
	b = append(b, `,"age_seconds":`...)
	b = strconv.AppendInt(b, max(nowMs-it.SinceMs, 0)/1000, 10)
	if it.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, it.Reason)
	}
	if it.EventID != "" {
		b = append(b, `,"event_id":`...)
		b = appendString(b, it.EventID)
	}
	return append(b, '}')
}

// settleRefund: POST /v1/admin/refund-queue/{item_id}:settle. 200 with the
// order as it is after; audited.
func (s *Server) settleRefund(ctx *fasthttp.RequestCtx, itemID []byte, _ principal) {
	var body settleBody
	if err := decodeStrict(ctx.PostBody(), &body); err != nil {
		writeDecodeError(ctx, err)
		return
	}
	action, ok := engine.ParseSettleAction(body.Action)
	if !ok {
		writeProblem(ctx, codeInvalidRequest, `action must be "approve", "reject" or "refunded"`, -1)
		return
	}
	o, err := s.eng.SettleRefundQueueItem(s.engineCtx(ctx), string(itemID), action, body.Note)
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	s.writeOrderWithBuyer(ctx, fasthttp.StatusOK, &o)
}
