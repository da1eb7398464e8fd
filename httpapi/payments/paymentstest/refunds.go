package paymentstest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
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
	AnswerBadSign                       // a success signed with a key nobody trusts (Alipay, WeChat Pay, UnionPay)
	// AnswerPending: accepted, not finished (Stripe pending, WeChat Pay
	// PROCESSING, Alipay fund_change N, UnionPay respCode 00 whose query
	// says 03); SetRefundState finishes it.
	AnswerPending
)

// Refund states the fake keeps, as its queries answer them.
const (
	StatePending   = "pending"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// RefundProvider is a fake Stripe, Alipay, WeChat Pay and UnionPay refund
// API in one http.Handler. It checks each request's authentication exactly
// as the provider does (Stripe's secret key, Alipay's RSA2 request
// signature under the app's public key, WeChat Pay's Authorization
// signature under the merchant's public key, UnionPay's signMethod 01
// signature under the merchant certificate certId names), refuses what
// does not verify (401, or the provider's signature error), and signs its
// answers as the provider does. Answers come from Next (one per refund
// request, then AnswerSuccess); queries answer the refund's state; every
// verified refund request is recorded, and every verified query counted.
type RefundProvider struct {
	Keys         *Keys
	StripeKey    string
	AlipayAppID  string
	WeChatMchID  string
	MerchantPub  *rsa.PublicKey // the app's / merchant's public key
	MerchantCert string         // WeChat Pay serial_no expected
	UnionMerID   string
	UnionCertID  string // the certId whose key is MerchantPub

	mu       sync.Mutex
	Next     []RefundAnswer
	Requests []RefundCall
	Queries  int
	refunds  map[string]*fakeRefund // by key: the same key is the same refund
}

type fakeRefund struct {
	id, state, txnTime string
}

// SetRefundState finishes (or fails) the refund of key, as the provider
// would in its own time; false if there is none.
func (p *RefundProvider) SetRefundState(key, state string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.refunds[key]
	if ok {
		r.state = state
	}
	return ok
}

// RefundID is the provider's id of the refund of key, "" if none.
func (p *RefundProvider) RefundID(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.refunds[key]; ok {
		return r.id
	}
	return ""
}

// lookup answers a query: the refund of key, or nil.
func (p *RefundProvider) lookup(key string) *fakeRefund {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Queries++
	if r, ok := p.refunds[key]; ok {
		c := *r
		return &c
	}
	return nil
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
	a, r := p.recordAt(c, "")
	return a, r.id
}

// recordAt records a refund request; a success or a pending answer makes
// the refund (once per key), sent at txnTime (UnionPay).
func (p *RefundProvider) recordAt(c RefundCall, txnTime string) (RefundAnswer, fakeRefund) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Requests = append(p.Requests, c)
	a := AnswerSuccess
	if len(p.Next) > 0 {
		a, p.Next = p.Next[0], p.Next[1:]
	}
	if p.refunds == nil {
		p.refunds = map[string]*fakeRefund{}
	}
	r, ok := p.refunds[c.Key]
	if !ok && (a == AnswerSuccess || a == AnswerPending || a == AnswerTimeout && c.Provider == "unionpay") {
		r = &fakeRefund{id: fmt.Sprintf("rf%d", len(p.refunds)+1), state: StateSucceeded, txnTime: txnTime}
		if a == AnswerPending || c.Provider == "unionpay" && a == AnswerTimeout {
			r.state = StatePending
		}
		p.refunds[c.Key] = r
	}
	if r == nil {
		return a, fakeRefund{}
	}
	return a, *r
}

func (p *RefundProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	switch {
	case r.URL.Path == "/v1/refunds":
		p.stripe(w, r, body)
	case strings.HasPrefix(r.URL.Path, "/v1/refunds/") && r.Method == http.MethodGet:
		p.stripeQuery(w, r)
	case r.URL.Path == "/gateway.do":
		p.alipay(w, r, body)
	case r.URL.Path == "/v3/refund/domestic/refunds":
		p.wechat(w, r, body)
	case strings.HasPrefix(r.URL.Path, "/v3/refund/domestic/refunds/") && r.Method == http.MethodGet:
		p.wechatQuery(w, r)
	case r.URL.Path == "/gateway/api/backTransReq.do" || r.URL.Path == "/gateway/api/queryTrans.do":
		p.unionpay(w, r, body)
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
	case AnswerPending:
		fmt.Fprintf(w, `{"id":"re_%s","object":"refund","amount":%d,"status":"pending","payment_intent":%q}`, id, amount, f.Get("payment_intent"))
	default:
		fmt.Fprintf(w, `{"id":"re_%s","object":"refund","amount":%d,"status":"succeeded","payment_intent":%q}`, id, amount, f.Get("payment_intent"))
	}
}

