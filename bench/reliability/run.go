package reliability

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// Config configures Run. Zero values take the defaults in brackets.
type Config struct {
	Bin          string        // the onsale binary ["" builds one from this module into a temp dir]
	DataDir      string        // the server's -data, kept across rounds ["" a temp dir, removed at the end]
	Rounds       int           // kills [50]
	Seed         uint64        // drives kill moments and traffic [0 is a valid seed]
	Workers      int           // concurrent buyers [16]
	Shards       int           // the server's -shards [2]
	StockPerTier int           // each round's sale has two tiers of this stock [60]
	Preload      int           // orders written to the log before the first start [0]
	RoundTimeout time.Duration // longest load phase of a round [60s]
	Out          io.Writer     // a line per round [io.Discard]
}

func (c *Config) setDefaults() {
	if c.Rounds <= 0 {
		c.Rounds = 50
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.Shards <= 0 {
		c.Shards = 2
	}
	if c.StockPerTier <= 0 {
		c.StockPerTier = 60
	}
	if c.RoundTimeout <= 0 {
		c.RoundTimeout = time.Minute
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// Secrets the server runs with (flags override its secrets.json).
const (
	adminToken    = "reliability-admin"
	userSecret    = "reliability-user-secret"
	paymentSecret = "reliability-payment-secret"
	doorToken     = "reliability-door"
	stopGrace     = 30 * time.Second
)

// Round is what one round did and found.
type Round struct {
	N           int
	Phase       string // when the kill came: mid-sell, sold-out (a sold_out answer came first) or idle (load done)
	KillAt      int64  // answers after which the kill was due
	Answers     int64  // answers before the kill
	AckedAtKill int    // orders acknowledged before this round's kill, every round
	Acked       int    // ... and after the restart (unanswered purchases resent)
	Retried     int    // keys resent: random retries plus the purchases unanswered at the kill
	ReadyIn     time.Duration
	LogOpenMs   int64 // the server's own time to open the wal (Pebble), from its log
	RecoveredMs int64 // ... and to recover the engine (engine.Open)
	OrdersInLog int   // orders the server recovered
	Violations  Violations
}

// Summary is a whole run.
type Summary struct {
	Seed       uint64
	Rounds     []Round
	Acked      int // orders acknowledged in all rounds
	Keys       int // idempotency keys sent
	Retried    int
	Violations Violations // summed over rounds
	ReadyP50   time.Duration
	ReadyMax   time.Duration
	Preloaded  int
	PreloadIn  time.Duration
}

// Run starts the server, then for each round creates a sale, drives load
// with a ledger of acknowledged answers, SIGKILLs the server at a seeded
// random moment, restarts it on the same data directory, resends the
// purchases the kill left unanswered, and verifies everything acknowledged
// so far. It stops the server gracefully at the end. The error is for what
// kept the run from going on; violations are in the Summary.
func Run(cfg Config) (*Summary, error) {
	cfg.setDefaults()
	sum := &Summary{Seed: cfg.Seed, Preloaded: cfg.Preload}
	tmp, err := os.MkdirTemp("", "onsale-kill-")
	if err != nil {
		return sum, err
	}
	defer os.RemoveAll(tmp)
	if cfg.Bin == "" {
		if cfg.Bin, err = BuildBinary(tmp); err != nil {
			return sum, err
		}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = tmp + "/data"
	}
	if cfg.Preload > 0 {
		start := time.Now()
		if err := Preload(cfg.DataDir, cfg.Preload, cfg.Shards, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			return sum, err
		}
		sum.PreloadIn = time.Since(start)
		fmt.Fprintf(cfg.Out, "preloaded %d orders in %s\n", cfg.Preload, sum.PreloadIn.Round(time.Millisecond))
	}
	d := &driver{cfg: cfg, l: newLedger(), rng: rand.New(rand.NewPCG(cfg.Seed, 1))}
	if err := d.start(); err != nil {
		return sum, err
	}
	for n := 1; n <= cfg.Rounds; n++ {
		r, err := d.round(n)
		if err != nil {
			d.srv.kill()
			return sum, fmt.Errorf("round %d: %w", n, err)
		}
		sum.add(r)
		fmt.Fprintln(cfg.Out, r.line(cfg.Rounds))
	}
	sum.Acked, sum.Keys = d.l.counts()
	sum.summarize()
	return sum, d.srv.stop(stopGrace)
}

// driver runs the rounds: one goroutine, which owns the server process;
// the workers share only the ledger and the round's counters.
type driver struct {
	cfg Config
	l   *ledger
	rng *rand.Rand
	srv *server
	c   *api.Client
}

func (d *driver) start() error {
	args := []string{"-addr", "127.0.0.1:0", "-data", d.cfg.DataDir, "-shards", strconv.Itoa(d.cfg.Shards),
		"-admin-token", adminToken, "-user-secret", userSecret, "-payment-secret", paymentSecret,
		"-door-token", doorToken, "-log-level", "info"}
	srv, err := startServer(d.cfg.Bin, args)
	if err != nil {
		return err
	}
	c, err := api.NewClient(api.ClientConfig{Addr: srv.addr, AdminToken: adminToken,
		PaymentSecret: []byte(paymentSecret), MaxConns: 4 * d.cfg.Workers, Timeout: 10 * time.Second})
	if err != nil {
		srv.kill()
		return err
	}
	if d.c != nil {
		d.c.Close()
	}
	d.srv, d.c = srv, c
	return nil
}

func (d *driver) round(n int) (Round, error) {
	r := Round{N: n}
	saleID := fmt.Sprintf("r%d", n)
	if err := d.putSale(saleID); err != nil {
		return r, err
	}
	// Orders a round's sale can take: two tiers, 1.5 tickets an order. The
	// kill comes after a random number of answers up to five times that,
	// while each worker stops after its share of four times that: most
	// kills land mid-sell or after the sale ran dry, some after the load.
	orders := 2 * d.cfg.StockPerTier * 2 / 3
	load := &roundLoad{c: d.c, l: d.l, saleID: saleID, round: n, seed: d.cfg.Seed, userSecret: []byte(userSecret),
		opsMax: 4*orders/d.cfg.Workers + 1, deadline: time.Now().Add(d.cfg.RoundTimeout),
		killAt: 1 + d.rng.Int64N(int64(5*orders)), trigger: make(chan struct{})}
	r.KillAt = load.killAt
	done := make(chan struct{})
	go func() {
		load.run(d.cfg.Workers)
		close(done)
	}()
	select {
	case <-load.trigger:
		r.Phase = "mid-sell"
		if load.soldOut.Load() {
			r.Phase = "sold-out"
		}
	case <-done:
		r.Phase = "idle"
	}
	r.Answers = load.answers.Load()
	load.killed.Store(true)
	if err := d.srv.kill(); err != nil {
		return r, err
	}
	<-done // each worker stops at its first unanswered request; bounded by the client timeout
	r.AckedAtKill, _ = d.l.counts()
	if err := d.start(); err != nil {
		return r, fmt.Errorf("restart after the kill: %w", err)
	}
	r.ReadyIn = d.srv.readyIn
	logOpenMs, rec := d.srv.startTimes()
	r.LogOpenMs, r.RecoveredMs, r.OrdersInLog = logOpenMs, rec.Ms, rec.Orders
	r.Retried = int(load.retries.Load()) + load.retryUnanswered(d.c)

	r.Violations = d.l.takeViolations()
	v, err := d.l.verify(d.c)
	if err != nil {
		return r, fmt.Errorf("verify: %w", err)
	}
	r.Violations.merge(&v)
	if d.cfg.Preload > 0 {
		if err := checkPreload(d.c, d.cfg.Preload, &r.Violations); err != nil {
			return r, err
		}
	}
	r.Acked, _ = d.l.counts()
	return r, nil
}

func (d *driver) putSale(id string) error {
	now := time.Now().UTC().Truncate(time.Second)
	spec := &api.SaleSpec{ID: id, Name: "Kill round " + id, Currency: "EUR",
		OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(24 * time.Hour),
		HoldSeconds: 3600, PerUserLimit: perUserLimit}
	stock := map[string]int{}
	for _, t := range roundTiers {
		spec.Tiers = append(spec.Tiers, api.TierSpec{ID: t.id, Name: t.id, PriceCents: t.priceCents, Stock: d.cfg.StockPerTier})
		stock[t.id] = d.cfg.StockPerTier
	}
	if err := d.c.PutSale(spec); err != nil {
		return err
	}
	d.l.addSale(saleStock{id: id, stock: stock})
	return nil
}

// checkPreload checks that the preloaded orders all still hold their
// tickets: the preload sale is too large to export every round.
func checkPreload(c *api.Client, n int, v *Violations) error {
	view, err := c.GetSale(preloadSaleID)
	if err != nil {
		return fmt.Errorf("preload sale: %w", err)
	}
	if len(view.Tiers) != 1 || view.Tiers[0].Held != n || view.Tiers[0].Sold != 0 || view.Tiers[0].Stock != n {
		v.add(&v.Lost, "preload sale: %+v, want %d held of %d", view.Tiers, n, n)
	}
	return nil
}

func (v *Violations) merge(o *Violations) {
	v.Lost += o.Lost
	v.Changed += o.Changed
	v.Oversold += o.Oversold
	v.Miscounted += o.Miscounted
	v.DuplicateKeys += o.DuplicateKeys
	for _, m := range o.Messages {
		if len(v.Messages) < violationsKept {
			v.Messages = append(v.Messages, m)
		}
	}
}

func (s *Summary) add(r Round) {
	s.Rounds = append(s.Rounds, r)
	s.Retried += r.Retried
	s.Violations.merge(&r.Violations)
}

func (s *Summary) summarize() {
	ready := make([]time.Duration, len(s.Rounds))
	for i, r := range s.Rounds {
		ready[i] = r.ReadyIn
	}
	slices.Sort(ready)
	if len(ready) > 0 {
		s.ReadyP50, s.ReadyMax = ready[(len(ready)-1)/2], ready[len(ready)-1]
	}
}

func (r *Round) line(rounds int) string {
	return fmt.Sprintf("round %d/%d: kill after %d answers (due at %d, %s); acked %d at the kill, %d after; retried %d; "+
		"restart-to-ready %s (log open %d ms, recovery %d ms, %d orders recovered); violations %d",
		r.N, rounds, r.Answers, r.KillAt, r.Phase, r.AckedAtKill, r.Acked, r.Retried,
		r.ReadyIn.Round(time.Millisecond), r.LogOpenMs, r.RecoveredMs, r.OrdersInLog, r.Violations.Total())
}

// Report writes the summary lines.
func (s *Summary) Report(w io.Writer) {
	v := &s.Violations
	fmt.Fprintf(w, "seed %d: %d rounds, %d acked orders, %d keys sent, %d retried\n",
		s.Seed, len(s.Rounds), s.Acked, s.Keys, s.Retried)
	fmt.Fprintf(w, "lost %d, changed %d, oversold %d, miscounted %d, duplicate keys %d\n",
		v.Lost, v.Changed, v.Oversold, v.Miscounted, v.DuplicateKeys)
	orders := 0
	if n := len(s.Rounds); n > 0 {
		orders = s.Rounds[n-1].OrdersInLog
	}
	fmt.Fprintf(w, "restart-to-ready p50 %s, max %s (%d orders in the log at the last restart, %d preloaded)\n",
		s.ReadyP50.Round(time.Millisecond), s.ReadyMax.Round(time.Millisecond), orders, s.Preloaded)
	for _, m := range v.Messages {
		fmt.Fprintln(w, "  ", m)
	}
}
