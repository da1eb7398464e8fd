package reliability

// Linearizability of one tier, checked with porcupine.
//
// Why here and not in engine/: the claim is about what callers of the public
// Engine API see, with the log the binary uses. A real wal (Pebble, synced)
// makes every answer wait for its batch's fsync, so calls overlap the way
// they do in production and the checker sees the pipelined commit (batch
// k+1 decided while batch k syncs) from the outside. HTTP would add only
// transport; engine internals (the in-memory journal) would hide the sync.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/onsale/onsale/engine"
)

var (
	linRounds = flag.Int("lin-rounds", 4, "histories TestLinearizable records and checks")
	linSeed   = flag.Uint64("lin-seed", 0, "seed of TestLinearizable; 0 takes one from the clock")
)

// The workload: hard contention on a tiny tier.
const (
	linStock      = 5
	linClients    = 12
	linOpsPerCall = 24 // operations per client: 288 per history
	linCheckMax   = 20 * time.Second
)

// tierUnderTest is one tier of one sale, as a caller sees it.
type tierUnderTest interface {
	// purchase returns the order made (or returned, for a key seen before),
	// or a rejection code.
	purchase(user, key string, qty int) (orderID string, code string, err error)
	// cancel returns "" when the order is cancelled (now or before).
	cancel(user, orderID string) (code string, err error)
	available() (int, error)
}

// TestLinearizable records concurrent purchases (fresh keys and retries of
// earlier ones), cancels (some twice) and availability reads of a 5-ticket
// tier through the engine on a real wal, and checks that porcupine finds a
// sequential order of them that the tier model accepts.
func TestLinearizable(t *testing.T) {
	seed := testSeed(*linSeed)
	var ops, soldOut, cancelled int
	start := time.Now()
	for round := range *linRounds {
		s := seed + uint64(round)
		tier := openEngineTier(t)
		h := recordHistory(tier, s)
		if h.err != nil {
			t.Fatalf("seed %d: %v", s, h.err)
		}
		res, info := porcupine.CheckOperationsVerbose(h.model(), h.ops, linCheckMax)
		if res != porcupine.Ok {
			t.Fatalf("seed %d (rerun with -lin-seed %d -lin-rounds 1): history of %d operations is %s; %s",
				s, s, len(h.ops), res, visualize(h, info, s))
		}
		if h.soldOut == 0 || h.cancelled == 0 {
			t.Fatalf("seed %d: no contention: %d sold_out answers, %d cancels", s, h.soldOut, h.cancelled)
		}
		ops, soldOut, cancelled = ops+len(h.ops), soldOut+h.soldOut, cancelled+h.cancelled
	}
	t.Logf("seeds %d..%d: %d histories, %d operations, %d sold_out answers, %d cancels: linearizable (%s)",
		seed, seed+uint64(*linRounds)-1, *linRounds, ops, soldOut, cancelled, time.Since(start).Round(time.Millisecond))
}

// TestLinearizableCatchesBrokenHistories is the negative control: the same
// checker must reject (1) a real history whose first read is changed to
// have seen a ticket more than the tier ever had, and (2) the history
// of a tier that checks stock and takes it in two steps (every client's
// first purchase checks, then all take), which oversells.
func TestLinearizableCatchesBrokenHistories(t *testing.T) {
	seed := testSeed(*linSeed)
	tier := openEngineTier(t)
	h := recordHistory(tier, seed)
	if h.err != nil {
		t.Fatalf("seed %d: %v", seed, h.err)
	}
	// The read that returned first claims one ticket more than the stock:
	// the checker has only the operations before it to try.
	first := -1
	for i, op := range h.ops {
		if op.Input.(linInput).op == opRead && (first < 0 || op.Return < h.ops[first].Return) {
			first = i
		}
	}
	if first < 0 {
		t.Fatalf("seed %d: the history has no read", seed)
	}
	h.ops[first].Output = linOutput{avail: linStock + 1}
	if res := porcupine.CheckOperationsTimeout(h.model(), h.ops, linCheckMax); res != porcupine.Illegal {
		t.Errorf("seed %d: a read of %d tickets in a tier of %d is %s, want Illegal", seed, linStock+1, linStock, res)
	}

	split := recordHistory(newSplitTier(linClients), seed)
	if split.err != nil {
		t.Fatalf("seed %d: %v", seed, split.err)
	}
	if res := porcupine.CheckOperationsTimeout(split.model(), split.ops, linCheckMax); res != porcupine.Illegal {
		t.Errorf("seed %d: the check-then-take tier's history is %s, want Illegal", seed, res)
	}
}

