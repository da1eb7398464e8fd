package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/httpapi/payments/paymentstest"
)

// Ways the harness pays an order (onsale-bench -pay-via): the generic
// webhook, or one provider's notification to its route, signed as the
// provider signs it (package paymentstest) with keys made at start.
const (
	PayViaGeneric   = "generic"
	PayViaStripe    = "stripe"
	PayViaAlipay    = "alipay"
	PayViaWeChatPay = "wechatpay"
	PayViaUnionPay  = "unionpay"
)

// PayVias are the -pay-via values.
var PayVias = []string{PayViaGeneric, PayViaStripe, PayViaAlipay, PayViaWeChatPay, PayViaUnionPay}

// The merchant ids the harness configures onsale with.
const (
	payAlipayAppID   = "2021000000000001"
	payWeChatMchID   = "1900000001"
	payWeChatAppID   = "wx0000000000000001"
	payUnionPayMerID = "777290058110048"
)

// Payer sends payments as one provider's notifications. Its keys are
// made by NewPayer; Flags configures onsale to trust them. Safe for
// concurrent use.
type Payer struct {
	via          string
	keys         *paymentstest.Keys
	stripeSecret string
	apiV3Key     []byte
}

// NewPayer makes a payer for via; nil for the generic webhook. The RSA
// keys take a few seconds to make on a small machine.
func NewPayer(via string) (*Payer, error) {
	p := &Payer{via: via}
	switch via {
	case "", PayViaGeneric:
		return nil, nil
	case PayViaStripe:
		p.stripeSecret = "whsec_" + randomHex(24)
	case PayViaWeChatPay:
		p.apiV3Key = []byte(randomHex(16)) // 32 characters
		p.keys = paymentstest.SharedKeys()
	case PayViaAlipay, PayViaUnionPay:
		p.keys = paymentstest.SharedKeys()
	default:
		return nil, fmt.Errorf("api: -pay-via must be one of %s, not %q", strings.Join(PayVias, ", "), via)
	}
	return p, nil
}

// Via is the provider's name.
func (p *Payer) Via() string { return p.via }

// Currency is the currency the provider can pay a sale in: Alipay's
// notifications are in CNY, the others carry the order's (EUR).
func (p *Payer) Currency() string {
	if p != nil && p.via == PayViaAlipay {
		return "CNY"
	}
	return "EUR"
}

// Flags writes the public halves of the keys into dir and returns the
// onsale flags that configure the provider with them.
func (p *Payer) Flags(dir string) ([]string, error) {
	write := func(name string, data []byte) (string, error) {
		path := filepath.Join(dir, name)
		return path, os.WriteFile(path, data, 0o600)
	}
	switch p.via {
	case PayViaStripe:
		return []string{"-stripe-webhook-secret", p.stripeSecret}, nil
	case PayViaAlipay:
		path, err := write("alipay_public_key.pem", paymentstest.PublicKeyPEM(&p.keys.Alipay.PublicKey))
		return []string{"-alipay-app-id", payAlipayAppID, "-alipay-public-key", path}, err
	case PayViaWeChatPay:
		path, err := write("wechatpay_platform.pem", paymentstest.CertPEM(p.keys.WeChatPayCert))
		return []string{"-wechatpay-mchid", payWeChatMchID, "-wechatpay-appid", payWeChatAppID,
			"-wechatpay-apiv3-key", string(p.apiV3Key), "-wechatpay-platform-certs", path}, err
	case PayViaUnionPay:
		root, err := write("unionpay_root.pem", paymentstest.CertPEM(p.keys.UnionRoot))
		if err != nil {
			return nil, err
		}
		middle, err := write("unionpay_middle.pem", paymentstest.CertPEM(p.keys.UnionMiddle))
		return []string{"-unionpay-mer-id", payUnionPayMerID, "-unionpay-root-cert", root, "-unionpay-middle-cert", middle}, err
	}
	return nil, fmt.Errorf("api: no provider %q", p.via)
}

// unionPayCodes are the numeric ISO 4217 codes UnionPay sends.
var unionPayCodes = map[string]string{"CNY": "156", "EUR": "978", "USD": "840"}

// Pay sends ev as the provider's notification of a successful payment.
// providerNo is the order's provider_order_no, the order number Alipay,
// WeChat Pay and UnionPay carry (Stripe carries the order id in metadata).
func (p *Payer) Pay(c *Client, ev *PaymentEvent, providerNo string) Result {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	c.setURI(req, "/v1/payments/"+p.via)
	now := c.now()
	switch p.via {
	case PayViaStripe:
		body := paymentstest.StripePaymentIntentEvent("evt_"+providerNo, "payment_intent.succeeded", "pi_"+providerNo,
			ev.OrderID, ev.AmountCents, strings.ToLower(ev.Currency))
		req.Header.SetContentType("application/json")
		req.Header.Set("Stripe-Signature", paymentstest.StripeSignature(p.stripeSecret, body, now))
		req.SetBody(body)
	case PayViaAlipay:
		total := strconv.FormatInt(ev.AmountCents/100, 10) + "." + fmt.Sprintf("%02d", ev.AmountCents%100)
		req.Header.SetContentType("application/x-www-form-urlencoded; charset=utf-8")
		req.SetBody(paymentstest.AlipayForm(p.keys.Alipay,
			paymentstest.AlipayTrade(payAlipayAppID, providerNo, "2026"+providerNo, "TRADE_SUCCESS", total)))
	case PayViaWeChatPay:
		resource := paymentstest.WeChatPayTransaction(payWeChatAppID, payWeChatMchID, providerNo, "42"+providerNo,
			"SUCCESS", ev.AmountCents, ev.Currency)
		body := paymentstest.WeChatPayBody(p.apiV3Key, randomHex(6), "transaction", "transaction", resource)
		nonce := randomHex(16)
		ts, sig := paymentstest.WeChatPaySign(p.keys.WeChatPay, now, nonce, body)
		req.Header.SetContentType("application/json")
		req.Header.Set("Wechatpay-Timestamp", ts)
		req.Header.Set("Wechatpay-Nonce", nonce)
		req.Header.Set("Wechatpay-Signature", sig)
		req.Header.Set("Wechatpay-Serial", paymentstest.SerialOf(p.keys.WeChatPayCert))
		req.SetBody(body)
	case PayViaUnionPay:
		f := paymentstest.UnionPayConsume(payUnionPayMerID, providerNo, "q"+providerNo, "00", ev.AmountCents)
		f["currencyCode"], f["settleCurrencyCode"] = unionPayCodes[ev.Currency], unionPayCodes[ev.Currency]
		f["txnTime"] = now.In(time.FixedZone("CST", 8*3600)).Format("20060102150405")
		req.Header.SetContentType("application/x-www-form-urlencoded; charset=utf-8")
		req.SetBody(paymentstest.UnionPayForm(p.keys.UnionSigner, p.keys.UnionCert, f))
	}
	return c.do(req, resp, false)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
