package payments

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/payments/paymentstest"
)

const (
	testStripeKey = "sk_test_refunds"
	testAlipayApp = "2021000000000001"
	testMch       = "1900000109"
	testMerchSN   = "5157F09EFDC096DE15EBE81A47057A72"
	testUnionMer  = "777290058110097"
	testUnionCert = "69629715588"
)

// refundFixture is a fake provider and a client of each kind pointed at it.
type refundFixture struct {
	fake    *paymentstest.RefundProvider
	clients map[string]Refunder
}

// noAnswerWithin is how long a call waits for the fake provider that never
// answers (AnswerTimeout) before it gives up.
const noAnswerWithin = 300 * time.Millisecond

func newRefundFixture(t *testing.T) *refundFixture {
	t.Helper()
	k := paymentstest.SharedKeys()
	fake := &paymentstest.RefundProvider{Keys: k, StripeKey: testStripeKey, AlipayAppID: testAlipayApp,
		WeChatMchID: testMch, MerchantPub: &k.Merchant.PublicKey, MerchantCert: testMerchSN,
		UnionMerID: testUnionMer, UnionCertID: testUnionCert}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	// Generous for an answer (RSA signing under -race on a loaded machine
	// takes its time); a test that wants "no answer" gives its call a
	// short deadline (noAnswerWithin).
	client := &http.Client{Timeout: 30 * time.Second}
	verifier, err := NewWeChatPay(testMch, "wxapp", []byte("0123456789abcdef0123456789ABCDEF"), []*x509.Certificate{k.WeChatPayCert}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &refundFixture{fake: fake, clients: map[string]Refunder{
		ProviderStripe: &StripeRefunds{BaseURL: srv.URL, SecretKey: testStripeKey, Client: client},
		ProviderAlipay: &AlipayRefunds{GatewayURL: srv.URL + "/gateway.do", AppID: testAlipayApp, PrivateKey: k.Merchant,
			AlipayKey: &k.Alipay.PublicKey, Client: client},
		ProviderWeChatPay: &WeChatPayRefunds{BaseURL: srv.URL, MchID: testMch, MerchantKey: k.Merchant, MerchantCert: testMerchSN,
			Verifier: verifier, Client: client},
		ProviderUnionPay: &UnionPayRefunds{GatewayURL: srv.URL, MerID: testUnionMer, SignKey: k.Merchant, CertID: testUnionCert,
			BackURL: "https://tickets.example/v1/payments/unionpay", Verifier: testUnionVerifier(t), Client: client},
	}}
}

func testUnionVerifier(t *testing.T) *UnionPay {
	k := paymentstest.SharedKeys()
	u, err := NewUnionPay(testUnionMer, []*x509.Certificate{k.UnionRoot}, []*x509.Certificate{k.UnionMiddle}, "")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestRefundClients: each client against a fake provider that checks its
// signature as the provider does: success, duplicate (already refunded:
// done), failure (the provider's reason), timeout then success with the
// same key, a forged answer (not believed), and a request signed with the
// wrong key (refused by the provider, so never done).
func TestRefundClients(t *testing.T) {
	f := newRefundFixture(t)
	ctx := context.Background()
	for _, provider := range []string{ProviderStripe, ProviderAlipay, ProviderWeChatPay, ProviderUnionPay} {
		t.Run(provider, func(t *testing.T) {
			c := f.clients[provider]
			req := RefundRequest{Key: "rf" + provider + "1", TransactionID: "tx-" + provider, AmountMinor: 1999999, TotalMinor: 1999999, Currency: "CNY"}
			if provider == ProviderUnionPay {
				req.Key = "rf0123456789abcdef0123456789abcdef"
			}
			// UnionPay's answer to a back transaction only says it took
			// it; after no answer, or one that does not verify, it is
			// queried rather than sent again.
			done, timeout, forged := RefundDone, RefundRetry, RefundRetry
			if provider == ProviderUnionPay {
				done, timeout, forged = RefundAccepted, RefundAccepted, RefundAccepted
			}
			dup := done
			if provider == ProviderAlipay {
				dup = RefundAccepted // fund_change N: the refund query says
			}
			cases := []struct {
				name    string
				answers []paymentstest.RefundAnswer
				want    RefundOutcome
				detail  string
			}{
				{"success", nil, done, ""},
				{"duplicate", []paymentstest.RefundAnswer{paymentstest.AnswerDuplicate}, dup, ""},
				{"failure", []paymentstest.RefundAnswer{paymentstest.AnswerFailure}, RefundFailed, map[string]string{
					ProviderStripe: "amount_too_large", ProviderAlipay: "ACQ.SELLER_BALANCE_NOT_ENOUGH", ProviderWeChatPay: "NOT_ENOUGH",
					ProviderUnionPay: "respCode 2010002"}[provider]},
				{"timeout", []paymentstest.RefundAnswer{paymentstest.AnswerTimeout}, timeout, "no answer"},
			}
			if provider != ProviderStripe { // Stripe's answers are not signed
				cases = append(cases, struct {
					name    string
					answers []paymentstest.RefundAnswer
					want    RefundOutcome
					detail  string
				}{"forged answer", []paymentstest.RefundAnswer{paymentstest.AnswerBadSign}, forged, "not believed"})
			}
			for _, c2 := range cases {
				f.fake.SetNext(c2.answers...)
				callCtx, cancel := ctx, context.CancelFunc(func() {})
				if slices.Contains(c2.answers, paymentstest.AnswerTimeout) {
					callCtx, cancel = context.WithTimeout(ctx, noAnswerWithin)
				}
				res := c.Refund(callCtx, req)
				cancel()
				if res.Outcome != c2.want || !strings.Contains(res.Detail, c2.detail) {
					t.Errorf("%s: %+v, want %s with %q", c2.name, res, c2.want, c2.detail)
				}
			}
			// After the timeout, the same request again is the same refund.
			calls := f.fake.Calls()
			var mine []paymentstest.RefundCall
			for _, call := range calls {
				if call.Provider == provider {
					mine = append(mine, call)
				}
			}
			if len(mine) < 4 {
				t.Fatalf("%d verified calls", len(mine))
			}
			for _, call := range mine {
				if call.Key != req.Key || call.Transaction != req.TransactionID || call.Amount != 1999999 {
					t.Errorf("call %+v: key, transaction or amount changed between attempts", call)
				}
			}
			if provider == ProviderWeChatPay && (mine[0].Total != 1999999 || mine[0].Currency != "CNY") {
				t.Errorf("wechat amount: %+v", mine[0])
			}
		})
	}
}

// TestRefundWrongMerchantKey: a request signed with a key the provider
// does not know is refused by it, and never taken for done.
func TestRefundWrongMerchantKey(t *testing.T) {
	f := newRefundFixture(t)
	k := paymentstest.SharedKeys()
	f.clients[ProviderAlipay].(*AlipayRefunds).PrivateKey = k.Other
	f.clients[ProviderWeChatPay].(*WeChatPayRefunds).MerchantKey = k.Other
	f.clients[ProviderStripe].(*StripeRefunds).SecretKey = "sk_test_wrong"
	f.clients[ProviderUnionPay].(*UnionPayRefunds).SignKey = k.Other
	for p, c := range f.clients {
		res := c.Refund(context.Background(), RefundRequest{Key: "rfx", TransactionID: "tx", AmountMinor: 10, TotalMinor: 10, Currency: "CNY"})
		if res.Outcome == RefundDone || res.Outcome == RefundAccepted {
			t.Errorf("%s: a request with the wrong key: %+v", p, res)
		}
	}
	if n := len(f.fake.Calls()); n != 0 {
		t.Errorf("the fake provider accepted %d requests with a wrong key", n)
	}
}

// TestRefundAnswerForgeries: variants of a signed success that must not be
// believed (Alipay and WeChat Pay sign their answers).
func TestRefundAnswerForgeries(t *testing.T) {
	k := paymentstest.SharedKeys()
	good := `{"code":"10000","msg":"Success","trade_no":"2026","fund_change":"Y"}`
	sign := func(key *rsa.PrivateKey, s string) string { return paymentstest.AlipaySignResponse(key, s) }
	alipay := []struct{ name, body string }{
		{"wrong key", `{"alipay_trade_refund_response":` + good + `,"sign":"` + sign(k.Other, good) + `"}`},
		{"flipped byte", `{"alipay_trade_refund_response":` + strings.Replace(good, "2026", "2027", 1) + `,"sign":"` + sign(k.Alipay, good) + `"}`},
		{"re-encoded", `{"alipay_trade_refund_response":` + strings.ReplaceAll(good, ",", ", ") + `,"sign":"` + sign(k.Alipay, good) + `"}`},
		{"unsigned", `{"alipay_trade_refund_response":` + good + `}`},
		{"not json", `<html>`},
	}
	if r := parseAlipayRefund(&k.Alipay.PublicKey, []byte(`{"alipay_trade_refund_response":`+good+`,"sign":"`+sign(k.Alipay, good)+`"}`)); r.Outcome != RefundDone {
		t.Fatalf("the genuine answer: %+v", r)
	}
	for _, c := range alipay {
		if r := parseAlipayRefund(&k.Alipay.PublicKey, []byte(c.body)); r.Outcome != RefundRetry {
			t.Errorf("alipay %s: %+v", c.name, r)
		}
	}
	v, _ := NewWeChatPay(testMch, "wxapp", []byte("0123456789abcdef0123456789ABCDEF"), []*x509.Certificate{k.WeChatPayCert}, nil, 0)
	now := time.Now()
	body := `{"refund_id":"1","out_refund_no":"rf","status":"SUCCESS"}`
	headers := func(key *rsa.PrivateKey, signed string, at time.Time, serial string) WeChatPayHeaders {
		ts, sig := paymentstest.WeChatPaySign(key, at, "n1", []byte(signed))
		return WeChatPayHeaders{Timestamp: []byte(ts), Nonce: []byte("n1"), Signature: []byte(sig), Serial: []byte(serial)}
	}
	sn := paymentstest.SerialOf(k.WeChatPayCert)
	if r := parseWeChatRefund(v, 200, headers(k.WeChatPay, body, now, sn), []byte(body), now); r.Outcome != RefundDone {
		t.Fatalf("the genuine answer: %+v", r)
	}
	for _, c := range []struct {
		name string
		h    WeChatPayHeaders
		body string
	}{
		{"wrong key", headers(k.Other, body, now, sn), body},
		{"flipped byte", headers(k.WeChatPay, body, now, sn), strings.Replace(body, "SUCCESS", "SUCCESs", 1)},
		{"stale", headers(k.WeChatPay, body, now.Add(-time.Hour), sn), body},
		{"unknown serial", headers(k.WeChatPay, body, now, "ABCDEF"), body},
		{"unsigned", WeChatPayHeaders{}, body},
	} {
		if r := parseWeChatRefund(v, 200, c.h, []byte(c.body), now); r.Outcome != RefundRetry {
			t.Errorf("wechatpay %s: %+v", c.name, r)
		}
	}
}

func TestFormatDecimalMinor(t *testing.T) {
	for n, want := range map[int64]string{0: "0.00", 10: "0.10", 1999999: "19999.99", 5: "0.05", 500: "5.00", 123456789: "1234567.89"} {
		if got := FormatDecimalMinor(n); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
		if back, err := ParseDecimalMinor(want); err != nil || back != n {
			t.Errorf("%q parses back to %d %v", want, back, err)
		}
	}
}

func FuzzParseStripeRefund(f *testing.F) {
	f.Add(200, []byte(`{"id":"re_1","object":"refund","status":"succeeded"}`))
	f.Add(400, []byte(`{"error":{"code":"charge_already_refunded"}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r := parseStripeRefund(status, body)
		if r.Outcome == RefundDone && status != 200 && !strings.Contains(r.Detail, "charge_already_refunded") {
			t.Fatalf("done from HTTP %d: %+v", status, r)
		}
	})
}

func FuzzParseAlipayRefund(f *testing.F) {
	k := paymentstest.SharedKeys()
	good := `{"code":"10000","msg":"Success","trade_no":"2026","fund_change":"Y"}`
	f.Add([]byte(`{"alipay_trade_refund_response":` + good + `,"sign":"` + paymentstest.AlipaySignResponse(k.Alipay, good) + `"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		parseAlipayRefund(&k.Alipay.PublicKey, body) // no panic; a forgery cannot verify
	})
}

func FuzzParseWeChatRefund(f *testing.F) {
	k := paymentstest.SharedKeys()
	v, _ := NewWeChatPay(testMch, "wxapp", []byte("0123456789abcdef0123456789ABCDEF"), []*x509.Certificate{k.WeChatPayCert}, nil, 0)
	now := time.Now()
	f.Add(200, []byte(`{"refund_id":"1","status":"SUCCESS"}`), "sig")
	f.Fuzz(func(t *testing.T, status int, body []byte, sig string) {
		h := WeChatPayHeaders{Timestamp: []byte("1"), Nonce: []byte("n"), Signature: []byte(sig), Serial: []byte(paymentstest.SerialOf(k.WeChatPayCert))}
		if r := parseWeChatRefund(v, status, h, body, now); r.Outcome != RefundRetry {
			t.Fatalf("an answer with a forged signature was believed: %+v", r)
		}
	})
}

// TestRefundQueries: a refund each provider accepts without finishing
// (Stripe pending, WeChat Pay PROCESSING, Alipay fund_change N, UnionPay
// respCode 00) is RefundAccepted with the provider's id; its query says
// accepted while it is, then done or failed as the provider finishes it;
// a query about a refund the provider does not have is RefundNotFound (send
// it again). Every query is signed and its answer verified as the
// refund's own.
func TestRefundQueries(t *testing.T) {
	f := newRefundFixture(t)
	ctx := context.Background()
	for _, provider := range []string{ProviderStripe, ProviderAlipay, ProviderWeChatPay, ProviderUnionPay} {
		t.Run(provider, func(t *testing.T) {
			c := f.clients[provider]
			for i, end := range []string{paymentstest.StateSucceeded, paymentstest.StateFailed} {
				key := fmt.Sprintf("rf%d%s0123456789abcdef0123456789abcdef", i, provider)[:34]
				req := RefundRequest{Key: key, TransactionID: "tx-" + provider, AmountMinor: 5000, TotalMinor: 5000, Currency: "CNY", PayoutID: "s1.x.0"}
				f.fake.SetNext(paymentstest.AnswerPending)
				res := c.Refund(ctx, req)
				if res.Outcome != RefundAccepted || res.ProviderRefundID == "" {
					t.Fatalf("pending: %+v", res)
				}
				req.ProviderRefundID = res.ProviderRefundID
				if q := c.QueryRefund(ctx, req); q.Outcome != RefundAccepted && !(provider == ProviderAlipay && q.Outcome == RefundNotFound) {
					// Alipay's query has no "processing": no
					// REFUND_SUCCESS reads as not (yet) refunded.
					t.Fatalf("query while pending: %+v", q)
				}
				f.fake.SetRefundState(key, end)
				q := c.QueryRefund(ctx, req)
				want := map[string]RefundOutcome{paymentstest.StateSucceeded: RefundDone, paymentstest.StateFailed: RefundFailed}[end]
				if provider == ProviderAlipay && end == paymentstest.StateFailed {
					want = RefundNotFound
				}
				if q.Outcome != want {
					t.Fatalf("query after %s: %+v, want %s", end, q, want)
				}
			}
			req := RefundRequest{Key: "rfffffffffffffffffffffffffffffffff", TransactionID: "tx-" + provider, ProviderRefundID: "re_unknown"}
			if provider == ProviderUnionPay {
				req.ProviderRefundID = "20260301120000"
			}
			if q := c.QueryRefund(ctx, req); q.Outcome != RefundNotFound {
				t.Fatalf("query of an unknown refund: %+v", q)
			}
		})
	}
}

// TestUnionPayAnswerForgeries: UnionPay answers that must not be believed:
// signed by a certificate outside the configured chain, a byte changed
// after signing, unsigned, or a genuine answer about another transaction.
// A refund that meets one is queried (accepted), never done or failed; a
// query that meets one is retried.
func TestUnionPayAnswerForgeries(t *testing.T) {
	k := paymentstest.SharedKeys()
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	t.Cleanup(srv.Close)
	c := &UnionPayRefunds{GatewayURL: srv.URL, MerID: testUnionMer, SignKey: k.Merchant, CertID: testUnionCert,
		BackURL: "https://x/", Verifier: testUnionVerifier(t), Client: srv.Client(),
		Now: func() time.Time { return time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC) }}
	req := RefundRequest{Key: "rf0123456789abcdef0123456789abcdef", TransactionID: "q1", AmountMinor: 10, Currency: "CNY",
		ProviderRefundID: "20260301120000"}
	fields := func(respCode string) map[string]string {
		return map[string]string{"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "merId": testUnionMer,
			"orderId": "0123456789abcdef0123456789abcdef", "txnTime": "20260301120000", "txnType": "00",
			"respCode": "00", "origRespCode": respCode, "queryId": "2026q"}
	}
	raw := func(key *rsa.PrivateKey, cert *x509.Certificate, f map[string]string) []byte {
		vals, _ := url.ParseQuery(string(paymentstest.UnionPayForm(key, cert, f)))
		var parts []string
		for name := range vals {
			parts = append(parts, name+"="+vals.Get(name))
		}
		sort.Strings(parts)
		return []byte(strings.Join(parts, "&"))
	}
	body = raw(k.UnionSigner, k.UnionCert, fields("00"))
	if q := c.QueryRefund(context.Background(), req); q.Outcome != RefundDone || q.ProviderRefundID != "20260301120000:2026q" {
		t.Fatalf("the genuine answer: %+v", q)
	}
	other := fields("00")
	other["orderId"] = "ffffffffffffffffffffffffffffffff"
	for name, b := range map[string][]byte{
		"untrusted certificate": raw(k.Other, k.OtherCert, fields("00")),
		"flipped byte":          bytes.Replace(raw(k.UnionSigner, k.UnionCert, fields("01")), []byte("origRespCode=01"), []byte("origRespCode=00"), 1),
		"unsigned":              []byte("version=5.1.0&signMethod=01&merId=" + testUnionMer + "&respCode=00&origRespCode=00"),
		"another transaction":   raw(k.UnionSigner, k.UnionCert, other),
		"not a form":            []byte("<html>"),
	} {
		body = b
		if q := c.QueryRefund(context.Background(), req); q.Outcome != RefundRetry {
			t.Errorf("query, %s: %+v", name, q)
		}
		if r := c.Refund(context.Background(), req); r.Outcome != RefundAccepted {
			t.Errorf("refund, %s: %+v", name, r)
		}
	}
}

func FuzzParseUnionPayAnswer(f *testing.F) {
	f.Add([]byte("respCode=00&respMsg=成功[0000000]&reserved={a=b&c=d}&signature=abc=="))
	f.Add([]byte("signPubKeyCert=-----BEGIN CERTIFICATE-----\r\nMII=\r\n-----END CERTIFICATE-----&version=5.1.0"))
	f.Add([]byte("a=&b=[x&y]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fm, err := ParseUnionPayAnswer(body)
		if err != nil {
			return
		}
		if len(fm) == 0 || len(fm) > formFieldsMax {
			t.Fatalf("%d fields", len(fm))
		}
		for i := range fm {
			if fm[i].key == "" || i > 0 && fm[i].key <= fm[i-1].key {
				t.Fatalf("fields not unique, sorted and named: %q", fm)
			}
		}
	})
}

func FuzzParseAlipayRefundQuery(f *testing.F) {
	k := paymentstest.SharedKeys()
	good := `{"code":"10000","msg":"Success","trade_no":"2026","out_request_no":"rf1","refund_amount":"0.10","refund_status":"REFUND_SUCCESS"}`
	f.Add([]byte(`{"alipay_trade_fastpay_refund_query_response":` + good + `,"sign":"` + paymentstest.AlipaySignResponse(k.Alipay, good) + `"}`))
	f.Add([]byte(`{"alipay_trade_fastpay_refund_query_response":` + good + `,"sign":"` + paymentstest.AlipaySignResponse(k.Other, good) + `"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := parseAlipayRefundQuery(&k.Alipay.PublicKey, body)
		if r.Outcome == RefundDone && !bytes.Contains(body, []byte("REFUND_SUCCESS")) {
			t.Fatalf("done without REFUND_SUCCESS: %+v", r)
		}
	})
}
