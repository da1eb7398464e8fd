package reliability

import (
	"fmt"
	"slices"
	"sync"

	"github.com/onsale/onsale/bench/api"
)

// violationsKept bounds the messages a ledger keeps; the counters count all.
const violationsKept = 20

// keyID names one idempotency key: the server scopes keys to (sale, user).
type keyID struct{ sale, user, key string }

// sentKey is a purchase as first sent with a key; retries send the same body.
type sentKey struct {
	tier    string
	qty     int
	orderID string // "" until a 2xx answer named the order
}

// ackedOrder is an order the server acknowledged with a 2xx.
type ackedOrder struct {
	sale, tier, user string
	qty              int
	// statuses the server may hold: the last acknowledged one, plus every
	// change sent since without an answer (it may or may not have happened).
	statuses statusSet
}

type statusSet uint8

var statusBits = map[string]statusSet{
	api.StatusPending: 1, api.StatusPaid: 2, api.StatusCancelled: 4, api.StatusExpired: 8, api.StatusRefunded: 16,
}

func (s statusSet) has(status string) bool { return s&statusBits[status] != 0 }

// Violations counts what the server got wrong. Any non-zero field fails a
// run.
type Violations struct {
	Lost          int // an acknowledged order is missing
	Changed       int // present, but with a status, tier, quantity or user nobody acknowledged
	Oversold      int // a tier with held + sold > stock
	Miscounted    int // a tier whose counts disagree with its orders
	DuplicateKeys int // a key that made two orders, or whose retry did not return its acknowledged order
	Messages      []string
}

// Total is the number of violations.
func (v *Violations) Total() int {
	return v.Lost + v.Changed + v.Oversold + v.Miscounted + v.DuplicateKeys
}

func (v *Violations) add(counter *int, format string, args ...any) {
	*counter++
	if len(v.Messages) < violationsKept {
		v.Messages = append(v.Messages, fmt.Sprintf(format, args...))
	}
}

// ledger records what the server acknowledged, across every round and
// restart. Workers call it concurrently; the mutex guards everything.
type ledger struct {
	mu      sync.Mutex
	keys    map[keyID]*sentKey
	keyList []keyID // in first-send order, for picking retries
	orders  map[string]*ackedOrder
	sales   []saleStock // every sale the rounds created, in order
	v       Violations  // found while the load runs (retries)
}

// saleStock is a sale and the stock of each of its tiers.
type saleStock struct {
	id    string
	stock map[string]int
}

func newLedger() *ledger {
	return &ledger{keys: map[keyID]*sentKey{}, orders: map[string]*ackedOrder{}}
}

// sending records that a purchase with k is about to be sent, and returns
// the body to send: a retry resends the first body.
func (l *ledger) sending(k keyID, tier string, qty int) (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.keys[k]; ok {
		return s.tier, s.qty
	}
	l.keys[k] = &sentKey{tier: tier, qty: qty}
	l.keyList = append(l.keyList, k)
	return tier, qty
}

// pickKey returns the i-th key sent (i taken modulo the count), or false
// when none was sent yet.
func (l *ledger) pickKey(i int) (keyID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keyList) == 0 {
		return keyID{}, false
	}
	return l.keyList[i%len(l.keyList)], true
}

// purchased records a purchase's answer. A key already acknowledged must
// come back with the same order; a 2xx makes the order acknowledged.
func (l *ledger) purchased(k keyID, r *api.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.keys[k]
	switch {
	case r.OK() && r.Order.OrderID == "":
		l.v.add(&l.v.Changed, "key %v: a %d answer without an order id (%s)", k, r.Status, r.Code)
	case s.orderID != "" && r.OK() && r.Order.OrderID != s.orderID:
		l.v.add(&l.v.DuplicateKeys, "key %v: acknowledged order %s, a retry answered %d with order %s",
			k, s.orderID, r.Status, r.Order.OrderID)
	case s.orderID != "" && r.Status != 0 && !r.OK() && !unknownOutcome(r):
		l.v.add(&l.v.DuplicateKeys, "key %v: acknowledged order %s, a retry answered %d %s",
			k, s.orderID, r.Status, r.Code)
	case s.orderID == "" && r.OK():
		s.orderID = r.Order.OrderID
		if _, ok := l.orders[s.orderID]; ok {
			l.v.add(&l.v.DuplicateKeys, "order %s acknowledged for two keys (second %v)", s.orderID, k)
			return
		}
		l.orders[s.orderID] = &ackedOrder{sale: k.sale, tier: s.tier, user: k.user, qty: s.qty,
			statuses: statusBits[r.Order.Status]}
	}
}

