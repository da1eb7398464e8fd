package bench

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// BrowseConfig is the browse scenario: the public catalogue under a crowd
// that only looks. Many sales with catalogues; every request is a
// GET /v1/sales with random filters, and a share of them follow the
// previous page's cursor, as a buyer scrolling does.
type BrowseConfig struct {
	Sales        int
	PageShare    float64 // share of requests that fetch the next page of the previous answer
	PageLimit    int     // limit= of each request
	Seed         uint64
	StockPerTier int
}

// DefaultBrowse is 500 sales in six cities over two months.
func DefaultBrowse() BrowseConfig {
	return BrowseConfig{Sales: 500, PageShare: 0.3, PageLimit: 20, StockPerTier: 100, Seed: 1}
}

// Validate refuses nonsense.
func (c *BrowseConfig) Validate() error {
	switch {
	case c.Sales < 1 || c.Sales > 100_000:
		return fmt.Errorf("bench: browse sales must be 1..100k, not %d", c.Sales)
	case c.PageShare < 0 || c.PageShare > 1:
		return fmt.Errorf("bench: browse page share must be 0..1")
	case c.PageLimit < 1 || c.PageLimit > 200:
		return fmt.Errorf("bench: browse page limit must be 1..200")
	case c.StockPerTier < 1:
		return fmt.Errorf("bench: browse stock per tier must be >= 1")
	}
	return nil
}

var (
	browseCities     = []string{"Paris", "Lyon", "Berlin", "Madrid", "Lisbon", "Milan"}
	browseCategories = []string{"concert", "sport", "theatre", "exhibition", "transport", "other"}
	browseWords      = []string{"jazz", "rock", "opera", "night", "hall", "festival"}
)

type browse struct {
	cfg     BrowseConfig
	start   time.Time // starts_at of the sales spread over 60 days from here
	sales   []api.SaleSpec
	tracker *Tracker
}

// NewBrowse makes a browse scenario for one system.
func NewBrowse(cfg BrowseConfig, now time.Time) Scenario {
	opens, closes := saleWindow(now)
	s := &browse{cfg: cfg, start: now.Add(24 * time.Hour).UTC().Truncate(time.Hour), tracker: NewTracker()}
	rng := rand.New(rand.NewPCG(cfg.Seed, 7))
	for i := range cfg.Sales {
		starts := s.start.Add(time.Duration(rng.IntN(60*24)) * time.Hour)
		s.sales = append(s.sales, api.SaleSpec{
			ID: fmt.Sprintf("b%05d", i), Name: fmt.Sprintf("%s %s %d", browseWords[rng.IntN(3)], browseWords[3+rng.IntN(3)], i),
			Currency: "EUR", OpensAt: opens, ClosesAt: closes, HoldSeconds: 300, PerUserLimit: 4,
			Tiers: []api.TierSpec{{ID: "ga", Name: "General admission", PriceCents: 4_500, Stock: cfg.StockPerTier}},
			City:  browseCities[rng.IntN(len(browseCities))], Venue: fmt.Sprintf("Hall %d", rng.IntN(20)),
			Category: browseCategories[rng.IntN(len(browseCategories))], Event: fmt.Sprintf("e%d", rng.IntN(100)),
			StartsAt: &starts,
		})
	}
	return s
}

func (s *browse) Name() string          { return ScenarioBrowse }
func (s *browse) Tracker() *Tracker     { return s.tracker }
func (s *browse) Sales() []api.SaleSpec { return s.sales }

func (s *browse) Setup(c *api.Client) error {
	for i := 0; i < len(s.sales); i += salesPerLoad {
		if err := c.LoadSales(s.sales[i:min(i+salesPerLoad, len(s.sales))]); err != nil {
			return fmt.Errorf("cannot load sales: %w", err)
		}
	}
	return nil
}

// NewOp: each request is a fresh query with one or two random filters, or
// (PageShare) the next page of the previous query.
func (s *browse) NewOp(c *api.Client, worker int) Op {
	rng := rand.New(rand.NewPCG(s.cfg.Seed, uint64(worker)+1))
	var last url.Values
	return func(bool) (OpKind, api.Result) {
		q := url.Values{}
		if last != nil && rng.Float64() < s.cfg.PageShare {
			q = last
		} else {
			q.Set("limit", strconv.Itoa(s.cfg.PageLimit))
			for range 1 + rng.IntN(2) {
				switch rng.IntN(6) {
				case 0:
					q.Set("city", browseCities[rng.IntN(len(browseCities))])
				case 1:
					q.Set("category", browseCategories[rng.IntN(len(browseCategories))])
				case 2:
					from := s.start.Add(time.Duration(rng.IntN(50*24)) * time.Hour)
					q.Set("from", from.Format(time.RFC3339))
					q.Set("to", from.Add(10*24*time.Hour).Format(time.RFC3339))
				case 3:
					q.Set("q", browseWords[rng.IntN(len(browseWords))])
				case 4:
					q.Set("available", "true")
				case 5: // no filter: the first pages of everything
				}
			}
		}
		res, next := c.Browse("/v1/sales?" + q.Encode())
		last = nil
		if next != "" {
			last = url.Values{}
			for k, v := range q {
				last[k] = v
			}
			last.Set("cursor", next)
		}
		return OpRead, res
	}
}
