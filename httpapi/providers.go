package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/payments"
)

// Payment providers' notifications: POST /v1/payments/{stripe, alipay,
// wechatpay, unionpay}. Public routes: the provider's signature is the
// authentication, checked by package payments on the raw request before
// anything is parsed. A verified notification becomes one engine.Payment
// (payments.Event.EventID, so a transaction applies once), and the provider
// is told "handled" only after the engine answered, which is after the
// log entry holding the payment is synced.
//
// What a provider is told, by what happened:
//
//	refused by verification      401 unauthorized / 422 invalid_request: nothing changed; it retries, and a person looks
//	engine: applied, unchanged,  handled (2xx, or Alipay's "success")
//	  duplicate charge
//	unknown order                handled; logged and counted in onsale_payments_unmatched_total{provider}
//	amount or currency mismatch  handled; a success is recorded on the order as a payment_mismatch
//	                             refund (engine payouts.go), which the refund worker sends back,
//	                             and counted in onsale_payments_mismatch_total{provider}
//	refund onsale sent, ended    handled; the payout is confirmed refunded or refund_failed (engine
//	                             ConfirmPayout), once: Stripe's refund.* events, WeChat Pay's refund
//	                             notification, matched by the provider's refund id
//	refund onsale sent, pending  handled; the worker keeps asking the provider
//	refund onsale sent whose     handled as a refund not applied (below); the worker's query
//	  acceptance is not logged     confirms it
//	  yet
//	other refund at the provider handled; logged and counted, not applied (the engine has no event for it)
//	ignored (waiting, unknown)   handled
//	engine overloaded, stopping  429/503 (WeChat Pay: {"code":"FAIL"}): retried by the provider
//
// Unmatched and mismatched payments are answered as handled because a
// retry cannot fix them and providers give up after a day or so anyway:
// the log line and the metric are where an admin finds them.

// Outcomes of a notification, in logs and in onsale_payment_notifications_total.
const (
	notifyApplied         = "applied"
	notifyUnchanged       = "unchanged"
	notifyDuplicateCharge = "duplicate_charge"
	notifyUnmatched       = "unmatched"
	notifyMismatch        = "mismatch"
	notifyRefund          = "refund_not_applied"
	notifyRefundConfirmed = "refund_confirmed"
	notifyRefundPending   = "refund_pending"
	notifyIgnored         = "ignored"
)

const codeProviderNotConfigured = "provider_not_configured"

var (
	headerStripeSignature     = []byte("Stripe-Signature")
	headerWechatpayTimestamp  = []byte("Wechatpay-Timestamp")
	headerWechatpayNonce      = []byte("Wechatpay-Nonce")
	headerWechatpaySignature  = []byte("Wechatpay-Signature")
	headerWechatpaySerial     = []byte("Wechatpay-Serial")
	headerWechatpaySignerType = []byte("Wechatpay-Signature-Type")
)

func (s *Server) stripeNotification(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	s.notification(ctx, stripeAnswer{}, payments.ProviderStripe)
}

func (s *Server) alipayNotification(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	s.notification(ctx, textAnswer{text: "success"}, payments.ProviderAlipay)
}

func (s *Server) wechatPayNotification(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	s.notification(ctx, wechatAnswer{}, payments.ProviderWeChatPay)
}

func (s *Server) unionPayNotification(ctx *fasthttp.RequestCtx, _ []byte, _ principal) {
	s.notification(ctx, textAnswer{text: "ok"}, payments.ProviderUnionPay)
}

func (s *Server) notification(ctx *fasthttp.RequestCtx, a notifyAnswer, provider string) {
	ev, configured, err := s.verifyNotification(ctx, provider)
	if !configured {
		s.providerNotConfigured(ctx, a, provider)
		return
	}
	s.handleNotification(ctx, a, provider, ev, err)
}

