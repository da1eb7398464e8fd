package payments

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// StripeRefunds sends refunds through Stripe's API:
//
//	POST {BaseURL}/v1/refunds
//	Authorization: Bearer sk_...
//	Idempotency-Key: <the refund's key>
//	payment_intent=pi_...&amount=<minor units>
//
// Stripe answers 200 with the refund object (https://docs.stripe.com/api/refunds/object),
// whose status is succeeded, pending or requires_action (accepted: Stripe
// finishes it and sends refund.updated, or refund.failed), failed or
// canceled (failure_reason says why). An
// error is a 4xx/5xx with {"error":{"type","code","message"}}: the code
// charge_already_refunded means the money went back already (a success
// here); 409 (an idempotency key still in flight), 429 and 5xx are
// temporary. Stripe does not sign its API answers; TLS to api.stripe.com
// is what authenticates them.
//
// A refund Stripe accepted is queried with GET {BaseURL}/v1/refunds/{id}
// (the same refund object); metadata[onsale_payout] names the payout in
// Stripe's refund.* events.
//
//	succeeded                     RefundDone
//	pending, requires_action      RefundAccepted
//	failed, canceled              RefundFailed: failure_reason
type StripeRefunds struct {
	BaseURL   string // https://api.stripe.com
	SecretKey string // sk_test_... in test mode, sk_live_... or a restricted key with refunds write
	Client    *http.Client
}

// StripeAPIDefault is Stripe's API base URL.
const StripeAPIDefault = "https://api.stripe.com"

func (s *StripeRefunds) Refund(ctx context.Context, r RefundRequest) RefundResult {
	form := url.Values{}
	form.Set("payment_intent", r.TransactionID)
	form.Set("amount", strconv.FormatInt(r.AmountMinor, 10))
	form.Set("metadata[onsale_refund]", r.Key)
	if r.PayoutID != "" {
		form.Set("metadata[onsale_payout]", r.PayoutID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.BaseURL, "/")+"/v1/refunds", strings.NewReader(form.Encode()))
	if err != nil {
		return failed("stripe: cannot build the request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.SecretKey)
	req.Header.Set("Idempotency-Key", r.Key)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, _, body, err := send(s.Client, req)
	if err != nil {
		return retry("stripe: no answer: %v", err)
	}
	return parseStripeRefund(status, body)
}

type stripeRefundAnswer struct {
	ID            string `json:"id"`
	Object        string `json:"object"`
	Status        string `json:"status"`
	FailureReason string `json:"failure_reason"`
	Error         *struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// QueryRefund reads the refund Stripe accepted.
func (s *StripeRefunds) QueryRefund(ctx context.Context, r RefundRequest) RefundResult {
	if !stripeRefundID(r.ProviderRefundID) {
		return RefundResult{Outcome: RefundNotFound, Detail: "stripe: no refund id to query"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.BaseURL, "/")+"/v1/refunds/"+r.ProviderRefundID, nil)
	if err != nil {
		return retry("stripe: cannot build the request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.SecretKey)
	status, _, body, err := send(s.Client, req)
	if err != nil {
		return retry("stripe: no answer: %v", err)
	}
	if status == http.StatusNotFound {
		return RefundResult{Outcome: RefundNotFound, Detail: "stripe: no refund " + r.ProviderRefundID}
	}
	res := parseStripeRefund(status, body)
	if res.Outcome == RefundDone && res.ProviderRefundID != r.ProviderRefundID {
		return retry("stripe: the answer is about another refund")
	}
	return res
}

// stripeRefundID reports whether id can go into a URL path as it is.
func stripeRefundID(id string) bool {
	if len(id) < 4 || len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseStripeRefund maps Stripe's answer to a refund request.
func parseStripeRefund(status int, body []byte) RefundResult {
	var a stripeRefundAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return retry("stripe: HTTP %d with an answer that is not JSON", status)
	}
	if status == http.StatusOK {
		if a.Object != "refund" || a.ID == "" {
			return retry("stripe: HTTP 200 without a refund object")
		}
		switch a.Status {
		case "succeeded":
			return RefundResult{Outcome: RefundDone, ProviderRefundID: a.ID, Detail: "stripe: " + a.Status}
		case "pending", "requires_action":
			return RefundResult{Outcome: RefundAccepted, ProviderRefundID: a.ID, Detail: "stripe: " + a.Status}
		case "failed", "canceled":
			return failed("stripe: refund %s %s: %s", a.ID, a.Status, a.FailureReason)
		}
		return retry("stripe: refund %s in status %q", a.ID, a.Status)
	}
	code, msg := "", ""
	if a.Error != nil {
		code, msg = a.Error.Code, a.Error.Message
	}
	switch {
	case code == "charge_already_refunded":
		return RefundResult{Outcome: RefundDone, Detail: "stripe: charge_already_refunded"}
	case status == http.StatusUnauthorized || status == http.StatusConflict || status == http.StatusTooManyRequests || status >= 500:
		// 401 is this server's key, not the refund: fix -stripe-secret-key
		// and it goes out.
		return retry("stripe: HTTP %d %s: %s", status, code, msg)
	case status >= 400 && status < 500:
		return failed("stripe: HTTP %d %s: %s", status, code, msg)
	}
	return retry("stripe: HTTP %d", status)
}
