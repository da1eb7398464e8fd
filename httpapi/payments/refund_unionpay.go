package payments

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// UnionPayRefunds sends refunds (退货, txnType 04) through UnionPay's
// online gateway, version 5.1.0, signMethod 01, as UnionPay's acp SDK
// samples do (Form_6_4_Refund, Form_6_5_Query; smartwalle/unionpay in Go):
//
//	POST {GatewayURL}/gateway/api/backTransReq.do   (form, UTF-8)
//	version=5.1.0 encoding=UTF-8 signMethod=01 txnType=04 txnSubType=00
//	bizType=000201 channelType=07 accessType=0 merId certId
//	orderId=<the refund's own order number> txnTime=<yyyyMMddHHmmss, Beijing>
//	txnAmt=<fen> currencyCode=<the payment's, 156 for CNY> origQryId=<the consume's queryId> backUrl
//	signature=base64 SHA256withRSA(SHA-256 hex of the sorted "k=v&k=v" of every other field)
//
// under the merchant's signing key; certId is its certificate's serial
// number in decimal. orderId is the refund's key less its "rf" prefix: 32
// hexadecimal characters, the same on every attempt of a payout.
//
// UnionPay answers "k=v&k=v" (values not escaped), signed as its
// notifications are: signPubKeyCert is checked against the configured
// UnionPay root and middle certificates and the signature verified before
// anything in it is believed (the notification verifier does both). A
// back transaction's answer only says whether UnionPay took it:
//
//	respCode 00                   RefundAccepted: the back notification or the query says how it ended
//	respCode 03, 04, 05           RefundAccepted too; and so is no answer, or one that does
//	                              not verify: UnionPay's samples query after a timeout
//	any other respCode            RefundFailed: respCode and respMsg
//
// ProviderRefundID is the refund's txnTime (the query's key with
// orderId), then ":" and its queryId once known. The status query is
//
//	POST {GatewayURL}/gateway/api/queryTrans.do
//	txnType=00 txnSubType=00 bizType=000000 orderId txnTime (and the common fields)
//
//	respCode 00, origRespCode 00             RefundDone
//	respCode 00, origRespCode 03, 04, 05     RefundAccepted (still processing)
//	respCode 00, any other origRespCode      RefundFailed: origRespCode and origRespMsg
//	respCode 34 (no such transaction)        RefundNotFound: sent again, a new txnTime
//	anything else                            RefundRetry
type UnionPayRefunds struct {
	GatewayURL string // https://gateway.95516.com; the test environment is https://gateway.test.95516.com
	MerID      string
	SignKey    *rsa.PrivateKey // the merchant's signing key (acp_prod_sign.pfx, exported as PEM)
	CertID     string          // the signing certificate's serial number, decimal
	BackURL    string          // where UnionPay posts the refund's back notification
	Verifier   *UnionPay       // checks the answers' certificate and signature
	Client     *http.Client
	Now        func() time.Time // [time.Now]
}

// UnionPayGatewayDefault is UnionPay's production gateway.
const UnionPayGatewayDefault = "https://gateway.95516.com"

const (
	unionPayBackPath  = "/gateway/api/backTransReq.do"
	unionPayQueryPath = "/gateway/api/queryTrans.do"
	unionPayTimeFmt   = "20060102150405"
)

// UnionPayOrderID is the orderId of a refund of key: 8 to 32 letters and
// digits, as UnionPay's orderId takes.
func UnionPayOrderID(key string) string {
	id := strings.TrimPrefix(key, "rf")
	var b strings.Builder
	for i := 0; i < len(id) && b.Len() < 32; i++ {
		if c := id[i]; c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
		}
	}
	for b.Len() < 8 {
		b.WriteByte('0')
	}
	return b.String()
}

func (u *UnionPayRefunds) Refund(ctx context.Context, r RefundRequest) RefundResult {
	code := ""
	for n, c := range unionPayCurrencies {
		if c == r.Currency {
			code = n
		}
	}
	if code == "" {
		return failed("unionpay: no currencyCode onsale knows for %s", truncate(r.Currency))
	}
	txnTime := nowOr(u.Now).In(beijing).Format(unionPayTimeFmt)
	fields := map[string]string{
		"txnType": "04", "txnSubType": "00", "bizType": "000201", "channelType": "07",
		"orderId": UnionPayOrderID(r.Key), "txnTime": txnTime, "txnAmt": strconv.FormatInt(r.AmountMinor, 10),
		"currencyCode": code, "origQryId": r.TransactionID, "backUrl": u.BackURL,
	}
	f, res, unanswered := u.call(ctx, unionPayBackPath, fields)
	accepted := RefundResult{Outcome: RefundAccepted, ProviderRefundID: txnTime}
	if f == nil {
		if unanswered {
			// Sent, perhaps taken: UnionPay's samples query after a
			// timeout rather than send again; a forged answer is not
			// believed either way, and the query says.
			accepted.Detail = res.Detail + "; querying it"
			return accepted
		}
		return res
	}
	switch rc := f.get("respCode"); rc {
	case "00", "03", "04", "05":
		if q := f.get("queryId"); q != "" && rc == "00" {
			accepted.ProviderRefundID += ":" + q
		}
		accepted.Detail = "unionpay: accepted, respCode " + rc
		return accepted
	default:
		return failed("unionpay: respCode %s: %s", truncate(rc), truncate(f.get("respMsg")))
	}
}