// stripeQuery answers GET /v1/refunds/{id} with the refund object.
func (p *RefundProvider) stripeQuery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+p.StripeKey {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`)
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/v1/refunds/")
	var found *fakeRefund
	p.mu.Lock()
	p.Queries++
	for _, rf := range p.refunds {
		if "re_"+rf.id == id {
			c := *rf
			found = &c
		}
	}
	p.mu.Unlock()
	if found == nil {
		w.WriteHeader(404)
		fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such refund: '%s'"}}`, id)
		return
	}
	reason := ""
	if found.state == StateFailed {
		reason = "expired_or_canceled_card"
	}
	fmt.Fprintf(w, `{"id":%q,"object":"refund","status":%q,"failure_reason":%q}`, id, found.state, reason)
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
	method := f.Get("method")
	if f.Get("sign_type") != "RSA2" || f.Get("app_id") != p.AlipayAppID ||
		method != "alipay.trade.refund" && method != "alipay.trade.fastpay.refund.query" ||
		rsa.VerifyPKCS1v15(p.MerchantPub, crypto.SHA256, digest[:], sig) != nil {
		p.alipayAnswer(w, `{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-signature","sub_msg":"验签出错"}`, p.Keys.Alipay)
		return
	}
	if method == "alipay.trade.fastpay.refund.query" {
		var q struct {
			TradeNo      string `json:"trade_no"`
			OutRequestNo string `json:"out_request_no"`
		}
		json.Unmarshal([]byte(f.Get("biz_content")), &q)
		rf := p.lookup(q.OutRequestNo)
		resp := fmt.Sprintf(`{"code":"10000","msg":"Success","trade_no":%q,"out_request_no":%q}`, q.TradeNo, q.OutRequestNo)
		if rf != nil && rf.state == StateSucceeded {
			resp = fmt.Sprintf(`{"code":"10000","msg":"Success","trade_no":%q,"out_request_no":%q,"refund_amount":"50.00","refund_status":"REFUND_SUCCESS"}`, q.TradeNo, q.OutRequestNo)
		}
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		sig := base64.StdEncoding.EncodeToString(signSHA256(p.Keys.Alipay, []byte(resp)))
		fmt.Fprintf(w, `{"alipay_trade_fastpay_refund_query_response":%s,"sign":%q}`, resp, sig)
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
	case AnswerPending:
		p.alipayAnswer(w, fmt.Sprintf(`{"code":"10000","msg":"Success","trade_no":%q,"refund_fee":%q,"fund_change":"N"}`, biz.TradeNo, biz.RefundAmount), p.Keys.Alipay)
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
	case AnswerPending:
		p.wechatAnswer(w, 200, fmt.Sprintf(`{"refund_id":"50300000%s","out_refund_no":%q,"status":"PROCESSING"}`, id, req.OutRefundNo), p.Keys.WeChatPay)
	default:
		p.wechatAnswer(w, 200, fmt.Sprintf(`{"refund_id":"50300000%s","out_refund_no":%q,"status":"SUCCESS"}`, id, req.OutRefundNo), p.Keys.WeChatPay)
	}
}

// wechatAuthorized checks a request's Authorization as WeChat Pay does.
func (p *RefundProvider) wechatAuthorized(r *http.Request, body []byte) bool {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "WECHATPAY2-SHA256-RSA2048 ")
	fields := map[string]string{}
	for _, item := range strings.Split(auth, ",") {
		k, v, _ := strings.Cut(item, "=")
		fields[k] = strings.Trim(v, `"`)
	}
	msg := r.Method + "\n" + r.URL.Path + "\n" + fields["timestamp"] + "\n" + fields["nonce_str"] + "\n" + string(body) + "\n"
	digest := sha256.Sum256([]byte(msg))
	sig, _ := base64.StdEncoding.DecodeString(fields["signature"])
	return ok && fields["mchid"] == p.WeChatMchID && fields["serial_no"] == p.MerchantCert &&
		rsa.VerifyPKCS1v15(p.MerchantPub, crypto.SHA256, digest[:], sig) == nil
}

// wechatQuery answers GET /v3/refund/domestic/refunds/{out_refund_no}.
func (p *RefundProvider) wechatQuery(w http.ResponseWriter, r *http.Request) {
	if !p.wechatAuthorized(r, nil) {
		p.wechatAnswer(w, 401, `{"code":"SIGN_ERROR","message":"签名错误"}`, p.Keys.WeChatPay)
		return
	}
	no := strings.TrimPrefix(r.URL.Path, "/v3/refund/domestic/refunds/")
	rf := p.lookup(no)
	if rf == nil {
		p.wechatAnswer(w, 404, `{"code":"RESOURCE_NOT_EXISTS","message":"退款单不存在"}`, p.Keys.WeChatPay)
		return
	}
	status := map[string]string{StatePending: "PROCESSING", StateSucceeded: "SUCCESS", StateFailed: "ABNORMAL"}[rf.state]
	p.wechatAnswer(w, 200, fmt.Sprintf(`{"refund_id":"50300000%s","out_refund_no":%q,"status":%q}`, rf.id, no, status), p.Keys.WeChatPay)
}

