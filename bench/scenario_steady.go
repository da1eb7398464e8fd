package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// SteadyConfig is the steady and soak scenarios: many sales with Zipf
// popularity and a mix of purchases, availability reads, payments and
// cancels.
type SteadyConfig struct {
	Users        int
	Sales        int
	TiersPerSale int
	StockPerTier int
	PerUserLimit int
	HoldSeconds  int
	ZipfS        float64 // Zipf exponent, > 1
	ReadShare    float64 // share of new requests that read availability
	FollowUp     FollowUpConfig
	Seed         uint64
}

// DefaultSteady is the steady mix over 1,000 sales.
func DefaultSteady() SteadyConfig {
	return SteadyConfig{
		Users: 100_000, Sales: 1_000, TiersPerSale: 3, StockPerTier: 2_000, PerUserLimit: 4,
		HoldSeconds: 120, ZipfS: 1.1, ReadShare: 0.5,
		FollowUp: FollowUpConfig{PayShare: 0.6, CancelShare: 0.2, RetryShare: 0.01},
		Seed:     1,
	}
}

// DefaultSoak is a steady mix whose stock does not run out and whose holds
// expire during the run, so that a flat line means a flat server.
func DefaultSoak() SteadyConfig {
	c := DefaultSteady()
	c.Sales = 100
	c.StockPerTier = 1_000_000
	c.HoldSeconds = 30
	c.PerUserLimit = 1_000
	c.FollowUp = FollowUpConfig{PayShare: 0.4, CancelShare: 0.3, RetryShare: 0.01}
	return c
}

// Validate refuses nonsense.
func (c *SteadyConfig) Validate() error {
	switch {
	case c.Users < 1 || c.Users > 10_000_000:
		return fmt.Errorf("bench: users must be 1..10M, not %d", c.Users)
	case c.Sales < 1 || c.Sales > 100_000:
		return fmt.Errorf("bench: sales must be 1..100k, not %d", c.Sales)
	case c.TiersPerSale < 1 || c.TiersPerSale > 64:
		return fmt.Errorf("bench: tiers per sale must be 1..64")
	case c.StockPerTier < 1 || c.StockPerTier > 10_000_000:
		return fmt.Errorf("bench: stock per tier must be 1..10M")
	case c.PerUserLimit < 1:
		return fmt.Errorf("bench: per-user limit must be >= 1")
	case c.HoldSeconds < 1:
		return fmt.Errorf("bench: hold must be >= 1s")
	case c.ZipfS <= 1:
		return fmt.Errorf("bench: zipf exponent must be > 1")
	case c.ReadShare < 0 || c.ReadShare > 1:
		return fmt.Errorf("bench: read share must be 0..1")
	}
	return c.FollowUp.validate()
}

// salesPerLoad is how many sales one admin load document carries.
const salesPerLoad = 200

type steady struct {
	crowd
	name  string
	cfg   SteadyConfig
	sales []api.SaleSpec
	tiers []string
}

// NewSteady makes a steady (or, named "soak", a soak) scenario.
func NewSteady(name string, cfg SteadyConfig, users *Users, now time.Time) Scenario {
	opens, closes := saleWindow(now)
	s := &steady{crowd: newCrowd(users, cfg.FollowUp, cfg.Seed), name: name, cfg: cfg}
	for t := range cfg.TiersPerSale {
		s.tiers = append(s.tiers, fmt.Sprintf("t%d", t+1))
	}
	for i := range cfg.Sales {
		sp := api.SaleSpec{
			ID: fmt.Sprintf("s%05d", i), Name: fmt.Sprintf("Sale %d", i), Currency: "EUR",
			OpensAt: opens, ClosesAt: closes, HoldSeconds: cfg.HoldSeconds, PerUserLimit: cfg.PerUserLimit,
		}
		for t, id := range s.tiers {
			sp.Tiers = append(sp.Tiers, api.TierSpec{ID: id, Name: "Tier " + id, PriceCents: int64(2_000 + 1_500*t), Stock: cfg.StockPerTier})
		}
		s.sales = append(s.sales, sp)
	}
	return s
}

func (s *steady) Name() string          { return s.name }
func (s *steady) Tracker() *Tracker     { return s.tracker }
func (s *steady) Sales() []api.SaleSpec { return s.sales }

func (s *steady) Setup(c *api.Client) error {
	for i := 0; i < len(s.sales); i += salesPerLoad {
		if err := c.LoadSales(s.sales[i:min(i+salesPerLoad, len(s.sales))]); err != nil {
			return fmt.Errorf("cannot load sales: %w", err)
		}
	}
	return nil
}

func (s *steady) NewOp(c *api.Client, worker int) Op {
	b := s.newBuyer(c, worker)
	zipf := rand.NewZipf(b.rng, s.cfg.ZipfS, 1, uint64(len(s.sales)-1))
	return func(bool) (OpKind, api.Result) {
		if fu, ok := b.nextFollowUp(); ok {
			return b.follow(fu)
		}
		sale := s.sales[zipf.Uint64()].ID
		if b.rng.Float64() < s.cfg.ReadShare {
			return OpRead, c.ReadSale(sale)
		}
		tier := s.tiers[b.rng.IntN(len(s.tiers))]
		return OpPurchase, b.purchase(sale, tier, 1, true)
	}
}
