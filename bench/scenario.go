package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// Scenario is one workload against one system. A fresh Scenario is made for
// every system of a run, so that each starts from the same state.
type Scenario interface {
	Name() string
	// Setup creates the scenario's sales on the system.
	Setup(c *api.Client) error
	// NewOp makes the request loop of one worker.
	NewOp(c *api.Client, worker int) Op
	// Sales lists every sale the scenario created, for the audit.
	Sales() []api.SaleSpec
	// Tracker holds every order a 2xx answer named.
	Tracker() *Tracker
}

// Users is the crowd: user ids and their pre-minted Authorization values
// (minting is not part of what is measured).
type Users struct {
	IDs  []string
	Auth []string
}

// MintUsers mints n users' tokens, valid until exp.
func MintUsers(secret []byte, n int, exp time.Time) (*Users, error) {
	u := &Users{IDs: make([]string, n), Auth: make([]string, n)}
	workers := max(runtime.GOMAXPROCS(0), 1)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				u.IDs[i] = "u" + strconv.Itoa(i)
				tok, err := api.MintUserToken(secret, u.IDs[i], exp)
				if err != nil {
					errs[w] = fmt.Errorf("cannot mint token for %s: %w", u.IDs[i], err)
					return
				}
				u.Auth[i] = api.BearerHeader(tok)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Fates of a pending order: what its buyer does next.
type fate uint8

const (
	fateHold   fate = iota // nothing: the hold expires
	fatePay                // the provider's webhook says paid
	fateCancel             // the buyer cancels
)

// FollowUpConfig is what buyers with a pending order do.
type FollowUpConfig struct {
	PayShare    float64 // share of new orders paid through the webhook
	CancelShare float64 // share cancelled by the buyer; the rest expire
	RetryShare  float64 // share of purchases that resend the previous key
}

// followUpQueueMax bounds the orders waiting for their buyer's next step;
// past it a new order is left to expire.
const followUpQueueMax = 1 << 16

type followUp struct {
	o    *TrackedOrder
	fate fate
}

// crowd is what flash and steady share: users, the tracker, the follow-up
// queue and the purchase and follow-up requests.
type crowd struct {
	users     *Users
	fu        FollowUpConfig
	seed      uint64
	tracker   *Tracker
	followUps chan followUp
}

func newCrowd(users *Users, fu FollowUpConfig, seed uint64) crowd {
	return crowd{
		users:     users,
		fu:        fu,
		seed:      seed,
		tracker:   NewTracker(),
		followUps: make(chan followUp, followUpQueueMax),
	}
}

// buyer is one worker's state.
type buyer struct {
	*crowd
	c      *api.Client
	worker int
	rng    *rand.Rand
	seq    int64
	last   *TrackedOrder // for idempotent retries
	keyBuf []byte
}

func (cr *crowd) newBuyer(c *api.Client, worker int) *buyer {
	return &buyer{
		crowd:  cr,
		c:      c,
		worker: worker,
		rng:    rand.New(rand.NewPCG(cr.seed, uint64(worker)+1)),
		keyBuf: make([]byte, 0, 32),
	}
}

// nextFollowUp returns a waiting follow-up, if any, without blocking.
func (b *buyer) nextFollowUp() (followUp, bool) {
	select {
	case f := <-b.followUps:
		return f, true
	default:
		return followUp{}, false
	}
}

// purchase buys qty of tier for a random user (or, with RetryShare,
// resends the previous purchase's key) and tracks a 2xx order. follow says
// whether a new order may get a follow-up.
func (b *buyer) purchase(saleID, tier string, qty int, follow bool) api.Result {
	if res, ok := b.maybeRetry(); ok {
		return res
	}
	return b.buy(b.rng.IntN(len(b.users.IDs)), saleID, tier, qty, follow)
}

// maybeRetry resends the previous purchase's key, with RetryShare, and
// checks that the answer names the same order.
func (b *buyer) maybeRetry() (api.Result, bool) {
	last := b.last
	if last == nil || b.fu.RetryShare <= 0 || b.rng.Float64() >= b.fu.RetryShare {
		return api.Result{}, false
	}
	b.last = nil
	res := b.c.Purchase(b.users.Auth[last.userIdx], last.SaleID, last.Tier, last.Quantity, last.Key, true)
	b.tracker.Replayed(last, &res)
	return res, true
}

// buy sends a new purchase as user u and tracks a 2xx order.
func (b *buyer) buy(u int, saleID, tier string, qty int, follow bool) api.Result {
	b.seq++
	b.keyBuf = append(b.keyBuf[:0], 'k')
	b.keyBuf = strconv.AppendInt(b.keyBuf, int64(b.worker), 10)
	b.keyBuf = append(b.keyBuf, '-')
	b.keyBuf = strconv.AppendInt(b.keyBuf, b.seq, 10)
	key := string(b.keyBuf)
	res := b.c.Purchase(b.users.Auth[u], saleID, tier, qty, key, true)
	if !res.OK() {
		return res
	}
	o := b.tracker.Add(&res.Order, b.users.IDs[u], u, key, saleID, tier, qty)
	b.last = o
	if !follow {
		return res
	}
	var f fate
	switch r := b.rng.Float64(); {
	case r < b.fu.PayShare:
		f = fatePay
	case r < b.fu.PayShare+b.fu.CancelShare:
		f = fateCancel
	default:
		return res
	}
	select {
	case b.followUps <- followUp{o: o, fate: f}:
	default: // queue full: this one is left to expire
	}
	return res
}

// follow sends a pending order's webhook or cancel.
func (b *buyer) follow(f followUp) (OpKind, api.Result) {
	o := f.o
	if f.fate == fatePay {
		res := b.c.Pay(&api.PaymentEvent{
			ID:          "evt_" + o.OrderID,
			Type:        api.PaymentSucceeded,
			OrderID:     o.OrderID,
			AmountCents: o.AmountCents,
			Currency:    o.Currency,
		}, o.providerNo)
		b.tracker.AfterPay(o, &res)
		return OpPay, res
	}
	res := b.c.Cancel(b.users.Auth[o.userIdx], o.OrderID)
	b.tracker.AfterCancel(o, &res)
	return OpCancel, res
}

// saleWindow is the open/close times of the sales a scenario makes: open
// already, and closing long after any bounded run.
func saleWindow(now time.Time) (opens, closes time.Time) {
	return now.Add(-time.Minute).UTC().Truncate(time.Second), now.Add(48 * time.Hour).UTC().Truncate(time.Second)
}
