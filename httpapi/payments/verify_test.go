package payments_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/onsale/onsale/httpapi/payments"
	"github.com/onsale/onsale/httpapi/payments/paymentstest"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const order = "sale1.abcdefghijklmnopqrstuvwxyz"

// wantCode fails unless err is a *payments.Error with code.
func wantCode(t *testing.T, name string, err error, code payments.Code) {
	t.Helper()
	var perr *payments.Error
	if !errors.As(err, &perr) {
		t.Errorf("%s: got %v, want %s", name, err, code)
		return
	}
	if perr.Code != code {
		t.Errorf("%s: got %s (%s), want %s", name, perr.Code, perr.Msg, code)
	}
}

func TestStripe(t *testing.T) {
	const secret, old = "whsec_test", "whsec_old"
	s := payments.NewStripe([]string{old, secret}, 0)
	body := paymentstest.StripePaymentIntentEvent("evt_1", "payment_intent.succeeded", "pi_1", order, 1999999, "cny")
	ev, err := s.Verify([]byte(paymentstest.StripeSignature(secret, body, now)), body, now)
	if err != nil {
		t.Fatal(err)
	}
	want := payments.Event{Provider: "stripe", Kind: payments.Succeeded, Type: "payment_intent.succeeded",
		OrderID: order, AmountMinor: 1999999, Currency: "CNY", TransactionID: "pi_1"}
	if ev != want || ev.EventID() != "stripe:pi_1" {
		t.Fatalf("got %+v, want %+v", ev, want)
	}
	failed := paymentstest.StripePaymentIntentEvent("evt_2", "payment_intent.canceled", "pi_1", order, 10, "jpy")
	ev, err = s.Verify([]byte(paymentstest.StripeSignature(old, failed, now)), failed, now)
	if err != nil || ev.Kind != payments.Failed || ev.AmountMinor != 10 || ev.Currency != "JPY" || ev.EventID() != "stripe:pi_1:failed" {
		t.Fatalf("failed event: %+v %v", ev, err)
	}
	declined := paymentstest.StripePaymentIntentEvent("evt_5", "payment_intent.payment_failed", "pi_1", order, 10, "jpy")
	if ev, err = s.Verify([]byte(paymentstest.StripeSignature(secret, declined, now)), declined, now); err != nil || ev.Kind != payments.Ignored {
		t.Fatalf("a declined attempt must not cancel the order: %+v %v", ev, err)
	}
	other := []byte(`{"id":"evt_3","type":"customer.created","data":{"object":{"id":"cus_1"}}}`)
	if ev, err = s.Verify([]byte(paymentstest.StripeSignature(secret, other, now)), other, now); err != nil || ev.Kind != payments.Ignored {
		t.Fatalf("unknown type: %+v %v", ev, err)
	}
	refund := []byte(`{"id":"evt_4","type":"charge.refunded","data":{"object":{"id":"ch_1","object":"charge","amount":500,"amount_refunded":200,"currency":"eur","payment_intent":"pi_1","metadata":{}}}}`)
	if ev, err = s.Verify([]byte(paymentstest.StripeSignature(secret, refund, now)), refund, now); err != nil ||
		ev.Kind != payments.Refunded || ev.AmountMinor != 200 || ev.TransactionID != "pi_1" {
		t.Fatalf("refund: %+v %v", ev, err)
	}

	flipped := bytes.Replace(body, []byte("1999999"), []byte("1999998"), 1)
	noOrder := bytes.Replace(body, []byte(`"order_id"`), []byte(`"other_id"`), 1)
	sign := func(b []byte) string { return paymentstest.StripeSignature(secret, b, now) }
	for _, c := range []struct {
		name   string
		header string
		body   []byte
		code   payments.Code
	}{
		{"wrong secret", paymentstest.StripeSignature("whsec_other", body, now), body, payments.CodeSignatureMismatch},
		{"flipped byte", sign(body), flipped, payments.CodeSignatureMismatch},
		{"stale", paymentstest.StripeSignature(secret, body, now.Add(-301*time.Second)), body, payments.CodeSignatureStale},
		{"future", paymentstest.StripeSignature(secret, body, now.Add(301*time.Second)), body, payments.CodeSignatureStale},
		{"no header", "", body, payments.CodeSignatureMissing},
		{"no v1", "t=1772366400", body, payments.CodeSignatureMalformed},
		{"two t", sign(body) + ",t=1", body, payments.CodeSignatureMalformed},
		{"bad hex", "t=1772366400,v1=" + strings.Repeat("zz", 32), body, payments.CodeSignatureMalformed},
		{"v0 only", strings.Replace(sign(body), "v1=", "v0=", 1), body, payments.CodeSignatureMalformed},
		{"signed, no order id", sign(noOrder), noOrder, payments.CodeMalformedBody},
		{"signed, not JSON", sign([]byte("x")), []byte("x"), payments.CodeMalformedBody},
	} {
		if _, err := s.Verify([]byte(c.header), c.body, now); err == nil {
			t.Errorf("%s: accepted", c.name)
		} else {
			wantCode(t, c.name, err, c.code)
		}
	}
}

