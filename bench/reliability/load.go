package reliability

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onsale/onsale/bench/api"
)

// Shape of the traffic.
const (
	retryPercent  = 5 // purchases that resend a key sent before, from any round
	usesPerUser   = 3 // new purchases per user; the sale allows perUserLimit tickets each
	perUserLimit  = 4
	tokenLifetime = time.Hour
)

// tierSpec is one tier of the sales the rounds create.
type tierSpec struct {
	id         string
	priceCents int64
}

var roundTiers = []tierSpec{{"floor", 5000}, {"seat", 8000}}

// roundLoad is one round's traffic against one server: workers buy, pay,
// cancel and retry keys until they have done opsMax purchases each, the
// deadline passes, or the server is killed. It counts answers so that the
// driver can kill the server after killAt of them.
type roundLoad struct {
	c          *api.Client
	l          *ledger
	saleID     string
	round      int
	seed       uint64
	userSecret []byte
	opsMax     int
	deadline   time.Time

	killAt  int64
	trigger chan struct{} // closed when the killAt-th answer arrives
	answers atomic.Int64
	soldOut atomic.Bool // a sold_out answer came (the sale ran dry)
	killed  atomic.Bool // set by the driver just before SIGKILL
	retries atomic.Int64

	mu         sync.Mutex
	unanswered []keyID // purchases that got no answer: their outcome is unknown
}

// run starts workers and returns once all have stopped.
func (r *roundLoad) run(workers int) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(w)
		}()
	}
	wg.Wait()
}

func (r *roundLoad) worker(w int) {
	rng := rand.New(rand.NewPCG(r.seed, uint64(r.round)<<16|uint64(w)))
	for i := 0; i < r.opsMax && time.Now().Before(r.deadline); i++ {
		var k keyID
		fresh := true
		if rng.IntN(100) < retryPercent {
			k, fresh = r.l.pickKey(rng.IntN(1 << 30))
			fresh = !fresh
		}
		tier, qty := roundTiers[rng.IntN(len(roundTiers))], 1+rng.IntN(2)
		if fresh {
			k = keyID{sale: r.saleID, user: fmt.Sprintf("r%d-w%d-u%d", r.round, w, i/usesPerUser), key: fmt.Sprintf("k%d", i)}
		} else {
			r.retries.Add(1)
		}
		res, auth := r.purchase(k, tier.id, qty)
		if res.Status == 0 {
			r.mu.Lock()
			r.unanswered = append(r.unanswered, k)
			r.mu.Unlock()
			if r.killed.Load() {
				return // the server is gone
			}
			continue
		}
		r.count(k, &res)
		if fresh && res.Status == 201 {
			r.followUp(rng.IntN(4), auth, &res.Order)
		}
	}
}

// purchase sends a purchase with key k (a retry resends the key's first
// body) and records the answer in the ledger.
func (r *roundLoad) purchase(k keyID, tier string, qty int) (api.Result, string) {
	tier, qty = r.l.sending(k, tier, qty)
	tok, err := api.MintUserToken(r.userSecret, k.user, time.Now().Add(tokenLifetime))
	if err != nil {
		panic(fmt.Sprintf("reliability: cannot mint a token: %v", err)) // HS256 with a key never fails
	}
	auth := api.BearerHeader(tok)
	res := r.c.Purchase(auth, k.sale, tier, qty, k.key, true)
	r.l.purchased(k, &res)
	return res, auth
}

func (r *roundLoad) count(k keyID, res *api.Result) {
	if res.Code == api.CodeSoldOut && k.sale == r.saleID {
		r.soldOut.Store(true)
	}
	if r.answers.Add(1) == r.killAt {
		close(r.trigger)
	}
}

// followUp cancels (0) or pays (1) a new order, or leaves it pending.
func (r *roundLoad) followUp(action int, auth string, o *api.Order) {
	switch action {
	case 0:
		r.l.changing(o.OrderID, api.StatusCancelled)
		res := r.c.Cancel(auth, o.OrderID)
		r.l.changed(o.OrderID, api.StatusCancelled, &res)
	case 1:
		r.l.changing(o.OrderID, api.StatusPaid)
		res := r.c.Webhook(&api.PaymentEvent{ID: "evt-" + o.OrderID, Type: api.PaymentSucceeded,
			OrderID: o.OrderID, AmountCents: o.AmountCents, Currency: o.Currency})
		r.l.changed(o.OrderID, api.StatusPaid, &res)
	}
}

// retryUnanswered resends, after the restart, every purchase that got no
// answer before the kill: each must come back as at most one order, the
// same one on every retry.
func (r *roundLoad) retryUnanswered(c *api.Client) int {
	r.mu.Lock()
	keys := r.unanswered
	r.mu.Unlock()
	r.c = c
	for _, k := range keys {
		r.purchase(k, "", 0)
	}
	return len(keys)
}
