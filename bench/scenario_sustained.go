package bench

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/onsale/onsale/bench/api"
	"github.com/onsale/onsale/httpapi/fleet"
)

// SustainedConfig is the sustained scenario: one sale whose stock does not
// run out during a run, bought by buyers who each make a few purchases and
// then leave, so that every purchase answer is a new order the server has
// made durable, not a cheap sold_out.
type SustainedConfig struct {
	Users        int // the crowd; buyers take users in turn and wrap around
	Stock        int
	PerUserLimit int // above the purchases one user makes, wrap-arounds included
	HoldSeconds  int
	PriceCents   int64
	// A buyer makes between BuyerPurchasesMin and BuyerPurchasesMax
	// purchases (uniformly) as one user before the next user takes over.
	BuyerPurchasesMin int
	BuyerPurchasesMax int
	FollowUp          FollowUpConfig
	Seed              uint64
	// Sales > 1 spreads the buyers over that many sales, a user's
	// purchases all in one; Partitions > 1 picks their ids so that each
	// partition of a fleet of that many holds as many of them (fleet.go).
	Sales      int
	Partitions int
}

// DefaultSustained is 200k buyers of 2-4 tickets each, one at a time, on a
// sale of 10M tickets (8 minutes at 20k purchases/s). Most orders are paid,
// some cancelled, and a few purchases are retried with the same key.
func DefaultSustained() SustainedConfig {
	return SustainedConfig{
		Users: 200_000, Stock: 10_000_000, PerUserLimit: 100, HoldSeconds: 300, PriceCents: 4_500,
		BuyerPurchasesMin: 2, BuyerPurchasesMax: 4,
		FollowUp: FollowUpConfig{PayShare: 0.6, CancelShare: 0.1, RetryShare: 0.02},
		Seed:     1,
	}
}

// Validate refuses nonsense.
func (c *SustainedConfig) Validate() error {
	switch {
	case c.Users < 1 || c.Users > 10_000_000:
		return fmt.Errorf("bench: sustained users must be 1..10M, not %d", c.Users)
	case c.Stock < 1 || c.Stock > 10_000_000:
		return fmt.Errorf("bench: sustained stock must be 1..10M, not %d", c.Stock)
	case c.BuyerPurchasesMin < 1 || c.BuyerPurchasesMax < c.BuyerPurchasesMin:
		return fmt.Errorf("bench: purchases per buyer must be a range 1 <= min <= max, not %d-%d", c.BuyerPurchasesMin, c.BuyerPurchasesMax)
	case c.PerUserLimit < c.BuyerPurchasesMax:
		return fmt.Errorf("bench: per-user limit %d is below the %d purchases of one buyer", c.PerUserLimit, c.BuyerPurchasesMax)
	case c.Sales > 1000 || c.Partitions > 1000:
		return fmt.Errorf("bench: sustained sales and partitions must be at most 1000")
	case c.HoldSeconds < 1:
		return fmt.Errorf("bench: hold must be >= 1s")
	}
	return c.FollowUp.validate()
}

type sustained struct {
	crowd
	cfg   SustainedConfig
	sales []api.SaleSpec
	// nextUser hands out users in turn, so that two workers are not the
	// same buyer at once (until the crowd wraps around).
	nextUser atomic.Int64
}

// NewSustained makes a sustained scenario for one system. The warm-up buys
// from the same sale: its stock does not run out, and its orders are
// audited like the others.
func NewSustained(cfg SustainedConfig, users *Users, now time.Time) Scenario {
	opens, closes := saleWindow(now)
	s := &sustained{crowd: newCrowd(users, cfg.FollowUp, cfg.Seed), cfg: cfg}
	for _, id := range sustainedSaleIDs(max(cfg.Sales, 1), cfg.Partitions) {
		s.sales = append(s.sales, api.SaleSpec{
			ID: id, Name: "Sustained sale", Currency: "EUR", OpensAt: opens, ClosesAt: closes,
			HoldSeconds: cfg.HoldSeconds, PerUserLimit: cfg.PerUserLimit,
			Tiers: []api.TierSpec{{ID: "ga", Name: "General admission", PriceCents: cfg.PriceCents, Stock: cfg.Stock}},
		})
	}
	return s
}

// sustainedSaleIDs names n sales: "sustained" alone, or "sustained0",
// "sustained1", ... taken in turn so that each of a fleet's partitions
// gets n/partitions of them (the first n%partitions one more).
func sustainedSaleIDs(n, partitions int) []string {
	if n == 1 {
		return []string{"sustained"}
	}
	if partitions <= 1 {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("sustained%d", i)
		}
		return ids
	}
	want := make([]int, partitions)
	for i := range n {
		want[i%partitions]++
	}
	var ids []string
	for i := 0; len(ids) < n; i++ { // ends: FNV spreads ids over every partition
		id := fmt.Sprintf("sustained%d", i)
		if p := fleet.PartitionOf([]byte(id), partitions); want[p] > 0 {
			want[p]--
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *sustained) Name() string          { return ScenarioSustained }
func (s *sustained) Tracker() *Tracker     { return s.tracker }
func (s *sustained) Sales() []api.SaleSpec { return s.sales }

func (s *sustained) Setup(c *api.Client) error {
	for i := range s.sales {
		if err := c.PutSale(&s.sales[i]); err != nil {
			return fmt.Errorf("cannot create sale %s: %w", s.sales[i].ID, err)
		}
	}
	return nil
}

func (s *sustained) NewOp(c *api.Client, worker int) Op {
	b := s.newBuyer(c, worker)
	var user, left int
	return func(bool) (OpKind, api.Result) {
		if fu, ok := b.nextFollowUp(); ok {
			return b.follow(fu)
		}
		// A retry is the buyer who just bought resending; it is not one of
		// the next buyer's purchases.
		if res, ok := b.maybeRetry(); ok {
			return OpPurchase, res
		}
		if left == 0 {
			user = int(s.nextUser.Add(1)-1) % len(s.users.IDs)
			left = s.cfg.BuyerPurchasesMin + b.rng.IntN(s.cfg.BuyerPurchasesMax-s.cfg.BuyerPurchasesMin+1)
		}
		left--
		return OpPurchase, b.buy(user, s.sales[user%len(s.sales)].ID, "ga", 1, true)
	}
}
