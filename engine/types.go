package engine

import "fmt"

// Limits on everything a caller can send. They bound memory per request and
// per record, and the codec relies on them.
const (
	IDLenMax             = 64  // sale and tier ids
	NameLenMax           = 200 // sale and tier names
	UserLenMax           = 128 // user ids (a JWT sub)
	IdempotencyKeyLenMax = 255
	PaymentIDLenMax      = 255
	TiersPerSaleMax      = 64
	QuantityPerOrderMax  = 64 // one bit per ticket in the check-in mask
	StockPerTierMax      = 10_000_000
	PriceCentsMax        = 100_000_000_00 // 100 million in major units
	HoldMsMax            = 24 * 3600 * 1000

	// Catalogue fields (Catalogue); all optional.
	VenueLenMax       = NameLenMax
	CityLenMax        = 100
	ImageURLLenMax    = 2048
	DescriptionLenMax = 4000
	// StartsAtMsMax is 9999-12-31T23:59:59.999Z: a bound that RFC 3339
	// can write and the catalogue's sort key can order.
	StartsAtMsMax = 253402300799999
)

// SaleConfig is what an admin writes: a sale and its tiers. Times are unix
// milliseconds. Tiers are append-only: an update may add tiers and change
// existing ones, but never remove one (set its stock to sold + held instead).
type SaleConfig struct {
	ID           string
	Name         string
	Currency     string // ISO 4217, three upper-case letters
	OpensAtMs    int64
	ClosesAtMs   int64
	HoldMs       int64 // how long a pending order holds its tickets
	PerUserLimit int   // tickets per user across the whole sale
	Tiers        []TierConfig
	Catalogue                 // what the sale is for; every field optional
	RealName     RealNameRule // realname.go; zero: anyone may buy for anyone
	// RefundPolicy: refundrules.go; nil: no self-service refund, no
	// exchange. A pointer: sales without one (and every view published
	// of them) carry 8 bytes for it. Shared: never modify it.
	RefundPolicy *RefundPolicy
	Queue        QueueConfig   // queue.go; zero: no waiting room
	Offers       *OffersConfig // offers.go: lottery and waitlist; nil: neither
}

// Catalogue describes the performance a sale sells: what the public
// listing (GET /v1/sales) filters, sorts and shows. The zero value is a
// sale without one, as every sale was before it existed.
type Catalogue struct {
	Event       string // id shared by the sales of one show's sessions (an ID, like a sale's)
	Venue       string
	City        string
	StartsAtMs  int64  // the performance (not the sale's opening); 0: not said
	Category    string // one of Categories, or ""
	ImageURL    string // https only
	Description string
}

// Categories are the values a Catalogue.Category may take. An enum rather
// than free text, so that a listing filter finds every sale of a kind: free
// text splits "concert", "Concert" and "concerts" into three lists.
var Categories = []string{"concert", "sport", "theatre", "exhibition", "transport", "other"}

// TierConfig is one price zone or ticket category of a sale.
type TierConfig struct {
	ID         string
	Name       string
	PriceCents int64 // after the last phase, or without phases
	Stock      int
	Phases     []PricePhase       // price steps before PriceCents (pricing.go); nil: none
	Components []PackageComponent // a package of other tiers' tickets (packages.go); nil: a plain tier
}

// Sale is a sale as queried: its configuration and live counts per tier.
type Sale struct {
	SaleConfig
	Closed     bool // closed by an admin, whatever the clock says
	Archived   bool // moved out of memory (archive.go): counts are final
	OrderCount int
	TierCounts []TierCounts // same order as SaleConfig.Tiers
	// Version numbers the published views of the sale (SaleView): 1 for
	// the first, and one more for each next. It only grows within a
	// process and starts again at 1 after a restart; 0 outside views.
	Version     uint64
	QueueCounts *QueueCounts // queue.go; nil without a queue
	memo        *ViewMemo    // views.go; nil outside views
}

// TierCounts are a tier's live numbers. Stock = Sold + Held + Available.
type TierCounts struct {
	Held      int
	Sold      int
	Available int
}

// OrderStatus is where an order is in its lifecycle:
//
//	pending ──► paid ──► refunded
//	   │
//	   ├──► cancelled   (buyer, or payment.failed)
//	   └──► expired     (hold ran out)
//
// A payment for an expired or cancelled order makes it paid again if stock
// and the user's limit allow, and paid with NeedsRefund otherwise.
type OrderStatus uint8

const (
	StatusPending OrderStatus = iota + 1
	StatusPaid
	StatusCancelled
	StatusExpired
	StatusRefunded
)

var statusNames = [...]string{
	StatusPending:   "pending",
	StatusPaid:      "paid",
	StatusCancelled: "cancelled",
	StatusExpired:   "expired",
	StatusRefunded:  "refunded",
}

