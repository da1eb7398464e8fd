package paymentstest

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Keys are a set of provider keys and certificates.
type Keys struct {
	Alipay         *rsa.PrivateKey // Alipay's signing key; its public half is what onsale configures
	WeChatPay      *rsa.PrivateKey // the platform certificate's key
	WeChatPayCert  *x509.Certificate
	WeChatPayKey2  *rsa.PrivateKey // a second platform key, for rotation and public-key-id mode
	WeChatPayCert2 *x509.Certificate
	UnionRoot      *x509.Certificate
	UnionMiddle    *x509.Certificate
	UnionSigner    *rsa.PrivateKey
	UnionCert      *x509.Certificate // the signing certificate sent in signPubKeyCert
	Other          *rsa.PrivateKey   // a key nobody trusts
	OtherCert      *x509.Certificate // self-signed, UnionPay's owner name in its CN, trusted by nobody
	Merchant       *rsa.PrivateKey   // the merchant's own key: Alipay's app private key, WeChat Pay's apiclient_key

	unionMiddleKey *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     *Keys
)

// Epoch is the start of every generated certificate's validity; they are
// valid for ten years from it.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// SharedKeys returns the process's keys, generating them on first use.
func SharedKeys() *Keys {
	keysOnce.Do(func() { keys = generate() })
	return keys
}

func generate() *Keys {
	k := &Keys{}
	gen := func() *rsa.PrivateKey {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return key
	}
	k.Alipay, k.WeChatPay, k.WeChatPayKey2, k.Other, k.Merchant = gen(), gen(), gen(), gen(), gen()
	rootKey, middleKey := gen(), gen()
	k.unionMiddleKey = middleKey
	k.UnionSigner = gen()
	k.WeChatPayCert = Certificate(1, "Tenpay.com Root CA leaf", &k.WeChatPay.PublicKey, nil, k.WeChatPay, false, Epoch, 10*365*24*time.Hour)
	k.WeChatPayCert2 = Certificate(2, "Tenpay.com Root CA leaf 2", &k.WeChatPayKey2.PublicKey, nil, k.WeChatPayKey2, false, Epoch, 10*365*24*time.Hour)
	k.UnionRoot = Certificate(10, "CFCA TEST CS CA", &rootKey.PublicKey, nil, rootKey, true, Epoch, 20*365*24*time.Hour)
	k.UnionMiddle = Certificate(11, "CFCA TEST OCA1", &middleKey.PublicKey, k.UnionRoot, rootKey, true, Epoch, 20*365*24*time.Hour)
	k.UnionCert = Certificate(12, "041@Z12@中国银联股份有限公司@00000062", &k.UnionSigner.PublicKey, k.UnionMiddle, middleKey, false, Epoch, 10*365*24*time.Hour)
	k.OtherCert = Certificate(13, "041@Z12@中国银联股份有限公司@00000062", &k.Other.PublicKey, nil, k.Other, false, Epoch, 10*365*24*time.Hour)
	return k
}

// UnionLeaf issues a UnionPay signing certificate under the generated
// middle certificate, with the given CN and validity.
func (k *Keys) UnionLeaf(serial int64, cn string, key *rsa.PrivateKey, from time.Time, valid time.Duration) *x509.Certificate {
	return Certificate(serial, cn, &key.PublicKey, k.UnionMiddle, k.unionMiddleKey, false, from, valid)
}

// Certificate issues a certificate for pub, signed by parentKey (self-signed
// when parent is nil).
func Certificate(serial int64, cn string, pub *rsa.PublicKey, parent *x509.Certificate, parentKey *rsa.PrivateKey, ca bool, from time.Time, valid time.Duration) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"test"}},
		NotBefore: from, NotAfter: from.Add(valid), BasicConstraintsValid: true, IsCA: ca,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

// CertPEM encodes a certificate.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// PublicKeyPEM encodes a public key as PKIX.
func PublicKeyPEM(k *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func signSHA256(key *rsa.PrivateKey, msg []byte) []byte {
	d := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		panic(err)
	}
	return sig
}

