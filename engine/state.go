package engine

import (
	"math/bits"
	"slices"
)

// state is one shard's share of the world: its sales and their orders. It is
// plain single-threaded data; only the shard's loop touches it (and recovery,
// before the loop starts).
//
// Everything below the line "derived" is an index that restore rebuilds from
// sales and orders, so a snapshot stores only those two.
type state struct {
	sales  []*sale // in creation order, which the log fixes
	orders orderTable

	// derived
	saleIdx map[string]int32
	byKey   map[orderKey]int32
	holds   holdHeap // pending orders by expiry; may hold stale entries
	pending int64    // orders in status pending

	// charges holds the duplicate charges of the few orders that have any
	// (charges.go): a map, so the other orders pay nothing for it. Slices
	// are only appended to, so a snapshot can share them.
	charges map[orderKey][]DuplicateCharge
	// payouts holds the refund obligations of the few orders that have
	// any (payouts.go).
	payouts map[orderKey][]payout

	// boxOffice holds the box-office records of the few orders that have
	// one (boxoffice.go); records are replaced, never modified.
	boxOffice map[orderKey]*BoxOffice
	// creds are the credentials, on the shard that owns credentialsKey
	// (credentials.go); empty elsewhere.
	creds credentialState
	audit auditState   // the newest audit entries (audit.go)
	hooks webhookState // webhook endpoints, on the shard that owns webhooksKey (webhooks.go)
	// follows are the buyers' follows, on the shard that owns followsKey
	// (follows.go); empty elsewhere.
	follows followState
	// door holds the gate and time of every admission (checkin.go), apart
	// from the orders, which only carry a bit per ticket.
	door admissions
	// realName holds the attendees of real-name sales' orders (realname.go).
	realName realNameState
	// refunds holds refund requests, refunds and exchanges under the
	// sales' rules (refundrules.go).
	refunds refundState
	xs      xsState // xsession.go
	// queued lists the sales with a queue (queue.go), which the tick
	// visits; queueSeedKey derives their draws' seeds (the shard sets it).
	queued       []int32
	queueSeedKey []byte
	// offered lists the sales with a lottery or a waitlist (offers.go).
	offered []int32

	// touched lists the sales that events changed since the shard last
	// published their views (views.go); sale.touched says who is in it.
	touched []int32

	// archived are the shard's archived sales, by id (archive.go). staged
	// is the sale an unarchive brings back, read from disk before its event
	// is applied; archivedOut the sale an archive took out, for the shard to
	// write. rebuilt and reshaped say that an archive or unarchive rebuilt
	// the state (its indexes, for recovery; its sale numbers, for the shard).
	archived    map[string]*archivedSale
	staged      *state
	archivedOut *state
	rebuilt     bool
	reshaped    bool

	// replaying is set while recovery applies the log, which reads neither
	// the hold heap nor the idempotency index: insertOrder leaves both to
	// endReplay (recover.go), which builds them once, sized.
	replaying bool
}

type sale struct {
	cfg    SaleConfig // Tiers in stored order: append-only
	closed bool
	tiers  []tierCount // parallel to cfg.Tiers
	orders int

	touched bool // in state.touched

	tickets *saleTickets  // ticket keys and revocations (ticketkeys.go); nil: none logged yet
	coupons *saleCoupons  // coupons.go; nil: none
	pk      *salePackages // derived from cfg (packages.go); nil: no package tier
	queue   *saleQueue    // queue.go; nil: nobody joined and no rule logged
	offers  *saleOffers   // offers.go; nil: no lottery or waitlist rule logged

	archiveGen   uint32      // archive.go: generations archived so far
	pays         []payMinute // paycurve.go: payments and refunds per minute
	unarchivedAt int64       // when it was last brought back from the archive

	// derived
	users map[string]userState
	idem  idemIndex // orders by (user, idempotency key): idemindex.go
}

type tierCount struct {
	held int
	sold int
}

// userState is what a sale knows of a user: tickets held or paid (for the
// per-user limit) and the newest order, the head of a list through
// order.prevByUser.
type userState struct {
	tickets int32
	last    int32
}

// order is an order in memory: 120 bytes (kid fills the last byte of
// padding) plus the strings the client chose
// (user id, idempotency key, payment event id).
type order struct {
	key         orderKey
	userID      string
	idemKey     string
	paymentID   string
	amount      int64
	createdAt   int64
	expiresAt   int64
	updatedAt   int64
	checkedIn   uint64
	sale        int32
	prevByUser  int32 // the user's previous order in the same sale; -1 if none
	tier        uint16
	qty         uint16
	status      OrderStatus
	needsRefund bool
	usedKept    bool  // refunded after entry: checked-in tickets stay sold (refunds.go)
	kid         uint8 // the sale's ticket key that signs its tickets (ticketkeys.go); 0 means 1
}

