package payments

import (
	"fmt"
	"strings"
)

// Kind says what a verified notification asks of the order.
type Kind uint8

const (
	// Ignored: authentic, but nothing to apply (a payment still waiting
	// for the buyer, an event type onsale does not use). Acknowledged so
	// the provider stops sending it.
	Ignored Kind = iota
	// Succeeded: the money was taken.
	Succeeded
	// Failed: the payment failed or the trade was closed unpaid.
	Failed
	// Refunded: the provider refunded money of the transaction. Recorded
	// in the log line only: the engine has no event for a refund made at
	// the provider yet (see the README).
	Refunded
)

func (k Kind) String() string {
	switch k {
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	case Refunded:
		return "refunded"
	}
	return "ignored"
}

// Provider names, as used in event ids, metrics labels and logs.
const (
	ProviderStripe    = "stripe"
	ProviderAlipay    = "alipay"
	ProviderWeChatPay = "wechatpay"
	ProviderUnionPay  = "unionpay"
)

// Limits on what a notification may carry.
const (
	// transactionIDLenMax keeps "<provider>:<id>:failed" under the engine's
	// payment id limit (255 bytes).
	transactionIDLenMax = 200
	orderIDLenMax       = 128
)

// Event is one verified notification, mapped to onsale's terms.
type Event struct {
	Provider string
	Kind     Kind
	// Type is the provider's own name of what happened, for logs:
	// "payment_intent.succeeded", "TRADE_SUCCESS", "SUCCESS", "00".
	Type          string
	OrderID       string
	AmountMinor   int64  // in the currency's minor unit (cents, fen; yen for JPY)
	Currency      string // ISO 4217, upper case
	TransactionID string // the provider's id of the payment: pi_..., trade_no, transaction_id, queryId

	// For Refunded, when the provider names the refund (Stripe's refund.*
	// events, WeChat Pay's refund notification): its id, how it stands,
	// the payout it carries back (Stripe's metadata[onsale_payout]) and
	// the provider's reason of a failure.
	RefundID     string
	RefundState  RefundState
	PayoutID     string
	RefundDetail string
}

// RefundState is how a refund a notification names stands.
type RefundState uint8

const (
	RefundStateUnknown RefundState = iota
	RefundStatePending
	RefundStateSucceeded
	RefundStateFailed
)

func (s RefundState) String() string {
	switch s {
	case RefundStatePending:
		return "pending"
	case RefundStateSucceeded:
		return "succeeded"
	case RefundStateFailed:
		return "failed"
	}
	return "unknown"
}

// EventID is the payment event id given to the engine: the provider and
// its transaction id, so one transaction applies once however often it is
// notified; a failure is suffixed so that it never shadows a success of
// the same transaction.
func (e *Event) EventID() string {
	id := e.Provider + ":" + e.TransactionID
	if e.Kind == Failed {
		id += ":failed"
	}
	return id
}

// Code is a stable name for why a notification was refused.
type Code string

const (
	CodeSignatureMissing   Code = "signature_missing"   // no signature where the provider always sends one
	CodeSignatureMalformed Code = "signature_malformed" // a signature header or field that does not parse
	CodeSignatureStale     Code = "signature_stale"     // the signed timestamp is outside the window
	CodeSignatureMismatch  Code = "signature_mismatch"  // the signature does not verify
	CodeUnknownKey         Code = "unknown_key"         // signed with a key (serial) that is not configured
	CodeUntrustedCert      Code = "untrusted_certificate"
	CodeDecryptFailed      Code = "decrypt_failed"
	CodeMalformedBody      Code = "malformed_body" // authentic but unreadable: missing or ill-formed fields
	CodeWrongMerchant      Code = "wrong_merchant" // meant for another app id or merchant id
	CodeInvalidAmount      Code = "invalid_amount" // an amount that is not a plain decimal in range
	CodeUnsupported        Code = "unsupported"    // a scheme or version onsale does not accept
)

// Error is a refused notification. Nothing in it may be trusted beyond the
// code: the message names what failed, never a secret.
type Error struct {
	Provider string
	Code     Code
	Msg      string
}

func (e *Error) Error() string {
	return "payments: " + e.Provider + ": " + string(e.Code) + ": " + e.Msg
}

// IsSignature reports whether the error is about who sent the notification
// (answered 401) rather than what it says (answered 422).
func (e *Error) IsSignature() bool {
	switch e.Code {
	case CodeSignatureMissing, CodeSignatureMalformed, CodeSignatureStale, CodeSignatureMismatch,
		CodeUnknownKey, CodeUntrustedCert, CodeDecryptFailed:
		return true
	}
	return false
}

func refuse(provider string, code Code, format string, args ...any) *Error {
	return &Error{Provider: provider, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// checkIDs refuses an event whose ids are too long or not printable ASCII:
// they end up in the log, the engine and metrics. An event that moves an
// order must name both; one that is only logged (Ignored, Refunded) may
// lack them.
func checkIDs(e *Event) *Error {
	optional := e.Kind == Ignored || e.Kind == Refunded
	if !(optional && e.OrderID == "") && !printableID(e.OrderID, orderIDLenMax) {
		return refuse(e.Provider, CodeMalformedBody, "the order id must be 1 to %d printable ASCII characters", orderIDLenMax)
	}
	if !(optional && e.TransactionID == "") && !printableID(e.TransactionID, transactionIDLenMax) {
		return refuse(e.Provider, CodeMalformedBody, "the transaction id must be 1 to %d printable ASCII characters", transactionIDLenMax)
	}
	for _, id := range []string{e.RefundID, e.PayoutID} {
		if id != "" && !printableID(id, orderIDLenMax) {
			return refuse(e.Provider, CodeMalformedBody, "a refund or payout id must be 1 to %d printable ASCII characters", orderIDLenMax)
		}
	}
	e.RefundDetail = truncateDetail(e.RefundDetail)
	return nil
}

func printableID(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validCurrency reports whether s is three upper-case letters.
func validCurrency(s string) bool {
	return len(s) == 3 && strings.ToUpper(s) == s && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z'
}