// StripeSignature is the Stripe-Signature header Stripe sends: the hex
// HMAC-SHA256 of "<t>.<body>" under the endpoint secret.
func StripeSignature(secret string, body []byte, t time.Time) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.", t.Unix())
	mac.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

// StripePaymentIntentEvent is a Stripe event about a PaymentIntent.
func StripePaymentIntentEvent(eventID, typ, intentID, orderID string, amount int64, currency string) []byte {
	obj := map[string]any{
		"id": intentID, "object": "payment_intent", "amount": amount, "currency": currency,
		"metadata": map[string]string{"order_id": orderID}, "status": "succeeded",
	}
	if typ == "payment_intent.succeeded" {
		obj["amount_received"] = amount
	} else {
		obj["amount_received"] = 0
		obj["status"] = "requires_payment_method"
	}
	b, _ := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "api_version": "2024-06-20", "created": 1767225600, "livemode": false,
		"type": typ, "data": map[string]any{"object": obj},
	})
	return b
}

// StripeRefundEvent is a Stripe refund.* event: its object a Refund
// (https://docs.stripe.com/api/refunds/object) whose metadata carries
// onsale's payout id, as onsale's refund client sets it.
func StripeRefundEvent(eventID, typ, refundID, intentID, payoutID, status, failureReason string, amount int64, currency string) []byte {
	obj := map[string]any{
		"id": refundID, "object": "refund", "amount": amount, "currency": currency, "payment_intent": intentID,
		"charge": "ch_" + intentID, "status": status, "reason": "requested_by_customer",
		"metadata": map[string]string{"onsale_payout": payoutID, "onsale_refund": "rf"},
	}
	if failureReason != "" {
		obj["failure_reason"] = failureReason
	}
	b, _ := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "api_version": "2024-06-20", "created": 1767225600, "livemode": false,
		"type": typ, "data": map[string]any{"object": obj},
	})
	return b
}

// WeChatPayRefundResource is the decrypted resource of a WeChat Pay refund
// notification (event_type REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED).
func WeChatPayRefundResource(mchID, outTradeNo, transactionID, refundID, outRefundNo, status string, refund, total int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"mchid": mchID, "out_trade_no": outTradeNo, "transaction_id": transactionID, "out_refund_no": outRefundNo,
		"refund_id": refundID, "refund_status": status, "success_time": "2026-03-01T20:00:00+08:00",
		"user_received_account": "支付用户零钱",
		"amount":                map[string]any{"total": total, "refund": refund, "payer_total": total, "payer_refund": refund},
	})
	return b
}

// AlipayForm signs fields as Alipay does (sign_type RSA2): drop sign and
// sign_type and the empty values, sort by key, join "k=v" with "&",
// SHA256withRSA, base64; and encodes the form as Alipay posts it.
func AlipayForm(key *rsa.PrivateKey, fields map[string]string) []byte {
	keys := make([]string, 0, len(fields))
	for k, v := range fields {
		if k != "sign" && k != "sign_type" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+fields[k])
	}
	sig := signSHA256(key, []byte(strings.Join(parts, "&")))
	v := url.Values{}
	for k, val := range fields {
		v.Set(k, val)
	}
	v.Set("sign", base64.StdEncoding.EncodeToString(sig))
	if _, ok := fields["sign_type"]; !ok {
		v.Set("sign_type", "RSA2")
	}
	return []byte(v.Encode())
}

// AlipayTrade are the fields of a trade notification.
func AlipayTrade(appID, orderID, tradeNo, status, totalAmount string) map[string]string {
	return map[string]string{
		"notify_time": "2026-03-01 12:00:00", "notify_type": "trade_status_sync", "notify_id": "ac05099524730693a8b330c5ecf72da" + tradeNo[len(tradeNo)-1:],
		"app_id": appID, "charset": "utf-8", "version": "1.0", "trade_no": tradeNo, "out_trade_no": orderID,
		"trade_status": status, "total_amount": totalAmount, "receipt_amount": totalAmount, "subject": "Tickets",
		"gmt_create": "2026-03-01 11:59:00", "gmt_payment": "2026-03-01 11:59:30", "seller_id": "2088101106499364",
	}
}

