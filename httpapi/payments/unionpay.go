package payments

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// UnionPay verifies UnionPay (China UnionPay online gateway, "ACP")
// back notifications, version 5.1.0 with signMethod 01, as UnionPay's sample
// SDK (SDKUtil.validate, CertUtil.verifyCertificate) does:
//
//  1. signPubKeyCert, the PEM certificate the notification carries, must be
//     within its validity, chain through the configured middle certificate
//     to the configured root (no revocation check, as in the SDK), and
//     belong to UnionPay: the third "@"-separated part of its CN is the
//     owner name (中国银联股份有限公司; 00040000:SIGN in the test
//     environment).
//  2. Every field but signature, sorted by key, joined as "k=v&k=v" (empty
//     values included), is hashed with SHA-256; the lower-case hex of that
//     hash is what signature (base64) signs with SHA256withRSA under the
//     certificate's key.
//
// Then merId must be ours; orderId is the order id, txnAmt the amount in
// fen, currencyCode the numeric ISO 4217 code, queryId the transaction:
//
//	txnType 01 (consume), respCode 00 or A6   Succeeded
//	txnType 01, any other respCode            Failed
//	txnType 04 (refund), 31 (consume undo)    Refunded (logged; not applied yet)
//	any other txnType                         Ignored
//
// UnionPay takes HTTP 200 as "received" (its samples answer "ok") and
// retries otherwise.
type UnionPay struct {
	merID         string
	roots, middle *x509.CertPool
	owner         string
}

// UnionPayOwner is the owner name in UnionPay's production signing
// certificates' CN.
const UnionPayOwner = "中国银联股份有限公司"

// NewUnionPay returns a verifier for notifications to merchant merID. An
// empty owner takes UnionPayOwner.
func NewUnionPay(merID string, roots, middles []*x509.Certificate, owner string) (*UnionPay, error) {
	if merID == "" || len(roots) == 0 || len(middles) == 0 {
		return nil, fmt.Errorf("payments: UnionPay needs the merchant id, its root and its middle certificate")
	}
	u := &UnionPay{merID: merID, roots: x509.NewCertPool(), middle: x509.NewCertPool(), owner: owner}
	if u.owner == "" {
		u.owner = UnionPayOwner
	}
	for _, c := range roots {
		u.roots.AddCert(c)
	}
	for _, c := range middles {
		u.middle.AddCert(c)
	}
	return u, nil
}

// unionPayCertLenMax bounds signPubKeyCert before it is parsed.
const unionPayCertLenMax = 8 << 10

// Verify checks a back notification's raw form body and maps it.
func (u *UnionPay) Verify(body []byte, now time.Time) (Event, error) {
	f, err := parseForm(body)
	if err != nil {
		return Event{}, refuse(ProviderUnionPay, CodeMalformedBody, "%v", err)
	}
	if verr := u.verifyForm(f, now); verr != nil {
		return Event{}, verr
	}
	return u.mapNotification(f)
}

// verifyForm checks a decoded notification's or answer's signature.
func (u *UnionPay) verifyForm(f form, now time.Time) *Error {
	if f.get("version") != "5.1.0" || f.get("signMethod") != "01" {
		return refuse(ProviderUnionPay, CodeUnsupported, "only version 5.1.0 with signMethod 01 is accepted")
	}
	sign := f.get("signature")
	if sign == "" {
		return refuse(ProviderUnionPay, CodeSignatureMissing, "no signature field")
	}
	pub, verr := u.signingKey(f.get("signPubKeyCert"), now)
	if verr != nil {
		return verr
	}
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil || len(sig) != pub.Size() {
		return refuse(ProviderUnionPay, CodeSignatureMalformed, "signature is not a base64 RSA signature of the key's size")
	}
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, unionPayDigest(f.signedContent(false, "signature")), sig) != nil {
		return refuse(ProviderUnionPay, CodeSignatureMismatch, "signature does not verify under signPubKeyCert")
	}
	return nil
}

