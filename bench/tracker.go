package bench

import (
	"fmt"
	"slices"
	"sync"

	"github.com/onsale/onsale/bench/api"
)

// TrackedOrder is an order the server acknowledged with a 2xx, and what the
// harness did to it since: the audit expects its status to be in Allowed.
type TrackedOrder struct {
	OrderID     string   `json:"order_id"`
	SaleID      string   `json:"sale_id"`
	Tier        string   `json:"tier"`
	User        string   `json:"user"`
	Key         string   `json:"idempotency_key"`
	Quantity    int      `json:"quantity"`
	AmountCents int64    `json:"amount_cents"`
	Currency    string   `json:"currency"`
	Allowed     []string `json:"allowed"`

	userIdx    int
	providerNo string // what a provider's notification names the order by
}

var (
	allowedUntouched = []string{api.StatusPending, api.StatusExpired}
	allowedPaid      = []string{api.StatusPaid}
	allowedCancelled = []string{api.StatusCancelled}
)

// trackerViolationsMax bounds the violations a tracker keeps in detail.
const trackerViolationsMax = 100

// Tracker records every acknowledged order of a run, and idempotency
// answers that contradict an earlier one. Safe for concurrent use.
type Tracker struct {
	mu         sync.Mutex
	orders     map[string]*TrackedOrder
	list       []*TrackedOrder
	violations []Violation
	violated   int
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{orders: map[string]*TrackedOrder{}}
}

// Add tracks the order of a 2xx purchase answer.
func (t *Tracker) Add(o *api.Order, user string, userIdx int, key, saleID, tier string, qty int) *TrackedOrder {
	to := &TrackedOrder{
		OrderID: o.OrderID, SaleID: saleID, Tier: tier, User: user, Key: key,
		Quantity: qty, AmountCents: o.AmountCents, Currency: o.Currency,
		Allowed: allowedUntouched, userIdx: userIdx, providerNo: o.ProviderNo,
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.orders[o.OrderID]; ok {
		t.violated++
		if len(t.violations) < trackerViolationsMax {
			t.violations = append(t.violations, Violation{Rule: RuleIdempotency, Detail: fmt.Sprintf(
				"order %s answered to key %q of %s and again to key %q of %s", o.OrderID, prev.Key, prev.User, key, user)})
		}
		return prev
	}
	t.orders[o.OrderID] = to
	t.list = append(t.list, to)
	return to
}

// Replayed checks the answer to a resent purchase (same user, sale and
// key): it must be a 2xx naming the same order. Overload and failures
// without an answer prove nothing either way.
func (t *Tracker) Replayed(o *TrackedOrder, res *api.Result) {
	var detail string
	switch {
	case res.OK() && res.Order.OrderID != o.OrderID:
		detail = fmt.Sprintf("key %q of %s first gave order %s, its retry gave %s", o.Key, o.User, o.OrderID, res.Order.OrderID)
	case res.Status >= 400 && res.Status < 500 && res.Status != 429:
		detail = fmt.Sprintf("key %q of %s gave order %s, its retry got %d %s", o.Key, o.User, o.OrderID, res.Status, res.Code)
	default:
		return
	}
	t.mu.Lock()
	t.violateLocked(RuleIdempotency, detail)
	t.mu.Unlock()
}

// AfterPay updates what the audit expects after the order's webhook.
func (t *Tracker) AfterPay(o *TrackedOrder, res *api.Result) {
	t.after(o, res, allowedPaid, api.StatusPaid)
}

// AfterCancel updates what the audit expects after the buyer's cancel.
func (t *Tracker) AfterCancel(o *TrackedOrder, res *api.Result) {
	t.after(o, res, allowedCancelled, api.StatusCancelled)
}

func (t *Tracker) after(o *TrackedOrder, res *api.Result, onOK []string, maybe string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case res.OK():
		o.Allowed = onOK
	case outcomeUnknown(res):
		if !slices.Contains(o.Allowed, maybe) {
			o.Allowed = append(slices.Clip(o.Allowed), maybe)
		}
	}
	// A definite refusal (4xx) changed nothing: keep what was expected.
}

// outcomeUnknown is an answer after which the request may or may not have
// taken effect: no answer at all, or a server error.
func outcomeUnknown(res *api.Result) bool {
	return res.Status == 0 || res.Status >= 500
}

func (t *Tracker) violateLocked(rule, detail string) {
	t.violated++
	if len(t.violations) < trackerViolationsMax {
		t.violations = append(t.violations, Violation{Rule: rule, Detail: detail})
	}
}

// Orders returns a copy of every tracked order, in the order acknowledged.
func (t *Tracker) Orders() []TrackedOrder {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TrackedOrder, len(t.list))
	for i, o := range t.list {
		out[i] = *o
	}
	return out
}

// Violations returns the idempotency violations seen during the run and
// how many there were in all.
func (t *Tracker) Violations() ([]Violation, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.violations), t.violated
}
