package httpapi

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/onsale/onsale/engine"
)

// TestReconciliation: for each provider's settlement file format, one
// payment that matches, and one of each kind of difference: paid here but
// not in the file, in the file but not here, another amount, a refund
// recorded here that did not land. Amounts 0.10 and 19999.99 are read
// without floating point.
func TestReconciliation(t *testing.T) {
	for _, c := range []struct{ provider, currency string }{{"stripe", "EUR"}, {"alipay", "CNY"}, {"wechatpay", "CNY"}} {
		t.Run(c.provider, func(t *testing.T) {
			e := startEnv(t, envOptions{})
			ctx := context.Background()
			now := e.clock.Now().UnixMilli()
			if _, _, err := e.eng.PutSale(ctx, engine.SaleConfig{ID: "r1", Name: "Reconciled", Currency: c.currency,
				OpensAtMs: now - 1000, ClosesAtMs: now + 3600_000, HoldMs: 600_000, PerUserLimit: 10,
				Tiers: []engine.TierConfig{{ID: "big", Name: "Big", PriceCents: 1999999, Stock: 10}, {ID: "small", Name: "Small", PriceCents: 10, Stock: 10}}}); err != nil {
				t.Fatal(err)
			}
			orders := map[string]string{}
			for _, o := range []struct{ tx, tier string }{{"tx_a", "big"}, {"tx_b", "small"}, {"tx_d", "big"}, {"tx_e", "small"}, {"tx_f", "small"}} {
				ord, _, err := e.eng.Purchase(ctx, engine.PurchaseRequest{SaleID: "r1", TierID: o.tier, Quantity: 1, UserID: "u" + o.tx, IdempotencyKey: o.tx})
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := e.eng.ApplyPayment(ctx, engine.Payment{EventID: c.provider + ":" + o.tx, OrderID: ord.ID, Succeeded: true,
					AmountCents: ord.AmountCents, Currency: c.currency}); err != nil {
					t.Fatal(err)
				}
				orders[o.tx] = ord.ID
			}
			for _, tx := range []string{"tx_e", "tx_f"} { // refunded here by the worker
				if _, err := e.eng.Refund(ctx, orders[tx], false); err != nil {
					t.Fatal(err)
				}
				if _, err := e.eng.UpdatePayout(ctx, engine.PayoutUpdate{PayoutID: orders[tx] + ".0", Action: engine.PayoutAttempted,
					Outcome: engine.PayoutRefunded, ProviderRefundID: "r" + tx}); err != nil {
					t.Fatal(err)
				}
			}
			csvAdmin := e.admin()
			csvAdmin["Content-Type"] = "text/plain; charset=utf-8"
			file, err := os.ReadFile("testdata/settlement/" + c.provider + ".csv")
			if err != nil {
				t.Fatal(err)
			}
			r := e.want(e.do("POST", "/v1/admin/reconciliation?provider="+c.provider, csvAdmin, string(file)), 200, "")
			var got []string
			for _, d := range r.json()["differences"].([]any) {
				m := d.(map[string]any)
				got = append(got, fmt.Sprintf("%s %s here=%v provider=%v", m["kind"], m["transaction_id"], m["amount_here_cents"], m["amount_at_provider_cents"]))
			}
			slices.Sort(got)
			want := []string{
				"amount_mismatch tx_d here=1999999 provider=1999998",
				"paid_at_provider_not_here tx_c here=0 provider=10",
				"paid_here_not_at_provider tx_b here=10 provider=0",
				"refund_not_landed tx_e here=10 provider=0",
			}
			if !slices.Equal(got, want) {
				t.Fatalf("differences:\n got %s\nwant %s\n%s", strings.Join(got, "\n     "), strings.Join(want, "\n     "), r.body)
			}
			// Another provider's file is not this one's.
			e.want(e.do("POST", "/v1/admin/reconciliation?provider=paypal", csvAdmin, string(file)), 400, "invalid_query")
			e.want(e.do("POST", "/v1/admin/reconciliation?provider="+c.provider, csvAdmin, "not,a\nsettlement"), 422, "invalid_request")
			e.want(e.do("POST", "/v1/admin/reconciliation?provider="+c.provider, e.buyer("alice"), string(file)), 403, "forbidden")
		})
	}
}
