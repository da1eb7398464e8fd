package payments

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WeChatPay verifies WeChat Pay API v3 notifications: a JSON POST whose
// headers carry the signature,
//
//	Wechatpay-Timestamp: <unix seconds>
//	Wechatpay-Nonce:     <random string>
//	Wechatpay-Signature: base64 SHA256withRSA (PKCS #1 v1.5) over "<timestamp>\n<nonce>\n<raw body>\n"
//	Wechatpay-Serial:    the platform certificate's serial, or a WeChat Pay public key id (PUB_KEY_ID_...)
//
// verified with the key the serial names (several may be configured, so a
// rotation works), the timestamp within Tolerance both ways. Then the body's
// resource is decrypted: AEAD_AES_256_GCM under the 32-byte APIv3 key, with
// the resource's 12-byte nonce and associated_data, the tag in the last 16
// bytes of the ciphertext. Inside, appid and mchid must be ours:
//
//	trade_state SUCCESS                    Succeeded
//	trade_state CLOSED, PAYERROR, REVOKED  Failed
//	any other trade_state                  Ignored (NOTPAY, USERPAYING, REFUND)
//	original_type "refund"                 Refunded, naming the refund: refund_id, and
//	                                       refund_status (SUCCESS; CLOSED, ABNORMAL: failed)
//
// amount.total is in fen and amount.currency the ISO code. WeChat Pay wants
// HTTP 200 or 204 once handled, and on failure a 4xx/5xx with
// {"code":"FAIL","message":"..."}; it then retries.
type WeChatPay struct {
	mchID, appID string
	aead         cipher.AEAD
	keys         map[string]wechatKey // by upper-cased serial or public key id
	tolerance    time.Duration
}

type wechatKey struct {
	pub       *rsa.PublicKey
	notBefore time.Time // zero for a public key (no validity of its own)
	notAfter  time.Time
}

// WeChatPayToleranceDefault is the window WeChat Pay's documentation and
// SDKs use for Wechatpay-Timestamp.
const WeChatPayToleranceDefault = 5 * time.Minute

// NewWeChatPay returns a verifier. apiV3Key must be 32 bytes; certs are the
// platform certificates (each is named by its serial); publicKeys are
// WeChat Pay public keys by their id (PUB_KEY_ID_...).
func NewWeChatPay(mchID, appID string, apiV3Key []byte, certs []*x509.Certificate, publicKeys map[string]*rsa.PublicKey, tolerance time.Duration) (*WeChatPay, error) {
	if mchID == "" || appID == "" {
		return nil, fmt.Errorf("payments: WeChat Pay needs the merchant id and the app id")
	}
	if len(apiV3Key) != 32 {
		return nil, fmt.Errorf("payments: the WeChat Pay APIv3 key has %d bytes; it has 32", len(apiV3Key))
	}
	block, _ := aes.NewCipher(apiV3Key)
	aead, _ := cipher.NewGCM(block) // 12-byte nonce, 16-byte tag: as WeChat Pay uses it
	w := &WeChatPay{mchID: mchID, appID: appID, aead: aead, keys: map[string]wechatKey{}, tolerance: tolerance}
	if w.tolerance <= 0 {
		w.tolerance = WeChatPayToleranceDefault
	}
	for _, c := range certs {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < rsaKeyBitsMin {
			return nil, fmt.Errorf("payments: WeChat Pay certificate %X has no RSA key of %d bits or more", c.SerialNumber, rsaKeyBitsMin)
		}
		w.keys[fmt.Sprintf("%X", c.SerialNumber)] = wechatKey{pub: pub, notBefore: c.NotBefore, notAfter: c.NotAfter}
	}
	for id, pub := range publicKeys {
		if pub == nil || pub.N.BitLen() < rsaKeyBitsMin || !printableID(id, 128) {
			return nil, fmt.Errorf("payments: WeChat Pay public key %q is not a usable RSA key", id)
		}
		w.keys[strings.ToUpper(id)] = wechatKey{pub: pub}
	}
	if len(w.keys) == 0 {
		return nil, fmt.Errorf("payments: WeChat Pay needs at least one platform certificate or public key")
	}
	return w, nil
}

