package payments

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// WeChatPayRefunds sends refunds through WeChat Pay API v3:
//
//	POST {BaseURL}/v3/refund/domestic/refunds
//	{"transaction_id","out_refund_no","reason","amount":{"refund","total","currency"}}
//	Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no=".."
//
// the signature being the base64 SHA256withRSA, under the merchant's API
// private key (apiclient_key.pem), of "POST\n<path>\n<timestamp>\n<nonce>\n<body>\n";
// serial_no names the merchant certificate of that key. WeChat Pay signs
// its answer as it signs notifications (Wechatpay-Timestamp, -Nonce,
// -Signature, -Serial over "timestamp\nnonce\nbody\n"), and that is
// checked with the notification verifier's platform keys before the answer
// is believed:
//
//	200, status SUCCESS                  RefundDone
//	200, status PROCESSING               RefundAccepted: WeChat Pay finishes it and notifies REFUND.*
//	200, status CLOSED or ABNORMAL       RefundFailed
//	429, 5xx, SYSTEM_ERROR, FREQUENCY_LIMITED   RefundRetry
//	other 4xx                            RefundFailed: code and message
//
// out_refund_no is the refund's key: the same refund sent again answers
// the existing refund. A refund WeChat Pay accepted is queried with
// GET {BaseURL}/v3/refund/domestic/refunds/{out_refund_no}, signed the
// same way over an empty body, whose signed answer is the same refund
// object; 404 RESOURCE_NOT_EXISTS is RefundNotFound.
type WeChatPayRefunds struct {
	BaseURL      string // https://api.mch.weixin.qq.com
	MchID        string
	MerchantKey  *rsa.PrivateKey // apiclient_key.pem
	MerchantCert string          // the merchant API certificate's serial number (serial_no)
	Verifier     *WeChatPay      // checks the answer's signature (the platform keys)
	Client       *http.Client
	Now          func() time.Time // [time.Now]
}

// WeChatPayAPIDefault is WeChat Pay's API base URL.
const WeChatPayAPIDefault = "https://api.mch.weixin.qq.com"

const wechatRefundPath = "/v3/refund/domestic/refunds"

