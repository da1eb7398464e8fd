package payments

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
)

// Alipay verifies Alipay's asynchronous notifications (notify_url): a form
// POST, signed as the Alipay SDK's AlipaySignature.rsaCheckV1 verifies it:
// the fields are form-decoded, sign and sign_type and the empty ones are
// left out, the rest sorted by key and joined as "k=v&k=v"; sign is the
// base64 SHA256withRSA (RSA2) signature of that string under the Alipay
// public key. Only sign_type=RSA2 is accepted (RSA, SHA-1, is refused even
// though sign_type itself is not signed).
//
// After the signature: app_id must be ours; out_trade_no is the order id;
// total_amount (yuan, "19999.99") becomes fen; trade_no is the transaction.
//
//	TRADE_SUCCESS, TRADE_FINISHED  Succeeded
//	TRADE_CLOSED                   Failed (closed unpaid)
//	WAIT_BUYER_PAY                 Ignored
//	refund_fee above 0             Refunded (a partial refund keeps
//	                               TRADE_SUCCESS; a full one closes the trade)
//
// Alipay answers must be the plain text "success" once handled; anything
// else makes it retry (8 times over about 25 hours).
type Alipay struct {
	appID string
	key   *rsa.PublicKey
}

// NewAlipay returns a verifier for notifications to appID signed with key.
func NewAlipay(appID string, key *rsa.PublicKey) *Alipay {
	if appID == "" || key == nil {
		panic("payments: NewAlipay needs an app id and the Alipay public key")
	}
	return &Alipay{appID: appID, key: key}
}

// Verify checks a notification's raw form body and maps it.
func (a *Alipay) Verify(body []byte) (Event, error) {
	f, err := parseForm(body)
	if err != nil {
		return Event{}, refuse(ProviderAlipay, CodeMalformedBody, "%v", err)
	}
	sign := f.get("sign")
	if sign == "" {
		return Event{}, refuse(ProviderAlipay, CodeSignatureMissing, "no sign field")
	}
	if st := f.get("sign_type"); st != "RSA2" {
		return Event{}, refuse(ProviderAlipay, CodeUnsupported, "sign_type %q; only RSA2 is accepted", truncate(st))
	}
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil || len(sig) != a.key.Size() {
		return Event{}, refuse(ProviderAlipay, CodeSignatureMalformed, "sign is not a base64 RSA signature of the key's size")
	}
	digest := sha256.Sum256(f.signedContent(true, "sign", "sign_type"))
	if rsa.VerifyPKCS1v15(a.key, crypto.SHA256, digest[:], sig) != nil {
		return Event{}, refuse(ProviderAlipay, CodeSignatureMismatch, "sign does not verify under the Alipay public key")
	}
	return a.mapNotification(f)
}

func (a *Alipay) mapNotification(f form) (Event, error) {
	if f.get("app_id") != a.appID {
		return Event{}, refuse(ProviderAlipay, CodeWrongMerchant, "app_id is not this server's")
	}
	e := Event{
		Provider: ProviderAlipay, Type: f.get("trade_status"), Currency: "CNY",
		OrderID: f.get("out_trade_no"), TransactionID: f.get("trade_no"),
	}
	switch e.Type {
	case "TRADE_SUCCESS", "TRADE_FINISHED":
		e.Kind = Succeeded
	case "TRADE_CLOSED":
		e.Kind = Failed
	case "WAIT_BUYER_PAY":
		e.Kind = Ignored
	default:
		return Event{}, refuse(ProviderAlipay, CodeMalformedBody, "trade_status %q is not one Alipay documents", truncate(e.Type))
	}
	field := "total_amount"
	if v := f.get("refund_fee"); v != "" && v != "0" && v != "0.00" {
		e.Kind, field = Refunded, "refund_fee"
	}
	n, err := ParseDecimalMinor(f.get(field))
	if err != nil {
		return Event{}, refuse(ProviderAlipay, CodeInvalidAmount, "%s %q: %v", field, truncate(f.get(field)), err)
	}
	e.AmountMinor = n
	if err := checkIDs(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// truncate shortens a value quoted in an error message.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
