package bench

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/onsale/onsale/bench/api"
)

// Audit rules. A run that breaks any of them fails.
const (
	RuleStock        = "stock"          // per tier: sold + held <= stock, also counted from the orders
	RuleOrderStatus  = "order_status"   // every 2xx order can be fetched, with the status the harness expects
	RulePerUserLimit = "per_user_limit" // no user holds more than the sale's limit
	RuleIdempotency  = "idempotency"    // a retried key gave the same order; no order id for two keys
	RuleExport       = "export"         // the admin export lists every acknowledged order
	RuleSale         = "sale"           // every sale the scenario made can be read back
	RuleCheckIn      = "check_in"       // door: every ticket scanned is admitted exactly once
)

// Violation is one broken rule.
type Violation struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

// FetchedOrder is the answer to GET /v1/orders/{id} during the audit.
type FetchedOrder struct {
	Status int
	Code   string
	Order  api.Order
}

// AuditInput is everything the audit looks at: what the harness did and
// what the server says afterwards.
type AuditInput struct {
	Sales     []api.SaleSpec          // what the scenario created
	Views     map[string]api.SaleView // public view, by sale id
	Exported  map[string][]api.Order  // admin export, by sale id
	ExportErr map[string]string       // sales whose export failed
	Fetched   map[string]FetchedOrder // by order id
	Tracked   []TrackedOrder
	// Violations the tracker saw during the run (idempotency), and how many.
	RunViolations []Violation
	RunViolated   int
}

// AuditReport is the audit's verdict.
type AuditReport struct {
	Passed     bool           `json:"passed"`
	Sales      int            `json:"sales_checked"`
	Tiers      int            `json:"tiers_checked"`
	Orders     int            `json:"orders_checked"`
	Exported   int            `json:"orders_exported"`
	Users      int            `json:"users_checked"`
	Statuses   map[string]int `json:"statuses"`
	ByRule     map[string]int `json:"violations_by_rule"`
	Violations []Violation    `json:"violations"`
	Warnings   []string       `json:"warnings,omitempty"`
}

// auditViolationsMax bounds the violations listed in detail per rule.
const auditViolationsMax = 20

func (r *AuditReport) violate(rule, format string, args ...any) {
	r.ByRule[rule]++
	if r.ByRule[rule] <= auditViolationsMax {
		r.Violations = append(r.Violations, Violation{Rule: rule, Detail: fmt.Sprintf(format, args...)})
	}
}

// activeOrder is an order that holds or owns stock: pending, or paid
// without a refund owed (a payment the server could not honour is marked
// needs_refund and holds nothing).
func activeOrder(status string, needsRefund bool) bool {
	return status == api.StatusPending || (status == api.StatusPaid && !needsRefund)
}

// Audit checks the rules against in. It is pure: the collection is done
// by CollectAudit.
func Audit(in *AuditInput) AuditReport {
	r := AuditReport{ByRule: map[string]int{}, Statuses: map[string]int{}}
	r.auditTiers(in)
	r.auditOrders(in)
	r.auditLimits(in)
	for _, v := range in.RunViolations {
		r.ByRule[v.Rule]++
		if r.ByRule[v.Rule] <= auditViolationsMax {
			r.Violations = append(r.Violations, v)
		}
	}
	if extra := in.RunViolated - len(in.RunViolations); extra > 0 {
		r.ByRule[RuleIdempotency] += extra
	}
	r.Passed = len(r.ByRule) == 0
	return r
}