// Operations and the model of a tier.

type linOp uint8

const (
	opPurchase linOp = iota
	opCancel
	opRead
)

type linInput struct {
	op    linOp
	key   int // purchase: index of its (user, key)
	qty   int // purchase: tickets; cancel: the order's tickets
	order int // cancel: index of the order
}

type linOutput struct {
	order int    // purchase: index of the order made or returned
	code  string // "" for success, else the rejection code
	avail int    // read
}

// tierState is the model's state, comparable with ==: tickets available,
// the status of each order ('p' pending, 'c' cancelled, 0 not made yet),
// and the order each key made (index+1 as two bytes; 0 none).
type tierState struct {
	avail  int
	orders string
	keys   string
}

func (s tierState) keyOrder(k int) int { return int(s.keys[2*k]) | int(s.keys[2*k+1])<<8 }

func (s tierState) withOrder(o int, status byte) tierState {
	b := []byte(s.orders)
	b[o] = status
	s.orders = string(b)
	return s
}

func (s tierState) withKey(k, o int) tierState {
	b := []byte(s.keys)
	b[2*k], b[2*k+1] = byte(o+1), byte((o+1)>>8)
	s.keys = string(b)
	return s
}

// step is the sequential specification of a tier.
func step(st tierState, in linInput, out linOutput) (bool, tierState) {
	switch in.op {
	case opPurchase:
		made := st.keyOrder(in.key)
		switch {
		case made != 0: // a key seen before returns its order and changes nothing
			return out.code == "" && out.order == made-1, st
		case out.code == string(engine.CodeSoldOut):
			return st.avail < in.qty, st
		case out.code != "" || st.orders[out.order] != 0 || st.avail < in.qty:
			return false, st
		}
		st.avail -= in.qty
		return true, st.withOrder(out.order, 'p').withKey(in.key, out.order)
	case opCancel:
		switch st.orders[in.order] {
		case 'p':
			if out.code != "" {
				return false, st
			}
			st.avail += in.qty
			return true, st.withOrder(in.order, 'c')
		case 'c':
			return out.code == "", st
		}
		return false, st
	case opRead:
		return out.avail == st.avail, st
	}
	return false, st
}

// Recording.

// history is what the clients did; the indexes of orders and keys are
// assigned as they are first seen.
type history struct {
	start     time.Time
	mu        sync.Mutex
	ops       []porcupine.Operation
	orderIdx  map[string]int
	keyIdx    map[string]int
	soldOut   int
	cancelled int
	err       error
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) model() porcupine.Model {
	nOrders, nKeys := len(h.orderIdx), len(h.keyIdx)
	return porcupine.Model{
		Init: func() any {
			return tierState{avail: linStock, orders: strings.Repeat("\x00", nOrders), keys: strings.Repeat("\x00", 2*nKeys)}
		},
		Step: func(st, in, out any) (bool, any) { return step(st.(tierState), in.(linInput), out.(linOutput)) },
		Hash: func(st any) uint64 {
			s := st.(tierState)
			f := fnv.New64a()
			io.WriteString(f, s.orders)
			io.WriteString(f, s.keys)
			return f.Sum64() ^ uint64(s.avail)
		},
		DescribeOperation: describeOp,
		DescribeState:     func(st any) string { return fmt.Sprintf("available %d", st.(tierState).avail) },
	}
}

