package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// dumpPays prints every sale's payments per minute, by sale id.
func dumpPays(states ...*state) string {
	var lines []string
	for _, st := range states {
		for _, sl := range st.sales {
			for _, p := range sl.pays {
				lines = append(lines, fmt.Sprintf("%s %d %d %d %d %d", sl.cfg.ID, p.minute, p.paid, p.paidCents, p.refunds, p.refundedCents))
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestPaymentsPerMinuteRecovered: over a random mix of purchases, payments
// (late ones included), refunds and exchanges, each sale's minutes are the
// recount of the log's OrderPaid and refund events by minute, and recovery
// (with a snapshot before, in the middle of or after the log) and a
// repartition restore them exactly.
func TestPaymentsPerMinuteRecovered(t *testing.T) {
	seed := testSeed(t)
	t.Logf("seed %d", seed)
	live, log := randomRefundLog(t, rand.New(rand.NewPCG(seed, 74)), 3000)

	// The model: the log's events, counted by (sale, minute).
	model := map[string]*payMinute{}
	refunds := 0
	for _, e := range log {
		err := decodeEntry(e, func(ev *event) error {
			refund := ev.kind == evOrderRefunded || ev.kind == evOrderRefundedAfterEntry || ev.kind == evRefundSettled
			if ev.kind != evOrderPaid && !refund {
				return nil
			}
			o, _ := live.orderByKey(ev.order)
			if o == nil {
				return fmt.Errorf("an event of an order the state does not hold")
			}
			k := fmt.Sprintf("%s %d", live.sales[o.sale].cfg.ID, floorDiv(ev.at, 60_000))
			p := model[k]
			if p == nil {
				p = &payMinute{}
				model[k] = p
			}
			if refund {
				p.refunds++
				p.refundedCents += o.amount
				if ev.kind == evRefundSettled {
					p.refundedCents += ev.refund.amount - o.amount
				}
				refunds++
			} else {
				p.paid++
				p.paidCents += live.amountDue(o) // an exchange's order is paid its difference
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for k, p := range model {
		lines = append(lines, fmt.Sprintf("%s %d %d %d %d", k, p.paid, p.paidCents, p.refunds, p.refundedCents))
	}
	slices.Sort(lines)
	want := dumpPays(live)
	if got := strings.Join(lines, "\n"); got != want {
		t.Fatalf("seed %d: the minutes are not the log's recount:\n%s", seed, firstDiff(got, want))
	}
	if len(model) < 2 || refunds == 0 {
		t.Fatalf("seed %d: a random log with %d minutes and %d refunds", seed, len(model), refunds)
	}
	for _, snapAt := range []int{0, len(log) / 2, len(log)} {
		t.Run(fmt.Sprintf("snapshot=%d", snapAt), func(t *testing.T) {
			states, _, err := recoverStates(journalSnapshotAt(t, log, snapAt), 1, quietLogger)
			if err != nil {
				t.Fatal(err)
			}
			if got := dumpPays(states[0]); got != want {
				t.Fatalf("recovered minutes differ:\n%s", firstDiff(want, got))
			}
		})
	}
	t.Run("repartition", func(t *testing.T) {
		states, err := repartition([]*state{live}, 3)
		if err != nil {
			t.Fatal(err)
		}
		if got := dumpPays(states...); got != want {
			t.Fatalf("repartitioned minutes differ:\n%s", firstDiff(want, got))
		}
	})
	t.Run("report", func(t *testing.T) { // an event's report sums its sales' minutes
		var frozen []*frozenSale
		var payments int
		for _, sl := range live.sales {
			frozen = append(frozen, &frozenSale{pays: sl.pays})
			for _, p := range sl.pays {
				payments += int(p.paid)
			}
		}
		got := paymentMinutes(frozen)
		sum := 0
		for i, m := range got {
			sum += m.Payments
			if i > 0 && got[i-1].AtMs >= m.AtMs {
				t.Fatalf("minutes out of order at %d", i)
			}
		}
		if sum != payments {
			t.Fatalf("report has %d payments, the sales %d", sum, payments)
		}
	})
}
