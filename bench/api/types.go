package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SaleSpec is the admin's sale document (PUT /v1/admin/sales/{id} and one
// entry of POST /v1/admin/sales:load, where ID is set).
type SaleSpec struct {
	ID           string     `json:"id,omitempty"`
	Name         string     `json:"name"`
	Currency     string     `json:"currency"`
	OpensAt      time.Time  `json:"opens_at"`
	ClosesAt     time.Time  `json:"closes_at"`
	HoldSeconds  int        `json:"hold_seconds"`
	PerUserLimit int        `json:"per_user_limit"`
	Tiers        []TierSpec `json:"tiers"`
	// The catalogue, optional.
	City     string     `json:"city,omitempty"`
	Venue    string     `json:"venue,omitempty"`
	Category string     `json:"category,omitempty"`
	Event    string     `json:"event,omitempty"`
	StartsAt *time.Time `json:"starts_at,omitempty"`
	// A waiting room (queue.go), optional.
	Queue *QueueSpec `json:"queue,omitempty"`
}

// TierSpec is one tier of a SaleSpec.
type TierSpec struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceCents int64  `json:"price_cents"`
	Stock      int    `json:"stock"`
}

// SaleView is the public GET /v1/sales/{id} answer.
type SaleView struct {
	ID           string     `json:"id"`
	Name         string     `json:"name,omitempty"`
	Currency     string     `json:"currency,omitempty"`
	PerUserLimit int        `json:"per_user_limit,omitempty"`
	Tiers        []TierView `json:"tiers"`
}

// TierView is one tier of a SaleView with its live counters.
type TierView struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	PriceCents int64  `json:"price_cents"`
	Stock      int    `json:"stock"`
	Available  int    `json:"available"`
	Held       int    `json:"held"`
	Sold       int    `json:"sold"`
}

// Order statuses (issue 3).
const (
	StatusPending   = "pending"
	StatusPaid      = "paid"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
	StatusRefunded  = "refunded"
)

// Order is an order as the server shows it. UserID is read from "user_id"
// or "user" when the server includes it; the audit falls back to the
// harness's own record of who bought what.
type Order struct {
	OrderID     string    `json:"order_id"`
	ProviderNo  string    `json:"provider_order_no,omitempty"`
	Status      string    `json:"status"`
	SaleID      string    `json:"sale_id"`
	Tier        string    `json:"tier"`
	Quantity    int       `json:"quantity"`
	AmountCents int64     `json:"amount_cents"`
	Currency    string    `json:"currency"`
	ExpiresAt   time.Time `json:"expires_at"`
	NeedsRefund bool      `json:"needs_refund"`
	UserID      string    `json:"user_id,omitempty"`
	User        string    `json:"user,omitempty"`
}

// Owner is the buyer's id as the server reports it, or "".
func (o *Order) Owner() string {
	if o.UserID != "" {
		return o.UserID
	}
	return o.User
}

// OrderPage is one page of the admin export.
type OrderPage struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor"`
}

// Problem is an application/problem+json error body.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
}

// Error codes the harness tells apart (issue 3). Business outcomes first.
const (
	CodeSoldOut             = "sold_out"
	CodeLimitExceeded       = "limit_exceeded"
	CodeSaleNotOpen         = "sale_not_open"
	CodeSaleClosed          = "sale_closed"
	CodeUnknownSale         = "unknown_sale"
	CodeUnknownTier         = "unknown_tier"
	CodeInvalidRequest      = "invalid_request"
	CodeUnauthorized        = "unauthorized"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeIdempotencyConflict = "idempotency_conflict"
	CodeOverloaded          = "overloaded"
	// Codes the client makes up for failures without an HTTP answer.
	CodeTimeout   = "timeout"
	CodeTransport = "transport"
)

// Payment event types.
const (
	PaymentSucceeded = "payment.succeeded"
	PaymentFailed    = "payment.failed"
)

// PaymentEvent is the webhook body.
type PaymentEvent struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// SignatureHeader is the webhook's signature header name.
const SignatureHeader = "Onsale-Signature"

// Sign returns the Onsale-Signature value for body at unix time t:
// "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
func Sign(secret []byte, t int64, body []byte) string {
	ts := strconv.FormatInt(t, 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// MintUserToken returns an HS256 JWT with sub=user and exp=exp, signed with
// the user secret, as onsale's buyers present it.
func MintUserToken(secret []byte, user string, exp time.Time) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user,
		"exp": exp.Unix(),
	})
	return tok.SignedString(secret)
}
