package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	jsonv2 "github.com/goccy/go-json/v2"

	"github.com/onsale/onsale/engine"
	"github.com/onsale/onsale/wal"
)

// Config configures a Notifier. Zero values take the defaults in brackets.
type Config struct {
	DataKey []byte // required: the data directory's root secret; endpoint secrets are sealed with a key derived from it

	Concurrency    int           // deliveries in flight over all endpoints [8]
	Timeout        time.Duration // one delivery attempt [10s]
	BackoffBase    time.Duration // first retry's ceiling [1s]
	BackoffMax     time.Duration // the ceiling's cap [10m]
	DeliveriesKept int           // delivery log entries kept per endpoint [200]
	RoundInterval  time.Duration // how often the reader looks at the log when not woken [250ms]
	RoundMin       time.Duration // the least time between two reads of the log, so one read takes many entries [20ms]
	BusyAbove      int           // log entries synced in the last second (all shards) from which the engine counts as busy and delivery yields (pace.go); <0: never [200]
	BusyRate       float64       // deliveries a second, over all endpoints and email, while the engine is busy [50]
	BusyMax        time.Duration // a busy spell longer than this is the normal load: no more pacing [2m]

	SMTP SMTPConfig // email; Addr empty: no email

	// A fleet node's (httpapi/fleet): Endpoints lists the webhook
	// endpoints, which live in another partition's log [the engine's
	// Webhooks]; EventIDPrefix goes after "evt_" in every notification id,
	// so that ids of different partitions' logs never meet [none].
	Endpoints     func(ctx context.Context) ([]engine.Webhook, error)
	EventIDPrefix string
	// Followers lists the followers of a sale's event, venue or category
	// as engine.Followers does, for a fleet node whose engine does not
	// hold the follows (they are the home partition's) [the engine's
	// Followers].
	Followers func(ctx context.Context, matches [][2]string, after string, limit int) ([]string, error)

	Client  *http.Client                         // [a client with Timeout]
	Now     func() time.Time                     // [time.Now]
	After   func(time.Duration) <-chan time.Time // the backoff's timer [time.After]
	Jitter  func(n int64) int64                  // a uniform draw in [0, n) for full jitter [math/rand/v2]
	Logger  *slog.Logger                         // [slog.Default()]
	Metrics *metrics.Set                         // [none]
}

// Sources are what the notifier asks of the HTTP side: a buyer's email
// address, and an order's tickets as a PDF.
type Sources struct {
	EmailOf    func(userID string) (string, error)                       // "" without an address
	TicketsPDF func(ctx context.Context, orderID string) ([]byte, error) // nil: no attachment
}

// Notifier reads notifications out of the log, keeps them in its outbox
// and delivers them. See the package comment.
type Notifier struct {
	cfg   Config
	store Store
	eng   *engine.Engine
	src   atomic.Pointer[Sources]
	keys  secretKeys
	m     *notifyMetrics
	pace  *pacer // deliveries yield to a busy engine (pace.go)

	synced      []uint64     // the reader's own: each shard's DurableSeq at its last round, for the pacer
	truncations atomic.Int32 // snapshots waiting in BeforeTruncate: the reader reads everything

	wake     chan struct{} // Durable: the reader has entries to read
	reread   atomic.Bool   // RefreshEndpoints: the reader reads the endpoints again
	quit     chan struct{}
	wg       sync.WaitGroup
	started  atomic.Bool
	sem      chan struct{} // deliveries in flight
	mu       sync.Mutex    // guards the fields below
	cond     *sync.Cond    // consumed moved, or stopped
	consumed []uint64      // per shard: entries read into the outbox
	head     uint64        // next outbox position
	tail     uint64        // first position still stored
	workers  map[string]*endpointWorker
	opens    map[string]int64 // the reader's own: announced sales not open yet (onsale.go)
	email    *emailWorker
	stopped  bool
}