// WeChatPayHeaders are the request headers WeChat Pay signs with.
type WeChatPayHeaders struct {
	Timestamp, Nonce, Signature, Serial, SignatureType []byte
}

// Verify checks the signature headers against the raw body, decrypts the
// resource and maps it.
func (w *WeChatPay) Verify(h WeChatPayHeaders, body []byte, now time.Time) (Event, error) {
	if err := w.verifySignature(h, body, now); err != nil {
		return Event{}, err
	}
	plain, err := w.decrypt(body)
	if err != nil {
		return Event{}, err
	}
	return w.mapResource(plain)
}

func (w *WeChatPay) verifySignature(h WeChatPayHeaders, body []byte, now time.Time) *Error {
	if len(h.Signature) == 0 || len(h.Timestamp) == 0 || len(h.Nonce) == 0 || len(h.Serial) == 0 {
		return refuse(ProviderWeChatPay, CodeSignatureMissing, "Wechatpay-Signature, -Timestamp, -Nonce and -Serial are all required")
	}
	if len(h.SignatureType) > 0 && string(h.SignatureType) != "WECHATPAY2-SHA256-RSA2048" {
		return refuse(ProviderWeChatPay, CodeUnsupported, "Wechatpay-Signature-Type %q; only WECHATPAY2-SHA256-RSA2048 is accepted", truncate(string(h.SignatureType)))
	}
	if len(h.Timestamp) > 12 || h.Timestamp[0] < '0' || h.Timestamp[0] > '9' || len(h.Nonce) > 64 {
		return refuse(ProviderWeChatPay, CodeSignatureMalformed, "Wechatpay-Timestamp must be unix seconds and Wechatpay-Nonce at most 64 bytes")
	}
	ts, err := strconv.ParseInt(string(h.Timestamp), 10, 64)
	if err != nil {
		return refuse(ProviderWeChatPay, CodeSignatureMalformed, "Wechatpay-Timestamp must be unix seconds")
	}
	tol := int64(w.tolerance / time.Second)
	if d := now.Unix() - ts; d > tol || d < -tol {
		return refuse(ProviderWeChatPay, CodeSignatureStale, "Wechatpay-Timestamp is more than %d s away from the server's clock", tol)
	}
	key, ok := w.keys[strings.ToUpper(string(h.Serial))]
	if !ok {
		return refuse(ProviderWeChatPay, CodeUnknownKey, "Wechatpay-Serial %q names no configured platform certificate or public key", truncate(string(h.Serial)))
	}
	if !key.notAfter.IsZero() && (now.Before(key.notBefore) || now.After(key.notAfter)) {
		return refuse(ProviderWeChatPay, CodeUntrustedCert, "the platform certificate %s is outside its validity", truncate(string(h.Serial)))
	}
	sig, err := base64.StdEncoding.DecodeString(string(h.Signature))
	if err != nil || len(sig) != key.pub.Size() {
		return refuse(ProviderWeChatPay, CodeSignatureMalformed, "Wechatpay-Signature is not a base64 RSA signature of the key's size")
	}
	d := sha256.New()
	d.Write(h.Timestamp)
	d.Write([]byte{'\n'})
	d.Write(h.Nonce)
	d.Write([]byte{'\n'})
	d.Write(body)
	d.Write([]byte{'\n'})
	if rsa.VerifyPKCS1v15(key.pub, crypto.SHA256, d.Sum(nil), sig) != nil {
		return refuse(ProviderWeChatPay, CodeSignatureMismatch, "Wechatpay-Signature does not verify")
	}
	return nil
}

type wechatNotification struct {
	ID           string `json:"id"`
	EventType    string `json:"event_type"`
	ResourceType string `json:"resource_type"`
	Resource     struct {
		Algorithm      string `json:"algorithm"`
		Ciphertext     string `json:"ciphertext"`
		AssociatedData string `json:"associated_data"`
		Nonce          string `json:"nonce"`
		OriginalType   string `json:"original_type"`
	} `json:"resource"`
}