func describeOp(in, out any) string {
	i, o := in.(linInput), out.(linOutput)
	switch i.op {
	case opPurchase:
		if o.code != "" {
			return fmt.Sprintf("purchase(key %d, %d) → %s", i.key, i.qty, o.code)
		}
		return fmt.Sprintf("purchase(key %d, %d) → order %d", i.key, i.qty, o.order)
	case opCancel:
		return fmt.Sprintf("cancel(order %d of %d) → %q", i.order, i.qty, o.code)
	}
	return fmt.Sprintf("read → %d", o.avail)
}

func (h *history) index(m map[string]int, s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	i, ok := m[s]
	if !ok {
		i = len(m)
		m[s] = i
	}
	return i
}

func (h *history) record(op porcupine.Operation, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		if h.err == nil {
			h.err = fmt.Errorf("client %d: %s: %w", op.ClientId, describeOp(op.Input, op.Output), err)
		}
		return
	}
	out := op.Output.(linOutput)
	switch {
	case out.code == string(engine.CodeSoldOut):
		h.soldOut++
	case op.Input.(linInput).op == opCancel && out.code == "":
		h.cancelled++
	}
	h.ops = append(h.ops, op)
}

// recordHistory runs linClients clients of linOpsPerCall operations each
// against tier. Each client's first operation is a purchase of one ticket.
func recordHistory(tier tierUnderTest, seed uint64) *history {
	h := &history{start: time.Now(), orderIdx: map[string]int{}, keyIdx: map[string]int{}}
	var wg sync.WaitGroup
	for c := range linClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.client(tier, c, rand.New(rand.NewPCG(seed, uint64(c))))
		}()
	}
	wg.Wait()
	return h
}

type linOrder struct {
	id  string
	idx int
	qty int
}

func (h *history) client(tier tierUnderTest, c int, rng *rand.Rand) {
	user := fmt.Sprintf("c%d", c)
	var keys []int // index of each key this client sent, by its number
	var qtys []int
	var orders []linOrder
	for i := range linOpsPerCall {
		op := porcupine.Operation{ClientId: c}
		var err error
		switch x := rng.IntN(100); {
		case i == 0 || x < 50 || x < 60 && len(keys) > 0:
			n := len(keys) // a fresh key
			if x >= 50 && i > 0 {
				n = rng.IntN(len(keys)) // a retry of one sent before
			}
			if n == len(keys) {
				keys = append(keys, h.index(h.keyIdx, fmt.Sprintf("%s/k%d", user, n)))
				qtys = append(qtys, 1+rng.IntN(2)*min(i, 1))
			}
			in := linInput{op: opPurchase, key: keys[n], qty: qtys[n]}
			op.Input, op.Call = in, h.now()
			var id, code string
			id, code, err = tier.purchase(user, fmt.Sprintf("k%d", n), in.qty)
			op.Return = h.now()
			out := linOutput{code: code}
			if code == "" && err == nil {
				out.order = h.index(h.orderIdx, id)
				if !containsOrder(orders, id) {
					orders = append(orders, linOrder{id, out.order, in.qty})
				}
			}
			op.Output = out
		case x < 85 && len(orders) > 0:
			o := orders[rng.IntN(len(orders))] // may be cancelled already
			op.Input, op.Call = linInput{op: opCancel, order: o.idx, qty: o.qty}, h.now()
			var code string
			code, err = tier.cancel(user, o.id)
			op.Return = h.now()
			op.Output = linOutput{code: code}
		default:
			op.Input, op.Call = linInput{op: opRead}, h.now()
			var avail int
			avail, err = tier.available()
			op.Return = h.now()
			op.Output = linOutput{avail: avail}
		}
		h.record(op, err)
	}
}

func containsOrder(orders []linOrder, id string) bool {
	for _, o := range orders {
		if o.id == id {
			return true
		}
	}
	return false
}

// visualize writes porcupine's HTML view of a failed check and says where.
func visualize(h *history, info porcupine.LinearizationInfo, seed uint64) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("onsale-lin-%d.html", seed))
	if err := porcupine.VisualizePath(h.model(), info, path); err != nil {
		return fmt.Sprintf("cannot write the visualization: %v", err)
	}
	return "see " + path
}

// The tier on the real engine.

