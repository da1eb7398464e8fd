package engine

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Config configures an Engine. Zero values take the defaults in brackets.
type Config struct {
	Journal Journal // required

	Shards       int           // shard goroutines [GOMAXPROCS]
	BatchMax     int           // commands decided per batch [1024]
	InboxMax     int           // requests waiting per shard; beyond it ErrOverloaded [8192]
	QueueWaitMax time.Duration // a request that waited longer for its shard is shed with ErrOverloaded [2s]
	TickInterval time.Duration // how often each shard expires due holds [100ms]
	ExpireMax    int           // holds expired per tick, so a tick stays short [4096]

	// AuditMax: audit entries each shard keeps, the oldest dropped
	// first (audit.go) [100_000].
	AuditMax int

	// SnapshotEvents: a shard writes a snapshot after this many events since
	// its last one, then the log before it is deleted [250_000].
	SnapshotEvents int

	// SyncGatherMax bounds how long a shard's log writer holds decided
	// batches after a sync, waiting for the callers that sync answered to
	// send their next requests, so that all of them share the next sync
	// instead of splitting into two groups that each wait for two syncs
	// (gather.go). It waits at most the last sync's duration, and not at
	// all when nobody is expected. Negative turns gathering off [1ms].
	SyncGatherMax time.Duration

	// ArchiveAfter: a sale is archived automatically this long after its
	// performance starts (archive.go); 0 turns the automatic rule off.
	ArchiveAfter time.Duration
	// QueueSeedKey derives the seeds of queued sales' draws (queue.go);
	// main sets one derived from the data key. Empty: seeds anyone can
	// compute, for tests only.
	QueueSeedKey []byte

	Now     func() time.Time // the clock [time.Now]; read once per batch
	Logger  *slog.Logger     // [slog.Default()]
	OnFatal func(error)      // called once when a log write fails [log and os.Exit(1)]
	Metrics *metrics.Set     // where engine metrics are registered [none]

	// Outbox, if set, is told of every synced entry and asked before the
	// log is truncated behind a snapshot (outbox.go) [none].
	Outbox OutboxTap

	// Remote, if set, runs the steps of an exchange into another session
	// whose sale this engine does not hold (a fleet: xsession_remote.go)
	// [every sale is this engine's].
	Remote ExchangeRemote
}

