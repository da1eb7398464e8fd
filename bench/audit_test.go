package bench

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/onsale/onsale/bench/api"
)

// cleanAudit is a consistent picture of a small flash sale: stock 3, limit
// 2; alice paid one, bob cancelled one, carol holds one, dave's expired.
func cleanAudit() *AuditInput {
	sale := api.SaleSpec{ID: "flash", PerUserLimit: 2, Tiers: []api.TierSpec{{ID: "ga", Stock: 3}}}
	tracked := []TrackedOrder{
		{OrderID: "o1", SaleID: "flash", Tier: "ga", User: "alice", Quantity: 1, Allowed: allowedPaid},
		{OrderID: "o2", SaleID: "flash", Tier: "ga", User: "bob", Quantity: 1, Allowed: allowedCancelled},
		{OrderID: "o3", SaleID: "flash", Tier: "ga", User: "carol", Quantity: 1, Allowed: allowedUntouched},
		{OrderID: "o4", SaleID: "flash", Tier: "ga", User: "dave", Quantity: 1, Allowed: allowedUntouched},
	}
	status := map[string]string{"o1": "paid", "o2": "cancelled", "o3": "pending", "o4": "expired"}
	in := &AuditInput{
		Sales: []api.SaleSpec{sale},
		Views: map[string]api.SaleView{"flash": {ID: "flash", Tiers: []api.TierView{
			{ID: "ga", Stock: 3, Available: 1, Held: 1, Sold: 1},
		}}},
		Exported:  map[string][]api.Order{},
		ExportErr: map[string]string{},
		Fetched:   map[string]FetchedOrder{},
		Tracked:   tracked,
	}
	for _, t := range tracked {
		o := api.Order{OrderID: t.OrderID, SaleID: "flash", Tier: "ga", Quantity: 1, Status: status[t.OrderID]}
		in.Exported["flash"] = append(in.Exported["flash"], o)
		in.Fetched[t.OrderID] = FetchedOrder{Status: 200, Order: o}
	}
	return in
}

func TestAuditPassesCleanRun(t *testing.T) {
	r := Audit(cleanAudit())
	if !r.Passed {
		t.Fatalf("clean run failed: %+v", r)
	}
	if r.Orders != 4 || r.Tiers != 1 || r.Sales != 1 || r.Exported != 4 || r.Users != 2 {
		t.Fatalf("counts %+v", r)
	}
	if r.Statuses["paid"] != 1 || r.Statuses["expired"] != 1 {
		t.Fatalf("statuses %v", r.Statuses)
	}
	if len(r.Warnings) != 0 {
		t.Fatalf("warnings %v", r.Warnings)
	}
}

// addOrder adds an active order of user to the export and the fetches.
func addOrder(in *AuditInput, id, user, status string, qty int) {
	o := api.Order{OrderID: id, SaleID: "flash", Tier: "ga", Quantity: qty, Status: status}
	in.Exported["flash"] = append(in.Exported["flash"], o)
	in.Fetched[id] = FetchedOrder{Status: 200, Order: o}
	in.Tracked = append(in.Tracked, TrackedOrder{OrderID: id, SaleID: "flash", Tier: "ga", User: user, Quantity: qty,
		Allowed: []string{api.StatusPending, api.StatusExpired, api.StatusPaid}})
}

func setOrder(in *AuditInput, id string, f func(o *api.Order)) {
	fo := in.Fetched[id]
	f(&fo.Order)
	in.Fetched[id] = fo
	for i := range in.Exported["flash"] {
		if in.Exported["flash"][i].OrderID == id {
			f(&in.Exported["flash"][i])
		}
	}
}

func TestAuditCatchesEachRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule string
		mut  func(in *AuditInput)
	}{
		{"counters oversold", RuleStock, func(in *AuditInput) {
			in.Views["flash"].Tiers[0].Sold = 3 // sold 3 + held 1 > 3
		}},
		{"negative held", RuleStock, func(in *AuditInput) {
			in.Views["flash"].Tiers[0].Held = -1
		}},
		{"stock changed under us", RuleStock, func(in *AuditInput) {
			in.Views["flash"].Tiers[0].Stock = 4
		}},
		{"orders oversold while counters look fine", RuleStock, func(in *AuditInput) {
			addOrder(in, "o5", "erin", "pending", 1)
			addOrder(in, "o6", "frank", "paid", 1) // paid 2 + pending 2 = 4 > 3
		}},
		{"paid order is pending", RuleOrderStatus, func(in *AuditInput) {
			setOrder(in, "o1", func(o *api.Order) { o.Status = "pending" })
		}},
		{"cancelled order is paid", RuleOrderStatus, func(in *AuditInput) {
			setOrder(in, "o2", func(o *api.Order) { o.Status = "paid" })
		}},
		{"untouched order is paid", RuleOrderStatus, func(in *AuditInput) {
			setOrder(in, "o3", func(o *api.Order) { o.Status = "paid" })
		}},
		{"acknowledged order is gone", RuleOrderStatus, func(in *AuditInput) {
			in.Fetched["o3"] = FetchedOrder{Status: 404, Code: "not_found"}
		}},
		{"acknowledged order not fetched", RuleOrderStatus, func(in *AuditInput) {
			delete(in.Fetched, "o4")
		}},
		{"GET returns another order", RuleOrderStatus, func(in *AuditInput) {
			fo := in.Fetched["o3"]
			fo.Order.OrderID = "o4"
			in.Fetched["o3"] = fo
		}},
		{"quantity changed", RuleOrderStatus, func(in *AuditInput) {
			fo := in.Fetched["o3"]
			fo.Order.Quantity = 2
			in.Fetched["o3"] = fo
		}},
		{"user over the limit (owner from the harness)", RulePerUserLimit, func(in *AuditInput) {
			in.Views["flash"].Tiers[0].Stock = 5
			in.Sales[0].Tiers[0].Stock = 5
			addOrder(in, "o5", "alice", "pending", 1)
			addOrder(in, "o6", "alice", "pending", 1) // alice: paid 1 + pending 2 = 3 > 2
		}},
		{"user over the limit (owner from the export)", RulePerUserLimit, func(in *AuditInput) {
			in.Views["flash"].Tiers[0].Stock = 5
			in.Sales[0].Tiers[0].Stock = 5
			// An order the harness never saw acknowledged, but the server has.
			in.Exported["flash"] = append(in.Exported["flash"],
				api.Order{OrderID: "x1", SaleID: "flash", Tier: "ga", Quantity: 2, Status: "paid", UserID: "alice"})
		}},
		{"acknowledged order missing from the export", RuleExport, func(in *AuditInput) {
			in.Exported["flash"] = in.Exported["flash"][1:]
		}},
		{"export failed", RuleExport, func(in *AuditInput) {
			in.ExportErr["flash"] = "500"
		}},
		{"export lists another sale's order", RuleExport, func(in *AuditInput) {
			in.Exported["flash"][0].SaleID = "other"
		}},
		{"sale unreadable", RuleSale, func(in *AuditInput) {
			delete(in.Views, "flash")
		}},
		{"tier missing", RuleSale, func(in *AuditInput) {
			in.Views["flash"] = api.SaleView{ID: "flash"}
		}},
		{"idempotency broken during the run", RuleIdempotency, func(in *AuditInput) {
			in.RunViolations = []Violation{{Rule: RuleIdempotency, Detail: "key k1 gave o1 then o9"}}
			in.RunViolated = 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := cleanAudit()
			tc.mut(in)
			r := Audit(in)
			if r.Passed {
				t.Fatalf("audit passed")
			}
			if r.ByRule[tc.rule] == 0 {
				t.Fatalf("rule %s not reported; got %v: %v", tc.rule, r.ByRule, r.Violations)
			}
			if len(r.Violations) == 0 || !slices.ContainsFunc(r.Violations, func(v Violation) bool { return v.Rule == tc.rule }) {
				t.Fatalf("no detail for %s: %v", tc.rule, r.Violations)
			}
		})
	}
}