// verifyNotification checks a provider's notification on the raw
// request; configured is false for a provider that is not.
func (s *Server) verifyNotification(ctx *fasthttp.RequestCtx, provider string) (ev payments.Event, configured bool, err error) {
	p := s.payments()
	switch {
	case provider == payments.ProviderStripe && p.Stripe != nil:
		ev, err = p.Stripe.Verify(ctx.Request.Header.PeekBytes(headerStripeSignature), ctx.PostBody(), s.now())
	case provider == payments.ProviderAlipay && p.Alipay != nil:
		ev, err = p.Alipay.Verify(ctx.PostBody())
	case provider == payments.ProviderWeChatPay && p.WeChatPay != nil:
		h := &ctx.Request.Header
		ev, err = p.WeChatPay.Verify(payments.WeChatPayHeaders{
			Timestamp: h.PeekBytes(headerWechatpayTimestamp), Nonce: h.PeekBytes(headerWechatpayNonce),
			Signature: h.PeekBytes(headerWechatpaySignature), Serial: h.PeekBytes(headerWechatpaySerial),
			SignatureType: h.PeekBytes(headerWechatpaySignerType),
		}, ctx.PostBody(), s.now())
	case provider == payments.ProviderUnionPay && p.UnionPay != nil:
		ev, err = p.UnionPay.Verify(ctx.PostBody(), s.now())
	default:
		return ev, false, nil
	}
	return ev, true, err
}

// NotificationOrder is for a fleet's router (httpapi/fleet RouteOrder,
// joined in main): ok is true for a provider's notification (POST
// /v1/payments/{stripe, alipay, wechatpay, unionpay}), and order is what
// it names its order by once verified: an order id or provider order
// number, or the order of the payout a refund names. order is "" for a
// notification that does not verify, names no order, or is ignored, and
// for a provider not configured: the home partition answers those as
// before. It changes nothing; the owner verifies the request again.
func (s *Server) NotificationOrder(ctx *fasthttp.RequestCtx) (order string, ok bool) {
	provider, ok := bytes.CutPrefix(ctx.Path(), []byte("/v1/payments/"))
	if !ok || !ctx.IsPost() {
		return "", false
	}
	switch string(provider) {
	case payments.ProviderStripe, payments.ProviderAlipay, payments.ProviderWeChatPay, payments.ProviderUnionPay:
	default:
		return "", false
	}
	ev, configured, err := s.verifyNotification(ctx, string(provider))
	if !configured || err != nil || ev.Kind == payments.Ignored {
		return "", true
	}
	if ev.PayoutID != "" {
		if id, _, valid := engine.ParsePayoutID(ev.PayoutID); valid {
			return id, true
		}
	}
	return ev.OrderID, true
}

func (s *Server) payments() *payments.Providers {
	if s.cfg.Payments == nil {
		return &payments.Providers{}
	}
	return s.cfg.Payments
}

// handleNotification answers a verified (or refused) notification.
func (s *Server) handleNotification(ctx *fasthttp.RequestCtx, a notifyAnswer, provider string, ev payments.Event, err error) {
	if err != nil {
		var perr *payments.Error
		if !errors.As(err, &perr) {
			panic("httpapi: a payments verifier returned an untyped error: " + err.Error())
		}
		s.providers.refused(provider, perr.Code)
		s.log.Warn("payment notification refused", "provider", provider, "code", string(perr.Code), "err", perr.Msg)
		code := codeInvalidRequest
		if perr.IsSignature() {
			code = codeUnauthorized
		}
		a.refuse(ctx, code, provider+": "+string(perr.Code)+": "+perr.Msg)
		return
	}
	outcome, err := s.applyNotification(&ev)
	if err != nil {
		code := s.writeError(ctx, err)
		if _, ok := a.(wechatAnswer); ok {
			a.refuse(ctx, code, "not handled now ("+code+"); send it again later")
		}
		return
	}
	s.providers.handled(provider, outcome)
	a.done(ctx, outcome)
}