// auditTiers: per tier, sold + held <= stock by the counters, and the
// active orders of the export do not exceed the stock either.
func (r *AuditReport) auditTiers(in *AuditInput) {
	type tierKey struct{ sale, tier string }
	activeQty := map[tierKey]int{}
	for sale, orders := range in.Exported {
		for _, o := range orders {
			if activeOrder(o.Status, o.NeedsRefund) {
				activeQty[tierKey{sale, o.Tier}] += o.Quantity
			}
		}
	}
	for _, spec := range in.Sales {
		r.Sales++
		v, ok := in.Views[spec.ID]
		if !ok {
			r.violate(RuleSale, "sale %s: cannot be read back", spec.ID)
			continue
		}
		for _, ts := range spec.Tiers {
			r.Tiers++
			i := slices.IndexFunc(v.Tiers, func(t api.TierView) bool { return t.ID == ts.ID })
			if i < 0 {
				r.violate(RuleSale, "sale %s: tier %s missing from the public view", spec.ID, ts.ID)
				continue
			}
			t := v.Tiers[i]
			if t.Sold < 0 || t.Held < 0 || t.Sold+t.Held > t.Stock {
				r.violate(RuleStock, "sale %s tier %s: sold %d + held %d > stock %d", spec.ID, ts.ID, t.Sold, t.Held, t.Stock)
			}
			if t.Stock != ts.Stock {
				r.violate(RuleStock, "sale %s tier %s: stock %d, the admin set %d", spec.ID, ts.ID, t.Stock, ts.Stock)
			}
			if n := activeQty[tierKey{spec.ID, ts.ID}]; n > ts.Stock {
				r.violate(RuleStock, "sale %s tier %s: %d tickets in pending or paid orders, stock %d", spec.ID, ts.ID, n, ts.Stock)
			}
			if t.Available != t.Stock-t.Sold-t.Held {
				r.Warnings = append(r.Warnings, fmt.Sprintf("sale %s tier %s: available %d != stock %d - sold %d - held %d",
					spec.ID, ts.ID, t.Available, t.Stock, t.Sold, t.Held))
			}
		}
	}
}

// auditOrders: every tracked order was fetched with an expected status and
// is in its sale's export.
func (r *AuditReport) auditOrders(in *AuditInput) {
	exported := map[string]bool{}
	for sale, orders := range in.Exported {
		r.Exported += len(orders)
		for _, o := range orders {
			if o.SaleID != "" && o.SaleID != sale {
				r.violate(RuleExport, "order %s exported under sale %s names sale %s", o.OrderID, sale, o.SaleID)
			}
			exported[o.OrderID] = true
		}
	}
	for sale, msg := range in.ExportErr {
		r.violate(RuleExport, "sale %s: export failed: %s", sale, msg)
	}
	for _, t := range in.Tracked {
		r.Orders++
		f, ok := in.Fetched[t.OrderID]
		switch {
		case !ok:
			r.violate(RuleOrderStatus, "order %s (%s): not fetched", t.OrderID, t.User)
		case f.Status != 200:
			r.violate(RuleOrderStatus, "order %s (%s): GET answered %d %s", t.OrderID, t.User, f.Status, f.Code)
		default:
			r.Statuses[f.Order.Status]++
			if !slices.Contains(t.Allowed, f.Order.Status) {
				r.violate(RuleOrderStatus, "order %s (%s): status %q, expected one of %v", t.OrderID, t.User, f.Order.Status, t.Allowed)
			}
			if f.Order.OrderID != "" && f.Order.OrderID != t.OrderID {
				r.violate(RuleOrderStatus, "order %s: GET returned order %s", t.OrderID, f.Order.OrderID)
			}
			if f.Order.Quantity != 0 && f.Order.Quantity != t.Quantity {
				r.violate(RuleOrderStatus, "order %s: quantity %d, bought %d", t.OrderID, f.Order.Quantity, t.Quantity)
			}
		}
		if _, exportTried := in.Exported[t.SaleID]; exportTried && !exported[t.OrderID] {
			r.violate(RuleExport, "order %s of sale %s: acknowledged but not in the export", t.OrderID, t.SaleID)
		}
	}
}

