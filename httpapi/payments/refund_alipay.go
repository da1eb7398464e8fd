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
//	code 10000, fund_change Y                RefundDone
//	code 10000, fund_change N or none        RefundAccepted: alipay.trade.fastpay.refund.query says
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
	body, res := a.call(ctx, "alipay.trade.refund", map[string]string{
		"trade_no": r.TransactionID, "refund_amount": FormatDecimalMinor(r.AmountMinor), "out_request_no": r.Key,
	})
	if body == nil {
		return res
	}
	return parseAlipayRefund(a.AlipayKey, body)
}

// QueryRefund asks alipay.trade.fastpay.refund.query about the refund of
// out_request_no r.Key of trade r.TransactionID.
func (a *AlipayRefunds) QueryRefund(ctx context.Context, r RefundRequest) RefundResult {
	body, res := a.call(ctx, "alipay.trade.fastpay.refund.query", map[string]string{
		"trade_no": r.TransactionID, "out_request_no": r.Key,
	})
	if body == nil {
		return res
	}
	return parseAlipayRefundQuery(a.AlipayKey, body)
}

// call signs and posts one open API request; body is nil when there is
// no answer worth reading, and res says why.
func (a *AlipayRefunds) call(ctx context.Context, method string, biz map[string]string) (body []byte, res RefundResult) {
	bizJSON, _ := json.Marshal(biz)
	params := map[string]string{
		"app_id": a.AppID, "method": method, "format": "JSON", "charset": "utf-8",
		"sign_type": "RSA2", "timestamp": nowOr(a.Now).In(beijing).Format("2006-01-02 15:04:05"), "version": "1.0",
		"biz_content": string(bizJSON),
	}
	digest := sha256.Sum256(AlipaySignContent(params))
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.PrivateKey, crypto.SHA256, digest[:])
	if err != nil {
		return nil, retry("alipay: cannot sign: %v", err)
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	form.Set("sign", base64.StdEncoding.EncodeToString(sig))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.GatewayURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, failed("alipay: cannot build the request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	status, _, body, err := send(a.Client, req)
	if err != nil {
		return nil, retry("alipay: no answer: %v", err)
	}
	if status != http.StatusOK {
		return nil, retry("alipay: HTTP %d", status)
	}
	return body, RefundResult{}
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

// alipayVerified returns the response object named member of an answer,
// once its sign verifies under the Alipay public key; nil and a
// RefundRetry otherwise.
func alipayVerified(key *rsa.PublicKey, body []byte, member string) (json.RawMessage, RefundResult) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil || len(env[member]) == 0 {
		return nil, retry("alipay: the answer is not an %s", member)
	}
	var sign string
	if err := json.Unmarshal(env["sign"], &sign); err != nil {
		return nil, retry("alipay: the answer carries no valid sign; not believed")
	}
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil || len(sig) != key.Size() {
		return nil, retry("alipay: the answer carries no valid sign; not believed")
	}
	digest := sha256.Sum256(env[member])
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) != nil {
		return nil, retry("alipay: the answer's sign does not verify under the Alipay public key; not believed")
	}
	return env[member], RefundResult{}
}

type alipayRefundResponse struct {
	Code       string `json:"code"`
	Msg        string `json:"msg"`
	SubCode    string `json:"sub_code"`
	SubMsg     string `json:"sub_msg"`
	TradeNo    string `json:"trade_no"`
	FundChange string `json:"fund_change"`
}

// parseAlipayRefund verifies and maps the gateway's answer to
// alipay.trade.refund.
func parseAlipayRefund(key *rsa.PublicKey, body []byte) RefundResult {
	raw, res := alipayVerified(key, body, "alipay_trade_refund_response")
	if raw == nil {
		return res
	}
	var resp alipayRefundResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return retry("alipay: the signed answer does not parse")
	}
	switch {
	case resp.Code == "10000" && resp.FundChange == "Y":
		return RefundResult{Outcome: RefundDone, ProviderRefundID: resp.TradeNo, Detail: "alipay: refunded"}
	case resp.Code == "10000":
		// Alipay: code 10000 says the call worked; only fund_change Y says
		// money moved. Otherwise (N: this out_request_no refunded before,
		// or no money moved yet) the refund query says.
		if resp.TradeNo == "" {
			return retry("alipay: code 10000 without a trade_no")
		}
		return RefundResult{Outcome: RefundAccepted, ProviderRefundID: resp.TradeNo,
			Detail: "alipay: accepted, fund_change " + orDefault(resp.FundChange, "absent") + "; asking alipay.trade.fastpay.refund.query"}
	case resp.Code == "20000" || strings.HasSuffix(resp.SubCode, "ACQ.SYSTEM_ERROR"):
		return retry("alipay: %s %s: %s", resp.Code, resp.SubCode, resp.SubMsg)
	}
	return failed("alipay: %s %s: %s", resp.Code, resp.SubCode, resp.SubMsg)
}

type alipayRefundQueryResponse struct {
	Code         string `json:"code"`
	Msg          string `json:"msg"`
	SubCode      string `json:"sub_code"`
	SubMsg       string `json:"sub_msg"`
	TradeNo      string `json:"trade_no"`
	OutRequestNo string `json:"out_request_no"`
	RefundAmount string `json:"refund_amount"`
	RefundStatus string `json:"refund_status"`
}

// parseAlipayRefundQuery verifies and maps the answer to
// alipay.trade.fastpay.refund.query: code 10000 only says the query
// worked; refund_status REFUND_SUCCESS says the refund did, and its
// absence that Alipay has no refund of this out_request_no (not received,
// or failed): it is sent again with the same out_request_no, as Alipay's
// documentation says to.
func parseAlipayRefundQuery(key *rsa.PublicKey, body []byte) RefundResult {
	raw, res := alipayVerified(key, body, "alipay_trade_fastpay_refund_query_response")
	if raw == nil {
		return res
	}
	var resp alipayRefundQueryResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return retry("alipay: the signed answer does not parse")
	}
	switch {
	case resp.Code == "10000" && resp.RefundStatus == "REFUND_SUCCESS":
		return RefundResult{Outcome: RefundDone, ProviderRefundID: resp.TradeNo, Detail: "alipay: REFUND_SUCCESS"}
	case resp.Code == "10000":
		return RefundResult{Outcome: RefundNotFound, Detail: "alipay: no refund_status: the refund did not land; sending it again"}
	case resp.Code == "20000" || strings.HasSuffix(resp.SubCode, "ACQ.SYSTEM_ERROR"):
		return retry("alipay: %s %s: %s", resp.Code, resp.SubCode, resp.SubMsg)
	}
	return retry("alipay: refund query %s %s: %s", resp.Code, resp.SubCode, resp.SubMsg)
}