// unionPayDigest is what signMethod 01 signs with SHA256withRSA: the
// SHA-256 of the lower-case hex of the content's SHA-256.
func unionPayDigest(content []byte) []byte {
	inner := sha256.Sum256(content)
	var hexed [2 * sha256.Size]byte
	hex.Encode(hexed[:], inner[:])
	digest := sha256.Sum256(hexed[:])
	return digest[:]
}

// signingKey checks signPubKeyCert and returns its key.
func (u *UnionPay) signingKey(pemText string, now time.Time) (*rsa.PublicKey, *Error) {
	if pemText == "" {
		return nil, refuse(ProviderUnionPay, CodeSignatureMissing, "no signPubKeyCert field")
	}
	if len(pemText) > unionPayCertLenMax {
		return nil, refuse(ProviderUnionPay, CodeSignatureMalformed, "signPubKeyCert is longer than %d bytes", unionPayCertLenMax)
	}
	certs, err := parseCertificates([]byte(pemText))
	if err != nil || len(certs) != 1 {
		return nil, refuse(ProviderUnionPay, CodeSignatureMalformed, "signPubKeyCert is not one PEM certificate")
	}
	c := certs[0]
	if _, err := c.Verify(x509.VerifyOptions{
		Roots: u.roots, Intermediates: u.middle, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, refuse(ProviderUnionPay, CodeUntrustedCert, "signPubKeyCert does not chain to the configured UnionPay certificates: %v", err)
	}
	if parts := strings.Split(c.Subject.CommonName, "@"); len(parts) < 3 || parts[2] != u.owner {
		return nil, refuse(ProviderUnionPay, CodeUntrustedCert, "signPubKeyCert does not belong to %s", u.owner)
	}
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() < rsaKeyBitsMin {
		return nil, refuse(ProviderUnionPay, CodeUntrustedCert, "signPubKeyCert has no RSA key of %d bits or more", rsaKeyBitsMin)
	}
	return pub, nil
}

// unionPayCurrencies maps the numeric ISO 4217 codes UnionPay sends.
var unionPayCurrencies = map[string]string{
	"156": "CNY", "344": "HKD", "446": "MOP", "840": "USD", "978": "EUR",
	"826": "GBP", "392": "JPY", "702": "SGD", "410": "KRW", "036": "AUD",
}

func (u *UnionPay) mapNotification(f form) (Event, error) {
	if f.get("merId") != u.merID {
		return Event{}, refuse(ProviderUnionPay, CodeWrongMerchant, "merId is not this server's")
	}
	e := Event{
		Provider: ProviderUnionPay, Type: f.get("txnType") + "/" + f.get("respCode"),
		OrderID: f.get("orderId"), TransactionID: f.get("queryId"),
	}
	switch f.get("txnType") {
	case "01":
		e.Kind = Failed
		if rc := f.get("respCode"); rc == "00" || rc == "A6" {
			e.Kind = Succeeded
		}
	case "04", "31":
		e.Kind = Refunded
		if orig := f.get("origQryId"); orig != "" {
			e.TransactionID = orig
		}
	default:
		e.Kind = Ignored
	}
	cur, ok := unionPayCurrencies[f.get("currencyCode")]
	if !ok {
		return Event{}, refuse(ProviderUnionPay, CodeUnsupported, "currencyCode %q is not one onsale maps", truncate(f.get("currencyCode")))
	}
	e.Currency = cur
	n, err := parseMinorDigits(f.get("txnAmt"))
	if err != nil {
		return Event{}, refuse(ProviderUnionPay, CodeInvalidAmount, "txnAmt %q: %v", truncate(f.get("txnAmt")), err)
	}
	e.AmountMinor = n
	if err := checkIDs(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// parseMinorDigits parses an amount already in minor units: 1 to 15
// digits, no sign, no leading zero (but "0").
func parseMinorDigits(s string) (int64, error) {
	if len(s) == 0 || len(s) > 15 || len(s) > 1 && s[0] == '0' {
		return 0, errAmount
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errAmount
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, nil
}