func (c *Config) setDefaults() {
	if c.Shards <= 0 {
		c.Shards = runtime.GOMAXPROCS(0)
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 1024
	}
	if c.InboxMax <= 0 {
		c.InboxMax = 8192
	}
	if c.QueueWaitMax <= 0 {
		c.QueueWaitMax = 2 * time.Second
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ExpireMax <= 0 {
		c.ExpireMax = 4096
	}
	if c.SyncGatherMax == 0 {
		c.SyncGatherMax = time.Millisecond
	}
	if c.AuditMax <= 0 {
		c.AuditMax = auditMaxDefault
	}
	if c.SnapshotEvents <= 0 {
		c.SnapshotEvents = 250_000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.OnFatal == nil {
		logger := c.Logger
		c.OnFatal = func(err error) {
			logger.Error("write-ahead log failed; stopping so that recovery can rebuild from the log", "err", err)
			os.Exit(1)
		}
	}
}

// Engine routes commands to the shard that owns their sale and returns the
// answers once they are durable. All methods are safe for concurrent use.
//
// Every method returns one of: a result; a *Rejection (a business outcome,
// nothing changed); ErrOverloaded (nothing decided, retry later); ErrStopped
// or a context error (not acknowledged: the outcome is unknown until read
// back).
type Engine struct {
	cfg     Config
	shards  []*shard
	loadMu  sync.Mutex // serialises LoadSales, which holds several shards at once
	stopped chan struct{}
	closing atomic.Bool
	failed  atomic.Bool
	wg      sync.WaitGroup
	started time.Time // monotonic base for queue deadlines and stage times
	views   *saleViews
	creds   credentialViews
	stages  *stageMetrics

	store          ArchiveStore // the Journal, if it can archive (archive.go); else nil
	archiveM       archiveMetrics
	archiveReads   atomic.Int64 // archive reads in flight: old generations are not deleted meanwhile (archive_prune.go)
	archivedSales  atomic.Int64
	archivedOrders atomic.Int64

	xsNoKick bool          // tests: payments leave cross-session exchanges to SettleExchanges (xsession.go)
	xsKicked chan struct{} // tests: told when a kick has finished (xsession.go)
}

// Open recovers the state from the journal (newest snapshot of each shard,
// then every entry after it) and starts the shards. When it returns, every
// acknowledged write before the last stop is in memory.
func Open(cfg Config) (*Engine, error) {
	if cfg.Journal == nil {
		return nil, errors.New("engine: Config.Journal is required")
	}
	cfg.setDefaults()
	states, seqs, err := recoverStates(cfg.Journal, cfg.Shards, cfg.Logger)
	if err != nil {
		return nil, err
	}
	return start(cfg, states, seqs), nil
}

// start makes an Engine of recovered states (Open, Follower.Promote) and
// starts its shards.
func start(cfg Config, states []*state, seqs []uint64) *Engine {
	e := &Engine{cfg: cfg, stopped: make(chan struct{}), started: time.Now(), views: newSaleViews()}
	m := newEngineMetrics(cfg.Metrics)
	e.stages = m.stages
	e.store, _ = cfg.Journal.(ArchiveStore)
	e.archiveM = newArchiveMetrics(m.set, e)
	e.creds.table.Store(emptyCredentialTable)
	for i := range cfg.Shards {
		s := newShard(e, i, states[i], seqs[i], m)
		// What was recovered is durable: publish every sale at once.
		for _, si := range s.st.touched {
			s.st.sales[si].touched = false
		}
		s.st.touched = s.st.touched[:0]
		for si := range s.st.sales {
			s.st.touch(int32(si))
		}
		e.views.publish(s.takeViews(nil))
		s.publishArchived() // archive.go
		if len(s.st.creds.list) > 0 {
			s.st.creds.changed = true
		}
		e.publishCredentials(s.st.takeCredentialTable())
		e.shards = append(e.shards, s)
	}
	for _, s := range e.shards {
		s.start(&e.wg)
	}
	return e
}

// Close stops accepting requests, answers what is queued, waits for the
// committers to finish the log writes under way, and stops the shards. It
// does not close the Journal.
func (e *Engine) Close() error {
	if !e.closing.CompareAndSwap(false, true) {
		return nil
	}
	for _, s := range e.shards {
		close(s.quit)
	}
	e.wg.Wait()
	close(e.stopped)
	return nil
}

// Shards returns the shard count.
func (e *Engine) Shards() int { return len(e.shards) }

// InboxLen returns how many requests wait in shard i's inbox.
func (e *Engine) InboxLen(i int) int { return len(e.shards[i].inbox) }

// AwaitingSync returns how many requests have been decided and wait for the
// log sync that covers them: a measure of load that the log's group commit
// can use (main's -log-min-sync-waiting). Any goroutine may call it.
func (e *Engine) AwaitingSync() int64 {
	var n int64
	for _, s := range e.shards {
		n += s.awaitingSync.Load()
	}
	return n
}

// HoldsOutstanding returns the number of pending orders, as last published
// by the shards.
func (e *Engine) HoldsOutstanding() int64 {
	var n int64
	for _, s := range e.shards {
		n += s.pendingOrders.Load()
	}
	return n
}

// Purchase creates a pending order holding req.Quantity tickets, or returns
// the order already made with the same idempotency key (created false).
func (e *Engine) Purchase(ctx context.Context, req PurchaseRequest) (Order, bool, error) {
	if len(req.UserID) == 0 || len(req.UserID) > UserLenMax {
		return Order{}, false, reject(CodeInvalidRequest, "user id must have 1 to %d bytes", UserLenMax)
	}
	if len(req.IdempotencyKey) == 0 || len(req.IdempotencyKey) > IdempotencyKeyLenMax {
		return Order{}, false, reject(CodeInvalidRequest, "idempotency key must have 1 to %d bytes", IdempotencyKeyLenMax)
	}
	coupon, rej := purchaseCoupon(req.Coupon) // coupons.go
	if rej == nil {
		rej = checkAttendees(req.Attendees) // realname.go
	}
	if rej != nil {
		return Order{}, false, rej
	}
	r := getRequest()
	r.cmd = command{
		kind: cmdPurchase, saleID: req.SaleID, tierID: req.TierID, qty: req.Quantity,
		userID: req.UserID, key: req.IdempotencyKey, newOrder: newOrderKey(), coupon: coupon,
		attendees: cloneAttendees(req.Attendees), // realname.go
	}
	if req.Admission != nil { // queue.go
		a := *req.Admission
		r.cmd.admission = &a
	}
	if err := e.call(ctx, req.SaleID, r); err != nil {
		return Order{}, false, err
	}
	o, created := r.res.order, r.res.created
	o.ID = formatOrderID(o.SaleID, r.res.orderKey)
	putRequest(r)
	return o, created, nil
}

// PutSale creates a sale or updates it (created tells which).
func (e *Engine) PutSale(ctx context.Context, cfg SaleConfig) (Sale, bool, error) {
	if rej := validateSaleConfig(&cfg); rej != nil {
		return Sale{}, false, rej
	}
	r := getRequest()
	r.cmd = command{kind: cmdPutSale, saleID: cfg.ID, sale: &cfg}
	if err := e.call(ctx, cfg.ID, r); err != nil {
		return Sale{}, false, err
	}
	s, created := r.res.sale, r.res.created
	putRequest(r)
	return s, created, nil
}

// LoadSales creates or updates many sales, all or nothing: if any config is
// invalid or would be refused, none is applied. (A crash in the middle of the
// write may keep the shards already written; loading the same document again
// completes it.)
func (e *Engine) LoadSales(ctx context.Context, cfgs []SaleConfig) ([]Sale, error) {
	seen := make(map[string]bool, len(cfgs))
	for i := range cfgs {
		if rej := validateSaleConfig(&cfgs[i]); rej != nil {
			rej.Message = fmt.Sprintf("sales[%d]: %s", i, rej.Message)
			return nil, rej
		}
		if seen[cfgs[i].ID] {
			return nil, reject(CodeInvalidRequest, "sales[%d]: sale %q appears twice", i, cfgs[i].ID)
		}
		seen[cfgs[i].ID] = true
	}
	e.loadMu.Lock()
	defer e.loadMu.Unlock()

	byShard := make(map[*shard][]SaleConfig)
	for _, c := range cfgs {
		s := e.shardFor(c.ID)
		byShard[s] = append(byShard[s], c)
	}
	reqs := make([]*request, 0, len(byShard))
	for _, s := range e.shards { // shard order, not map order
		if len(byShard[s]) == 0 {
			continue
		}
		r := &request{done: make(chan struct{}, 1)}
		r.cmd = command{kind: cmdLoad, sales: byShard[s], load: &loadGate{
			prepared: make(chan *Rejection, 1), commit: make(chan bool, 1),
		}}
		if len(reqs) == 0 {
			r.cmd.audit = auditFrom(ctx) // one entry, on the first shard (audit.go)
		}
		if err := e.send(s, r); err != nil {
			for _, p := range reqs {
				p.cmd.load.commit <- false
			}
			return nil, err
		}
		reqs = append(reqs, r)
	}
	var firstRej *Rejection
	for _, r := range reqs {
		select {
		case rej := <-r.cmd.load.prepared:
			if rej != nil && firstRej == nil {
				firstRej = rej
			}
		case <-e.stopped:
			return nil, ErrStopped
		}
	}
	for _, r := range reqs {
		r.cmd.load.commit <- firstRej == nil
	}
	var out []Sale
	for _, r := range reqs {
		if err := e.wait(ctx, r); err != nil {
			return nil, err
		}
		if firstRej == nil {
			out = append(out, r.res.sales...)
		}
	}
	if firstRej != nil {
		return nil, firstRej
	}
	slices.SortFunc(out, func(a, b Sale) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// SetSaleClosed closes a sale (no purchases, whatever its times say) or
// reopens it.
func (e *Engine) SetSaleClosed(ctx context.Context, saleID string, closed bool) (Sale, error) {
	r := getRequest()
	r.cmd = command{kind: cmdSetClosed, saleID: saleID, closed: closed}
	if err := e.call(ctx, saleID, r); err != nil {
		return Sale{}, err
	}
	s := r.res.sale
	putRequest(r)
	return s, nil
}

// SaleView returns a sale with its live counts as of the newest durable
// log entry (views.go), without entering its shard: any number of readers,
// no wait for a sync. Everyone answered for a write to the sale sees it.
// The Sale and its slices are shared: callers must not modify them.
func (e *Engine) SaleView(saleID string) (*Sale, error) {
	if v := e.views.get(saleID); v != nil {
		return v, nil
	}
	// A copy, so that saleID does not escape: a caller converting a
	// request's bytes to look a view up allocates nothing.
	return nil, reject(CodeUnknownSale, "no sale %q", strings.Clone(saleID))
}

// Sale is SaleView as a copy the caller owns.
func (e *Engine) Sale(_ context.Context, saleID string) (Sale, error) {
	v, err := e.SaleView(saleID)
	if err != nil {
		return Sale{}, err
	}
	return v.clone(), nil
}

// Sales returns every sale, sorted by id, from the published views.
func (e *Engine) Sales(_ context.Context) ([]Sale, error) {
	views := e.views.all()
	out := make([]Sale, len(views))
	for i, v := range views {
		out[i] = v.clone()
	}
	return out, nil
}

// Order returns an order by id. Callers check who may see it.
func (e *Engine) Order(ctx context.Context, orderID string) (Order, error) {
	saleID, key, ok := parseOrderID(orderID)
	if !ok {
		return Order{}, reject(CodeUnknownOrder, "no order %q", orderID)
	}
	r := getRequest()
	r.cmd = command{kind: cmdGetOrder, saleID: saleID, order: key}
	if err := e.call(ctx, saleID, r); err != nil {
		return Order{}, err
	}
	o := r.res.order
	o.ID = orderID
	putRequest(r)
	return o, nil
}

// UserOrders returns a user's orders, newest first: in one sale, or in every
// sale when saleID is empty.
func (e *Engine) UserOrders(ctx context.Context, userID, saleID string) ([]Order, error) {
	cmd := command{kind: cmdUserOrders, userID: userID, saleID: saleID}
	var out []Order
	collect := func(res *result) { out = append(out, res.orders...) }
	var err error
	if saleID != "" {
		err = e.one(ctx, saleID, cmd, collect)
	} else {
		err = e.fanOut(ctx, cmd, collect)
	}
	slices.SortStableFunc(out, func(a, b Order) int { return cmp.Compare(b.CreatedAtMs, a.CreatedAtMs) })
	return out, err
}

// SaleOrders pages through a sale's orders in creation order: up to limit
// orders after the cursor ("" for the start), and the cursor of the next page
// ("" when there is none). Admins export with it.
func (e *Engine) SaleOrders(ctx context.Context, saleID, cursor string, limit int) ([]Order, string, error) {
	after := -1
	if cursor != "" {
		n, err := fmt.Sscanf(cursor, "%d", &after)
		if n != 1 || err != nil || after < 0 {
			return nil, "", reject(CodeInvalidRequest, "cursor %q is not one this server gave", cursor)
		}
	}
	limit = min(max(limit, 1), 10_000)
	var out []Order
	next := ""
	err := e.one(ctx, saleID, command{kind: cmdSaleOrders, saleID: saleID, after: after, limit: limit},
		func(res *result) {
			out = res.orders
			if res.next >= 0 {
				next = fmt.Sprint(res.next)
			}
		})
	return out, next, err
}

// Cancel cancels a pending order and releases its tickets. userID is the
// buyer; an order of another user is reported as unknown. An admin passes "".
// Cancelling a cancelled order returns it unchanged.
func (e *Engine) Cancel(ctx context.Context, orderID, userID string) (Order, error) {
	return e.orderCommand(ctx, orderID, command{kind: cmdCancel, userID: userID})
}

// Refund refunds a paid order; its tickets return to the tier (unless it was
// paid with NeedsRefund, which held none). An order with checked-in tickets
// is refused with ticket_used unless force is set; then its checked-in
// tickets stay sold and only the others return.
func (e *Engine) Refund(ctx context.Context, orderID string, force bool) (Order, error) {
	return e.orderCommand(ctx, orderID, command{kind: cmdRefund, force: force})
}

// ApplyPayment applies a payment provider's event once and says what it did
// (the order is returned as it is after the event).
func (e *Engine) ApplyPayment(ctx context.Context, p Payment) (Order, PaymentOutcome, error) {
	if len(p.EventID) == 0 || len(p.EventID) > PaymentIDLenMax {
		return Order{}, PaymentUnchanged, reject(CodeInvalidRequest, "payment event id must have 1 to %d bytes", PaymentIDLenMax)
	}
	r := getRequest()
	o, err := e.orderCall(ctx, p.OrderID, command{kind: cmdPay, payment: p}, r)
	outcome := r.res.payment
	if err == nil {
		putRequest(r)
		if outcome == PaymentApplied && !e.xsNoKick {
			e.kickExchange(&o) // xsession.go: an exchange into another session, its difference paid
		}
	}
	return o, outcome, err
}

func (e *Engine) orderCommand(ctx context.Context, orderID string, cmd command) (Order, error) {
	r := getRequest()
	o, err := e.orderCall(ctx, orderID, cmd, r)
	if err == nil {
		putRequest(r)
	}
	return o, err
}

func (e *Engine) orderCall(ctx context.Context, orderID string, cmd command, r *request) (Order, error) {
	saleID, key, ok := parseOrderID(orderID)
	if !ok {
		return Order{}, reject(CodeUnknownOrder, "no order %q", orderID)
	}
	cmd.saleID, cmd.order = saleID, key
	r.cmd = cmd
	if err := e.call(ctx, saleID, r); err != nil {
		return Order{}, err
	}
	o := r.res.order
	o.ID = orderID
	return o, nil
}

// one sends cmd to the shard of saleID and hands its result to fn.
func (e *Engine) one(ctx context.Context, saleID string, cmd command, fn func(*result)) error {
	r := getRequest()
	r.cmd = cmd
	if err := e.call(ctx, saleID, r); err != nil {
		return err
	}
	fn(&r.res)
	putRequest(r)
	return nil
}

// fanOut sends cmd to every shard and hands each result to fn, in shard
// order.
func (e *Engine) fanOut(ctx context.Context, cmd command, fn func(*result)) error {
	reqs := make([]*request, len(e.shards))
	for i, s := range e.shards {
		reqs[i] = &request{cmd: cmd, done: make(chan struct{}, 1)}
		if err := e.send(s, reqs[i]); err != nil {
			return err
		}
	}
	for _, r := range reqs {
		if err := e.wait(ctx, r); err != nil {
			return err
		}
		fn(&r.res)
	}
	return nil
}

// call sends r to the shard that owns saleID and waits for its durable
// answer. On success r.res holds the result; a rejection is returned as the
// error. On any error other than a rejection the caller must not reuse r: the
// shard may still write to it.
func (e *Engine) call(ctx context.Context, saleID string, r *request) error {
	if r.cmd.kind != cmdPurchase && r.cmd.audit == nil { // buyers are not audited: no lookup on their path
		r.cmd.audit = auditFrom(ctx)
	}
	if err := e.send(e.shardFor(saleID), r); err != nil {
		return err
	}
	if err := e.wait(ctx, r); err != nil {
		if rej, ok := err.(*Rejection); ok && rej.Code == CodeSaleArchived && e.store != nil &&
			r.cmd.kind != cmdArchive && r.cmd.kind != cmdUnarchive {
			return e.fromArchive(ctx, saleID, r, err) // archive.go
		}
		return err
	}
	if r.durable > 0 {
		e.stages.answer.Update((time.Since(e.started) - r.durable).Seconds())
	}
	if r.res.rej != nil {
		return r.res.rej
	}
	return r.res.err
}

func (e *Engine) send(s *shard, r *request) error {
	if e.closing.Load() || e.failed.Load() {
		return ErrStopped
	}
	r.deadline = time.Since(e.started) + e.cfg.QueueWaitMax
	select {
	case s.inbox <- r:
		return nil
	default:
		s.m.overloaded.Inc()
		return ErrOverloaded
	}
}

func (e *Engine) wait(ctx context.Context, r *request) error {
	select {
	case <-r.done:
		if r.res.rej != nil {
			return r.res.rej
		}
		return r.res.err
	case <-ctx.Done():
		return ctx.Err()
	case <-e.stopped:
		return ErrStopped
	}
}

func (e *Engine) shardFor(saleID string) *shard {
	return e.shards[shardIndex(saleID, len(e.shards))]
}

// shardIndex names the shard that owns a sale.
func shardIndex(saleID string, shards int) int {
	return int(fnv32a(saleID) % uint32(shards))
}

// fail stops the engine after a log write failed: nothing more is
// acknowledged.
func (e *Engine) fail(err error) {
	if e.failed.CompareAndSwap(false, true) {
		e.cfg.OnFatal(err)
	}
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan struct{}, 1)} }}

func getRequest() *request { return requestPool.Get().(*request) }

// putRequest recycles a request whose answer has been received.
func putRequest(r *request) {
	done := r.done
	*r = request{done: done}
	requestPool.Put(r)
}

func newOrderKey() orderKey {
	var k orderKey
	if _, err := rand.Read(k[:]); err != nil {
		panic(fmt.Sprintf("engine: crypto/rand failed: %v", err))
	}
	return k
}