func TestAuditNeedsRefundHoldsNothing(t *testing.T) {
	// A payment for an expired hold whose stock was resold is paid with
	// needs_refund: it counts neither against the stock nor the limit.
	in := cleanAudit()
	addOrder(in, "o5", "alice", "paid", 2)
	setOrder(in, "o5", func(o *api.Order) { o.NeedsRefund = true })
	if r := Audit(in); !r.Passed {
		t.Fatalf("needs_refund order counted: %v", r.Violations)
	}
}

func TestAuditBoundsDetail(t *testing.T) {
	in := cleanAudit()
	for i := range 100 {
		in.Tracked = append(in.Tracked, TrackedOrder{OrderID: fmt.Sprintf("gone%d", i), SaleID: "flash", User: "u"})
	}
	in.RunViolated = 500
	r := Audit(in)
	if got := r.ByRule[RuleOrderStatus]; got != 100 {
		t.Fatalf("order_status count %d, want 100", got)
	}
	if r.ByRule[RuleIdempotency] != 500 {
		t.Fatalf("idempotency count %d, want 500", r.ByRule[RuleIdempotency])
	}
	n := 0
	for _, v := range r.Violations {
		if v.Rule == RuleOrderStatus {
			n++
		}
	}
	if n != auditViolationsMax {
		t.Fatalf("%d order_status details, want %d", n, auditViolationsMax)
	}
}

func TestAuditWarnsOnInconsistentAvailable(t *testing.T) {
	in := cleanAudit()
	in.Views["flash"].Tiers[0].Available = 0
	r := Audit(in)
	if !r.Passed || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "available 0") {
		t.Fatalf("passed %v warnings %v", r.Passed, r.Warnings)
	}
}

func TestTrackerExpectations(t *testing.T) {
	tr := NewTracker()
	o := tr.Add(&api.Order{OrderID: "o1", AmountCents: 100, Currency: "EUR"}, "alice", 0, "k1", "flash", "ga", 1)
	if !slices.Equal(o.Allowed, allowedUntouched) {
		t.Fatalf("new order allows %v", o.Allowed)
	}
	tr.AfterPay(o, &api.Result{Status: 429, Code: api.CodeOverloaded}) // refused at once: nothing changed
	if !slices.Equal(o.Allowed, allowedUntouched) {
		t.Fatalf("after a 429 pay: %v", o.Allowed)
	}
	tr.AfterPay(o, &api.Result{Code: api.CodeTimeout}) // may or may not have been paid
	if !slices.Equal(o.Allowed, []string{"pending", "expired", "paid"}) {
		t.Fatalf("after a timed-out pay: %v", o.Allowed)
	}
	if !slices.Equal(allowedUntouched, []string{"pending", "expired"}) {
		t.Fatalf("shared expectation was modified: %v", allowedUntouched)
	}
	tr.AfterPay(o, &api.Result{Status: 200})
	if !slices.Equal(o.Allowed, allowedPaid) {
		t.Fatalf("after pay: %v", o.Allowed)
	}
	o2 := tr.Add(&api.Order{OrderID: "o2"}, "bob", 1, "k2", "flash", "ga", 1)
	tr.AfterCancel(o2, &api.Result{Status: 200})
	if !slices.Equal(o2.Allowed, allowedCancelled) {
		t.Fatalf("after cancel: %v", o2.Allowed)
	}

	// Idempotency: the same order for another key, a different order or a
	// 409 for a retried key are violations; a 429 or a timeout is not.
	tr.Add(&api.Order{OrderID: "o1"}, "carol", 2, "k3", "flash", "ga", 1)
	tr.Replayed(o, &api.Result{Status: 200, Order: api.Order{OrderID: "o1"}})
	tr.Replayed(o, &api.Result{Status: 200, Order: api.Order{OrderID: "o9"}})
	tr.Replayed(o, &api.Result{Status: 409, Code: api.CodeLimitExceeded})
	tr.Replayed(o, &api.Result{Status: 429, Code: api.CodeOverloaded})
	tr.Replayed(o, &api.Result{Code: api.CodeTimeout})
	vs, n := tr.Violations()
	if n != 3 || len(vs) != 3 {
		t.Fatalf("violations %d %v, want 3", n, vs)
	}
	if got := len(tr.Orders()); got != 2 {
		t.Fatalf("%d orders tracked, want 2", got)
	}
}