type wechatRefundRequest struct {
	TransactionID string `json:"transaction_id"`
	OutRefundNo   string `json:"out_refund_no"`
	Reason        string `json:"reason,omitempty"`
	Amount        struct {
		Refund   int64  `json:"refund"`
		Total    int64  `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
}

func (w *WeChatPayRefunds) Refund(ctx context.Context, r RefundRequest) RefundResult {
	var body wechatRefundRequest
	body.TransactionID, body.OutRefundNo, body.Reason = r.TransactionID, r.Key, r.Reason
	body.Amount.Refund, body.Amount.Total, body.Amount.Currency = r.AmountMinor, r.TotalMinor, r.Currency
	b, _ := json.Marshal(body)
	now := nowOr(w.Now)
	auth, err := w.authorization(http.MethodPost, wechatRefundPath, now, b)
	if err != nil {
		return failed("wechatpay: cannot sign: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(w.BaseURL, "/")+wechatRefundPath, bytes.NewReader(b))
	if err != nil {
		return failed("wechatpay: cannot build the request: %v", err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	status, h, answer, err := send(w.Client, req)
	if err != nil {
		return retry("wechatpay: no answer: %v", err)
	}
	return parseWeChatRefund(w.Verifier, status, WeChatPayHeaders{
		Timestamp: []byte(h.Get("Wechatpay-Timestamp")), Nonce: []byte(h.Get("Wechatpay-Nonce")),
		Signature: []byte(h.Get("Wechatpay-Signature")), Serial: []byte(h.Get("Wechatpay-Serial")),
	}, answer, nowOr(w.Now))
}

// QueryRefund reads the refund WeChat Pay accepted, by out_refund_no.
func (w *WeChatPayRefunds) QueryRefund(ctx context.Context, r RefundRequest) RefundResult {
	if !printableID(r.Key, 64) || strings.ContainsAny(r.Key, "/?#%") {
		return failed("wechatpay: the refund key cannot be queried")
	}
	path := wechatRefundPath + "/" + r.Key
	now := nowOr(w.Now)
	auth, err := w.authorization(http.MethodGet, path, now, nil)
	if err != nil {
		return retry("wechatpay: cannot sign: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(w.BaseURL, "/")+path, nil)
	if err != nil {
		return retry("wechatpay: cannot build the request: %v", err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	status, h, answer, err := send(w.Client, req)
	if err != nil {
		return retry("wechatpay: no answer: %v", err)
	}
	res := parseWeChatRefund(w.Verifier, status, WeChatPayHeaders{
		Timestamp: []byte(h.Get("Wechatpay-Timestamp")), Nonce: []byte(h.Get("Wechatpay-Nonce")),
		Signature: []byte(h.Get("Wechatpay-Signature")), Serial: []byte(h.Get("Wechatpay-Serial")),
	}, answer, nowOr(w.Now))
	if status == http.StatusNotFound && res.Outcome == RefundFailed {
		// Verified, and WeChat Pay knows no refund of this out_refund_no.
		return RefundResult{Outcome: RefundNotFound, Detail: res.Detail}
	}
	return res
}

// authorization is the request's Authorization header.
func (w *WeChatPayRefunds) authorization(method, path string, now time.Time, body []byte) (string, error) {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return "", err
	}
	nonce := strings.ToUpper(hex.EncodeToString(n[:]))
	ts := strconv.FormatInt(now.Unix(), 10)
	digest := sha256.Sum256([]byte(method + "\n" + path + "\n" + ts + "\n" + nonce + "\n" + string(body) + "\n"))
	sig, err := rsa.SignPKCS1v15(rand.Reader, w.MerchantKey, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return `WECHATPAY2-SHA256-RSA2048 mchid="` + w.MchID + `",nonce_str="` + nonce + `",signature="` +
		base64.StdEncoding.EncodeToString(sig) + `",timestamp="` + ts + `",serial_no="` + w.MerchantCert + `"`, nil
}

type wechatRefundAnswer struct {
	RefundID    string `json:"refund_id"`
	OutRefundNo string `json:"out_refund_no"`
	Status      string `json:"status"`
	Code        string `json:"code"`
	Message     string `json:"message"`
}

// parseWeChatRefund verifies and maps WeChat Pay's answer.
func parseWeChatRefund(v *WeChatPay, status int, h WeChatPayHeaders, body []byte, now time.Time) RefundResult {
	if perr := v.verifySignature(h, body, now); perr != nil {
		return retry("wechatpay: HTTP %d whose signature does not verify (%s); not believed", status, perr.Code)
	}
	var a wechatRefundAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return retry("wechatpay: HTTP %d with an answer that is not JSON", status)
	}
	if status == http.StatusOK {
		switch a.Status {
		case "SUCCESS":
			return RefundResult{Outcome: RefundDone, ProviderRefundID: a.RefundID, Detail: "wechatpay: " + a.Status}
		case "PROCESSING":
			if a.RefundID == "" {
				return retry("wechatpay: PROCESSING without a refund_id")
			}
			return RefundResult{Outcome: RefundAccepted, ProviderRefundID: a.RefundID, Detail: "wechatpay: " + a.Status}
		case "CLOSED", "ABNORMAL":
			return failed("wechatpay: refund %s %s", a.RefundID, a.Status)
		}
		return retry("wechatpay: refund in status %q", a.Status)
	}
	switch {
	case status == http.StatusTooManyRequests || status >= 500 || a.Code == "SYSTEM_ERROR" || a.Code == "FREQUENCY_LIMITED":
		return retry("wechatpay: HTTP %d %s: %s", status, a.Code, a.Message)
	case status >= 400 && status < 500:
		return failed("wechatpay: HTTP %d %s: %s", status, a.Code, a.Message)
	}
	return retry("wechatpay: HTTP %d", status)
}
