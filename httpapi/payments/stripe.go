package payments

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Stripe verifies Stripe webhook calls:
//
//	Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(endpoint secret, "<t>.<raw body>")>[,v1=...][,v0=...]
//
// Any v1 entry that matches any configured secret is enough (while a secret
// is rolled, Stripe signs with both); other schemes are ignored. The
// timestamp must be within Tolerance of our clock, both ways (Stripe's SDKs
// only refuse old ones; a timestamp from the future is no less a forgery).
//
// Events used (the object is a PaymentIntent; the order id is its
// metadata.order_id, which the checkout sets when it creates the intent):
//
//	payment_intent.succeeded       Succeeded, amount_received
//	payment_intent.canceled        Failed, amount
//	charge.refunded                Refunded (logged; not applied)
//	refund.created, refund.updated, refund.failed, charge.refund.updated
//	                               Refunded, naming the refund (a refund object): its id,
//	                               status (succeeded, failed or canceled end it) and
//	                               metadata.onsale_payout, which confirms onsale's payout
//	anything else                  Ignored
//
// payment_intent.payment_failed is ignored on purpose: it reports one
// failed attempt (a declined card), after which the intent waits for
// another payment method. Cancelling the order then would hand the buyer's
// tickets to someone else while they type their second card; the hold
// expires on its own if they give up, and Stripe sends canceled when the
// intent is cancelled.
//
// Stripe amounts are in the currency's smallest unit as Stripe counts it:
// cents for EUR, yen for JPY (a zero-decimal currency). onsale's amounts are
// minor units too, so they are passed through unchanged; the currency is
// upper-cased (Stripe sends "eur").
type Stripe struct {
	secrets   [][]byte
	tolerance time.Duration
}

// StripeToleranceDefault is the Stripe SDKs' default.
const StripeToleranceDefault = 300 * time.Second

const stripeSignaturesMax = 8 // v1 entries looked at

// NewStripe returns a verifier for the endpoint secrets (whsec_...). A
// tolerance of 0 takes StripeToleranceDefault.
func NewStripe(secrets []string, tolerance time.Duration) *Stripe {
	s := &Stripe{tolerance: tolerance}
	if s.tolerance <= 0 {
		s.tolerance = StripeToleranceDefault
	}
	for _, sec := range secrets {
		if sec != "" {
			s.secrets = append(s.secrets, []byte(sec))
		}
	}
	if len(s.secrets) == 0 {
		panic("payments: NewStripe needs at least one secret")
	}
	return s
}

// Verify checks the Stripe-Signature header against the raw body and maps
// the event.
func (s *Stripe) Verify(header, body []byte, now time.Time) (Event, error) {
	if err := s.verifySignature(header, body, now); err != nil {
		return Event{}, err
	}
	return mapStripeEvent(body)
}

func (s *Stripe) verifySignature(header, body []byte, now time.Time) *Error {
	ts, sigs, err := parseStripeHeader(header)
	if err != nil {
		return err
	}
	tol := int64(s.tolerance / time.Second)
	if d := now.Unix() - ts; d > tol || d < -tol {
		return refuse(ProviderStripe, CodeSignatureStale, "the Stripe-Signature timestamp is more than %d s away from the server's clock", tol)
	}
	var sum [sha256.Size]byte
	for _, secret := range s.secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(strconv.AppendInt(nil, ts, 10))
		mac.Write([]byte{'.'})
		mac.Write(body)
		mac.Sum(sum[:0])
		for _, sig := range sigs {
			if hmac.Equal(sum[:], sig[:]) {
				return nil
			}
		}
	}
	return refuse(ProviderStripe, CodeSignatureMismatch, "no v1 signature of the Stripe-Signature header matches")
}

// parseStripeHeader reads t and the v1 entries; it ignores other schemes.
func parseStripeHeader(h []byte) (int64, [][sha256.Size]byte, *Error) {
	if len(h) == 0 {
		return 0, nil, refuse(ProviderStripe, CodeSignatureMissing, "no Stripe-Signature header")
	}
	malformed := refuse(ProviderStripe, CodeSignatureMalformed, "the Stripe-Signature header is not t=<unix seconds>,v1=<hex>")
	var ts int64 = -1
	var sigs [][sha256.Size]byte
	for len(h) > 0 {
		var item []byte
		item, h, _ = bytes.Cut(h, []byte{','})
		k, v, ok := bytes.Cut(bytes.TrimSpace(item), []byte{'='})
		if !ok {
			return 0, nil, malformed
		}
		switch string(k) {
		case "t":
			if ts >= 0 || len(v) == 0 || len(v) > 12 || v[0] < '0' || v[0] > '9' {
				return 0, nil, malformed
			}
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return 0, nil, malformed
			}
			ts = n
		case "v1":
			var sig [sha256.Size]byte
			if len(v) != 2*sha256.Size {
				return 0, nil, malformed
			}
			if _, err := hex.Decode(sig[:], v); err != nil {
				return 0, nil, malformed
			}
			if len(sigs) < stripeSignaturesMax {
				sigs = append(sigs, sig)
			}
		}
	}
	if ts < 0 || len(sigs) == 0 {
		return 0, nil, malformed
	}
	return ts, sigs, nil
}

type stripeEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

type stripeObject struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Amount         *int64            `json:"amount"`
	AmountReceived *int64            `json:"amount_received"`
	AmountRefunded *int64            `json:"amount_refunded"`
	Currency       string            `json:"currency"`
	PaymentIntent  string            `json:"payment_intent"`
	Charge         string            `json:"charge"`
	Status         string            `json:"status"`
	FailureReason  string            `json:"failure_reason"`
	Metadata       map[string]string `json:"metadata"`
}

// mapStripeEvent reads a verified body.
func mapStripeEvent(body []byte) (Event, error) {
	var ev stripeEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type == "" {
		return Event{}, refuse(ProviderStripe, CodeMalformedBody, "the body is not a Stripe event")
	}
	e := Event{Provider: ProviderStripe, Type: ev.Type}
	switch ev.Type {
	case "payment_intent.succeeded":
		e.Kind = Succeeded
	case "payment_intent.canceled":
		e.Kind = Failed
	case "charge.refunded", "refund.created", "refund.updated", "refund.failed", "charge.refund.updated":
		e.Kind = Refunded
	default:
		e.TransactionID = ev.ID
		return e, nil // Ignored
	}
	var obj stripeObject
	if err := json.Unmarshal(ev.Data.Object, &obj); err != nil {
		return Event{}, refuse(ProviderStripe, CodeMalformedBody, "data.object of %s does not parse", ev.Type)
	}
	e.OrderID = obj.Metadata["order_id"]
	e.TransactionID = obj.ID
	amount := obj.Amount
	switch e.Kind {
	case Succeeded:
		if obj.Object != "payment_intent" {
			return Event{}, refuse(ProviderStripe, CodeMalformedBody, "data.object of %s is not a payment_intent", ev.Type)
		}
		amount = obj.AmountReceived
	case Failed:
		if obj.Object != "payment_intent" {
			return Event{}, refuse(ProviderStripe, CodeMalformedBody, "data.object of %s is not a payment_intent", ev.Type)
		}
	case Refunded:
		// The payment's id is its intent's, so that the log line names
		// the transaction the success was recorded under.
		if obj.PaymentIntent != "" {
			e.TransactionID = obj.PaymentIntent
		} else if obj.Charge != "" {
			e.TransactionID = obj.Charge
		}
		switch obj.Object {
		case "charge":
			amount = obj.AmountRefunded
		case "refund":
			e.RefundID, e.PayoutID = obj.ID, obj.Metadata["onsale_payout"]
			switch obj.Status {
			case "succeeded":
				e.RefundState = RefundStateSucceeded
			case "failed", "canceled":
				e.RefundState, e.RefundDetail = RefundStateFailed, "stripe: "+ev.Type+" "+obj.Status+": "+obj.FailureReason
			case "pending", "requires_action":
				e.RefundState = RefundStatePending
			}
		default:
			return Event{}, refuse(ProviderStripe, CodeMalformedBody, "data.object of %s is neither a charge nor a refund", ev.Type)
		}
	}
	if amount == nil || *amount < 0 || *amount > amountMinorMax {
		return Event{}, refuse(ProviderStripe, CodeInvalidAmount, "%s carries no amount in range", ev.Type)
	}
	e.AmountMinor = *amount
	e.Currency = strings.ToUpper(obj.Currency)
	if !validCurrency(e.Currency) || strings.ToLower(obj.Currency) != obj.Currency {
		return Event{}, refuse(ProviderStripe, CodeMalformedBody, "currency %q is not a lower-case ISO 4217 code", obj.Currency)
	}
	if e.OrderID == "" && e.Kind != Refunded {
		// A refunded charge's metadata need not name the order; its log
		// line names the intent, under which the success was recorded.
		return Event{}, refuse(ProviderStripe, CodeMalformedBody, "the payment intent has no metadata.order_id")
	}
	if err := checkIDs(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// SignStripe returns a Stripe-Signature header value for body, as Stripe
// computes it. For tests, the bench harness and demos.
func SignStripe(secret string, body []byte, t time.Time) string {
	mac := hmac.New(sha256.New, []byte(secret))
	ts := strconv.FormatInt(t.Unix(), 10)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