func (s OrderStatus) String() string {
	if int(s) < len(statusNames) && statusNames[s] != "" {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Order is an order as queried.
type Order struct {
	ID             string // "<sale id>.<26 base32 chars>": routes to its sale, not guessable
	SaleID         string
	TierID         string
	UserID         string
	IdempotencyKey string
	Quantity       int
	AmountCents    int64 // UnitPriceCents * Quantity - DiscountCents
	UnitPriceCents int64 // the tier's price in force when the order was decided (pricing.go)
	Coupon         string
	DiscountCents  int64 // what Coupon took off; 0 without one (coupons.go)
	Currency       string
	Status         OrderStatus
	NeedsRefund    bool   // paid, but no ticket could be given: refund the buyer
	PaymentID      string // the payment event that last changed the order, if any
	CreatedAtMs    int64
	ExpiresAtMs    int64 // end of the hold
	UpdatedAtMs    int64
	CheckedIn      uint64 // bit i set: ticket i has been checked in
	// DuplicateCharges are successful payments that did not pay for the
	// order (a second charge of a paid order, a charge of a refunded one):
	// money the buyer must get back. Oldest first.
	DuplicateCharges []DuplicateCharge
	// BoxOffice is the order's box-office record (boxoffice.go): who sold
	// it to whom, a payment taken at the counter. Nil for an online order
	// never paid at a counter. Shared: never modify it.
	BoxOffice *BoxOffice
	// Attendees are the people its tickets are for, one per ticket, on a
	// real-name sale (realname.go); nil elsewhere. Shared: never modify.
	Attendees []Attendee
	// Refunds are the order's refund and exchange records
	// (refundrules.go); nil when it has none. One pointer, so that the
	// orders without any (nearly all) carry 8 bytes for them.
	Refunds *OrderRefunds
	// Payouts are the order's refund obligations (payouts.go): an admin
	// refund, duplicate charges, mismatched and late payments. Oldest
	// first; nil without any.
	Payouts []Payout
}

// DuplicateCharge is a successful payment event recorded on an order it
// did not pay for.
type DuplicateCharge struct {
	EventID     string
	AmountCents int64 // in the order's currency
	AtMs        int64
	// RefundedAtMs: when an admin recorded the money as returned by
	// hand (refundrules.go); 0 while owed. Note is theirs.
	RefundedAtMs int64
	Note         string
}

// Tickets returns the codes of the order's tickets, valid for check-in while
// the order is paid and does not need a refund.
func (o *Order) Tickets() []string {
	codes := make([]string, o.Quantity)
	for i := range codes {
		codes[i] = TicketCode(o.ID, i)
	}
	return codes
}

// TicketCode is the code printed on ticket i of an order.
func TicketCode(orderID string, i int) string {
	return fmt.Sprintf("%s.%d", orderID, i)
}

// PurchaseRequest asks for Quantity tickets of a tier for a user.
type PurchaseRequest struct {
	SaleID         string
	TierID         string
	Quantity       int
	UserID         string
	IdempotencyKey string
	Coupon         string          // optional (coupons.go): case-insensitive
	Attendees      []Attendee      // one per ticket on a real-name sale (realname.go); none elsewhere
	Admission      *QueueAdmission // required on a queued sale (queue.go)
}

// Payment is a payment provider's event about an order.
type Payment struct {
	EventID     string
	OrderID     string
	Succeeded   bool // payment.succeeded; false is payment.failed
	AmountCents int64
	Currency    string
}

// PaymentOutcome says what a payment event did.
type PaymentOutcome uint8

const (
	// PaymentUnchanged: nothing changed (the event was seen before, or a
	// failure arrived for an order that is no longer pending).
	PaymentUnchanged PaymentOutcome = iota
	// PaymentApplied: the event moved the order (paid, or cancelled by a
	// failure).
	PaymentApplied
	// PaymentDuplicateCharge: a success for an order already paid or
	// refunded; recorded now in Order.DuplicateCharges, not applied.
	PaymentDuplicateCharge
	// PaymentDuplicateChargeSeen: the same duplicate charge again.
	PaymentDuplicateChargeSeen
	// PaymentMismatch: a success whose amount or currency is not the
	// order's; recorded now as a payment_mismatch payout, to go back
	// (payouts.go). The order is unchanged.
	PaymentMismatch
	// PaymentMismatchSeen: the same mismatched payment again.
	PaymentMismatchSeen
)

// Mismatch reports whether the event is a recorded mismatched payment.
func (p PaymentOutcome) Mismatch() bool { return p == PaymentMismatch || p == PaymentMismatchSeen }

// Applied reports whether the event changed the order's status.
func (p PaymentOutcome) Applied() bool { return p == PaymentApplied }

// DuplicateCharge reports whether the event is a recorded duplicate charge.
func (p PaymentOutcome) DuplicateCharge() bool {
	return p == PaymentDuplicateCharge || p == PaymentDuplicateChargeSeen
}

// CheckIn is the result of scanning a ticket at the door.
type CheckIn struct {
	Order  Order
	Ticket int
}
