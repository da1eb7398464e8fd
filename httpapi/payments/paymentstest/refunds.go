package paymentstest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RefundAnswer is how a fake provider answers a refund it verified.
type RefundAnswer uint8

const (
	AnswerSuccess   RefundAnswer = iota // the refund is made (the same key again: the same refund)
	AnswerDuplicate                     // the payment was refunded already
	AnswerFailure                       // refused for good (insufficient balance)
	AnswerTimeout                       // no answer until the caller gives up
	AnswerBadSign                       // a success signed with a key nobody trusts (Alipay, WeChat Pay)
)

// RefundProvider is a fake Stripe, Alipay and WeChat Pay refund API in one
// http.Handler. It checks each request's authentication exactly as the
// provider does (Stripe's secret key, Alipay's RSA2 request signature
// under the app's public key, WeChat Pay's Authorization signature under
// the merchant's public key), refuses what does not verify with 401, and
// signs its answers as the provider does. Answers come from Next (one per
// request, then AnswerSuccess); every verified request is recorded.
type RefundProvider struct {
	Keys         *Keys
	StripeKey    string
	AlipayAppID  string
	WeChatMchID  string
	MerchantPub  *rsa.PublicKey // the app's / merchant's public key
	MerchantCert string         // WeChat Pay serial_no expected

	mu       sync.Mutex
	Next     []RefundAnswer
	Requests []RefundCall
	refunds  map[string]string // key -> refund id: the same key is the same refund
}

// RefundCall is one verified refund request.
type RefundCall struct {
	Provider, Key, Transaction string
	Amount, Total              int64
	Currency                   string
}

// Calls returns the recorded requests.
func (p *RefundProvider) Calls() []RefundCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]RefundCall(nil), p.Requests...)
}

// SetNext queues answers.
func (p *RefundProvider) SetNext(a ...RefundAnswer) {
	p.mu.Lock()
	p.Next = append(p.Next, a...)
	p.mu.Unlock()
}

func (p *RefundProvider) record(c RefundCall) (RefundAnswer, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Requests = append(p.Requests, c)
	a := AnswerSuccess
	if len(p.Next) > 0 {
		a, p.Next = p.Next[0], p.Next[1:]
	}
	if p.refunds == nil {
		p.refunds = map[string]string{}
	}
	id, ok := p.refunds[c.Key]
	if !ok && a == AnswerSuccess {
		id = fmt.Sprintf("rf%d", len(p.refunds)+1)
		p.refunds[c.Key] = id
	}
	return a, id
}

func (p *RefundProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	switch {
	case r.URL.Path == "/v1/refunds":
		p.stripe(w, r, body)
	case r.URL.Path == "/gateway.do":
		p.alipay(w, r, body)
	case r.URL.Path == "/v3/refund/domestic/refunds":
		p.wechat(w, r, body)
	default:
		http.NotFound(w, r)
	}
}

func (p *RefundProvider) stripe(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+p.StripeKey {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`)
		return
	}
	f, _ := url.ParseQuery(string(body))
	amount, _ := strconv.ParseInt(f.Get("amount"), 10, 64)
	key := r.Header.Get("Idempotency-Key")
	if key == "" || f.Get("payment_intent") == "" {
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"parameter_missing","message":"missing"}}`)
		return
	}
	a, id := p.record(RefundCall{Provider: "stripe", Key: key, Transaction: f.Get("payment_intent"), Amount: amount})
	switch a {
	case AnswerTimeout:
		<-r.Context().Done()
	case AnswerDuplicate:
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}`)
	case AnswerFailure:
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"type":"invalid_request_error","code":"amount_too_large","message":"Refund amount is greater than unrefunded amount on charge"}}`)
	default:
		fmt.Fprintf(w, `{"id":"re_%s","object":"refund","amount":%d,"status":"succeeded","payment_intent":%q}`, id, amount, f.Get("payment_intent"))
	}
}