type engineTier struct {
	eng *engine.Engine
	ctx context.Context
}

const (
	linSale = "lin"
	linTier = "t"
)

// openEngineTier opens a wal on a temporary directory and an engine on it
// (as main.go does), with one sale of one linStock-ticket tier.
func openEngineTier(t *testing.T) *engineTier {
	t.Helper()
	eng, log, err := openEngine(t.TempDir(), 2, slog.New(slog.NewTextHandler(io.Discard, nil)),
		func(err error) { t.Errorf("log write failed: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		eng.Close()
		log.Close()
	})
	now := time.Now()
	_, _, err = eng.PutSale(context.Background(), engine.SaleConfig{ID: linSale, Name: "Linearizability", Currency: "EUR",
		OpensAtMs: now.Add(-time.Minute).UnixMilli(), ClosesAtMs: now.Add(time.Hour).UnixMilli(),
		HoldMs: time.Hour.Milliseconds(), PerUserLimit: 1_000_000, // the model has no per-user limit
		Tiers: []engine.TierConfig{{ID: linTier, Name: "T", PriceCents: 100, Stock: linStock}}})
	if err != nil {
		t.Fatal(err)
	}
	return &engineTier{eng: eng, ctx: context.Background()}
}

func (e *engineTier) purchase(user, key string, qty int) (string, string, error) {
	o, _, err := e.eng.Purchase(e.ctx, engine.PurchaseRequest{SaleID: linSale, TierID: linTier, Quantity: qty,
		UserID: user, IdempotencyKey: key})
	code, err := rejectionCode(err)
	return o.ID, code, err
}

func (e *engineTier) cancel(user, orderID string) (string, error) {
	_, err := e.eng.Cancel(e.ctx, orderID, user)
	return rejectionCode(err)
}

func (e *engineTier) available() (int, error) {
	s, err := e.eng.Sale(e.ctx, linSale)
	if err != nil {
		return 0, err
	}
	return s.TierCounts[0].Available, nil
}

// rejectionCode splits a business outcome (its code) from a failure.
func rejectionCode(err error) (string, error) {
	var rej *engine.Rejection
	if errors.As(err, &rej) {
		return string(rej.Code), nil
	}
	return "", err
}

// splitTier is a deliberately broken tier: a purchase checks the stock,
// then takes it in a second step. The first purchase of every client waits
// after its check until all clients have checked, so all of them see the
// full stock and all of them take: deterministic overselling.
type splitTier struct {
	avail   atomic.Int64
	checked atomic.Int64
	clients int64
	gate    chan struct{} // closed when the first clients have all checked

	mu     sync.Mutex
	orders map[string]splitOrder
	keys   map[string]string
}

type splitOrder struct {
	qty       int
	cancelled bool
}

func newSplitTier(clients int) *splitTier {
	s := &splitTier{clients: int64(clients), gate: make(chan struct{}),
		orders: map[string]splitOrder{}, keys: map[string]string{}}
	s.avail.Store(linStock)
	return s
}

func (s *splitTier) purchase(user, key string, qty int) (string, string, error) {
	s.mu.Lock()
	id, seen := s.keys[user+"/"+key]
	s.mu.Unlock()
	if seen {
		return id, "", nil
	}
	if s.avail.Load() < int64(qty) { // check ...
		return "", string(engine.CodeSoldOut), nil
	}
	if s.checked.Add(1) == s.clients {
		close(s.gate)
	}
	<-s.gate
	s.avail.Add(-int64(qty)) // ... then take: not one step
	s.mu.Lock()
	defer s.mu.Unlock()
	id = fmt.Sprintf("o%d", len(s.orders))
	s.orders[id] = splitOrder{qty: qty}
	s.keys[user+"/"+key] = id
	return id, "", nil
}

func (s *splitTier) cancel(_, orderID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[orderID]
	if !o.cancelled {
		o.cancelled = true
		s.orders[orderID] = o
		s.avail.Add(int64(o.qty))
	}
	return "", nil
}

func (s *splitTier) available() (int, error) { return int(s.avail.Load()), nil }
