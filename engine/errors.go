package engine

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable name for a business outcome that is not
// a success. HTTP maps each code to a status in one place (httpapi).
type Code string

const (
	CodeUnknownSale          Code = "unknown_sale"
	CodeUnknownTier          Code = "unknown_tier"
	CodeUnknownOrder         Code = "unknown_order"
	CodeUnknownTicket        Code = "unknown_ticket"
	CodeSaleNotOpen          Code = "sale_not_open"
	CodeSaleClosed           Code = "sale_closed"
	CodeSoldOut              Code = "sold_out"
	CodeLimitExceeded        Code = "limit_exceeded"
	CodeInvalidQuantity      Code = "invalid_quantity"
	CodeIdempotencyConflict  Code = "idempotency_conflict"
	CodeInvalidRequest       Code = "invalid_request"
	CodeStockBelowCommitted  Code = "stock_below_committed"
	CodeTierRemoved          Code = "tier_removed"
	CodeCurrencyChange       Code = "currency_change"
	CodePaymentMismatch      Code = "payment_mismatch"
	CodeInvalidOrderState    Code = "invalid_order_state"
	CodeTicketNotValid       Code = "ticket_not_valid"
	CodeTicketAlreadyCheckIn Code = "already_checked_in"
	CodeTicketUsed           Code = "ticket_used"
	CodeUnknownCredential    Code = "unknown_credential"
	CodeSaleArchived         Code = "sale_archived"  // archive.go
	CodePendingOrders        Code = "orders_pending" // archive.go
	CodeUnknownRefund        Code = "unknown_refund" // payouts.go
)

// Rejection is a business outcome: the command was understood and refused,
// and nothing changed. It is an error value so callers can return it, but it
// is not an operational failure.
type Rejection struct {
	Code      Code
	Message   string
	Available int        // for sold_out: how many tickets of the tier are left
	First     *Admission // for already_checked_in: the ticket's first admission (checkin.go)
}

func (r *Rejection) Error() string { return string(r.Code) + ": " + r.Message }

func reject(code Code, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Operational failures.
var (
	// ErrOverloaded: the shard's inbox is full, or the request waited past
	// its deadline before the shard reached it. Nothing was decided; retry.
	ErrOverloaded = errors.New("engine: overloaded")
	// ErrStopped: the engine is closed or failed (a log write failed). The
	// request may or may not have been decided; it was not acknowledged.
	ErrStopped = errors.New("engine: stopped")
)