func (p *RefundProvider) alipay(w http.ResponseWriter, r *http.Request, body []byte) {
	f, _ := url.ParseQuery(string(body))
	keys := make([]string, 0, len(f))
	for k := range f {
		if k != "sign" && f.Get(k) != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+f.Get(k))
	}
	sig, _ := base64.StdEncoding.DecodeString(f.Get("sign"))
	digest := sha256.Sum256([]byte(strings.Join(parts, "&")))
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	if f.Get("sign_type") != "RSA2" || f.Get("app_id") != p.AlipayAppID || f.Get("method") != "alipay.trade.refund" ||
		rsa.VerifyPKCS1v15(p.MerchantPub, crypto.SHA256, digest[:], sig) != nil {
		p.alipayAnswer(w, `{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"}`, p.Keys.Alipay)
		return
	}
	var biz struct {
		TradeNo      string `json:"trade_no"`
		RefundAmount string `json:"refund_amount"`
		OutRequestNo string `json:"out_request_no"`
	}
	json.Unmarshal([]byte(f.Get("biz_content")), &biz)
	fen := yuanToFen(biz.RefundAmount)
	a, _ := p.record(RefundCall{Provider: "alipay", Key: biz.OutRequestNo, Transaction: biz.TradeNo, Amount: fen})
	switch a {
	case AnswerTimeout:
		<-r.Context().Done()
	case AnswerDuplicate:
		p.alipayAnswer(w, fmt.Sprintf(`{"code":"10000","msg":"Success","trade_no":%q,"refund_fee":%q,"fund_change":"N"}`, biz.TradeNo, biz.RefundAmount), p.Keys.Alipay)
	case AnswerFailure:
		p.alipayAnswer(w, `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SELLER_BALANCE_NOT_ENOUGH","sub_msg":"卖家余额不足"}`, p.Keys.Alipay)
	case AnswerBadSign:
		p.alipayAnswer(w, fmt.Sprintf(`{"code":"10000","msg":"Success","trade_no":%q,"fund_change":"Y"}`, biz.TradeNo), p.Keys.Other)
	default:
		p.alipayAnswer(w, fmt.Sprintf(`{"code":"10000","msg":"Success","trade_no":%q,"refund_fee":%q,"fund_change":"Y"}`, biz.TradeNo, biz.RefundAmount), p.Keys.Alipay)
	}
}

// alipayAnswer wraps a response object and signs its exact text.
func (p *RefundProvider) alipayAnswer(w http.ResponseWriter, resp string, key *rsa.PrivateKey) {
	sig := base64.StdEncoding.EncodeToString(signSHA256(key, []byte(resp)))
	fmt.Fprintf(w, `{"alipay_trade_refund_response":%s,"sign":%q}`, resp, sig)
}

func yuanToFen(s string) int64 {
	whole, frac, _ := strings.Cut(s, ".")
	n, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "00")[:2], 10, 64)
	return n*100 + f
}

func (p *RefundProvider) wechat(w http.ResponseWriter, r *http.Request, body []byte) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "WECHATPAY2-SHA256-RSA2048 ")
	fields := map[string]string{}
	for _, item := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(item, "=")
		fields[k] = strings.Trim(v, `"`)
	}
	msg := "POST\n" + r.URL.Path + "\n" + fields["timestamp"] + "\n" + fields["nonce_str"] + "\n" + string(body) + "\n"
	digest := sha256.Sum256([]byte(msg))
	sig, _ := base64.StdEncoding.DecodeString(fields["signature"])
	if !ok || fields["mchid"] != p.WeChatMchID || fields["serial_no"] != p.MerchantCert ||
		rsa.VerifyPKCS1v15(p.MerchantPub, crypto.SHA256, digest[:], sig) != nil {
		p.wechatAnswer(w, 401, `{"code":"SIGN_ERROR","message":"签名错误"}`, p.Keys.WeChatPay)
		return
	}
	var req struct {
		TransactionID string `json:"transaction_id"`
		OutRefundNo   string `json:"out_refund_no"`
		Amount        struct {
			Refund, Total int64
			Currency      string
		} `json:"amount"`
	}
	json.Unmarshal(body, &req)
	a, id := p.record(RefundCall{Provider: "wechatpay", Key: req.OutRefundNo, Transaction: req.TransactionID,
		Amount: req.Amount.Refund, Total: req.Amount.Total, Currency: req.Amount.Currency})
	switch a {
	case AnswerTimeout:
		<-r.Context().Done()
	case AnswerDuplicate:
		p.wechatAnswer(w, 200, fmt.Sprintf(`{"refund_id":"50300000%s","out_refund_no":%q,"status":"SUCCESS"}`, "0", req.OutRefundNo), p.Keys.WeChatPay)
	case AnswerFailure:
		p.wechatAnswer(w, 403, `{"code":"NOT_ENOUGH","message":"基本账户余额不足，请充值后重新发起"}`, p.Keys.WeChatPay)
	case AnswerBadSign:
		p.wechatAnswer(w, 200, fmt.Sprintf(`{"refund_id":"5030000099","out_refund_no":%q,"status":"SUCCESS"}`, req.OutRefundNo), p.Keys.Other)
	default:
		p.wechatAnswer(w, 200, fmt.Sprintf(`{"refund_id":"50300000%s","out_refund_no":%q,"status":"PROCESSING"}`, id, req.OutRefundNo), p.Keys.WeChatPay)
	}
}

// wechatAnswer signs an answer as WeChat Pay does, with the platform
// certificate's serial.
func (p *RefundProvider) wechatAnswer(w http.ResponseWriter, status int, body string, key *rsa.PrivateKey) {
	ts, sig := WeChatPaySign(key, time.Now(), "answernonce", []byte(body))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", "answernonce")
	h.Set("Wechatpay-Signature", sig)
	h.Set("Wechatpay-Serial", SerialOf(p.Keys.WeChatPayCert))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// AlipaySignResponse is the sign Alipay puts beside a response object:
// base64 SHA256withRSA over the object's exact text.
func AlipaySignResponse(key *rsa.PrivateKey, resp string) string {
	return base64.StdEncoding.EncodeToString(signSHA256(key, []byte(resp)))
}