// applyNotification hands a verified event to the engine and says what
// became of it; an error is one the provider should retry.
func (s *Server) applyNotification(ev *payments.Event) (string, error) {
	attrs := []any{"provider", ev.Provider, "type", ev.Type, "order_id", ev.OrderID, "transaction_id", ev.TransactionID,
		"amount_minor", ev.AmountMinor, "currency", ev.Currency}
	switch ev.Kind {
	case payments.Ignored:
		s.log.Info("payment notification ignored", attrs...)
		return notifyIgnored, nil
	case payments.Refunded:
		if outcome, ok, err := s.confirmRefund(ev, attrs); ok {
			return outcome, err
		}
		s.providers.refundsUnapplied[ev.Provider].Inc()
		s.log.Warn("refund made at the payment provider; the order is not changed (onsale does not apply provider refunds yet): refund it in onsale too if its tickets must go back on sale", attrs...)
		return notifyRefund, nil
	}
	orderID, err := s.providerOrderID(ev.OrderID)
	if err != nil {
		return "", err
	}
	p := engine.Payment{EventID: ev.EventID(), OrderID: orderID, Succeeded: ev.Kind == payments.Succeeded,
		AmountCents: ev.AmountMinor, Currency: ev.Currency}
	o, outcome, err := s.eng.ApplyPayment(s.reqCtx(), p)
	var rej *engine.Rejection
	switch {
	case err == nil:
	case errors.As(err, &rej) && rej.Code == engine.CodeUnknownOrder:
		s.providers.unmatched[ev.Provider].Inc()
		s.log.Error("payment notification for no known order: find the payment at the provider and settle it by hand",
			append(attrs, "kind", ev.Kind.String())...)
		return notifyUnmatched, nil
	case errors.As(err, &rej) && rej.Code == engine.CodePaymentMismatch:
		// The engine records a mismatched success; what it refuses took
		// no money (a failure, or no amount at all).
		s.log.Info("payment that took no money does not match its order; nothing to do", append(attrs, "detail", rej.Message)...)
		return notifyMismatch, nil
	default:
		return "", err
	}
	switch {
	case outcome == engine.PaymentMismatch:
		s.providers.mismatched[ev.Provider].Inc()
		s.log.Warn("money received does not match the order, which stays as it was: recorded as a refund to send back",
			append(attrs, "order_amount_cents", o.AmountCents, "order_currency", o.Currency)...)
		return notifyMismatch, nil
	case outcome == engine.PaymentMismatchSeen:
		return notifyMismatch, nil
	case outcome == engine.PaymentDuplicateCharge:
		s.m.duplicateCharges.Inc()
		s.log.Warn("duplicate charge recorded: the buyer paid twice; refund it",
			"order_id", o.ID, "event_id", p.EventID, "amount_cents", p.AmountCents, "currency", p.Currency)
		return notifyDuplicateCharge, nil
	case outcome.DuplicateCharge():
		return notifyDuplicateCharge, nil
	case outcome.Applied():
		return notifyApplied, nil
	}
	return notifyUnchanged, nil
}

// confirmRefund applies a provider's word on a refund it names to the
// payout onsale sent it as: ok is false when the notification names no
// payout of onsale's (a refund made in the provider's dashboard, or one
// that carries no refund id), and the caller logs it as before.
func (s *Server) confirmRefund(ev *payments.Event, attrs []any) (outcome string, ok bool, err error) {
	if ev.RefundID == "" {
		return "", false, nil
	}
	attrs = append(attrs, "refund_id", ev.RefundID, "refund_state", ev.RefundState.String())
	orderID := ""
	if ev.PayoutID != "" {
		id, _, valid := engine.ParsePayoutID(ev.PayoutID)
		if !valid {
			return "", false, nil
		}
		orderID = id
	} else if ev.OrderID != "" {
		if orderID, err = s.providerOrderID(ev.OrderID); err != nil {
			return "", true, err
		}
	} else {
		return "", false, nil
	}
	var status engine.PayoutStatus
	switch ev.RefundState {
	case payments.RefundStateSucceeded:
		status = engine.PayoutRefunded
	case payments.RefundStateFailed:
		status = engine.PayoutFailed
	default:
		s.log.Info("refund still under way at the provider", attrs...)
		return notifyRefundPending, true, nil
	}
	detail := ev.RefundDetail
	if detail == "" {
		detail = ev.Provider + ": " + ev.Type
	}
	p, err := s.eng.ConfirmPayout(s.reqCtx(), orderID, ev.Provider, ev.RefundID, status, detail)
	var rej *engine.Rejection
	switch {
	case err == nil:
		s.log.Info("refund confirmed by the provider", append(attrs, "payout_id", p.ID, "status", p.Status.String())...)
		return notifyRefundConfirmed, true, nil
	case errors.As(err, &rej) && (rej.Code == engine.CodeUnknownRefund || rej.Code == engine.CodeUnknownOrder):
		return "", false, nil
	}
	return "", true, err
}

// providerOrderID maps the order number a provider sends back to an
// order id: an order's provider order number (engine ordernumber.go: 32
// letters and digits, what WeChat Pay's out_trade_no and UnionPay's orderId
// can hold), or the order id itself. A number that names no order is
// passed on as it is, and the engine finds no order of that id.
func (s *Server) providerOrderID(number string) (string, error) {
	if len(number) != engine.ProviderOrderNumberLen || strings.IndexByte(number, '.') >= 0 {
		return number, nil
	}
	id, err := s.eng.OrderIDForNumber(s.reqCtx(), number)
	var rej *engine.Rejection
	if errors.As(err, &rej) {
		return number, nil
	}
	return id, err
}

