package httpapi

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/payments"
	"github.com/onsale/onsale/httpapi/payments/paymentstest"
)

// End-to-end tests of the providers' routes: notifications signed as each
// provider signs them (paymentstest), sent to a real Server, and the order
// read back afterwards.

const (
	testStripeSecret = "whsec_for_tests"
	testAlipayApp    = "2021000000000001"
	testWxMch        = "1900000109"
	testWxApp        = "wxd678efh567hg6787"
	testUnionMer     = "777290058110048"
)

var testAPIv3Key = []byte("0123456789abcdef0123456789ABCDEF")

func startProviderEnv(t *testing.T) *testEnv {
	t.Helper()
	k := paymentstest.SharedKeys()
	wx, err := payments.NewWeChatPay(testWxMch, testWxApp, testAPIv3Key, []*x509.Certificate{k.WeChatPayCert}, map[string]*rsa.PublicKey{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	up, err := payments.NewUnionPay(testUnionMer, []*x509.Certificate{k.UnionRoot}, []*x509.Certificate{k.UnionMiddle}, "")
	if err != nil {
		t.Fatal(err)
	}
	p := &payments.Providers{
		Stripe:    payments.NewStripe([]string{testStripeSecret}, 0),
		Alipay:    payments.NewAlipay(testAlipayApp, &k.Alipay.PublicKey),
		WeChatPay: wx,
		UnionPay:  up,
	}
	e := startEnv(t, envOptions{cfg: func(c *Config) { c.Payments = p }})
	// Certificates are valid from paymentstest.Epoch; the test clock is
	// after it.
	if e.clock.Now().Before(paymentstest.Epoch) {
		t.Fatal("test clock before the certificates' validity")
	}
	return e
}

// putCNYSale creates a sale in yuan: floor costs 0.10, seat 19999.99.
func (e *testEnv) putCNYSale(id string) {
	e.t.Helper()
	now := e.clock.Now()
	body := fmt.Sprintf(`{"name":"Concert","currency":"CNY","opens_at":%q,"closes_at":%q,"hold_seconds":600,
		"per_user_limit":10,"tiers":[{"id":"floor","name":"Floor","price_cents":10,"stock":10},
		{"id":"seat","name":"Seated","price_cents":1999999,"stock":10}]}`,
		now.Add(-time.Hour).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339))
	e.want(e.do("PUT", "/v1/admin/sales/"+id, e.admin(), body), 201, "")
}

func (e *testEnv) newOrder(sale, tier string) string {
	e.t.Helper()
	r := e.buy(sale, "user:"+tier, fmt.Sprintf("k%d", time.Now().UnixNano()), tier, 1)
	e.want(r, 201, "")
	return r.str("order_id")
}

// orderState reads an order as the admin: its status and how many
// duplicate charges it carries.
func (e *testEnv) orderState(id string) string {
	e.t.Helper()
	r := e.want(e.do("GET", "/v1/orders/"+id, e.admin(), ""), 200, "")
	dup, _ := r.json()["duplicate_charges"].([]any)
	return fmt.Sprintf("%s/%d", r.str("status"), len(dup))
}

// metric reads one sample from /metrics, 0 when absent.
func (e *testEnv) metric(name string) string {
	e.t.Helper()
	r := e.do("GET", "/metrics", nil, "")
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return "0"
}

func (e *testEnv) stripe(body []byte, secret string) *resp {
	e.t.Helper()
	return e.do("POST", "/v1/payments/stripe", hdr{"Stripe-Signature": paymentstest.StripeSignature(secret, body, e.clock.Now())}, string(body))
}

func TestProviderStripe(t *testing.T) {
	e := startProviderEnv(t)
	e.putSale("s1", 10, 10)
	paid, pending := e.newOrder("s1", "floor"), e.newOrder("s1", "floor")
	succeeded := func(pi, order string, amount int64) []byte {
		return paymentstest.StripePaymentIntentEvent("evt_"+pi, "payment_intent.succeeded", pi, order, amount, "eur")
	}
	outcome := func(r *resp) string { e.want(r, 200, ""); return r.str("outcome") }

	// Forgeries change nothing.
	e.want(e.stripe(succeeded("pi_1", pending, 5000), "whsec_other"), 401, "unauthorized")
	body := succeeded("pi_1", pending, 5000)
	stale := paymentstest.StripeSignature(testStripeSecret, body, e.clock.Now().Add(-6*time.Minute))
	e.want(e.do("POST", "/v1/payments/stripe", hdr{"Stripe-Signature": stale}, string(body)), 401, "unauthorized")
	if got := e.orderState(pending); got != "pending/0" {
		t.Fatalf("after forgeries: %s", got)
	}

	if got := outcome(e.stripe(succeeded("pi_1", paid, 5000), testStripeSecret)); got != "applied" {
		t.Fatalf("first success: %s", got)
	}
	if got := outcome(e.stripe(succeeded("pi_1", paid, 5000), testStripeSecret)); got != "unchanged" {
		t.Errorf("the same success again: %s", got)
	}
	failed := paymentstest.StripePaymentIntentEvent("evt_f", "payment_intent.canceled", "pi_1", paid, 5000, "eur")
	if got := outcome(e.stripe(failed, testStripeSecret)); got != "unchanged" {
		t.Errorf("failure after success: %s", got)
	}
	if got := e.orderState(paid); got != "paid/0" {
		t.Errorf("paid order: %s", got)
	}
	if got := outcome(e.stripe(succeeded("pi_2", paid, 5000), testStripeSecret)); got != "duplicate_charge" {
		t.Errorf("a second intent for a paid order: %s", got)
	}

	// Money that matches no order, or not the order's amount, is answered
	// as handled (a retry cannot fix it) and counted for an admin.
	if got := outcome(e.stripe(succeeded("pi_3", "s1.aaaaaaaaaaaaaaaaaaaaaaaaaa", 5000), testStripeSecret)); got != "unmatched" {
		t.Errorf("unknown order: %s", got)
	}
	if got := outcome(e.stripe(succeeded("pi_4", pending, 4999), testStripeSecret)); got != "mismatch" {
		t.Errorf("wrong amount: %s", got)
	}
	if got := e.orderState(pending); got != "pending/0" {
		t.Errorf("after a mismatched payment: %s", got)
	}
	refunds, _ := e.want(e.do("GET", "/v1/orders/"+pending, e.admin(), ""), 200, "").json()["refunds"].([]any)
	if len(refunds) != 1 || refunds[0].(map[string]any)["reason"] != "payment_mismatch" || refunds[0].(map[string]any)["transaction_id"] != "pi_4" {
		t.Errorf("the mismatched payment is not recorded to go back: %v", refunds)
	}
	if got := e.metric(`onsale_payments_unmatched_total{provider="stripe"}`); got != "1" {
		t.Errorf("unmatched metric %s", got)
	}
	if got := e.metric(`onsale_payments_mismatch_total{provider="stripe"}`); got != "1" {
		t.Errorf("mismatch metric %s", got)
	}
	other := []byte(`{"id":"evt_9","type":"customer.created","data":{"object":{"id":"cus_1"}}}`)
	if got := outcome(e.stripe(other, testStripeSecret)); got != "ignored" {
		t.Errorf("unknown event type: %s", got)
	}
}

func (e *testEnv) alipay(fields map[string]string) *resp {
	e.t.Helper()
	body := paymentstest.AlipayForm(paymentstest.SharedKeys().Alipay, fields)
	return e.do("POST", "/v1/payments/alipay", hdr{"Content-Type": "application/x-www-form-urlencoded"}, string(body))
}

func TestProviderAlipay(t *testing.T) {
	e := startProviderEnv(t)
	e.putCNYSale("c1")
	cheap, dear, closed := e.newOrder("c1", "floor"), e.newOrder("c1", "seat"), e.newOrder("c1", "floor")
	success := func(r *resp) {
		t.Helper()
		if r.status != 200 || string(r.body) != "success" {
			t.Fatalf("got %d %q, want success", r.status, r.body)
		}
	}
	trade := paymentstest.AlipayTrade

	// Forged: another key, another app, a bad amount. Alipay is not told
	// "success", so it retries; the order is untouched.
	forged := paymentstest.AlipayForm(paymentstest.SharedKeys().Other, trade(testAlipayApp, cheap, "T1", "TRADE_SUCCESS", "0.10"))
	e.want(e.do("POST", "/v1/payments/alipay", hdr{"Content-Type": "application/x-www-form-urlencoded"}, string(forged)), 401, "unauthorized")
	e.want(e.alipay(trade("2021000000000002", cheap, "T1", "TRADE_SUCCESS", "0.10")), 422, "invalid_request")
	e.want(e.alipay(trade(testAlipayApp, cheap, "T1", "TRADE_SUCCESS", "0.100")), 422, "invalid_request")
	if got := e.orderState(cheap); got != "pending/0" {
		t.Fatalf("after forgeries: %s", got)
	}

	success(e.alipay(trade(testAlipayApp, cheap, "T1", "TRADE_SUCCESS", "0.10")))
	success(e.alipay(trade(testAlipayApp, dear, "T2", "TRADE_SUCCESS", "19999.99")))
	// TRADE_FINISHED follows TRADE_SUCCESS for the same trade: one
	// transaction, applied once, no duplicate charge.
	success(e.alipay(trade(testAlipayApp, cheap, "T1", "TRADE_FINISHED", "0.10")))
	success(e.alipay(trade(testAlipayApp, cheap, "T1", "TRADE_CLOSED", "0.10")))
	if got := e.orderState(cheap); got != "paid/0" {
		t.Errorf("0.10 order: %s", got)
	}
	if got := e.orderState(dear); got != "paid/0" {
		t.Errorf("19999.99 order: %s", got)
	}
	// A trade closed unpaid cancels the pending order; money arriving
	// later on the same trade is not taken for a replay of the close.
	success(e.alipay(trade(testAlipayApp, closed, "T3", "TRADE_CLOSED", "0.10")))
	if got := e.orderState(closed); got != "cancelled/0" {
		t.Errorf("closed trade: %s", got)
	}
	success(e.alipay(trade(testAlipayApp, closed, "T3", "TRADE_SUCCESS", "0.10")))
	if got := e.orderState(closed); got != "paid/0" {
		t.Errorf("late money after a close: %s", got)
	}
	success(e.alipay(trade(testAlipayApp, closed, "T4", "WAIT_BUYER_PAY", "0.10")))
	success(e.alipay(trade(testAlipayApp, "c1.aaaaaaaaaaaaaaaaaaaaaaaaaa", "T5", "TRADE_SUCCESS", "0.10")))
	if got := e.metric(`onsale_payments_unmatched_total{provider="alipay"}`); got != "1" {
		t.Errorf("unmatched metric %s", got)
	}
}

func (e *testEnv) wechat(key *rsa.PrivateKey, serial string, at time.Time, resource []byte) *resp {
	e.t.Helper()
	return e.wechatOf("transaction", key, serial, at, resource)
}

func (e *testEnv) wechatOf(originalType string, key *rsa.PrivateKey, serial string, at time.Time, resource []byte) *resp {
	e.t.Helper()
	body := paymentstest.WeChatPayBody(testAPIv3Key, "fdasflkja484", originalType, originalType, resource)
	ts, sig := paymentstest.WeChatPaySign(key, at, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", body)
	return e.do("POST", "/v1/payments/wechatpay", hdr{"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
		"Wechatpay-Signature": sig, "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}, string(body))
}

func TestProviderWeChatPay(t *testing.T) {
	e := startProviderEnv(t)
	e.putCNYSale("w1")
	k := paymentstest.SharedKeys()
	serial := paymentstest.SerialOf(k.WeChatPayCert)
	o := e.newOrder("w1", "seat")
	tx := func(state string, total int64) []byte {
		return paymentstest.WeChatPayTransaction(testWxApp, testWxMch, o, "4200000848202101120290526543", state, total, "CNY")
	}
	fail := func(r *resp, status int) {
		t.Helper()
		if r.status != status || !strings.HasPrefix(string(r.body), `{"code":"FAIL","message":`) {
			t.Fatalf("got %d %s, want %d FAIL", r.status, r.body, status)
		}
	}
	fail(e.wechat(k.Other, serial, e.clock.Now(), tx("SUCCESS", 1999999)), 401)
	fail(e.wechat(k.WeChatPay, serial, e.clock.Now().Add(-10*time.Minute), tx("SUCCESS", 1999999)), 401)
	fail(e.wechat(k.WeChatPay, "ABCDEF", e.clock.Now(), tx("SUCCESS", 1999999)), 401)
	if got := e.orderState(o); got != "pending/0" {
		t.Fatalf("after forgeries: %s", got)
	}
	for _, state := range []string{"SUCCESS", "SUCCESS", "CLOSED"} {
		if r := e.wechat(k.WeChatPay, serial, e.clock.Now(), tx(state, 1999999)); r.status != 204 {
			t.Fatalf("%s: %d %s", state, r.status, r.body)
		}
	}
	if got := e.orderState(o); got != "paid/0" {
		t.Errorf("order: %s", got)
	}

	// An order paid under its provider order number (out_trade_no holds
	// 32 characters, not an order id); a number of no order is unmatched.
	o2 := e.newOrder("w1", "seat")
	number := e.want(e.do("GET", "/v1/orders/"+o2, e.admin(), ""), 200, "").str("provider_order_no")
	if len(number) != 32 {
		t.Fatalf("provider_order_no %q", number)
	}
	for _, c := range []struct{ number, tx string }{{number, "4200000848202101120290526544"}, {strings.Repeat("a", 32), "4200000848202101120290526545"}} {
		res := paymentstest.WeChatPayTransaction(testWxApp, testWxMch, c.number, c.tx, "SUCCESS", 1999999, "CNY")
		if r := e.wechat(k.WeChatPay, serial, e.clock.Now(), res); r.status != 204 {
			t.Fatalf("by number %s: %d %s", c.number, r.status, r.body)
		}
	}
	if got := e.orderState(o2); got != "paid/0" {
		t.Errorf("order paid by its provider order number: %s", got)
	}
	if got := e.metric(`onsale_payments_unmatched_total{provider="wechatpay"}`); got != "1" {
		t.Errorf("unmatched: %s", got)
	}
}

func TestProviderUnionPay(t *testing.T) {
	e := startProviderEnv(t)
	e.putCNYSale("u1")
	k := paymentstest.SharedKeys()
	o := e.newOrder("u1", "floor")
	send := func(key *rsa.PrivateKey, cert *x509.Certificate, fen int64) *resp {
		body := paymentstest.UnionPayForm(key, cert, paymentstest.UnionPayConsume(testUnionMer, o, "2026030112000012345", "00", fen))
		return e.do("POST", "/v1/payments/unionpay", hdr{"Content-Type": "application/x-www-form-urlencoded"}, string(body))
	}
	e.want(send(k.Other, k.OtherCert, 10), 401, "unauthorized")
	if got := e.orderState(o); got != "pending/0" {
		t.Fatalf("after a forgery: %s", got)
	}
	for i := 0; i < 2; i++ {
		if r := send(k.UnionSigner, k.UnionCert, 10); r.status != 200 || string(r.body) != "ok" {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	}
	if got := e.orderState(o); got != "paid/0" {
		t.Errorf("order: %s", got)
	}
}

func TestProviderNotConfigured(t *testing.T) {
	e := startEnv(t, envOptions{})
	form := url.Values{"a": {"b"}}.Encode()
	e.want(e.do("POST", "/v1/payments/stripe", hdr{"Stripe-Signature": "t=1,v1=00"}, "{}"), 404, "provider_not_configured")
	e.want(e.do("POST", "/v1/payments/alipay", hdr{"Content-Type": "application/x-www-form-urlencoded"}, form), 404, "provider_not_configured")
	e.want(e.do("POST", "/v1/payments/unionpay", hdr{"Content-Type": "application/x-www-form-urlencoded"}, form), 404, "provider_not_configured")
	r := e.do("POST", "/v1/payments/wechatpay", hdr{"Wechatpay-Signature": "x"}, "{}")
	if r.status != 404 || !strings.Contains(string(r.body), `"FAIL"`) {
		t.Errorf("wechatpay: %d %s", r.status, r.body)
	}
}

// TestProviderRefundConfirmations: a refund onsale sent and the provider
// accepted (refund_pending with the provider's refund id) is confirmed by
// the provider's notification that names it: Stripe's refund.updated
// (succeeded), refund.failed (failed, with its reason), WeChat Pay's
// REFUND.SUCCESS; once (a replay changes nothing). A refund notification
// that names no refund onsale sent (made in the provider's dashboard) is
// handled as before: logged and counted, not applied; one still pending
// at the provider changes nothing; a forged one is refused.
func TestProviderRefundConfirmations(t *testing.T) {
	e := startProviderEnv(t)
	e.putSale("s1", 10, 10)
	e.putCNYSale("w1")
	k := paymentstest.SharedKeys()
	ctx := context.Background()
	outcome := func(r *resp) string { e.want(r, 200, ""); return r.str("outcome") }
	accepted := func(sale, tier, payment, refundID string) string {
		t.Helper()
		o := e.newOrder(sale, tier)
		ord, err := e.eng.Order(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.eng.ApplyPayment(ctx, engine.Payment{EventID: payment, OrderID: o, Succeeded: true, AmountCents: ord.AmountCents, Currency: ord.Currency}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.eng.Refund(ctx, o, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.eng.UpdatePayout(ctx, engine.PayoutUpdate{PayoutID: o + ".0", Action: engine.PayoutAttempted,
			Outcome: engine.PayoutPending, ProviderRefundID: refundID, Detail: "accepted", NextAttemptAtMs: e.clock.Now().Add(time.Hour).UnixMilli()}); err != nil {
			t.Fatal(err)
		}
		return o
	}
	payout := func(o string) engine.Payout {
		t.Helper()
		ord, err := e.eng.Order(ctx, o)
		if err != nil || len(ord.Payouts) != 1 {
			t.Fatalf("order %s: %+v %v", o, ord.Payouts, err)
		}
		return ord.Payouts[0]
	}
	a := accepted("s1", "floor", "stripe:pi_ra", "re_a")
	b := accepted("s1", "floor", "stripe:pi_rb", "re_b")
	c := accepted("w1", "seat", "wechatpay:4200000001", "50300000001")

	ev := func(id, typ, refund, pi, payoutID, status, reason string) []byte {
		return paymentstest.StripeRefundEvent(id, typ, refund, pi, payoutID, status, reason, 5000, "eur")
	}
	e.want(e.stripe(ev("evt_x", "refund.updated", "re_a", "pi_ra", a+".0", "succeeded", ""), "whsec_other"), 401, "unauthorized")
	if got := outcome(e.stripe(ev("evt_p", "refund.updated", "re_a", "pi_ra", a+".0", "pending", ""), testStripeSecret)); got != "refund_pending" {
		t.Errorf("still pending: %s", got)
	}
	if p := payout(a); p.Status != engine.PayoutPending {
		t.Fatalf("after a forgery and a pending refund: %+v", p)
	}
	for i := range 2 {
		if got := outcome(e.stripe(ev("evt_a", "refund.updated", "re_a", "pi_ra", a+".0", "succeeded", ""), testStripeSecret)); got != "refund_confirmed" {
			t.Errorf("refund.updated succeeded (%d): %s", i, got)
		}
	}
	if p := payout(a); p.Status != engine.PayoutRefunded || p.ProviderRefundID != "re_a" || p.Attempts != 1 {
		t.Errorf("confirmed: %+v", p)
	}
	if got := outcome(e.stripe(ev("evt_b", "refund.failed", "re_b", "pi_rb", b+".0", "failed", "expired_or_canceled_card"), testStripeSecret)); got != "refund_confirmed" {
		t.Errorf("refund.failed: %s", got)
	}
	if p := payout(b); p.Status != engine.PayoutFailed || !strings.Contains(p.Detail, "expired_or_canceled_card") {
		t.Errorf("failed: %+v", p)
	}
	// A refund made in Stripe's dashboard names no payout of ours.
	before := e.metric(`onsale_payments_refunds_unapplied_total{provider="stripe"}`)
	if got := outcome(e.stripe(ev("evt_d", "refund.updated", "re_dash", "pi_ra", "", "succeeded", ""), testStripeSecret)); got != "refund_not_applied" {
		t.Errorf("a dashboard refund: %s", got)
	}
	if got := outcome(e.stripe(ev("evt_e", "refund.updated", "re_other", "pi_ra", a+".0", "succeeded", ""), testStripeSecret)); got != "refund_not_applied" {
		t.Errorf("a refund id the payout does not carry: %s", got)
	}
	if after := e.metric(`onsale_payments_refunds_unapplied_total{provider="stripe"}`); after == before {
		t.Errorf("unapplied refunds not counted: %s", after)
	}

	serial := paymentstest.SerialOf(k.WeChatPayCert)
	number := e.want(e.do("GET", "/v1/orders/"+c, e.admin(), ""), 200, "").str("provider_order_no")
	res := paymentstest.WeChatPayRefundResource(testWxMch, number, "4200000001", "50300000001", "rfx", "SUCCESS", 1999999, 1999999)
	if r := e.wechatOf("refund", k.Other, serial, e.clock.Now(), res); r.status != 401 {
		t.Fatalf("forged refund notification: %d %s", r.status, r.body)
	}
	if p := payout(c); p.Status != engine.PayoutPending {
		t.Fatalf("after a forged notification: %+v", p)
	}
	if r := e.wechatOf("refund", k.WeChatPay, serial, e.clock.Now(), res); r.status != 204 {
		t.Fatalf("refund notification: %d %s", r.status, r.body)
	}
	if p := payout(c); p.Status != engine.PayoutRefunded || p.ProviderRefundID != "50300000001" {
		t.Errorf("wechat confirmed: %+v", p)
	}
}
