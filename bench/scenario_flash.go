package bench

import (
	"fmt"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// FlashConfig is the flash scenario: one hot sale, a crowd far larger than
// its stock.
type FlashConfig struct {
	Users        int
	Stock        int
	Quantity     int // tickets per purchase
	PerUserLimit int
	HoldSeconds  int
	PriceCents   int64
	Currency     string // of both sales; "" is EUR
	FollowUp     FollowUpConfig
	Seed         uint64
}

// DefaultFlash is the flash sale: 100k users after 10k tickets.
func DefaultFlash() FlashConfig {
	return FlashConfig{
		Users: 100_000, Stock: 10_000, Quantity: 1, PerUserLimit: 2, HoldSeconds: 300,
		PriceCents: 4_500,
		FollowUp:   FollowUpConfig{PayShare: 0.6, CancelShare: 0.2, RetryShare: 0.01},
		Seed:       1,
	}
}

// Validate refuses nonsense.
func (c *FlashConfig) Validate() error {
	switch {
	case c.Users < 1 || c.Users > 10_000_000:
		return fmt.Errorf("bench: flash users must be 1..10M, not %d", c.Users)
	case c.Stock < 1 || c.Stock > 10_000_000:
		return fmt.Errorf("bench: flash stock must be 1..10M, not %d", c.Stock)
	case c.Quantity < 1 || c.Quantity > c.PerUserLimit:
		return fmt.Errorf("bench: quantity must be 1..per-user limit (%d)", c.PerUserLimit)
	case c.HoldSeconds < 1:
		return fmt.Errorf("bench: hold must be >= 1s")
	}
	return c.FollowUp.validate()
}

func (f *FollowUpConfig) validate() error {
	if f.PayShare < 0 || f.CancelShare < 0 || f.RetryShare < 0 || f.PayShare+f.CancelShare > 1 || f.RetryShare > 1 {
		return fmt.Errorf("bench: pay, cancel and retry shares must be >= 0, pay+cancel <= 1")
	}
	return nil
}

// warmupStock is the warm-up sale's stock: the warm-up must not run out.
const warmupStock = 10_000_000

type flash struct {
	crowd
	cfg       FlashConfig
	hot, warm api.SaleSpec
}

// NewFlash makes a flash scenario for one system. The warm-up buys from a
// separate, bottomless sale so that the hot sale opens to the measured
// crowd untouched.
func NewFlash(cfg FlashConfig, users *Users, now time.Time) Scenario {
	opens, closes := saleWindow(now)
	currency := cfg.Currency
	if currency == "" {
		currency = "EUR"
	}
	sale := func(id string, stock, limit int) api.SaleSpec {
		return api.SaleSpec{
			ID: id, Name: "Flash " + id, Currency: currency, OpensAt: opens, ClosesAt: closes,
			HoldSeconds: cfg.HoldSeconds, PerUserLimit: limit,
			Tiers: []api.TierSpec{{ID: "ga", Name: "General admission", PriceCents: cfg.PriceCents, Stock: stock}},
		}
	}
	return &flash{
		crowd: newCrowd(users, cfg.FollowUp, cfg.Seed),
		cfg:   cfg,
		hot:   sale("flash", cfg.Stock, cfg.PerUserLimit),
		warm:  sale("flash-warmup", warmupStock, 1_000_000),
	}
}

func (f *flash) Name() string          { return "flash" }
func (f *flash) Tracker() *Tracker     { return f.tracker }
func (f *flash) Sales() []api.SaleSpec { return []api.SaleSpec{f.warm, f.hot} }

func (f *flash) Setup(c *api.Client) error {
	for _, s := range f.Sales() {
		if err := c.PutSale(&s); err != nil {
			return fmt.Errorf("cannot create sale %s: %w", s.ID, err)
		}
	}
	return nil
}

func (f *flash) NewOp(c *api.Client, worker int) Op {
	b := f.newBuyer(c, worker)
	return func(warm bool) (OpKind, api.Result) {
		if warm {
			return OpPurchase, b.purchase(f.warm.ID, "ga", f.cfg.Quantity, false)
		}
		if fu, ok := b.nextFollowUp(); ok {
			return b.follow(fu)
		}
		return OpPurchase, b.purchase(f.hot.ID, "ga", f.cfg.Quantity, true)
	}
}
