package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/onsale/onsale/bench/api"
)

// DoorConfig is the door scenario: the doors of a venue open, and every
// ticket of a sold-out show is scanned once, with some scanned again (a
// second gate, a guest who walks back out and in).
type DoorConfig struct {
	Tickets       int // tickets scanned in the measured phase
	WarmupTickets int // tickets the warm-up scans (and then scans again)
	Buyers        int // users who bought them
	PerOrder      int // tickets per order
	// RepeatShare is the share of the measured scans that repeat a code
	// already in the plan; the server must refuse each with 409
	// already_checked_in.
	RepeatShare float64
	Gates       int // the scans name gate-0 .. gate-<Gates-1>, by client
	PriceCents  int64
	Seed        uint64
}

// DefaultDoor is 50,000 tickets in orders of 2 bought by 5,000 users, and
// 10 % repeat scans.
func DefaultDoor() DoorConfig {
	return DoorConfig{Tickets: 50_000, WarmupTickets: 2_000, Buyers: 5_000, PerOrder: 2,
		RepeatShare: 0.1, Gates: 8, PriceCents: 4_500, Seed: 1}
}

// Validate refuses nonsense.
func (c *DoorConfig) Validate() error {
	switch {
	case c.Tickets < 1 || c.Tickets > 2_000_000:
		return fmt.Errorf("bench: door tickets must be 1..2M, not %d", c.Tickets)
	case c.WarmupTickets < 0 || c.WarmupTickets > 200_000:
		return fmt.Errorf("bench: door warm-up tickets must be 0..200k, not %d", c.WarmupTickets)
	case c.Buyers < 1 || c.Buyers > 10_000_000:
		return fmt.Errorf("bench: door buyers must be 1..10M, not %d", c.Buyers)
	case c.PerOrder < 1 || c.PerOrder > 100:
		return fmt.Errorf("bench: door tickets per order must be 1..100, not %d", c.PerOrder)
	case c.RepeatShare < 0 || c.RepeatShare > 0.9:
		return fmt.Errorf("bench: door repeat share must be 0..0.9, not %g", c.RepeatShare)
	case c.Gates < 1 || c.Gates > 1000:
		return fmt.Errorf("bench: door gates must be 1..1000, not %d", c.Gates)
	}
	return nil
}

// errNoTicketRoute says the server predates the door routes.
var errNoTicketRoute = errors.New("bench: the server answers 404 to GET /v1/orders/{id}/tickets: it has no door routes")

// setupWorkers buy, pay and fetch the tickets concurrently in Setup.
const setupWorkers = 16

// ticketRef names a ticket for the audit.
type ticketRef struct {
	order string
	n     int
}

// scan is one request of the measured plan: a ticket's code, first or
// again.
type scan struct {
	ticket int // index into door.codes
	repeat bool
}

type door struct {
	cfg     DoorConfig
	users   *Users
	sale    api.SaleSpec
	log     io.Writer
	tracker *Tracker

	// Set by Setup, then read only.
	codes []string // measured tickets' codes
	refs  []ticketRef
	warm  []string // warm-up tickets' codes
	plan  []scan

	next, nextWarm atomic.Int64
	// Per measured ticket: 200 answers, 409 already_checked_in answers,
	// and answers that leave the outcome unknown (timeouts, 5xx).
	admitted, refused, unknown []atomic.Int32
}

// NewDoor makes a door scenario for one system. log gets Setup's progress
// lines; nil discards them.
func NewDoor(cfg DoorConfig, users *Users, now time.Time, log io.Writer) Scenario {
	if log == nil {
		log = io.Discard
	}
	opens, closes := saleWindow(now)
	total := cfg.Tickets + cfg.WarmupTickets
	orders := (total + cfg.PerOrder - 1) / cfg.PerOrder
	perUser := (orders + len(users.IDs) - 1) / len(users.IDs) * cfg.PerOrder
	return &door{
		cfg: cfg, users: users, log: log, tracker: NewTracker(),
		sale: api.SaleSpec{
			ID: "door", Name: "Door sale", Currency: "EUR", OpensAt: opens, ClosesAt: closes,
			HoldSeconds: 900, PerUserLimit: perUser,
			Tiers: []api.TierSpec{{ID: "ga", Name: "General admission", PriceCents: cfg.PriceCents, Stock: total}},
		},
	}
}