// WeChatPayTransaction is the decrypted resource of a payment notification.
func WeChatPayTransaction(appID, mchID, orderID, transactionID, state string, total int64, currency string) []byte {
	b, _ := json.Marshal(map[string]any{
		"appid": appID, "mchid": mchID, "out_trade_no": orderID, "transaction_id": transactionID,
		"trade_type": "NATIVE", "trade_state": state, "trade_state_desc": "test", "bank_type": "OTHERS",
		"attach": "", "success_time": "2026-03-01T20:00:00+08:00", "payer": map[string]string{"openid": "o1"},
		"amount": map[string]any{"total": total, "payer_total": total, "currency": currency, "payer_currency": currency},
	})
	return b
}

// WeChatPayBody encrypts a resource as WeChat Pay does (AEAD_AES_256_GCM,
// the tag appended to the ciphertext, base64) into a notification body.
func WeChatPayBody(apiV3Key []byte, nonce, associatedData, originalType string, resource []byte) []byte {
	block, err := aes.NewCipher(apiV3Key)
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	ct := gcm.Seal(nil, []byte(nonce), resource, []byte(associatedData))
	b, _ := json.Marshal(map[string]any{
		"id": "EV-2018022511223320873", "create_time": "2026-03-01T20:00:00+08:00", "resource_type": "encrypt-resource",
		"event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
		"resource": map[string]string{
			"original_type": originalType, "algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.StdEncoding.EncodeToString(ct),
			"associated_data": associatedData, "nonce": nonce,
		},
	})
	return b
}

// WeChatPaySign returns the Wechatpay-Signature of a body: base64
// SHA256withRSA over "<timestamp>\n<nonce>\n<body>\n".
func WeChatPaySign(key *rsa.PrivateKey, t time.Time, nonce string, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(t.Unix(), 10)
	msg := timestamp + "\n" + nonce + "\n" + string(body) + "\n"
	return timestamp, base64.StdEncoding.EncodeToString(signSHA256(key, []byte(msg)))
}

// SerialOf is how WeChat Pay names a platform certificate: its serial in
// upper-case hex.
func SerialOf(c *x509.Certificate) string { return fmt.Sprintf("%X", c.SerialNumber) }

// UnionPayForm signs fields as UnionPay's SDK does for version 5.1.0,
// signMethod 01: signPubKeyCert is set to cert's PEM, then every field but
// signature, sorted, joined "k=v" with "&", is hashed with SHA-256, and the
// lower-case hex of the hash signed with SHA256withRSA (base64).
func UnionPayForm(key *rsa.PrivateKey, cert *x509.Certificate, fields map[string]string) []byte {
	f := map[string]string{}
	for k, v := range fields {
		f[k] = v
	}
	f["signPubKeyCert"] = string(CertPEM(cert))
	keys := make([]string, 0, len(f))
	for k := range f {
		if k != "signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+f[k])
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "&")))
	f["signature"] = base64.StdEncoding.EncodeToString(signSHA256(key, []byte(hex.EncodeToString(sum[:]))))
	v := url.Values{}
	for k, val := range f {
		v.Set(k, val)
	}
	return []byte(v.Encode())
}

// UnionPayConsume are the fields of a consume (txnType 01) back notification.
func UnionPayConsume(merID, orderID, queryID, respCode string, fen int64) map[string]string {
	return map[string]string{
		"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "txnType": "01", "txnSubType": "01",
		"bizType": "000201", "accessType": "0", "merId": merID, "orderId": orderID, "txnTime": "20260301120000",
		"txnAmt": strconv.FormatInt(fen, 10), "currencyCode": "156", "queryId": queryID, "respCode": respCode,
		"respMsg": "成功[0000000]", "settleAmt": strconv.FormatInt(fen, 10), "settleCurrencyCode": "156",
		"settleDate": "0301", "traceNo": "123456", "traceTime": "0301120000",
	}
}