// auditLimits: per sale and user, the active tickets stay within the
// sale's per-user limit. Orders come from the export (owner from the
// server if it says, else from the harness's record) and from the fetched
// orders, the fresher of the two.
func (r *AuditReport) auditLimits(in *AuditInput) {
	type ord struct {
		sale, user  string
		qty         int
		status      string
		needsRefund bool
	}
	byID := map[string]ord{}
	owner := map[string]string{}
	for _, t := range in.Tracked {
		owner[t.OrderID] = t.User
	}
	for sale, orders := range in.Exported {
		for _, o := range orders {
			u := o.Owner()
			if u == "" {
				u = owner[o.OrderID]
			}
			byID[o.OrderID] = ord{sale, u, o.Quantity, o.Status, o.NeedsRefund}
		}
	}
	for _, t := range in.Tracked {
		if f, ok := in.Fetched[t.OrderID]; ok && f.Status == 200 {
			byID[t.OrderID] = ord{t.SaleID, t.User, t.Quantity, f.Order.Status, f.Order.NeedsRefund}
		}
	}
	limits := map[string]int{}
	for _, s := range in.Sales {
		limits[s.ID] = s.PerUserLimit
	}
	type saleUser struct{ sale, user string }
	held := map[saleUser]int{}
	for _, o := range byID {
		if o.user == "" || !activeOrder(o.status, o.needsRefund) {
			continue
		}
		held[saleUser{o.sale, o.user}] += o.qty
	}
	keys := make([]saleUser, 0, len(held))
	for k := range held {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].sale != keys[j].sale {
			return keys[i].sale < keys[j].sale
		}
		return keys[i].user < keys[j].user
	})
	r.Users = len(keys)
	for _, k := range keys {
		if lim, ok := limits[k.sale]; ok && held[k] > lim {
			r.violate(RulePerUserLimit, "sale %s user %s: %d tickets, limit %d", k.sale, k.user, held[k], lim)
		}
	}
}

// exportPageSize is the admin export's page size during the audit.
const exportPageSize = 1000

// CollectAudit reads back, over HTTP as admin, what sc did on the server:
// every sale's public view, the export of every sale with orders, and
// every tracked order. workers bounds the concurrent order fetches;
// fetched, when not nil, counts the orders fetched so far.
func CollectAudit(c *api.Client, sc Scenario, workers int, fetched *atomic.Int64) (*AuditInput, error) {
	in := &AuditInput{
		Sales:     sc.Sales(),
		Views:     map[string]api.SaleView{},
		Exported:  map[string][]api.Order{},
		ExportErr: map[string]string{},
		Fetched:   map[string]FetchedOrder{},
		Tracked:   sc.Tracker().Orders(),
	}
	in.RunViolations, in.RunViolated = sc.Tracker().Violations()
	if d, ok := sc.(interface{ RunViolations() []Violation }); ok {
		// Rules the scenario checks itself (door: each ticket admitted once).
		vs := d.RunViolations()
		in.RunViolations = append(in.RunViolations, vs...)
		in.RunViolated += len(vs)
	}
	withOrders := map[string]bool{}
	for _, t := range in.Tracked {
		withOrders[t.SaleID] = true
	}
	for _, s := range in.Sales {
		v, err := c.GetSale(s.ID)
		if err == nil {
			in.Views[s.ID] = v
		}
		if !withOrders[s.ID] {
			continue
		}
		orders, err := c.ExportOrders(s.ID, exportPageSize)
		if err != nil {
			in.ExportErr[s.ID] = err.Error()
			continue
		}
		in.Exported[s.ID] = orders
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ids := make(chan string)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				res := c.GetOrder("", id)
				mu.Lock()
				in.Fetched[id] = FetchedOrder{Status: res.Status, Code: res.Code, Order: res.Order}
				mu.Unlock()
				if fetched != nil {
					fetched.Add(1)
				}
			}
		}()
	}
	for _, t := range in.Tracked {
		ids <- t.OrderID
	}
	close(ids)
	wg.Wait()
	return in, nil
}