// unionpay answers back transactions (a refund, txnType 04) and status
// queries (txnType 00) as UnionPay's gateway does: the request's
// signature is checked under the merchant certificate its certId names,
// and the answer is "k=v&k=v", unescaped, signed with the UnionPay
// signing certificate it carries in signPubKeyCert.
func (p *RefundProvider) unionpay(w http.ResponseWriter, r *http.Request, body []byte) {
	f, _ := url.ParseQuery(string(body))
	fields := map[string]string{}
	for k := range f {
		fields[k] = f.Get(k)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+fields[k])
	}
	inner := sha256.Sum256([]byte(strings.Join(parts, "&")))
	digest := sha256.Sum256([]byte(hex.EncodeToString(inner[:])))
	sig, _ := base64.StdEncoding.DecodeString(fields["signature"])
	answer := map[string]string{
		"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "accessType": "0", "bizType": fields["bizType"],
		"merId": fields["merId"], "orderId": fields["orderId"], "txnTime": fields["txnTime"], "txnType": fields["txnType"],
		"txnSubType": fields["txnSubType"],
	}
	if fields["version"] != "5.1.0" || fields["signMethod"] != "01" || fields["merId"] != p.UnionMerID || fields["certId"] != p.UnionCertID ||
		rsa.VerifyPKCS1v15(p.MerchantPub, crypto.SHA256, digest[:], sig) != nil {
		answer["respCode"], answer["respMsg"] = "11", "验证签名失败"
		p.unionAnswer(w, answer, p.Keys.UnionSigner, p.Keys.UnionCert)
		return
	}
	switch {
	case r.URL.Path == "/gateway/api/queryTrans.do" && fields["txnType"] == "00":
		p.mu.Lock()
		p.Queries++
		var rf *fakeRefund
		for k, x := range p.refunds {
			if strings.TrimPrefix(k, "rf") == fields["orderId"] && x.txnTime == fields["txnTime"] {
				c := *x
				rf = &c
			}
		}
		p.mu.Unlock()
		if rf == nil {
			answer["respCode"], answer["respMsg"] = "34", "查无此交易"
			break
		}
		answer["respCode"], answer["respMsg"] = "00", "成功[0000000]"
		answer["queryId"] = "2026" + rf.id
		answer["origRespCode"], answer["origRespMsg"] = map[string]string{StatePending: "03", StateSucceeded: "00", StateFailed: "01"}[rf.state],
			map[string]string{StatePending: "交易处理中", StateSucceeded: "成功[0000000]", StateFailed: "交易失败"}[rf.state]
	case r.URL.Path == "/gateway/api/backTransReq.do" && fields["txnType"] == "04":
		amount, _ := strconv.ParseInt(fields["txnAmt"], 10, 64)
		if fields["origQryId"] == "" || len(fields["currencyCode"]) != 3 || fields["backUrl"] == "" || len(fields["orderId"]) < 8 || len(fields["orderId"]) > 32 {
			answer["respCode"], answer["respMsg"] = "30", "报文格式错误"
			break
		}
		a, rf := p.recordAt(RefundCall{Provider: "unionpay", Key: "rf" + fields["orderId"], Transaction: fields["origQryId"], Amount: amount, Currency: fields["currencyCode"]}, fields["txnTime"])
		switch a {
		case AnswerTimeout:
			<-r.Context().Done()
			return
		case AnswerFailure:
			answer["respCode"], answer["respMsg"] = "2010002", "退货金额超限"
		case AnswerBadSign:
			answer["respCode"], answer["respMsg"] = "00", "成功[0000000]"
			p.unionAnswer(w, answer, p.Keys.Other, p.Keys.OtherCert)
			return
		default:
			answer["respCode"], answer["respMsg"], answer["queryId"] = "00", "成功[0000000]", "2026"+rf.id
		}
	default:
		answer["respCode"], answer["respMsg"] = "30", "报文格式错误"
	}
	p.unionAnswer(w, answer, p.Keys.UnionSigner, p.Keys.UnionCert)
}

// unionAnswer signs fields as UnionPay does and writes them unescaped.
func (p *RefundProvider) unionAnswer(w http.ResponseWriter, fields map[string]string, key *rsa.PrivateKey, cert *x509.Certificate) {
	form, _ := url.ParseQuery(string(UnionPayForm(key, cert, fields)))
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+form.Get(k))
	}
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	io.WriteString(w, strings.Join(parts, "&"))
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