func newState() *state {
	return &state{
		saleIdx:  make(map[string]int32),
		byKey:    make(map[orderKey]int32),
		archived: make(map[string]*archivedSale),
	}
}

func (st *state) saleByID(id string) (*sale, int32) {
	i, ok := st.saleIdx[id]
	if !ok {
		return nil, -1
	}
	return st.sales[i], i
}

func (st *state) orderByKey(k orderKey) (*order, int32) {
	i, ok := st.byKey[k]
	if !ok {
		return nil, -1
	}
	return st.orders.at(i), i
}

func (sl *sale) tierIndex(id string) int {
	for i := range sl.cfg.Tiers {
		if sl.cfg.Tiers[i].ID == id {
			return i
		}
	}
	return -1
}

func (sl *sale) available(t int) int {
	if sl.pk != nil {
		return sl.packageAvailable(t)
	}
	return sl.cfg.Tiers[t].Stock - sl.tiers[t].held - sl.tiers[t].sold
}

// insertSale adds a sale with no orders.
func (st *state) insertSale(cfg SaleConfig, closed bool) *sale {
	sl := &sale{
		cfg:    cfg,
		closed: closed,
		tiers:  make([]tierCount, len(cfg.Tiers)),
		users:  make(map[string]userState),
	}
	st.saleIdx[cfg.ID] = int32(len(st.sales))
	st.sales = append(st.sales, sl)
	return sl
}

// insertOrder adds an order in any status and updates every count and index
// it touches. apply uses it for new orders; restore for every stored one.
func (st *state) insertOrder(o order) int32 {
	sl := st.sales[o.sale]
	u, seen := sl.users[o.userID]
	if !seen {
		u.last = -1
	}
	o.prevByUser = u.last
	idx := st.orders.add(o)
	u.last = idx
	u.tickets += int32(o.ticketsTaken() * sl.ticketsPer(int(o.tier)))
	sl.users[o.userID] = u
	if !st.replaying {
		st.putIdem(sl, o.userID, o.idemKey, idx)
	}
	sl.orders++
	st.byKey[o.key] = idx
	switch {
	case o.status == StatusPending:
		sl.tiers[o.tier].held += int(o.qty)
		st.pending++
		if !st.replaying {
			pushHold(&st.holds, hold{o.expiresAt, idx})
		}
	default:
		sl.tiers[o.tier].sold += o.ticketsTaken()
	}
	checkTier(sl, int(o.tier))
	return idx
}

// findIdem returns the order a user made with an idempotency key.
func (st *state) findIdem(sl *sale, user, key string) (int32, bool) {
	p := sl.idem.probe(idemHash(user, key))
	for {
		idx, ok := p.next()
		if !ok {
			return 0, false
		}
		if o := st.orders.at(idx); o.userID == user && o.idemKey == key {
			return idx, true
		}
	}
}

// putIdem records order idx's pair, unless an earlier order has it (an
// exchange's new order may carry its old order's pair): the earlier order
// stays the one found.
func (st *state) putIdem(sl *sale, user, key string, idx int32) {
	st.indexIdem(sl, idemHash(user, key), idx)
}

// indexIdem is putIdem with the pair's hash known; restore and replay index
// in bulk with it. An index never holds a pair twice, so the order found is
// the first whatever the order of the probe run.
func (st *state) indexIdem(sl *sale, h uint64, idx int32) {
	o := st.orders.at(idx)
	sl.idem.putUnless(h, idx, func(j int32) bool {
		e := st.orders.at(j)
		return e.userID == o.userID && e.idemKey == o.idemKey
	})
}

// ticketsTaken is how many of the order's tickets count against its tier's
// stock (held if pending, sold otherwise) and its user's limit.
func (o *order) ticketsTaken() int {
	switch {
	case o.status == StatusPending, o.status == StatusPaid && !o.needsRefund:
		return int(o.qty)
	case o.status == StatusRefunded && o.usedKept:
		return bits.OnesCount64(o.checkedIn)
	}
	return 0
}

// nextExpiry returns the earliest hold deadline, or false if none.
func (st *state) nextExpiry() (int64, bool) {
	if len(st.holds) == 0 {
		return 0, false
	}
	return st.holds[0].expiresAt, true
}

