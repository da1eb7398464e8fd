package bench

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// QueueConfig is the queue scenario: a crowd joins one queued sale's
// waiting room, each buyer once; once everyone has joined, requests poll
// the buyers' places (GET /queue/me). Joins are writes, durable before
// their answer like purchases: the figure is joins per second. The sale
// admits on its shard's tick (AdmitRate), so the run also shows how many
// were admitted (the sale's queue.admitted at the end).
type QueueConfig struct {
	Buyers    int
	Stock     int
	AdmitRate int
	Seed      uint64
}

// DefaultQueue is 500,000 buyers for 20,000 tickets, admitted at 5,000/s.
func DefaultQueue() QueueConfig {
	return QueueConfig{Buyers: 500_000, Stock: 20_000, AdmitRate: 5_000, Seed: 1}
}

// Validate refuses nonsense.
func (c *QueueConfig) Validate() error {
	switch {
	case c.Buyers < 1 || c.Buyers > 10_000_000:
		return fmt.Errorf("bench: queue buyers must be 1..10M, not %d", c.Buyers)
	case c.Stock < 1 || c.Stock > 10_000_000:
		return fmt.Errorf("bench: queue stock must be 1..10M, not %d", c.Stock)
	case c.AdmitRate < 1 || c.AdmitRate > 100_000:
		return fmt.Errorf("bench: queue admit rate must be 1..100k, not %d", c.AdmitRate)
	}
	return nil
}

type queueScenario struct {
	cfg     QueueConfig
	users   *Users
	sale    api.SaleSpec
	tracker *Tracker
	next    atomic.Int64
}

// NewQueue makes a queue scenario for one system.
func NewQueue(cfg QueueConfig, users *Users, now time.Time) Scenario {
	opens, closes := saleWindow(now)
	return &queueScenario{cfg: cfg, users: users, tracker: NewTracker(), sale: api.SaleSpec{
		ID: "queued", Name: "Queued", Currency: "EUR", OpensAt: opens, ClosesAt: closes, HoldSeconds: 300, PerUserLimit: 4,
		Tiers: []api.TierSpec{{ID: "ga", Name: "General admission", PriceCents: 4_500, Stock: cfg.Stock}},
		Queue: &api.QueueSpec{Mode: "fifo", AdmitRate: cfg.AdmitRate, AdmissionTTLSeconds: 300},
	}}
}

func (s *queueScenario) Name() string                  { return ScenarioQueue }
func (s *queueScenario) Tracker() *Tracker             { return s.tracker }
func (s *queueScenario) Sales() []api.SaleSpec         { return []api.SaleSpec{s.sale} }
func (s *queueScenario) Setup(c *api.Client) error     { return c.PutSale(&s.sale) }
func (s *queueScenario) NewOp(c *api.Client, _ int) Op { return s.op(c) }

// op: the warm-up reads the sale (the crowd reaches the queue untouched);
// the measured phase joins the next buyer, and polls once all have joined.
func (s *queueScenario) op(c *api.Client) Op {
	return func(warm bool) (OpKind, api.Result) {
		if warm {
			return OpRead, c.ReadSale(s.sale.ID)
		}
		i := int(s.next.Add(1) - 1)
		if i < len(s.users.Auth) {
			return OpQueueJoin, c.QueueJoin(s.users.Auth[i], s.sale.ID)
		}
		return OpRead, c.QueueMe(s.users.Auth[i%len(s.users.Auth)], s.sale.ID)
	}
}