// decrypt opens the notification's resource.
func (w *WeChatPay) decrypt(body []byte) (wechatPlain, *Error) {
	var n wechatNotification
	if err := json.Unmarshal(body, &n); err != nil {
		return wechatPlain{}, refuse(ProviderWeChatPay, CodeMalformedBody, "the body is not a WeChat Pay notification")
	}
	r := &n.Resource
	if r.Algorithm != "AEAD_AES_256_GCM" {
		return wechatPlain{}, refuse(ProviderWeChatPay, CodeUnsupported, "resource.algorithm %q; only AEAD_AES_256_GCM is accepted", truncate(r.Algorithm))
	}
	ct, err := base64.StdEncoding.DecodeString(r.Ciphertext)
	if err != nil || len(r.Nonce) != w.aead.NonceSize() || len(ct) < w.aead.Overhead() {
		return wechatPlain{}, refuse(ProviderWeChatPay, CodeDecryptFailed, "resource.ciphertext must be base64 with its tag and resource.nonce 12 bytes")
	}
	plain, err := w.aead.Open(nil, []byte(r.Nonce), ct, []byte(r.AssociatedData))
	if err != nil {
		return wechatPlain{}, refuse(ProviderWeChatPay, CodeDecryptFailed, "resource does not decrypt under the APIv3 key")
	}
	return wechatPlain{event: n.EventType, original: r.OriginalType, data: plain}, nil
}

type wechatPlain struct {
	event, original string
	data            []byte
}

type wechatResource struct {
	AppID         string `json:"appid"`
	MchID         string `json:"mchid"`
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id"`
	TradeState    string `json:"trade_state"`
	RefundID      string `json:"refund_id"`
	RefundStatus  string `json:"refund_status"`
	Amount        struct {
		Total    *int64 `json:"total"`
		Refund   *int64 `json:"refund"`
		Currency string `json:"currency"`
	} `json:"amount"`
}

func (w *WeChatPay) mapResource(p wechatPlain) (Event, error) {
	var r wechatResource
	if err := json.Unmarshal(p.data, &r); err != nil {
		return Event{}, refuse(ProviderWeChatPay, CodeMalformedBody, "the decrypted resource is not JSON")
	}
	// A refund notification carries mchid but no appid.
	if r.MchID != w.mchID || p.original != "refund" && r.AppID != w.appID {
		return Event{}, refuse(ProviderWeChatPay, CodeWrongMerchant, "appid or mchid is not this server's")
	}
	e := Event{Provider: ProviderWeChatPay, Type: r.TradeState, OrderID: r.OutTradeNo, TransactionID: r.TransactionID, Currency: r.Amount.Currency}
	amount := r.Amount.Total
	switch {
	case p.original == "refund":
		e.Kind, e.Type, amount = Refunded, "REFUND."+r.RefundStatus, r.Amount.Refund
		e.RefundID = r.RefundID
		switch r.RefundStatus {
		case "SUCCESS":
			e.RefundState = RefundStateSucceeded
		case "CLOSED", "ABNORMAL":
			e.RefundState, e.RefundDetail = RefundStateFailed, "wechatpay: refund notification "+r.RefundStatus
		case "PROCESSING":
			e.RefundState = RefundStatePending
		}
		if e.Currency == "" {
			e.Currency = "CNY" // refund notifications carry no currency; WeChat Pay's are in CNY
		}
	case r.TradeState == "SUCCESS":
		e.Kind = Succeeded
	case r.TradeState == "CLOSED" || r.TradeState == "PAYERROR" || r.TradeState == "REVOKED":
		e.Kind = Failed
		if e.TransactionID == "" {
			// A trade closed before any payment has no transaction yet.
			e.TransactionID = "out_trade_no:" + r.OutTradeNo
		}
	default:
		e.Kind = Ignored
	}
	if amount == nil || *amount < 0 || *amount > amountMinorMax {
		return Event{}, refuse(ProviderWeChatPay, CodeInvalidAmount, "amount is missing or out of range")
	}
	e.AmountMinor = *amount
	if !validCurrency(e.Currency) {
		return Event{}, refuse(ProviderWeChatPay, CodeMalformedBody, "amount.currency %q is not an ISO 4217 code", truncate(e.Currency))
	}
	if err := checkIDs(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}
