package payments

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// AlipayRefunds sends refunds through Alipay's open API method
// alipay.trade.refund: a form POST to the gateway with the common
// parameters (app_id, method, format=JSON, charset=utf-8, sign_type=RSA2,
// timestamp "yyyy-MM-dd HH:mm:ss" in Beijing time, version=1.0) and
// biz_content {"trade_no","refund_amount","out_request_no"}; sign is the
// base64 SHA256withRSA signature, under the app's private key, of every
// non-empty parameter but sign, sorted by key and joined as "k=v&k=v" (the
// Alipay SDK's AlipaySignature.getSignCheckContentV1).
//
// Alipay answers {"alipay_trade_refund_response":{...},"sign":"..."}, sign
// being the RSA2 signature of the response object's exact text under the
// Alipay public key: it is verified before anything in it is believed.
//
//	code 10000                               RefundDone (fund_change "N": refunded before with this out_request_no)
//	code 20000, sub_code ACQ.SYSTEM_ERROR    RefundRetry
//	any other code                           RefundFailed: sub_code and sub_msg
//
// out_request_no is the refund's key, so a retry is the same refund.
// refund_amount is yuan with two decimals, written without floating point.
type AlipayRefunds struct {
	GatewayURL string // https://openapi.alipay.com/gateway.do
	AppID      string
	PrivateKey *rsa.PrivateKey // the app's private key (应用私钥)
	AlipayKey  *rsa.PublicKey  // Alipay's public key (支付宝公钥), as for notifications
	Client     *http.Client
	Now        func() time.Time // [time.Now]
}

// AlipayGatewayDefault is Alipay's production gateway; its sandbox is
// https://openapi-sandbox.dl.alipaydev.com/gateway.do.
const AlipayGatewayDefault = "https://openapi.alipay.com/gateway.do"

var beijing = time.FixedZone("CST", 8*3600)

func (a *AlipayRefunds) Refund(ctx context.Context, r RefundRequest) RefundResult {
	biz, _ := json.Marshal(map[string]string{
		"trade_no": r.TransactionID, "refund_amount": FormatDecimalMinor(r.AmountMinor), "out_request_no": r.Key,
	})
	params := map[string]string{
		"app_id": a.AppID, "method": "alipay.trade.refund", "format": "JSON", "charset": "utf-8",
		"sign_type": "RSA2", "timestamp": nowOr(a.Now).In(beijing).Format("2006-01-02 15:04:05"), "version": "1.0",
		"biz_content": string(biz),
	}
	digest := sha256.Sum256(AlipaySignContent(params))
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.PrivateKey, crypto.SHA256, digest[:])
	if err != nil {
		return failed("alipay: cannot sign: %v", err)
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	form.Set("sign", base64.StdEncoding.EncodeToString(sig))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.GatewayURL, strings.NewReader(form.Encode()))
	if err != nil {
		return failed("alipay: cannot build the request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	status, _, body, err := send(a.Client, req)
	if err != nil {
		return retry("alipay: no answer: %v", err)
	}
	if status != http.StatusOK {
		return retry("alipay: HTTP %d", status)
	}
	return parseAlipayRefund(a.AlipayKey, body)
}

// AlipaySignContent is what an Alipay request signs: the non-empty
// parameters but sign, sorted by key, as "k=v&k=v" (values not escaped).
func AlipaySignContent(params map[string]string) []byte {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + params[k])
	}
	return b.Bytes()
}

type alipayRefundEnvelope struct {
	Response json.RawMessage `json:"alipay_trade_refund_response"`
	Sign     string          `json:"sign"`
}

type alipayRefundResponse struct {
	Code       string `json:"code"`
	Msg        string `json:"msg"`
	SubCode    string `json:"sub_code"`
	SubMsg     string `json:"sub_msg"`
	TradeNo    string `json:"trade_no"`
	FundChange string `json:"fund_change"`
}

// parseAlipayRefund verifies and maps the gateway's answer.
func parseAlipayRefund(key *rsa.PublicKey, body []byte) RefundResult {
	var env alipayRefundEnvelope
	if err := json.Unmarshal(body, &env); err != nil || len(env.Response) == 0 {
		return retry("alipay: the answer is not an alipay_trade_refund_response")
	}
	sig, err := base64.StdEncoding.DecodeString(env.Sign)
	if err != nil || len(sig) != key.Size() {
		return retry("alipay: the answer carries no valid sign; not believed")
	}
	digest := sha256.Sum256(env.Response)
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) != nil {
		return retry("alipay: the answer's sign does not verify under the Alipay public key; not believed")
	}
	var resp alipayRefundResponse
	if err := json.Unmarshal(env.Response, &resp); err != nil {
		return retry("alipay: the signed answer does not parse")
	}
	switch {
	case resp.Code == "10000":
		detail := "alipay: refunded"
		if resp.FundChange == "N" {
			detail = "alipay: refunded before (fund_change N)"
		}
		return RefundResult{Outcome: RefundDone, ProviderRefundID: resp.TradeNo, Detail: detail}
	case resp.Code == "20000" || strings.HasSuffix(resp.SubCode, "ACQ.SYSTEM_ERROR"):
		return retry("alipay: %s %s: %s", resp.Code, resp.SubCode, resp.SubMsg)
	}
	return failed("alipay: %s %s: %s", resp.Code, resp.SubCode, resp.SubMsg)
}