// unknownOutcome reports an answer that says nothing about the key: the
// server was overloaded, stopping, or did not answer in time.
func unknownOutcome(r *api.Result) bool {
	return r.Status == 429 || r.Status == 503
}

// changing records that a status change of an acknowledged order is being
// sent: from now on the server may hold it.
func (l *ledger) changing(orderID, status string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.orders[orderID].statuses |= statusBits[status]
}

// changed records the answer to a status change: a 200 makes status the
// only one the server may hold.
func (l *ledger) changed(orderID, status string, r *api.Result) {
	if r.Status != 200 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.orders[orderID].statuses = statusBits[status]
}

func (l *ledger) addSale(s saleStock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sales = append(l.sales, s)
}

// counts returns the acknowledged orders and keys sent so far.
func (l *ledger) counts() (orders, keys int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.orders), len(l.keys)
}

// takeViolations returns what the load found and resets it.
func (l *ledger) takeViolations() Violations {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.v
	l.v = Violations{}
	return v
}

// verify checks the server against everything acknowledged in every round
// so far: each acknowledged order is in its sale's export with an allowed
// status; no (sale, user) has more orders than keys it sent; each tier has
// held + sold <= stock and counts equal to its orders. Call it with no load
// running.
func (l *ledger) verify(c *api.Client) (Violations, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v Violations
	keysPerUser := map[[2]string]int{}
	for k := range l.keys {
		keysPerUser[[2]string{k.sale, k.user}]++
	}
	for _, sale := range l.sales {
		exported, err := c.ExportOrders(sale.id, 10_000)
		if err != nil {
			return v, err
		}
		byID := make(map[string]*api.Order, len(exported))
		ordersPerUser := map[string]int{}
		held, sold := map[string]int{}, map[string]int{}
		for i := range exported {
			o := &exported[i]
			byID[o.OrderID] = o
			ordersPerUser[o.Owner()]++
			switch {
			case o.Status == api.StatusPending:
				held[o.Tier] += o.Quantity
			case o.Status == api.StatusPaid && !o.NeedsRefund:
				sold[o.Tier] += o.Quantity
			}
		}
		for user, n := range ordersPerUser {
			if sent := keysPerUser[[2]string{sale.id, user}]; n > sent {
				v.add(&v.DuplicateKeys, "sale %s user %s: %d orders from %d keys", sale.id, user, n, sent)
			}
		}
		if err := checkTiers(c, sale, held, sold, &v); err != nil {
			return v, err
		}
		l.checkOrders(sale.id, byID, &v)
	}
	return v, nil
}

// checkOrders looks up every acknowledged order of a sale in its export.
func (l *ledger) checkOrders(saleID string, byID map[string]*api.Order, v *Violations) {
	for id, want := range l.orders {
		if want.sale != saleID {
			continue
		}
		got, ok := byID[id]
		if !ok {
			v.add(&v.Lost, "acknowledged order %s (sale %s, %d of %s) is missing", id, saleID, want.qty, want.tier)
			continue
		}
		if got.Tier != want.tier || got.Quantity != want.qty || got.Owner() != want.user || !want.statuses.has(got.Status) {
			v.add(&v.Changed, "order %s: server has %s %d %s %s; acknowledged %s %d %s, statuses %b",
				id, got.Tier, got.Quantity, got.Owner(), got.Status, want.tier, want.qty, want.user, want.statuses)
		}
	}
}

// checkTiers compares a sale's live counts with its stock and its orders.
func checkTiers(c *api.Client, sale saleStock, held, sold map[string]int, v *Violations) error {
	view, err := c.GetSale(sale.id)
	if err != nil {
		return err
	}
	seen := make([]string, 0, len(view.Tiers))
	for _, t := range view.Tiers {
		seen = append(seen, t.ID)
		stock, ok := sale.stock[t.ID]
		if !ok {
			return fmt.Errorf("sale %s has a tier %q nobody created", sale.id, t.ID)
		}
		if t.Held+t.Sold > stock || t.Stock != stock || t.Available != stock-t.Held-t.Sold {
			v.add(&v.Oversold, "sale %s tier %s: held %d + sold %d, available %d, stock %d (created with %d)",
				sale.id, t.ID, t.Held, t.Sold, t.Available, t.Stock, stock)
		}
		if t.Held != held[t.ID] || t.Sold != sold[t.ID] {
			v.add(&v.Miscounted, "sale %s tier %s: counts say held %d sold %d, its orders say held %d sold %d",
				sale.id, t.ID, t.Held, t.Sold, held[t.ID], sold[t.ID])
		}
	}
	if len(seen) != len(sale.stock) {
		slices.Sort(seen)
		return fmt.Errorf("sale %s has tiers %v, created with %d", sale.id, seen, len(sale.stock))
	}
	return nil
}