func (s *Server) providerNotConfigured(ctx *fasthttp.RequestCtx, a notifyAnswer, provider string) {
	a.refuse(ctx, codeProviderNotConfigured, provider+" is not configured on this server; see the README's payment providers section")
}

// notifyAnswer is how a provider wants to be answered.
type notifyAnswer interface {
	done(ctx *fasthttp.RequestCtx, outcome string)
	// refuse answers a problem code's status; the provider retries.
	refuse(ctx *fasthttp.RequestCtx, code, detail string)
}

// problemAnswer refuses with application/problem+json.
type problemAnswer struct{}

func (problemAnswer) done(ctx *fasthttp.RequestCtx, outcome string) {
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"received":true,"outcome":"` + outcome + `"}` + "\n")
}

func (problemAnswer) refuse(ctx *fasthttp.RequestCtx, code, detail string) {
	writeProblem(ctx, code, detail, -1)
}

// stripeAnswer: any 2xx is success to Stripe.
type stripeAnswer struct{ problemAnswer }

// textAnswer: Alipay wants the plain text "success", UnionPay a 200 (its
// samples answer "ok"); anything else is a failure to both.
type textAnswer struct {
	text string
	problemAnswer
}

func (t textAnswer) done(ctx *fasthttp.RequestCtx, _ string) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(t.text)
}

// wechatAnswer: 204 without a body once handled; on failure a 4xx/5xx
// with {"code":"FAIL","message":"..."}, as WeChat Pay documents.
type wechatAnswer struct{}

func (wechatAnswer) done(ctx *fasthttp.RequestCtx, _ string) {
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func (wechatAnswer) refuse(ctx *fasthttp.RequestCtx, code, detail string) {
	status := fasthttp.StatusInternalServerError
	if info, ok := problemTable[code]; ok {
		status = info.status
	}
	retry := ctx.Response.Header.Peek("Retry-After")
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	if len(retry) > 0 {
		ctx.Response.Header.SetBytesV("Retry-After", retry)
	}
	ctx.SetContentType("application/json")
	b := append([]byte(`{"code":"FAIL","message":`), strconv.Quote(code+": "+detail)...)
	ctx.SetBody(append(b, "}\n"...))
}

// providerMetrics are created once, in New, per provider.
type providerMetrics struct {
	set              *metrics.Set
	unmatched        map[string]*metrics.Counter
	mismatched       map[string]*metrics.Counter
	refundsUnapplied map[string]*metrics.Counter
}

var providerNames = []string{payments.ProviderStripe, payments.ProviderAlipay, payments.ProviderWeChatPay, payments.ProviderUnionPay}

func newProviderMetrics(set *metrics.Set) providerMetrics {
	m := providerMetrics{set: set, unmatched: map[string]*metrics.Counter{}, mismatched: map[string]*metrics.Counter{},
		refundsUnapplied: map[string]*metrics.Counter{}}
	for _, p := range providerNames {
		m.unmatched[p] = set.NewCounter(fmt.Sprintf(`onsale_payments_unmatched_total{provider=%q}`, p))
		m.mismatched[p] = set.NewCounter(fmt.Sprintf(`onsale_payments_mismatch_total{provider=%q}`, p))
		m.refundsUnapplied[p] = set.NewCounter(fmt.Sprintf(`onsale_payments_refunds_unapplied_total{provider=%q}`, p))
		// The refund worker (httpapi/payouts) counts into these when it
		// shares the set; created here so that /metrics shows them at 0.
		for _, outcome := range []string{"refunded", "refund_failed", "refund_pending"} {
			set.GetOrCreateCounter(fmt.Sprintf(`onsale_refund_attempts_total{provider=%q,outcome=%q}`, p, outcome))
		}
	}
	return m
}

// handled and refused count notifications by outcome; not a hot path, so
// the counters are looked up by name.
func (m *providerMetrics) handled(provider, outcome string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_payment_notifications_total{provider=%q,outcome=%q}`, provider, outcome)).Inc()
}

func (m *providerMetrics) refused(provider string, code payments.Code) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_payment_notifications_total{provider=%q,outcome="refused_%s"}`, provider, code)).Inc()
}
