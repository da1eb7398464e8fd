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
// Stripe answers 200 with the refund object, whose status is succeeded or
// pending (accepted: Stripe finishes it and notifies charge.refunded),
// failed or canceled (failure_reason says why), or requires_action. An
// error is a 4xx/5xx with {"error":{"type","code","message"}}: the code
// charge_already_refunded means the money went back already (a success
// here); 409 (an idempotency key still in flight), 429 and 5xx are
// temporary. Stripe does not sign its API answers; TLS to api.stripe.com
// is what authenticates them.
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
		case "succeeded", "pending":
			return RefundResult{Outcome: RefundDone, ProviderRefundID: a.ID, Detail: "stripe: " + a.Status}
		case "failed", "canceled":
			return failed("stripe: refund %s %s: %s", a.ID, a.Status, a.FailureReason)
		case "requires_action":
			return failed("stripe: refund %s requires action in the Stripe dashboard", a.ID)
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