// New returns a notifier that is not reading yet: pass it to the engine
// as Config.Outbox, then call Start.
func New(cfg Config) *Notifier {
	if len(cfg.DataKey) < 32 {
		panic("notify: Config.DataKey must hold at least 32 bytes")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Minute
	}
	if cfg.DeliveriesKept <= 0 {
		cfg.DeliveriesKept = 200
	}
	if cfg.RoundInterval <= 0 {
		cfg.RoundInterval = 250 * time.Millisecond
	}
	if cfg.RoundMin <= 0 {
		cfg.RoundMin = 20 * time.Millisecond
	}
	if cfg.BusyAbove == 0 {
		cfg.BusyAbove = 200
	}
	if cfg.BusyRate <= 0 {
		cfg.BusyRate = 50
	}
	if cfg.BusyMax <= 0 {
		cfg.BusyMax = 2 * time.Minute
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Int64N
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Notifier{
		cfg: cfg, keys: newSecretKeys(cfg.DataKey),
		wake: make(chan struct{}, 1), quit: make(chan struct{}),
		sem: make(chan struct{}, cfg.Concurrency), workers: make(map[string]*endpointWorker),
	}
	n.cond = sync.NewCond(&n.mu)
	n.pace = newPacer(float64(cfg.BusyAbove), cfg.BusyRate, cfg.BusyMax)
	n.m = newNotifyMetrics(cfg.Metrics, n)
	n.src.Store(&Sources{})
	return n
}

// SetSources hands over the HTTP side's lookups (httpapi.New calls it).
func (n *Notifier) SetSources(s Sources) { n.src.Store(&s) }

// Durable is engine.OutboxTap's wake-up: never blocks.
func (n *Notifier) Durable(int, uint64) {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// ForPartition sets Config.EventIDPrefix and Config.Endpoints, for a fleet
// node once it knows its partition; call it before Start.
func (n *Notifier) ForPartition(prefix string, endpoints func(context.Context) ([]engine.Webhook, error)) {
	n.cfg.EventIDPrefix, n.cfg.Endpoints = prefix, endpoints
}

// FollowersFrom sets Config.Followers, for a fleet node once it knows its
// partition; call it before Start.
func (n *Notifier) FollowersFrom(followers func(ctx context.Context, matches [][2]string, after string, limit int) ([]string, error)) {
	n.cfg.Followers = followers
}

// DeliversShared reports whether a fleet node's notifier (its endpoints
// from Config.Endpoints, not its own engine's) delivers to endpoint id:
// the delivery log and redelivery routes of partitions other than the
// home one, whose engines do not hold the endpoints, check by it.
func (n *Notifier) DeliversShared(id string) bool {
	if n.cfg.Endpoints == nil {
		return false
	}
	_, ok := n.worker(id)
	return ok
}

// RefreshEndpoints has the reader read the endpoints again (Config.Endpoints
// changed). It never blocks.
func (n *Notifier) RefreshEndpoints() {
	n.reread.Store(true)
	n.Durable(0, 0)
}

// BeforeTruncate is engine.OutboxTap's hold on truncation: it returns true
// once the shard's entries up to seq are in the outbox, durably, and false
// if the notifier stopped first (the engine then keeps the log).
func (n *Notifier) BeforeTruncate(shard int, seq uint64) bool {
	n.truncations.Add(1)
	defer n.truncations.Add(-1)
	n.Durable(shard, seq)
	n.mu.Lock()
	for !n.stopped && (len(n.consumed) <= shard || n.consumed[shard] < seq) {
		n.cond.Wait()
	}
	ok := len(n.consumed) > shard && n.consumed[shard] >= seq
	n.mu.Unlock()
	if !ok {
		return false
	}
	// Rounds write without a sync; this synced write takes them to disk
	// (Pebble's log is one file: a sync covers every write before it).
	err := n.store.AuxWrite([]wal.AuxOp{{Key: keySynced, Value: u64(seq)}}, true)
	return err == nil
}

// Start opens the outbox in store and starts reading eng's shards and
// delivering. Entries synced before the last stop and not yet read are
// read now: nothing decided is missed.
func (n *Notifier) Start(store Store, eng *engine.Engine) error {
	n.store, n.eng = store, eng
	if err := n.load(); err != nil {
		return err
	}
	if err := n.loadOpens(); err != nil { // onsale.go
		return err
	}
	if err := n.refreshEndpoints(); err != nil {
		return err
	}
	if n.cfg.SMTP.Addr != "" {
		n.startEmail()
	}
	n.started.Store(true)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.read() }()
	return nil
}

// Close stops reading and delivering; what is undelivered is delivered
// after the next Start.
func (n *Notifier) Close() {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	n.stopped = true
	n.cond.Broadcast()
	n.mu.Unlock()
	close(n.quit)
	n.wg.Wait()
}

// load reads the outbox's cursors. A shard without one (a new outbox, or
// an older data directory) starts at its durable head: what was decided
// before the outbox existed is not announced.
func (n *Notifier) load() error {
	shards := n.eng.Shards()
	n.consumed = make([]uint64, shards)
	have := make([]bool, shards)
	err := n.store.AuxScan(keyConsumed, prefixEnd(keyConsumed), 0, func(k, v []byte) error {
		if len(k) != len(keyConsumed)+2 || len(v) != 8 {
			return fmt.Errorf("notify: bad cursor %x", k)
		}
		if s := int(binary.BigEndian.Uint16(k[len(keyConsumed):])); s < shards {
			n.consumed[s], have[s] = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	if err != nil {
		return err
	}
	var ops []wal.AuxOp
	for s := range shards {
		durable := n.eng.DurableSeq(s)
		if !have[s] || n.consumed[s] > durable { // new, or the log was repartitioned (seqs restart)
			n.consumed[s] = durable
			ops = append(ops, wal.AuxOp{Key: consumedKey(s), Value: u64(durable)})
		}
	}
	n.tail, n.head = 0, 0
	first := true
	err = n.store.AuxScan(keyOutbox, prefixEnd(keyOutbox), 0, func(k, _ []byte) error {
		pos := binary.BigEndian.Uint64(k[len(keyOutbox):])
		if first {
			n.tail, first = pos, false
		}
		n.head = pos + 1
		return nil
	})
	if err != nil {
		return err
	}
	if first { // empty outbox: positions go on from the consumers' cursors
		n.head = n.maxCursor()
		n.tail = n.head
	}
	if len(ops) > 0 {
		return n.store.AuxWrite(ops, true)
	}
	return nil
}

// maxCursor is the highest position any consumer saved, so that an empty
// outbox does not reuse positions a delivery log names.
func (n *Notifier) maxCursor() uint64 {
	var m uint64
	for _, p := range [][]byte{keyEndpoint, keyEmail} {
		_ = n.store.AuxScan(p, prefixEnd(p), 0, func(_, v []byte) error {
			if len(v) == 8 {
				m = max(m, binary.BigEndian.Uint64(v))
			}
			return nil
		})
	}
	return m
}

// read is the reader goroutine: one round per wake-up (or RoundInterval).
func (n *Notifier) read() {
	t := time.NewTicker(n.cfg.RoundInterval)
	defer t.Stop()
	for {
		if n.reread.Swap(false) {
			if err := n.refreshEndpoints(); err != nil {
				n.reread.Store(true)
				n.cfg.Logger.Error("cannot read the webhook endpoints; will try again", "err", err)
			}
		}
		if err := n.round(); err != nil {
			n.cfg.Logger.Error("cannot read notifications from the log; will try again", "err", err)
		}
		select {
		case <-n.wake:
		case <-t.C:
		case <-n.quit:
			return
		}
		select { // pace: one read of the log takes what a burst decided
		case <-time.After(n.cfg.RoundMin):
		case <-n.quit:
			return
		}
	}
}

// round reads every shard's newly durable entries into the outbox: one
// write for all of them, then the cursors move and the workers wake. The
// write is not synced: the shards' own appends sync the log many times a
// second, and BeforeTruncate syncs before the log behind a cursor may go.
// A crash may lose the last rounds; their entries are still in the log and
// are read again (the same ids). With no consumer at all, only the
// webhooks shard's entries are read, and only each record's kind, for an
// endpoint's creation (engine.ChangesWebhooks); the others are skipped.
func (n *Notifier) round() error {
	n.watch() // pace.go
	var ops []wal.AuxOp
	n.mu.Lock()
	consumed := append([]uint64(nil), n.consumed...)
	head := n.head
	n.mu.Unlock()
	wanted := n.wantedKinds()
	refresh := false
	budget := n.readBudget(len(consumed)) // pace.go: -1, or how many notifications a shard may read now
	for s := range consumed {
		to := n.eng.DurableSeq(s)
		if to <= consumed[s] {
			continue
		}
		if len(wanted) == 0 && !n.mayRefresh(s) {
			consumed[s] = to
			ops = append(ops, wal.AuxOp{Key: consumedKey(s), Value: u64(to)})
			continue
		}
		if budget == 0 && !n.mayRefresh(s) {
			continue
		}
		var notes []engine.Notification
		var ids []string
		upto := consumed[s] // the last entry read whole
		err := n.store.Replay(s, consumed[s], func(seq uint64, entry []byte) error {
			if seq > to || budget >= 0 && len(notes) >= budget {
				return errStopReplay
			}
			upto = seq
			if len(wanted) == 0 { // only an endpoint's change matters here
				refresh = refresh || engine.ChangesWebhooks(entry)
				return nil
			}
			return engine.DecodeNotifications(entry, func(x *engine.Notification) {
				if x.Kind == engine.NotifyWebhooksChanged {
					refresh = true
					return
				}
				if wanted[engine.NotifyEventOnSale] {
					ops = n.trackOpen(x, ops) // onsale.go
				}
				if wanted[x.Kind] {
					notes = append(notes, *x)
					ids = append(ids, n.eventID(x, s, seq))
				}
			})
		})
		if err != nil && !errors.Is(err, errStopReplay) {
			return fmt.Errorf("shard %d after %d: %w", s, consumed[s], err)
		}
		if err == nil { // read to the end of the log
			upto = to
		}
		recs, err := n.records(s, notes, ids)
		if err != nil {
			return err
		}
		for i := range recs {
			ops = append(ops, wal.AuxOp{Key: outboxKey(head), Value: recs[i].encode()})
			head++
		}
		consumed[s] = upto
		ops = append(ops, wal.AuxOp{Key: consumedKey(s), Value: u64(upto)})
	}
	opened, forget, head := n.dueOpens(head) // onsale.go
	ops = append(ops, opened...)
	if len(ops) == 0 {
		return nil
	}
	if err := n.store.AuxWrite(ops, false); err != nil {
		return err
	}
	for _, sale := range forget {
		delete(n.opens, sale)
	}
	n.mu.Lock()
	n.consumed, n.head = consumed, head
	n.cond.Broadcast()
	n.mu.Unlock()
	if refresh {
		if err := n.refreshEndpoints(); err != nil {
			n.reread.Store(true) // the next round tries again
			n.cfg.Logger.Error("cannot read the webhook endpoints", "err", err)
		}
	}
	n.wakeWorkers()
	return n.trim()
}

var errStopReplay = errors.New("notify: caught up")

// eventID is the notification's id, with Config.EventIDPrefix.
func (n *Notifier) eventID(x *engine.Notification, shard int, seq uint64) string {
	id := x.ID(shard, seq)
	if n.cfg.EventIDPrefix != "" {
		id = "evt_" + n.cfg.EventIDPrefix + strings.TrimPrefix(id, "evt_")
	}
	return id
}

const trimStep = 1024

// records turns a shard's notifications into outbox records, reading the
// orders they name in one command to the shard.
func (n *Notifier) records(shard int, notes []engine.Notification, ids []string) ([]record, error) {
	if len(notes) == 0 {
		return nil, nil
	}
	var refs []engine.OrderRef
	for i := range notes {
		if notes[i].HasOrder {
			refs = append(refs, notes[i].Order)
		}
	}
	var orders []engine.Order
	if len(refs) > 0 {
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		orders, err = n.eng.LookupOrders(ctx, shard, refs)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("cannot read the orders of shard %d's notifications: %w", shard, err)
		}
	}
	out := make([]record, 0, len(notes))
	j := 0
	for i := range notes {
		x := &notes[i]
		var o *engine.Order
		if x.HasOrder {
			o = &orders[j]
			j++
		}
		out = append(out, n.record(x, ids[i], o))
	}
	return out, nil
}

// Payload is the JSON body of a delivery.
type Payload struct {
	ID        string    `json:"id"` // stable: the same on every retry, redelivery and restart
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      Data      `json:"data"`
}

// Data is what a notification is about.
type Data struct {
	SaleID      string `json:"sale_id,omitempty"`
	OrderID     string `json:"order_id,omitempty"`
	TierID      string `json:"tier_id,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	Quantity    int    `json:"quantity,omitempty"`
	AmountCents int64  `json:"amount_cents,omitempty"`
	Currency    string `json:"currency,omitempty"`
	Status      string `json:"status,omitempty"` // the order's status when the notification was read
	PaymentID   string `json:"payment_id,omitempty"`
	Ticket      *int   `json:"ticket,omitempty"` // ticket.checked_in: which ticket of the order
	Gate        string `json:"gate,omitempty"`
	// order.offered: until when the offer's order waits for payment
	ExpiresAt *time.Time `json:"expires_at,omitempty"`

	// event.on_sale (onsale.go): the phase, and the sale's catalogue
	Phase    string     `json:"phase,omitempty"` // "announced" or "open"
	Name     string     `json:"name,omitempty"`
	Event    string     `json:"event,omitempty"`
	Venue    string     `json:"venue,omitempty"`
	Category string     `json:"category,omitempty"`
	OpensAt  *time.Time `json:"opens_at,omitempty"`
}

func (n *Notifier) record(x *engine.Notification, id string, o *engine.Order) record {
	p := Payload{ID: id, Type: x.Kind, CreatedAt: time.UnixMilli(x.AtMs).UTC(),
		Data: Data{SaleID: x.SaleID, PaymentID: x.PaymentID, Gate: x.Gate}}
	if x.Kind == engine.NotifyTicketCheckedIn {
		t := x.Ticket
		p.Data.Ticket = &t
	}
	if x.Kind == engine.NotifyEventOnSale {
		onSaleData(&p.Data, x, id)
	}
	r := record{Kind: x.Kind, EventID: id}
	if o != nil && o.ID != "" {
		p.Data.SaleID, p.Data.OrderID, p.Data.TierID, p.Data.UserID = o.SaleID, o.ID, o.TierID, o.UserID
		p.Data.Quantity, p.Data.AmountCents, p.Data.Currency, p.Data.Status = o.Quantity, o.AmountCents, o.Currency, o.Status.String()
		r.UserID, r.OrderID = o.UserID, o.ID
		if x.Kind == engine.NotifyOrderOffered {
			t := time.UnixMilli(o.ExpiresAtMs).UTC()
			p.Data.ExpiresAt = &t
		}
	}
	if x.AmountCents != 0 { // a duplicate charge: the amount to give back
		p.Data.AmountCents = x.AmountCents
	}
	body, err := jsonv2.Marshal(&p)
	if err != nil {
		panic(err)
	}
	r.Body = body
	return r
}

// wantedKinds are the kinds some consumer takes: only those are stored.
func (n *Notifier) wantedKinds() map[string]bool {
	w := make(map[string]bool)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ew := range n.workers {
		for _, k := range engine.NotificationKinds {
			if ew.hook.Wants(k) {
				w[k] = true
			}
		}
	}
	if n.email != nil {
		w[engine.NotifyOrderCreated], w[engine.NotifyOrderPaid], w[engine.NotifyEventOnSale] = true, true, true
	}
	return w
}

// trim deletes the outbox records every consumer has passed.
func (n *Notifier) trim() error {
	n.mu.Lock()
	low := n.head
	for _, w := range n.workers {
		low = min(low, w.cursor.Load())
	}
	if n.email != nil {
		low = min(low, n.email.cursor.Load())
	}
	tail := n.tail
	n.mu.Unlock()
	if low < tail+trimStep { // one range deletion per trimStep records, not per round
		return nil
	}
	if err := n.store.AuxWrite([]wal.AuxOp{{Key: outboxKey(tail), End: outboxKey(low)}}, false); err != nil {
		return err
	}
	n.mu.Lock()
	n.tail = max(n.tail, low)
	n.mu.Unlock()
	return nil
}

// readRecords reads up to limit records from pos on.
func (n *Notifier) readRecords(pos uint64, limit int) ([]uint64, []record, error) {
	var poss []uint64
	var recs []record
	err := n.store.AuxScan(outboxKey(pos), prefixEnd(keyOutbox), limit, func(k, v []byte) error {
		r, err := decodeRecord(v)
		if err != nil {
			return fmt.Errorf("notify: outbox record %x: %w", k, err)
		}
		poss = append(poss, binary.BigEndian.Uint64(k[len(keyOutbox):]))
		recs = append(recs, r)
		return nil
	})
	return poss, recs, err
}

func (n *Notifier) wakeWorkers() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, w := range n.workers {
		w.poke()
	}
	if n.email != nil {
		n.email.poke()
	}
}

// backoff is full jitter: a uniform draw below min(cap, base*2^attempt).
func (n *Notifier) backoff(attempt int) time.Duration {
	ceiling := n.cfg.BackoffMax
	if attempt < 30 {
		ceiling = min(ceiling, n.cfg.BackoffBase<<attempt)
	}
	return time.Duration(n.cfg.Jitter(int64(ceiling)) + 1)
}

// sleep waits d, or until the notifier stops (false).
func (n *Notifier) sleep(d time.Duration) bool {
	select {
	case <-n.cfg.After(d):
		return true
	case <-n.quit:
		return false
	}
}

// mayRefresh: shard s's log may hold an endpoint's creation, which the
// reader must see even when nobody consumes anything yet.
func (n *Notifier) mayRefresh(s int) bool { return s == n.eng.WebhooksShard() }