// QueryRefund asks UnionPay how the refund sent at r.ProviderRefundID's
// txnTime ended.
func (u *UnionPayRefunds) QueryRefund(ctx context.Context, r RefundRequest) RefundResult {
	txnTime, queryID, _ := strings.Cut(r.ProviderRefundID, ":")
	if _, err := time.Parse(unionPayTimeFmt, txnTime); err != nil {
		return RefundResult{Outcome: RefundNotFound, Detail: "unionpay: no txnTime to query by"}
	}
	f, res, _ := u.call(ctx, unionPayQueryPath, map[string]string{
		"txnType": "00", "txnSubType": "00", "bizType": "000000", "orderId": UnionPayOrderID(r.Key), "txnTime": txnTime,
	})
	if f == nil {
		return res
	}
	if q := f.get("queryId"); q != "" {
		queryID = q
	}
	id := txnTime
	if queryID != "" {
		id += ":" + queryID
	}
	switch rc := f.get("respCode"); {
	case rc == "34":
		return RefundResult{Outcome: RefundNotFound, Detail: "unionpay: respCode 34: no such refund; sending it again"}
	case rc != "00":
		return retry("unionpay: query respCode %s: %s", truncate(rc), truncate(f.get("respMsg")))
	}
	switch orc := f.get("origRespCode"); orc {
	case "00":
		return RefundResult{Outcome: RefundDone, ProviderRefundID: id, Detail: "unionpay: origRespCode 00"}
	case "03", "04", "05":
		return RefundResult{Outcome: RefundAccepted, ProviderRefundID: id, Detail: "unionpay: processing, origRespCode " + orc}
	default:
		return failed("unionpay: origRespCode %s: %s", truncate(orc), truncate(f.get("origRespMsg")))
	}
}

// call signs fields with the common ones, posts them, and verifies the
// answer; f is nil when there is none worth reading, and res says why;
// unanswered: the request went out, perhaps reached UnionPay, and no
// answer worth believing came back (none, an error page, a forgery).
func (u *UnionPayRefunds) call(ctx context.Context, path string, fields map[string]string) (f form, res RefundResult, unanswered bool) {
	all := map[string]string{
		"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "accessType": "0", "channelType": "07",
		"merId": u.MerID, "certId": u.CertID,
	}
	for k, v := range fields {
		all[k] = v
	}
	sig, err := UnionPaySign(u.SignKey, all)
	if err != nil {
		return nil, retry("unionpay: cannot sign: %v", err), false
	}
	all["signature"] = sig
	body := url.Values{}
	for k, v := range all {
		body.Set(k, v)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(u.GatewayURL, "/")+path, strings.NewReader(body.Encode()))
	if err != nil {
		return nil, failed("unionpay: cannot build the request: %v", err), false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=UTF-8")
	status, _, answer, err := send(u.Client, req)
	if err != nil {
		return nil, retry("unionpay: no answer: %v", err), true
	}
	if status != http.StatusOK {
		return nil, retry("unionpay: HTTP %d", status), true
	}
	f, err = ParseUnionPayAnswer(answer)
	if err != nil {
		return nil, retry("unionpay: the answer does not parse: %v", err), true
	}
	if verr := u.Verifier.verifyForm(f, nowOr(u.Now)); verr != nil {
		return nil, retry("unionpay: the answer's signature does not verify (%s); not believed", verr.Code), true
	}
	if f.get("merId") != u.MerID || f.get("orderId") != all["orderId"] || f.get("txnTime") != all["txnTime"] {
		return nil, retry("unionpay: the signed answer is about another transaction; not believed"), true
	}
	return f, RefundResult{}, false
}

// UnionPaySign is signMethod 01's signature of fields (every one but
// signature, empty values included, sorted, "k=v&k=v"), base64.
func UnionPaySign(key *rsa.PrivateKey, fields map[string]string) (string, error) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + fields[k])
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, unionPayDigest([]byte(b.String())))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

var errUnionPayAnswer = errors.New("not a UnionPay answer")

// ParseUnionPayAnswer reads a synchronous answer as UnionPay's SDK does
// (SDKUtil.convertResultStringToMap): "k=v" pairs joined by "&", values
// not escaped (signPubKeyCert carries its PEM's newlines), a value in
// braces or brackets kept whole even when it holds "&" or "=". Keys are
// unique and non-empty; at most formFieldsMax of them.
func ParseUnionPayAnswer(body []byte) (form, error) {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return nil, errUnionPayAnswer
	}
	var f form
	for len(s) > 0 {
		if len(f) == formFieldsMax {
			return nil, errFormTooMany
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.IndexByte(s[:eq], '&') >= 0 {
			return nil, errUnionPayAnswer
		}
		key := s[:eq]
		s = s[eq+1:]
		end, depth := len(s), 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '{', '[':
				depth++
			case '}', ']':
				if depth > 0 {
					depth--
				}
			case '&':
				if depth == 0 {
					end = i
				}
			}
			if end == i {
				break
			}
		}
		if depth != 0 {
			return nil, errUnionPayAnswer
		}
		f = append(f, formField{key, s[:end]})
		if end < len(s) {
			end++ // the '&'
		}
		s = s[end:]
	}
	sort.Slice(f, func(i, j int) bool { return f[i].key < f[j].key })
	for i := 1; i < len(f); i++ {
		if f[i].key == f[i-1].key {
			return nil, errFormDuplicate
		}
	}
	return f, nil
}
