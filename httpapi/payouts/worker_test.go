package payouts

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/httpapi/payments"
	"github.com/onsale/onsale/httpapi/payments/paymentstest"
	"github.com/onsale/onsale/wal"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is an engine on a log in a directory (so it can restart) and a
// fake provider behind real refund clients.
type fixture struct {
	t     *testing.T
	dir   string
	clock *clock
	log   *wal.Log
	eng   *engine.Engine
	fake  *paymentstest.RefundProvider
	refs  map[string]payments.Refunder
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, false) }

func newFixtureWith(t *testing.T, withUnionPay bool) *fixture {
	k := paymentstest.SharedKeys()
	f := &fixture{t: t, dir: t.TempDir(), clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	f.fake = &paymentstest.RefundProvider{Keys: k, StripeKey: "sk_test_1", AlipayAppID: "2021001", WeChatMchID: "1900000109",
		MerchantPub: &k.Merchant.PublicKey, MerchantCert: "MERCHANTSN", UnionMerID: "777290058110097", UnionCertID: "69629715588"}
	srv := httptest.NewServer(f.fake)
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 300 * time.Millisecond}
	verifier, err := payments.NewWeChatPay("1900000109", "wxapp", []byte("0123456789abcdef0123456789ABCDEF"), []*x509.Certificate{k.WeChatPayCert}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.refs = map[string]payments.Refunder{
		payments.ProviderStripe: &payments.StripeRefunds{BaseURL: srv.URL, SecretKey: "sk_test_1", Client: client},
		payments.ProviderAlipay: &payments.AlipayRefunds{GatewayURL: srv.URL + "/gateway.do", AppID: "2021001", PrivateKey: k.Merchant,
			AlipayKey: &k.Alipay.PublicKey, Client: client},
		payments.ProviderWeChatPay: &payments.WeChatPayRefunds{BaseURL: srv.URL, MchID: "1900000109", MerchantKey: k.Merchant,
			MerchantCert: "MERCHANTSN", Verifier: verifier, Client: client},
	}
	if withUnionPay {
		union, err := payments.NewUnionPay("777290058110097", []*x509.Certificate{k.UnionRoot}, []*x509.Certificate{k.UnionMiddle}, "")
		if err != nil {
			t.Fatal(err)
		}
		f.refs[payments.ProviderUnionPay] = &payments.UnionPayRefunds{GatewayURL: srv.URL, MerID: "777290058110097", SignKey: k.Merchant,
			CertID: "69629715588", BackURL: "https://tickets.example/v1/payments/unionpay", Verifier: union, Client: client, Now: f.clock.Now}
	}
	f.open()
	t.Cleanup(f.close)
	return f
}

func (f *fixture) open() {
	l, err := wal.Open(f.dir, wal.Options{Logger: quiet, OnFatal: func(msg string) { panic("wal: " + msg) }})
	if err != nil {
		f.t.Fatal(err)
	}
	eng, err := engine.Open(engine.Config{Journal: l, Shards: 2, Now: f.clock.Now, TickInterval: time.Hour, Logger: quiet,
		OnFatal: func(err error) { f.t.Errorf("engine failed: %v", err) }})
	if err != nil {
		f.t.Fatal(err)
	}
	f.log, f.eng = l, eng
}

func (f *fixture) close() {
	if f.eng != nil {
		f.eng.Close()
		f.log.Close()
		f.eng = nil
	}
}

func (f *fixture) worker(auto bool) *Worker {
	return New(Config{Engine: f.eng, Refunders: f.refs, Auto: auto, BackoffBase: time.Second, BackoffMax: time.Minute,
		AttemptsMax: 4, Logger: quiet, Now: f.clock.Now})
}

// order buys one ticket (5000 cents EUR) and pays it with paymentID.
func (f *fixture) order(user, paymentID string) engine.Order {
	ctx := context.Background()
	if _, err := f.eng.Sale(ctx, "s1"); err != nil {
		now := f.clock.Now().UnixMilli()
		if _, _, err := f.eng.PutSale(ctx, engine.SaleConfig{ID: "s1", Name: "Concert", Currency: "EUR", OpensAtMs: now - 1000,
			ClosesAtMs: now + 3600_000, HoldMs: 600_000, PerUserLimit: 4,
			Tiers: []engine.TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 100}}}); err != nil {
			f.t.Fatal(err)
		}
	}
	o, _, err := f.eng.Purchase(ctx, engine.PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: user, IdempotencyKey: user})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, _, err := f.eng.ApplyPayment(ctx, engine.Payment{EventID: paymentID, OrderID: o.ID, Succeeded: true, AmountCents: 5000, Currency: "EUR"}); err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *fixture) payout(id string) engine.Payout {
	f.t.Helper()
	ps, err := f.eng.Payouts(context.Background(), engine.PayoutQuery{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	f.t.Fatalf("no payout %s", id)
	return engine.Payout{}
}

// TestWorkerRefundsThroughEachProvider: an admin refund goes out through
// each provider; success, duplicate, failure and timeout then success end
// as they should, and every attempt of a payout carries the same key.
func TestWorkerRefundsThroughEachProvider(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.order("ua", "stripe:pi_a")
	b := f.order("ub", "alipay:2026030122001")
	c := f.order("uc", "wechatpay:4200000001")
	d := f.order("ud", "stripe:pi_d")
	for _, o := range []engine.Order{a, b, c, d} {
		if _, err := f.eng.Refund(ctx, o.ID, false); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Millisecond) // payouts go out in creation order
	}
	// Refunds go out oldest first: a times out, b is a duplicate at
	// Alipay, c fails at WeChat Pay, d succeeds.
	f.fake.SetNext(paymentstest.AnswerTimeout, paymentstest.AnswerDuplicate, paymentstest.AnswerFailure, paymentstest.AnswerSuccess)
	w := f.worker(true)
	if n, err := w.Pass(ctx); err != nil || n != 4 {
		t.Fatalf("first pass: %d %v", n, err)
	}
	want := map[string]struct {
		status   engine.PayoutStatus
		attempts int
		detail   string
	}{
		a.ID + ".0": {engine.PayoutPending, 1, "no answer"},
		b.ID + ".0": {engine.PayoutPending, 1, "fund_change N"}, // the refund query says
		c.ID + ".0": {engine.PayoutFailed, 1, "NOT_ENOUGH"},
		d.ID + ".0": {engine.PayoutRefunded, 1, "succeeded"},
	}
	for id, w := range want {
		p := f.payout(id)
		if p.Status != w.status || p.Attempts != w.attempts || !strings.Contains(p.Detail, w.detail) {
			t.Errorf("%s: %s attempts=%d %q, want %s %d %q", id, p.Status, p.Attempts, p.Detail, w.status, w.attempts, w.detail)
		}
	}
	// Nothing is due until the backoff has passed.
	if n, _ := w.Pass(ctx); n != 0 {
		t.Fatalf("%d sent before the backoff ended", n)
	}
	f.clock.Advance(2 * time.Second)
	if n, _ := w.Pass(ctx); n != 2 {
		t.Fatalf("after the backoff: %d sent, want 2 (a again, b's query)", n)
	}
	if p := f.payout(a.ID + ".0"); p.Status != engine.PayoutRefunded || p.Attempts != 2 || p.ProviderRefundID == "" {
		t.Fatalf("after the retry: %+v", p)
	}
	// Alipay's query found no REFUND_SUCCESS of b: sent again at once,
	// with the same out_request_no, and this time money moved.
	if p := f.payout(b.ID + ".0"); p.Status != engine.PayoutPending || p.ProviderRefundID != "" || !strings.Contains(p.Detail, "no refund_status") {
		t.Fatalf("b after its query: %+v", p)
	}
	if n, _ := w.Pass(ctx); n != 1 {
		t.Fatalf("b sent again: %d", n)
	}
	if p := f.payout(b.ID + ".0"); p.Status != engine.PayoutRefunded || p.Attempts != 3 || !strings.Contains(p.Detail, "alipay: refunded") {
		t.Fatalf("b: %+v", p)
	}
	keys := map[string]string{}
	for _, call := range f.fake.Calls() {
		if k, seen := keys[call.Transaction]; seen && k != call.Key {
			t.Errorf("transaction %s sent with keys %s and %s", call.Transaction, k, call.Key)
		}
		keys[call.Transaction] = call.Key
	}
	if keys["pi_a"] != RefundKey(a.ID+".0") {
		t.Errorf("key %q, want %q", keys["pi_a"], RefundKey(a.ID+".0"))
	}
	if n := len(f.fake.Calls()); n != 6 {
		t.Errorf("%d refund calls to the provider, want 6", n)
	}
}

// TestWorkerResumesAfterRestart: a payout whose first attempt timed out is
// pending in the log; after a restart a new worker sends it again with the
// same key, and a refunded one is never sent again.
func TestWorkerResumesAfterRestart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.order("ua", "stripe:pi_a")
	b := f.order("ub", "wechatpay:4200000002")
	f.eng.Refund(ctx, a.ID, false)
	f.clock.Advance(time.Millisecond)
	f.eng.Refund(ctx, b.ID, false)
	f.fake.SetNext(paymentstest.AnswerTimeout, paymentstest.AnswerSuccess)
	if _, err := f.worker(true).Pass(ctx); err != nil {
		t.Fatal(err)
	}
	f.close()
	f.open()
	if p := f.payout(a.ID + ".0"); p.Status != engine.PayoutPending || p.Attempts != 1 {
		t.Fatalf("after the restart: %+v", p)
	}
	f.clock.Advance(time.Minute)
	if n, err := f.worker(true).Pass(ctx); err != nil || n != 1 {
		t.Fatalf("resumed: %d %v", n, err)
	}
	calls := f.fake.Calls()
	if len(calls) != 3 || calls[2].Key != calls[0].Key || calls[2].Transaction != "pi_a" {
		t.Fatalf("calls: %+v", calls)
	}
	if p := f.payout(a.ID + ".0"); p.Status != engine.PayoutRefunded {
		t.Fatalf("resumed payout: %+v", p)
	}
}