func (d *door) Name() string          { return ScenarioDoor }
func (d *door) Tracker() *Tracker     { return d.tracker }
func (d *door) Sales() []api.SaleSpec { return []api.SaleSpec{d.sale} }

// MaxRequests ends the measured phase with its plan: each ticket once,
// and the repeats.
func (d *door) MaxRequests() int64 { return int64(len(d.plan)) }

// Setup creates the sale, buys every ticket (orders of PerOrder, buyers in
// turn), pays each order through the webhook, fetches its tickets, and
// plans the scans. Nothing of it is measured.
func (d *door) Setup(c *api.Client) error {
	if err := c.PutSale(&d.sale); err != nil {
		return fmt.Errorf("cannot create sale %s: %w", d.sale.ID, err)
	}
	total := d.cfg.Tickets + d.cfg.WarmupTickets
	orders := (total + d.cfg.PerOrder - 1) / d.cfg.PerOrder
	type bought struct {
		refs  []ticketRef
		codes []string
	}
	got := make([]bought, orders)
	errs := make([]error, setupWorkers)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range setupWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= orders {
					return
				}
				qty := min(d.cfg.PerOrder, total-j*d.cfg.PerOrder)
				refs, codes, err := d.buyOne(c, j, qty)
				if err != nil {
					errs[w] = err
					next.Store(int64(orders)) // stop the others
					return
				}
				got[j] = bought{refs, codes}
				if n := done.Add(1); n%max(int64(orders)/10, 1) == 0 {
					fmt.Fprintf(d.log, "%-14s setup   %d/%d orders bought, paid and their tickets fetched (%.0fs)\n",
						"door", n, orders, time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var refs []ticketRef
	var codes []string
	for _, b := range got {
		refs = append(refs, b.refs...)
		codes = append(codes, b.codes...)
	}
	d.assign(refs, codes)
	return nil
}

// buyOne buys order j of qty tickets as its user, pays it and returns its
// tickets.
func (d *door) buyOne(c *api.Client, j, qty int) ([]ticketRef, []string, error) {
	u := j % len(d.users.IDs)
	key := "door-" + strconv.Itoa(j)
	res := c.Purchase(d.users.Auth[u], d.sale.ID, "ga", qty, key, true)
	if res.Status != fasthttp.StatusCreated {
		return nil, nil, fmt.Errorf("purchase %d: %d %s", j, res.Status, res.Code)
	}
	o := d.tracker.Add(&res.Order, d.users.IDs[u], u, key, d.sale.ID, "ga", qty)
	pay := c.Webhook(&api.PaymentEvent{ID: "evt_" + o.OrderID, Type: api.PaymentSucceeded,
		OrderID: o.OrderID, AmountCents: o.AmountCents, Currency: o.Currency})
	d.tracker.AfterPay(o, &pay)
	if !pay.OK() {
		return nil, nil, fmt.Errorf("payment of %s: %d %s", o.OrderID, pay.Status, pay.Code)
	}
	ts, status, err := c.Tickets(o.OrderID)
	switch {
	case status == fasthttp.StatusNotFound:
		return nil, nil, fmt.Errorf("%w (order %s)", errNoTicketRoute, o.OrderID)
	case err != nil:
		return nil, nil, err
	case len(ts) != qty:
		return nil, nil, fmt.Errorf("order %s of %d tickets lists %d", o.OrderID, qty, len(ts))
	}
	refs, codes := make([]ticketRef, len(ts)), make([]string, len(ts))
	for i, t := range ts {
		if t.State != api.TicketValid {
			return nil, nil, fmt.Errorf("order %s ticket %d is %q before the doors open", o.OrderID, t.N, t.State)
		}
		refs[i], codes[i] = ticketRef{o.OrderID, t.N}, t.Code
	}
	return refs, codes, nil
}

// assign shuffles the bought tickets with the seed, keeps WarmupTickets of
// them for the warm-up and plans the measured scans of the others.
func (d *door) assign(refs []ticketRef, codes []string) {
	rng := rand.New(rand.NewPCG(d.cfg.Seed, 0xd00))
	perm := rng.Perm(len(codes))
	for i, p := range perm {
		if i < d.cfg.WarmupTickets {
			d.warm = append(d.warm, codes[p])
			continue
		}
		d.codes = append(d.codes, codes[p])
		d.refs = append(d.refs, refs[p])
	}
	d.plan = planScans(len(d.codes), d.cfg.RepeatShare, rng)
	d.admitted = make([]atomic.Int32, len(d.codes))
	d.refused = make([]atomic.Int32, len(d.codes))
	d.unknown = make([]atomic.Int32, len(d.codes))
}

// planScans orders the scans of n tickets: each ticket once, in random
// order, plus repeats so that they are share of all scans, each repeat
// after its ticket's first scan. A first scan gets a random key k in
// [0,1) and a repeat a key in (k,1); sorting by key interleaves them.
func planScans(n int, share float64, rng *rand.Rand) []scan {
	repeats := 0
	if share > 0 && n > 0 {
		repeats = int(math.Round(float64(n) * share / (1 - share)))
	}
	type keyed struct {
		key float64
		s   scan
	}
	all := make([]keyed, 0, n+repeats)
	firstKey := make([]float64, n)
	for i := range n {
		firstKey[i] = rng.Float64()
		all = append(all, keyed{firstKey[i], scan{ticket: i}})
	}
	for range repeats {
		i := rng.IntN(n)
		k := firstKey[i] + (1-firstKey[i])*rng.Float64()
		if k <= firstKey[i] { // keep the repeat strictly after its first scan
			k = math.Nextafter(firstKey[i], 2)
		}
		all = append(all, keyed{k, scan{ticket: i, repeat: true}})
	}
	slices.SortStableFunc(all, func(a, b keyed) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		case !a.s.repeat && b.s.repeat:
			return -1
		case a.s.repeat && !b.s.repeat:
			return 1
		}
		return 0
	})
	plan := make([]scan, len(all))
	for i, k := range all {
		plan[i] = k.s
	}
	return plan
}