const alipayApp = "2021000000000001"

func alipay(t *testing.T) *payments.Alipay {
	k := paymentstest.SharedKeys()
	key, err := payments.ParseRSAPublicKey(paymentstest.PublicKeyPEM(&k.Alipay.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return payments.NewAlipay(alipayApp, key)
}

func TestAlipay(t *testing.T) {
	k := paymentstest.SharedKeys()
	a := alipay(t)
	for amount, fen := range map[string]int64{"0.10": 10, "19999.99": 1999999} {
		body := paymentstest.AlipayForm(k.Alipay, paymentstest.AlipayTrade(alipayApp, order, "2026030122001", "TRADE_SUCCESS", amount))
		ev, err := a.Verify(body)
		if err != nil || ev.Kind != payments.Succeeded || ev.AmountMinor != fen || ev.Currency != "CNY" || ev.OrderID != order ||
			ev.EventID() != "alipay:2026030122001" {
			t.Errorf("%s: %+v %v", amount, ev, err)
		}
	}
	for status, kind := range map[string]payments.Kind{"TRADE_FINISHED": payments.Succeeded, "TRADE_CLOSED": payments.Failed, "WAIT_BUYER_PAY": payments.Ignored} {
		body := paymentstest.AlipayForm(k.Alipay, paymentstest.AlipayTrade(alipayApp, order, "2026030122001", status, "1.00"))
		if ev, err := a.Verify(body); err != nil || ev.Kind != kind {
			t.Errorf("%s: %+v %v", status, ev, err)
		}
	}
	refund := paymentstest.AlipayTrade(alipayApp, order, "2026030122001", "TRADE_SUCCESS", "1.00")
	refund["refund_fee"] = "0.40"
	if ev, err := a.Verify(paymentstest.AlipayForm(k.Alipay, refund)); err != nil || ev.Kind != payments.Refunded || ev.AmountMinor != 40 {
		t.Errorf("refund: %+v %v", ev, err)
	}
	// The signature covers the decoded fields, sorted: the order of the
	// fields in the body is not signed, as in the SDK's rsaCheckV1.
	good := paymentstest.AlipayForm(k.Alipay, paymentstest.AlipayTrade(alipayApp, order, "2026030122001", "TRADE_SUCCESS", "1.00"))
	pairs := strings.Split(string(good), "&")
	for i, j := 0, len(pairs)-1; i < j; i, j = i+1, j-1 {
		pairs[i], pairs[j] = pairs[j], pairs[i]
	}
	if _, err := a.Verify([]byte(strings.Join(pairs, "&"))); err != nil {
		t.Errorf("reordered fields: %v", err)
	}

	fields := func(mod func(map[string]string)) map[string]string {
		f := paymentstest.AlipayTrade(alipayApp, order, "2026030122001", "TRADE_SUCCESS", "1.00")
		mod(f)
		return f
	}
	withSubject := paymentstest.AlipayForm(k.Alipay, fields(func(f map[string]string) { f["subject"] = "a+b" }))
	for _, c := range []struct {
		name string
		body []byte
		code payments.Code
	}{
		{"wrong key", paymentstest.AlipayForm(k.Other, fields(func(map[string]string) {})), payments.CodeSignatureMismatch},
		{"flipped amount", bytes.Replace(good, []byte("total_amount=1.00"), []byte("total_amount=9.00"), 1), payments.CodeSignatureMismatch},
		// Re-encoded so that it decodes to another value: %2B is "+", a
		// bare + is a space.
		{"re-encoded value", bytes.Replace(withSubject, []byte("a%2Bb"), []byte("a+b"), 1), payments.CodeSignatureMismatch},
		{"field added", append(append([]byte{}, good...), "&extra=1"...), payments.CodeSignatureMismatch},
		{"field twice", append(append([]byte{}, good...), "&trade_no=2026030122001"...), payments.CodeMalformedBody},
		{"no sign", []byte(strings.Join(filter(pairs, "sign="), "&")), payments.CodeSignatureMissing},
		{"sign_type RSA", bytes.Replace(good, []byte("sign_type=RSA2"), []byte("sign_type=RSA"), 1), payments.CodeUnsupported},
		{"wrong app id", paymentstest.AlipayForm(k.Alipay, fields(func(f map[string]string) { f["app_id"] = "2021000000000002" })), payments.CodeWrongMerchant},
		{"three decimals", paymentstest.AlipayForm(k.Alipay, fields(func(f map[string]string) { f["total_amount"] = "1.001" })), payments.CodeInvalidAmount},
		{"exponent", paymentstest.AlipayForm(k.Alipay, fields(func(f map[string]string) { f["total_amount"] = "1e2" })), payments.CodeInvalidAmount},
		{"negative", paymentstest.AlipayForm(k.Alipay, fields(func(f map[string]string) { f["total_amount"] = "-1.00" })), payments.CodeInvalidAmount},
		{"unknown status", paymentstest.AlipayForm(k.Alipay, fields(func(f map[string]string) { f["trade_status"] = "PAID" })), payments.CodeMalformedBody},
		{"no order", paymentstest.AlipayForm(k.Alipay, fields(func(f map[string]string) { f["out_trade_no"] = "" })), payments.CodeMalformedBody},
		{"not a form", []byte("%%%"), payments.CodeMalformedBody},
	} {
		if _, err := a.Verify(c.body); err == nil {
			t.Errorf("%s: accepted", c.name)
		} else {
			wantCode(t, c.name, err, c.code)
		}
	}
}

func filter(pairs []string, prefix string) []string {
	var out []string
	for _, p := range pairs {
		if !strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}

var apiV3Key = []byte("0123456789abcdef0123456789ABCDEF")

const (
	wxMch = "1900000109"
	wxApp = "wxd678efh567hg6787"
)

func wechat(t *testing.T, certs []*x509.Certificate, pubs map[string]*rsa.PublicKey) *payments.WeChatPay {
	w, err := payments.NewWeChatPay(wxMch, wxApp, apiV3Key, certs, pubs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

type wxRequest struct {
	h    payments.WeChatPayHeaders
	body []byte
}

func wxSigned(key *rsa.PrivateKey, serial string, at time.Time, body []byte) wxRequest {
	ts, sig := paymentstest.WeChatPaySign(key, at, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", body)
	return wxRequest{payments.WeChatPayHeaders{Timestamp: []byte(ts), Nonce: []byte("5K8264ILTKCH16CQ2502SI8ZNMTM67VS"),
		Signature: []byte(sig), Serial: []byte(serial), SignatureType: []byte("WECHATPAY2-SHA256-RSA2048")}, body}
}

func TestWeChatPay(t *testing.T) {
	k := paymentstest.SharedKeys()
	serial := paymentstest.SerialOf(k.WeChatPayCert)
	w := wechat(t, []*x509.Certificate{k.WeChatPayCert, k.WeChatPayCert2}, map[string]*rsa.PublicKey{"PUB_KEY_ID_0114232134912410000000000000": &k.Other.PublicKey})
	resource := paymentstest.WeChatPayTransaction(wxApp, wxMch, order, "4200000848202101120290526543", "SUCCESS", 1999999, "CNY")
	body := paymentstest.WeChatPayBody(apiV3Key, "fdasflkja484", "transaction", "transaction", resource)
	r := wxSigned(k.WeChatPay, serial, now, body)
	ev, err := w.Verify(r.h, r.body, now)
	if err != nil || ev.Kind != payments.Succeeded || ev.AmountMinor != 1999999 || ev.Currency != "CNY" || ev.OrderID != order ||
		ev.EventID() != "wechatpay:4200000848202101120290526543" {
		t.Fatalf("%+v %v", ev, err)
	}
	// Rotation: the second certificate, and a public key named by its id.
	r2 := wxSigned(k.WeChatPayKey2, strings.ToLower(paymentstest.SerialOf(k.WeChatPayCert2)), now, body)
	if _, err := w.Verify(r2.h, r2.body, now); err != nil {
		t.Errorf("second certificate: %v", err)
	}
	r3 := wxSigned(k.Other, "PUB_KEY_ID_0114232134912410000000000000", now, body)
	if _, err := w.Verify(r3.h, r3.body, now); err != nil {
		t.Errorf("public key id: %v", err)
	}
	for state, kind := range map[string]payments.Kind{"CLOSED": payments.Failed, "PAYERROR": payments.Failed, "REVOKED": payments.Failed, "NOTPAY": payments.Ignored, "USERPAYING": payments.Ignored} {
		b := paymentstest.WeChatPayBody(apiV3Key, "fdasflkja484", "transaction", "transaction",
			paymentstest.WeChatPayTransaction(wxApp, wxMch, order, "4200000848202101120290526543", state, 10, "CNY"))
		r := wxSigned(k.WeChatPay, serial, now, b)
		if ev, err := w.Verify(r.h, r.body, now); err != nil || ev.Kind != kind {
			t.Errorf("%s: %+v %v", state, ev, err)
		}
	}

	wrongMch := paymentstest.WeChatPayBody(apiV3Key, "fdasflkja484", "transaction", "transaction",
		paymentstest.WeChatPayTransaction(wxApp, "1900000110", order, "42", "SUCCESS", 10, "CNY"))
	otherKey := paymentstest.WeChatPayBody([]byte("ffffffffffffffffffffffffffffffff"), "fdasflkja484", "transaction", "transaction", resource)
	tamperedAD := bytes.Replace(body, []byte(`"associated_data":"transaction"`), []byte(`"associated_data":"transactioN"`), 1)
	signed := func(b []byte) wxRequest { return wxSigned(k.WeChatPay, serial, now, b) }
	expired := wechat(t, []*x509.Certificate{k.WeChatPayCert}, nil)
	for _, c := range []struct {
		name string
		w    *payments.WeChatPay
		r    wxRequest
		code payments.Code
	}{
		{"wrong key", w, wxSigned(k.Other, serial, now, body), payments.CodeSignatureMismatch},
		{"unknown serial", w, wxSigned(k.WeChatPay, "5157F09EFDC096DE15EBE81A47057A72", now, body), payments.CodeUnknownKey},
		{"flipped byte", w, wxRequest{r.h, bytes.Replace(body, []byte("EV-20"), []byte("EV-21"), 1)}, payments.CodeSignatureMismatch},
		{"stale", w, wxSigned(k.WeChatPay, serial, now.Add(-6*time.Minute), body), payments.CodeSignatureStale},
		{"future", w, wxSigned(k.WeChatPay, serial, now.Add(6*time.Minute), body), payments.CodeSignatureStale},
		{"no signature", w, wxRequest{payments.WeChatPayHeaders{Timestamp: r.h.Timestamp, Nonce: r.h.Nonce, Serial: r.h.Serial}, body}, payments.CodeSignatureMissing},
		{"signature test probe", w, wxRequest{payments.WeChatPayHeaders{Timestamp: r.h.Timestamp, Nonce: r.h.Nonce, Serial: r.h.Serial,
			Signature: []byte("WECHATPAY/SIGNTEST/" + string(r.h.Signature))}, body}, payments.CodeSignatureMalformed},
		{"other signature type", w, wxRequest{payments.WeChatPayHeaders{Timestamp: r.h.Timestamp, Nonce: r.h.Nonce, Serial: r.h.Serial,
			Signature: r.h.Signature, SignatureType: []byte("WECHATPAY2-SM2-WITH-SM3")}, body}, payments.CodeUnsupported},
		{"other APIv3 key", w, signed(otherKey), payments.CodeDecryptFailed},
		{"associated data changed", w, signed(tamperedAD), payments.CodeDecryptFailed},
		{"wrong mchid", w, signed(wrongMch), payments.CodeWrongMerchant},
		{"expired certificate", expired, wxSigned(k.WeChatPay, serial, paymentstest.Epoch.Add(11*365*24*time.Hour), body), payments.CodeUntrustedCert},
		{"signed, not JSON", w, signed([]byte("x")), payments.CodeMalformedBody},
	} {
		now := now
		if c.name == "expired certificate" {
			now = paymentstest.Epoch.Add(11 * 365 * 24 * time.Hour)
		}
		if _, err := c.w.Verify(c.r.h, c.r.body, now); err == nil {
			t.Errorf("%s: accepted", c.name)
		} else {
			wantCode(t, c.name, err, c.code)
		}
	}
}

const unionMer = "777290058110048"

func unionPay(t *testing.T, owner string) *payments.UnionPay {
	k := paymentstest.SharedKeys()
	u, err := payments.NewUnionPay(unionMer, []*x509.Certificate{k.UnionRoot}, []*x509.Certificate{k.UnionMiddle}, owner)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUnionPay(t *testing.T) {
	k := paymentstest.SharedKeys()
	u := unionPay(t, "")
	body := paymentstest.UnionPayForm(k.UnionSigner, k.UnionCert, paymentstest.UnionPayConsume(unionMer, "20260301ORDER1", "2026030112000012345", "00", 10))
	ev, err := u.Verify(body, now)
	if err != nil || ev.Kind != payments.Succeeded || ev.AmountMinor != 10 || ev.Currency != "CNY" || ev.OrderID != "20260301ORDER1" ||
		ev.EventID() != "unionpay:2026030112000012345" {
		t.Fatalf("%+v %v", ev, err)
	}
	for rc, kind := range map[string]payments.Kind{"A6": payments.Succeeded, "03": payments.Failed} {
		b := paymentstest.UnionPayForm(k.UnionSigner, k.UnionCert, paymentstest.UnionPayConsume(unionMer, "20260301ORDER1", "2026030112000012345", rc, 1999999))
		if ev, err := u.Verify(b, now); err != nil || ev.Kind != kind || ev.AmountMinor != 1999999 {
			t.Errorf("respCode %s: %+v %v", rc, ev, err)
		}
	}
	fields := func(mod func(map[string]string)) map[string]string {
		f := paymentstest.UnionPayConsume(unionMer, "20260301ORDER1", "2026030112000012345", "00", 10)
		mod(f)
		return f
	}
	same := func(map[string]string) {}
	testOwner := k.UnionLeaf(20, "041@Z12@00040000:SIGN@00000062", k.UnionSigner, paymentstest.Epoch, 10*365*24*time.Hour)
	expired := k.UnionLeaf(21, k.UnionCert.Subject.CommonName, k.UnionSigner, paymentstest.Epoch, 24*time.Hour)
	for _, c := range []struct {
		name string
		body []byte
		code payments.Code
	}{
		{"wrong key for the certificate", paymentstest.UnionPayForm(k.Other, k.UnionCert, fields(same)), payments.CodeSignatureMismatch},
		{"self-signed certificate", paymentstest.UnionPayForm(k.Other, k.OtherCert, fields(same)), payments.CodeUntrustedCert},
		{"another owner", paymentstest.UnionPayForm(k.UnionSigner, testOwner, fields(same)), payments.CodeUntrustedCert},
		{"expired certificate", paymentstest.UnionPayForm(k.UnionSigner, expired, fields(same)), payments.CodeUntrustedCert},
		{"flipped amount", bytes.Replace(body, []byte("txnAmt=10&"), []byte("txnAmt=90&"), 1), payments.CodeSignatureMismatch},
		{"wrong merId", paymentstest.UnionPayForm(k.UnionSigner, k.UnionCert, fields(func(f map[string]string) { f["merId"] = "777290058110049" })), payments.CodeWrongMerchant},
		{"version 5.0.0", paymentstest.UnionPayForm(k.UnionSigner, k.UnionCert, fields(func(f map[string]string) { f["version"] = "5.0.0" })), payments.CodeUnsupported},
		{"amount with a point", paymentstest.UnionPayForm(k.UnionSigner, k.UnionCert, fields(func(f map[string]string) { f["txnAmt"] = "1.00" })), payments.CodeInvalidAmount},
		{"no signature", []byte(url.Values{"version": {"5.1.0"}, "signMethod": {"01"}}.Encode()), payments.CodeSignatureMissing},
	} {
		if _, err := u.Verify(c.body, now); err == nil {
			t.Errorf("%s: accepted", c.name)
		} else {
			wantCode(t, c.name, err, c.code)
		}
	}
	// UnionPay's test environment signs with an owner of its own.
	if _, err := unionPay(t, "00040000:SIGN").Verify(paymentstest.UnionPayForm(k.UnionSigner, testOwner, fields(same)), now); err != nil {
		t.Errorf("test owner: %v", err)
	}
}
