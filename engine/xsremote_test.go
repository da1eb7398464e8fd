package engine

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// wireRemote is a fleet in a test: the steps of the sales it does not
// hold run on other, through a JSON round trip of the step and its
// answer as a node's request would carry them. lose makes the next calls
// of that op run and then answer nothing (the reply lost).
type wireRemote struct {
	holds map[string]bool
	other *Engine
	lose  map[string]int
	calls int
}

func (w *wireRemote) Holds(saleID string) bool { return w.holds[saleID] }

func (w *wireRemote) ExchangeStep(ctx context.Context, saleID string, s ExchangeStep) (ExchangeStepResult, error) {
	w.calls++
	b, err := json.Marshal(s)
	if err != nil {
		return ExchangeStepResult{}, err
	}
	var got ExchangeStep
	if err := json.Unmarshal(b, &got); err != nil {
		return ExchangeStepResult{}, err
	}
	res, err := w.other.ExchangeStep(ctx, saleID, got)
	var rej *Rejection
	if err != nil && !errors.As(err, &rej) {
		return ExchangeStepResult{}, err
	}
	if w.lose[s.Op] > 0 {
		w.lose[s.Op]--
		return ExchangeStepResult{}, ErrStopped // decided there, the answer lost
	}
	if err != nil {
		return ExchangeStepResult{}, &Rejection{Code: rej.Code, Message: rej.Message}
	}
	b, _ = json.Marshal(res)
	var back ExchangeStepResult
	return back, json.Unmarshal(b, &back)
}

// TestXSessionRemote: the source sale on one engine and the target on
// another (two fleet partitions), joined by Config.Remote: a cheaper
// exchange through the source's engine makes the new order on the
// target's and releases the old one once (its difference paid out once);
// when the answer of step (c) is lost the request fails, the target's
// sweeper settles it (step (b) asked again of the source, which answers
// the same), and the exchange asked again answers the same order.
func TestXSessionRemote(t *testing.T) {
	clock := newFakeClock()
	ctx := context.Background()
	ra, rb := &wireRemote{holds: map[string]bool{"s1": true}}, &wireRemote{holds: map[string]bool{"s2": true}}
	open := func(rm ExchangeRemote) *Engine {
		e, err := Open(Config{Journal: newMemJournal(), Shards: 2, Now: clock.Now, TickInterval: time.Millisecond,
			OnFatal: func(error) {}, Logger: quietLogger, Remote: rm})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	ea, eb := open(ra), open(rb)
	ra.other, rb.other = eb, ea
	for i, e := range []*Engine{ea, eb} {
		cfg := ruleSale([]string{"s1", "s2"}[i], clock, 4, autoRefund, exchange24h)
		cfg.Event = "tour"
		cfg.Tiers[0].PriceCents = []int64{5000, 4700}[i]
		if _, _, err := e.PutSale(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}

	seat := paidOrder(t, ea, "s1", "seat", 1, "bob") // 8000
	down, err := ea.Exchange(ctx, seat.ID, "bob", ExchangeRequest{SaleID: "s2", TierID: "floor"})
	if err != nil || down.SaleID != "s2" || down.Status != StatusPaid || down.Refunds == nil || down.Refunds.ExchangedFrom == nil ||
		down.Refunds.ExchangedFrom.Status != ExchangeCompleted || down.Refunds.ExchangedFrom.DifferenceCents != 4700+300-8000 {
		t.Fatalf("exchange across engines: %+v %v", down, err)
	}
	if _, err := ea.Order(ctx, down.ID); err == nil {
		t.Fatalf("the new order is on the source's engine too")
	}
	old, _ := ea.Order(ctx, seat.ID)
	if old.Status != StatusRefunded || old.Refunds.ExchangedTo == nil || old.Refunds.ExchangedTo.ToOrderID != down.ID ||
		len(old.Payouts) != 1 || old.Payouts[0].AmountCents != 3000 {
		t.Fatalf("old order: %+v", old)
	}

	// Step (c)'s answer lost: the buyer sees a failure; both orders are
	// valid until the target's sweeper settles the exchange.
	floor := paidOrder(t, ea, "s1", "floor", 1, "ann") // 5000
	ra.lose = map[string]int{"settle": 1}
	if _, err := ea.Exchange(ctx, floor.ID, "ann", ExchangeRequest{SaleID: "s2", TierID: "floor"}); !errors.Is(err, ErrStopped) {
		t.Fatalf("exchange with step (c)'s answer lost: %v, want ErrStopped", err)
	}
	if n, err := eb.SettleExchanges(ctx); err != nil || n != 0 {
		t.Fatalf("sweep after (c) was decided: %d %v, want 0 (the step was decided, only its answer lost)", n, err)
	}
	again, err := ea.Exchange(ctx, floor.ID, "ann", ExchangeRequest{SaleID: "s2", TierID: "floor"})
	if err != nil || again.Refunds == nil || again.Refunds.ExchangedFrom == nil || again.Refunds.ExchangedFrom.Status != ExchangeCompleted {
		t.Fatalf("asked again: %+v %v", again, err)
	}

	// Step (b)'s answer lost, asked by the target's sweeper: the next
	// sweep asks again and the source answers the same step.
	seat2 := paidOrder(t, ea, "s1", "seat", 1, "cy")
	_, key, _ := parseOrderID(seat2.ID) // check and (a) only, as a crash right after (a) leaves them
	_, chk, err := ea.xsRun(ctx, "s1", command{kind: cmdXSession, saleID: "s1", order: key, xs: &xsCommand{op: xsCheck, otherSale: "s2"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ea.xsRun(ctx, "s2", command{kind: cmdXSession, saleID: "s2", userID: chk.user, tierID: "floor", newOrder: newOrderKey(),
		xs: &xsCommand{op: xsInOp, otherSale: "s1", other: key, event: chk.event, oldAmount: chk.amount, qty: chk.qty, fee: chk.fee, parts: chk.parts}})
	if err != nil {
		t.Fatal(err)
	}
	id := formatOrderID("s2", got)
	rb.lose = map[string]int{"out": 1}
	if _, err := eb.SettleExchanges(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("sweep with (b)'s answer lost: %v", err)
	}
	if n, err := eb.SettleExchanges(ctx); err != nil || n != 1 {
		t.Fatalf("sweep again: %d %v, want 1", n, err)
	}
	nw, _ := eb.Order(ctx, id)
	old, _ = ea.Order(ctx, seat2.ID)
	if nw.Status != StatusPaid || nw.Refunds.ExchangedFrom.Status != ExchangeCompleted || old.Status != StatusRefunded ||
		len(old.Payouts) != 1 || old.Payouts[0].AmountCents != 3000 {
		t.Fatalf("after the sweeps: new %+v old %+v", nw, old)
	}
}