func (d *door) NewOp(c *api.Client, worker int) Op {
	gate := "gate-" + strconv.Itoa(worker%d.cfg.Gates)
	return func(warm bool) (OpKind, api.Result) {
		if warm {
			// The warm-up scans its own tickets once, then again (409s):
			// the measured tickets reach the door untouched.
			if len(d.warm) == 0 {
				return OpRead, c.ReadSale(d.sale.ID)
			}
			i := d.nextWarm.Add(1) - 1
			return OpCheckIn, c.CheckIn(d.warm[i%int64(len(d.warm))], gate)
		}
		i := d.next.Add(1) - 1
		s := d.plan[i%int64(len(d.plan))] // past the plan (never, with MaxRequests): repeats
		res := c.CheckIn(d.codes[s.ticket], gate)
		switch {
		case res.OK():
			d.admitted[s.ticket].Add(1)
		case res.Code == api.CodeAlreadyCheckedIn:
			d.refused[s.ticket].Add(1)
		case outcomeUnknown(&res):
			d.unknown[s.ticket].Add(1)
		}
		return OpCheckIn, res
	}
}

// RunViolations are the door's own rules, read after the load: no ticket
// admitted twice, and no ticket refused as already checked in that was
// never admitted (unless an answer was lost, which may have admitted it).
func (d *door) RunViolations() []Violation {
	var vs []Violation
	for i := range d.codes {
		a, r, u := d.admitted[i].Load(), d.refused[i].Load(), d.unknown[i].Load()
		switch {
		case a > 1:
			vs = append(vs, Violation{Rule: RuleCheckIn, Detail: fmt.Sprintf(
				"ticket %d of order %s admitted %d times", d.refs[i].n, d.refs[i].order, a)})
		case a == 0 && r > 0 && u == 0:
			vs = append(vs, Violation{Rule: RuleCheckIn, Detail: fmt.Sprintf(
				"ticket %d of order %s refused %d times as already checked in, never admitted", d.refs[i].n, d.refs[i].order, r)})
		}
	}
	return vs
}
