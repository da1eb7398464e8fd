package payments

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Refund clients: each sends one refund to the provider that took the
// money and maps the provider's answer to a RefundResult, and asks about a
// refund the provider accepted without finishing it. They own the wire
// formats of the refund APIs (Stripe POST /v1/refunds, Alipay
// alipay.trade.refund, WeChat Pay v3 POST /v3/refund/domestic/refunds,
// UnionPay's back transaction txnType 04) and of their queries, and
// nothing else: the refund worker (httpapi/payouts) decides what to send
// and when, and logs what came back.
//
// Every request carries the refund's Key, derived from the payout, on every
// retry: Stripe's Idempotency-Key, Alipay's out_request_no, WeChat Pay's
// out_refund_no. A request that timed out and is sent again is the same
// refund to the provider, never a second one.
//
// A response that does not verify (Alipay's and WeChat Pay's are signed)
// or does not parse is never taken for a success or a failure: it is
// RefundRetry, so a forged answer cannot settle a payout either way.

// RefundRequest is one refund to send.
type RefundRequest struct {
	Key           string // idempotency key / out_request_no / out_refund_no: 1 to 64 of [0-9A-Za-z_-]
	TransactionID string // the provider's id of the payment: pi_..., trade_no, transaction_id
	AmountMinor   int64  // what goes back, in minor units
	TotalMinor    int64  // what the payment took
	Currency      string
	Reason        string // shown to the buyer where the provider does (WeChat Pay); ASCII
	// PayoutID is onsale's id of the refund, sent where the provider keeps
	// it (Stripe's metadata[onsale_payout]) so that its notifications name
	// the payout.
	PayoutID string
	// ProviderRefundID is, for QueryRefund, the id the provider gave the
	// refund it accepted.
	ProviderRefundID string
}

// RefundOutcome is what the provider said.
type RefundOutcome uint8

const (
	// RefundRetry: no answer (timeout, connection), a temporary error
	// (rate limit, 5xx, the provider's "system error"), or an answer that
	// does not verify: send the same refund again later.
	RefundRetry RefundOutcome = iota
	// RefundDone: the provider accepted the refund, now or before (the
	// same key again, or a payment already refunded).
	RefundDone
	// RefundFailed: the provider refused it for good; Detail says why.
	RefundFailed
	// RefundAccepted: the provider took the refund and finishes it later
	// (Stripe pending or requires_action, WeChat Pay PROCESSING, Alipay
	// without fund_change Y, UnionPay's respCode 00);
	// ProviderRefundID names it for QueryRefund and the notification.
	RefundAccepted
	// RefundNotFound: a query found no refund of this key at the
	// provider (Alipay: the request never landed): send it again, with
	// the same key.
	RefundNotFound
)

func (o RefundOutcome) String() string {
	switch o {
	case RefundDone:
		return "done"
	case RefundFailed:
		return "failed"
	case RefundAccepted:
		return "accepted"
	case RefundNotFound:
		return "not_found"
	}
	return "retry"
}

// RefundResult is a refund client's answer.
type RefundResult struct {
	Outcome          RefundOutcome
	ProviderRefundID string // re_..., WeChat Pay's refund_id, Alipay's trade_no
	Detail           string // the provider's code and message, for admins; never a secret
}

func retry(format string, args ...any) RefundResult {
	return RefundResult{Outcome: RefundRetry, Detail: truncateDetail(fmt.Sprintf(format, args...))}
}

func failed(format string, args ...any) RefundResult {
	return RefundResult{Outcome: RefundFailed, Detail: truncateDetail(fmt.Sprintf(format, args...))}
}

func truncateDetail(s string) string {
	const max = 250
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// Refunder is a refund client.
type Refunder interface {
	Refund(ctx context.Context, r RefundRequest) RefundResult
	// QueryRefund asks how a refund the provider accepted ended:
	// RefundDone, RefundFailed, RefundAccepted (not yet), RefundNotFound
	// (send it again), or RefundRetry (no answer worth believing).
	QueryRefund(ctx context.Context, r RefundRequest) RefundResult
}

// refundResponseMax bounds what is read of a provider's answer.
const refundResponseMax = 64 << 10

// send posts req and reads the answer; err is a transport failure or a
// timeout (ctx's deadline).
func send(client *http.Client, req *http.Request) (status int, header http.Header, body []byte, err error) {
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, refundResponseMax+1))
	if err != nil {
		return 0, nil, nil, err
	}
	if len(body) > refundResponseMax {
		return 0, nil, nil, errors.New("answer larger than 64 KiB")
	}
	return resp.StatusCode, resp.Header, body, nil
}

// FormatDecimalMinor writes minor units as a decimal with two places
// (10 -> "0.10", 1999999 -> "19999.99"), without floating point.
func FormatDecimalMinor(n int64) string {
	if n < 0 {
		return "-" + FormatDecimalMinor(-n)
	}
	frac := n % 100
	s := strconv.FormatInt(n/100, 10) + "."
	if frac < 10 {
		s += "0"
	}
	return s + strconv.FormatInt(frac, 10)
}

// ParseRSAPrivateKey reads a merchant's private key: PEM "PRIVATE KEY"
// (PKCS#8, as WeChat Pay's apiclient_key.pem and Alipay's key tool write
// it) or "RSA PRIVATE KEY" (PKCS#1).
func ParseRSAPrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("payments: the private key is not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("payments: a PEM %q block is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("payments: cannot parse the private key: %w", err)
	}
	k, ok := key.(*rsa.PrivateKey)
	if !ok || k.N.BitLen() < rsaKeyBitsMin {
		return nil, fmt.Errorf("payments: the private key is not an RSA key of %d bits or more", rsaKeyBitsMin)
	}
	return k, nil
}

// nowOr is the clock of a client: c, or time.Now.
func nowOr(c func() time.Time) time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}