// TestWorkerAutomaticOff: without automatic refunds, a duplicate charge
// waits until an admin retries it; an admin refund goes out anyway. A
// payout whose provider has no client here fails with a reason that says
// to settle it by hand; retries stop at AttemptsMax.
func TestWorkerAutomaticOff(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a := f.order("ua", "stripe:pi_a")
	if _, _, err := f.eng.ApplyPayment(ctx, engine.Payment{EventID: "stripe:pi_a2", OrderID: a.ID, Succeeded: true, AmountCents: 5000, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	u := f.order("uu", "unionpay:q1")
	f.eng.Refund(ctx, u.ID, false)
	w := f.worker(false)
	if n, _ := w.Pass(ctx); n != 1 {
		t.Fatalf("with automatic refunds off: %d sent, want only the admin refund", n)
	}
	if p := f.payout(u.ID + ".0"); p.Status != engine.PayoutFailed || !strings.Contains(p.Detail, "mark it refunded") {
		t.Fatalf("unionpay payout: %+v", p)
	}
	if p := f.payout(a.ID + ".0"); p.Status != engine.PayoutPending || p.Attempts != 0 || p.Reason != engine.PayoutDuplicateCharge {
		t.Fatalf("waiting duplicate charge: %+v", p)
	}
	if _, err := f.eng.UpdatePayout(ctx, engine.PayoutUpdate{PayoutID: a.ID + ".0", Action: engine.PayoutRetry}); err != nil {
		t.Fatal(err)
	}
	f.fake.SetNext(paymentstest.AnswerTimeout, paymentstest.AnswerTimeout, paymentstest.AnswerTimeout, paymentstest.AnswerTimeout)
	for range 4 {
		if _, err := w.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
	}
	if p := f.payout(a.ID + ".0"); p.Status != engine.PayoutFailed || p.Attempts != 4 || !strings.Contains(p.Detail, "gave up after 4") {
		t.Fatalf("after 4 timeouts: %+v", p)
	}
}

func TestRefundKey(t *testing.T) {
	k := RefundKey("s1.aaaaaaaaaaaaaaaaaaaaaaaaaa.0")
	if len(k) != 34 || k != RefundKey("s1.aaaaaaaaaaaaaaaaaaaaaaaaaa.0") || k == RefundKey("s1.aaaaaaaaaaaaaaaaaaaaaaaaaa.1") {
		t.Fatalf("RefundKey: %q", k)
	}
}

func TestBackoff(t *testing.T) {
	w := New(Config{BackoffBase: time.Second, BackoffMax: time.Minute})
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		for range 20 {
			if d := w.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
	if d := w.backoff(40); d < 30*time.Second || d > time.Minute {
		t.Fatalf("backoff(40) = %s: not capped", d)
	}
}

// TestWorkerConfirmsAcceptedRefunds: a refund each provider accepts
// without finishing (Stripe pending, WeChat Pay PROCESSING, Alipay
// fund_change N, UnionPay's respCode 00) stays refund_pending with the
// provider's refund id, across a restart; the worker then asks the
// provider (never sends it again) until it says: refunded, or
// refund_failed with its reason. UnionPay's refund goes out as txnType 04
// with origQryId the payment's queryId, its orderId 32 characters from
// the payout's key.
func TestWorkerConfirmsAcceptedRefunds(t *testing.T) {
	f := newFixtureWith(t, true)
	ctx := context.Background()
	type tc struct {
		payment, end string
		o            engine.Order
	}
	cases := []*tc{
		{payment: "stripe:pi_p"}, {payment: "wechatpay:4200000009"}, {payment: "unionpay:202603011200000001"},
		{payment: "stripe:pi_f", end: paymentstest.StateFailed}, {payment: "unionpay:202603011200000002", end: paymentstest.StateFailed},
		{payment: "alipay:2026030122009"},
	}
	for i, c := range cases {
		c.o = f.order("u"+strconv.Itoa(i), c.payment)
		if _, err := f.eng.Refund(ctx, c.o.ID, false); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Millisecond)
		f.fake.SetNext(paymentstest.AnswerPending)
	}
	f.fake.Next = nil
	f.fake.SetNext(paymentstest.AnswerPending, paymentstest.AnswerPending, paymentstest.AnswerPending,
		paymentstest.AnswerPending, paymentstest.AnswerPending, paymentstest.AnswerPending)
	w := f.worker(true)
	if n, err := w.Pass(ctx); err != nil || n != len(cases) {
		t.Fatalf("first pass: %d %v", n, err)
	}
	for _, c := range cases {
		if p := f.payout(c.o.ID + ".0"); p.Status != engine.PayoutPending || p.ProviderRefundID == "" || p.Attempts != 1 {
			t.Fatalf("%s accepted: %+v", c.payment, p)
		}
	}
	calls := len(f.fake.Calls())
	for _, call := range f.fake.Calls() {
		if call.Provider == "unionpay" && (len(strings.TrimPrefix(call.Key, "rf")) != 32 || !strings.HasPrefix(call.Transaction, "2026030112")) {
			t.Errorf("unionpay refund: %+v", call)
		}
	}
	f.close()
	f.open()
	w = f.worker(true)
	// Still pending at the provider: asked, not sent again.
	f.clock.Advance(2 * time.Second)
	if n, _ := w.Pass(ctx); n != len(cases) {
		t.Fatalf("queries: %d", n)
	}
	for _, c := range cases {
		p := f.payout(c.o.ID + ".0")
		if c.payment == "alipay:2026030122009" {
			// No REFUND_SUCCESS yet: Alipay's answer is "not refunded",
			// so it is sent again, same out_request_no.
			if p.Status != engine.PayoutPending || p.ProviderRefundID != "" {
				t.Fatalf("alipay after its query: %+v", p)
			}
			continue
		}
		if p.Status != engine.PayoutPending || p.ProviderRefundID == "" || p.Attempts != 2 {
			t.Fatalf("%s still pending: %+v", c.payment, p)
		}
		end := c.end
		if end == "" {
			end = paymentstest.StateSucceeded
		}
		if !f.fake.SetRefundState(RefundKey(c.o.ID+".0"), end) {
			t.Fatalf("%s: the fake has no refund of its key", c.payment)
		}
	}
	if n := len(f.fake.Calls()); n != calls {
		t.Fatalf("%d refunds sent again while their providers had them", n-calls)
	}
	for range 3 {
		f.clock.Advance(10 * time.Second)
		if _, err := w.Pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		p := f.payout(c.o.ID + ".0")
		switch {
		case c.end == paymentstest.StateFailed:
			if p.Status != engine.PayoutFailed || p.Detail == "" {
				t.Errorf("%s: %+v, want refund_failed with a reason", c.payment, p)
			}
		case p.Status != engine.PayoutRefunded || p.ProviderRefundID == "":
			t.Errorf("%s: %+v, want refunded", c.payment, p)
		}
	}
}