// dropStaleHolds rebuilds the hold heap from pending orders only; recovery
// calls it once after replay.
func (st *state) dropStaleHolds() {
	st.holds = st.holds[:0]
	for i := int32(0); i < st.orders.n; i++ {
		if o := st.orders.at(i); o.status == StatusPending {
			st.holds = append(st.holds, hold{o.expiresAt, i})
		}
	}
	for i := len(st.holds)/2 - 1; i >= 0; i-- {
		st.holds.down(i)
	}
}

// checkTier stops the process if a tier is oversold or negative: memory is
// wrong, and the log (which never held the bad state) is the way back.
func checkTier(sl *sale, t int) {
	tc := sl.tiers[t]
	if tc.held < 0 || tc.sold < 0 || sl.committed(t) > sl.cfg.Tiers[t].Stock {
		panic(newInvariantError("sale %q tier %q: held %d + sold %d (with packages: %d) > stock %d",
			sl.cfg.ID, sl.cfg.Tiers[t].ID, tc.held, tc.sold, sl.committed(t), sl.cfg.Tiers[t].Stock))
	}
	checkPackage(sl, t) // a package's components (packages.go)
}

// hold is a pending order's deadline in the expiry heap. Ties break on the
// order index, so expiry order never depends on anything but the log.
type hold struct {
	expiresAt int64
	idx       int32
}

type holdHeap []hold

func (h holdHeap) less(i, j int) bool {
	return h[i].expiresAt < h[j].expiresAt || h[i].expiresAt == h[j].expiresAt && h[i].idx < h[j].idx
}

// pushHold and popHold are container/heap without its interface boxing,
// which would allocate on every purchase.
func pushHold(h *holdHeap, x hold) {
	*h = append(*h, x)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func popHold(h *holdHeap) {
	s := *h
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
}

func (h holdHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// orderTable stores orders in fixed-size chunks with copy-on-write, so that a
// snapshot of a million orders is taken by copying a thousand pointers: after
// freeze, the owner copies a chunk before its first write to it, and the
// snapshot writer reads the frozen chunks at leisure.
type orderTable struct {
	chunks []*orderChunk
	n      int32
	gen    uint32 // chunks with an older gen are shared with a snapshot
	tail   uint64 // recovery: the orders of the log after the snapshot (tailCount, recover.go)
}

const (
	chunkShift = 10
	chunkLen   = 1 << chunkShift
	chunkMask  = chunkLen - 1
)

type orderChunk struct {
	gen    uint32
	orders [chunkLen]order
}

// at returns an order for reading only.
func (t *orderTable) at(i int32) *order {
	return &t.chunks[i>>chunkShift].orders[i&chunkMask]
}

// mut returns an order for writing, copying its chunk first if a snapshot
// shares it.
func (t *orderTable) mut(i int32) *order {
	c := t.chunks[i>>chunkShift]
	if c.gen != t.gen {
		cp := new(orderChunk)
		*cp = *c
		cp.gen = t.gen
		t.chunks[i>>chunkShift] = cp
		c = cp
	}
	return &c.orders[i&chunkMask]
}

func (t *orderTable) add(o order) int32 {
	i := t.n
	if t.needsChunk() {
		t.chunks = append(t.chunks, &orderChunk{gen: t.gen})
	}
	t.n++
	*t.mut(i) = o
	return i
}

// needsChunk says whether the next add starts a chunk.
func (t *orderTable) needsChunk() bool { return int(t.n>>chunkShift) == len(t.chunks) }

// reserve appends c, an empty chunk, for the next orders: recovery hands
// over chunks whose memory another goroutine has written already
// (chunkPrefill, recover.go).
func (t *orderTable) reserve(c *orderChunk) {
	c.gen = t.gen
	t.chunks = append(t.chunks, c)
}

// frozenOrders is a read-only view of an orderTable at one instant.
type frozenOrders struct {
	chunks []*orderChunk
	n      int32
}

func (f *frozenOrders) at(i int32) *order {
	return &f.chunks[i>>chunkShift].orders[i&chunkMask]
}

// freeze returns a view that later writes to t do not change.
func (t *orderTable) freeze() frozenOrders {
	f := frozenOrders{chunks: slices.Clone(t.chunks), n: t.n}
	t.gen++
	return f
}

// putLazy sets m[k] = v, making the map first: per-feature maps of a
// shard stay nil until their first entry, so a shard without the feature
// pays nothing for it.
func putLazy[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}
