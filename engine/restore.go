package engine

import (
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"
)

// restorer rebuilds a state from a snapshot, chunk by chunk (format in
// snapshot.go).
//
// Version 3 is restored in bulk, without a heap allocation or a map lookup
// per order. The strings of a chunk are copied into one string (an arena)
// that the orders slice. An order's user slot gives its user id, previous
// order and the user's share of idemHash, and counts the user's tickets;
// sale.users is filled once per user at the end. byKey gets one insert per
// order into a map sized from chunk 0, on a goroutine of its own
// (keyIndexer) while the next chunks are decoded; a repeated order key is
// corruption, found by counting. Each sale's idempotency pairs are gathered
// with their hashes and indexed at the end in bulk (buildIdem); a repeated
// pair (which decide never makes) keeps its first order found, as replay
// would. The hold heap is left empty: recovery builds
// it once after replay.
//
// The arena trade-off: a chunk's strings stay in memory as long as any of
// its orders, which is as long as the state (orders are never removed). Only
// a payment id that a later event replaces is dead weight in its arena, until
// the next restart; every other byte is in use, and without the per-string
// allocation header and size-class rounding.
//
// Versions 1 and 2 go through insertOrder, order by order.
type restorer struct {
	st       *state
	chunk    int
	version  byte
	orders   uint64   // announced in chunk 0
	sales    []uint64 // orders announced per sale
	charges  []frozenCharges
	sections []rawSection // version 4

	users map[string]string // versions 1 and 2: interned user ids

	slots []userSlot   // version 3
	idem  [][]idemPair // version 3: per sale, indexed at finish (buildIdem)
	keys  *keyIndexer  // version 3: fills st.byKey until finish or close

	tail    *tailCount    // the orders of the log after the snapshot, for byKey's size
	prefill *chunkPrefill // the order table's, until finish or close
}

// userSlot is one user of one sale while a snapshot is restored.
type userSlot struct {
	user     string
	userHash uint64 // idemHashUser(user)
	sale     int32
	last     int32
	tickets  int32
}

func (r *restorer) add(chunk []byte) error {
	defer func() { r.chunk++ }()
	if r.chunk == 0 {
		return r.addHead(chunk)
	}
	if r.version < 3 {
		return r.addOrdersInline(chunk)
	}
	return r.addOrders(chunk)
}

func (r *restorer) addHead(chunk []byte) error {
	if len(chunk) == 0 || chunk[0] < 1 || chunk[0] > snapshotVersion {
		return fmt.Errorf("%w: snapshot version not understood", errCorrupt)
	}
	r.version = chunk[0]
	d := decoder{b: chunk[1:]}
	n := d.uvarint(1 << 24)
	for range n {
		var cfg SaleConfig
		d.saleConfig(&cfg)
		closed := d.bool()
		orders := d.uvarint(1 << 31)
		var users uint64
		if r.version >= 3 {
			users = d.uvarint(orders)
		}
		if d.err != nil {
			break
		}
		if _, dup := r.st.saleIdx[cfg.ID]; dup {
			return fmt.Errorf("%w: snapshot holds sale %q twice", errCorrupt, cfg.ID)
		}
		sl := r.st.insertSale(cfg, closed)
		sl.users = make(map[string]userState, users)
		r.sales = append(r.sales, orders)
		if r.version >= 3 {
			// The count is announced, not yet held: a corrupt one must not
			// allocate without bound.
			r.idem = append(r.idem, make([]idemPair, 0, min(orders, 1<<20)))
		} else {
			sl.idem = makeIdemIndex(int(min(orders, 1<<20)))
		}
	}
	r.orders = d.uvarint(1 << 31)
	if r.version >= 2 {
		r.readCharges(&d)
	}
	if r.version >= 4 {
		r.readSections(&d)
	}
	if err := d.check("snapshot header"); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: snapshot header: %d bytes left over", errCorrupt, len(d.b))
	}
	// byKey is made for the orders of the log after the snapshot too (see
	// tailCount): by the keyIndexer, once counted, for version 3.
	if r.version >= 3 {
		r.keys = startKeyIndexer(r.orders, r.tail)
	} else {
		r.st.byKey = make(map[orderKey]int32, r.orders+uint64(r.tail.wait()))
	}
	r.prefill = startPrefill(&r.st.orders, r.orders)
	return nil
}

// addOrders restores a version 3 chunk of orders.
func (r *restorer) addOrders(chunk []byte) error {
	d := decoder{b: chunk}
	n := d.uvarint(uint64(len(chunk)))
	if d.err != nil || n > uint64(len(d.b)) {
		return fmt.Errorf("%w: snapshot orders: bad fields length", errCorrupt)
	}
	arena := string(d.b[n:]) // the chunk's strings: one allocation
	d.b = d.b[:n]
	st := r.st
	defer func() { r.keys.add(&st.orders, st.orders.n) }()
	for len(d.b) > 0 && d.err == nil {
		idx := st.orders.n
		var o order
		o.key = d.key()
		o.sale = int32(d.uvarint(uint64(len(st.sales))))
		o.tier = uint16(d.uvarint(TiersPerSaleMax))
		o.qty = uint16(d.uvarint(QuantityPerOrderMax))
		o.status = OrderStatus(d.uvarint(uint64(StatusRefunded)))
		flags := d.uvarint(3)
		o.needsRefund, o.usedKept = flags&1 != 0, flags&2 != 0
		ref := d.uvarint(uint64(len(r.slots)))
		userLen := uint64(0)
		if ref == 0 {
			userLen = d.uvarint(UserLenMax)
		}
		idemLen := d.uvarint(IdempotencyKeyLenMax)
		paymentLen := d.uvarint(PaymentIDLenMax)
		d.orderNumbers(&o)
		if d.err != nil {
			break
		}
		if err := checkRestoredOrder(st, &o); err != nil {
			return err
		}
		if userLen+idemLen+paymentLen > uint64(len(arena)) {
			return fmt.Errorf("%w: snapshot order strings past the end", errCorrupt)
		}
		var s *userSlot
		if ref == 0 {
			user := arena[:userLen]
			arena = arena[userLen:]
			r.slots = append(r.slots, userSlot{user: user, userHash: idemHashUser(user), sale: o.sale, last: -1})
			s = &r.slots[len(r.slots)-1]
		} else if s = &r.slots[ref-1]; s.sale != o.sale {
			return fmt.Errorf("%w: snapshot order refers to a user of another sale", errCorrupt)
		}
		o.idemKey, arena = arena[:idemLen], arena[idemLen:]
		o.paymentID, arena = arena[:paymentLen], arena[paymentLen:]
		o.userID, o.prevByUser = s.user, s.last
		r.prefill.feed(&st.orders)
		st.orders.add(o)
		s.last = idx
		s.tickets += int32(o.ticketsTaken())
		sl := st.sales[o.sale]
		r.idem[o.sale] = append(r.idem[o.sale], idemPair{idemHashKey(s.userHash, o.idemKey), idx})
		sl.orders++
		if o.status == StatusPending {
			sl.tiers[o.tier].held += int(o.qty)
			st.pending++
		} else {
			sl.tiers[o.tier].sold += o.ticketsTaken()
		}
	}
	if err := d.check("snapshot orders"); err != nil {
		return err
	}
	if len(arena) != 0 {
		return fmt.Errorf("%w: snapshot orders: %d bytes of strings left over", errCorrupt, len(arena))
	}
	return nil
}

// addOrdersInline restores a chunk of orders of version 1 or 2.
func (r *restorer) addOrdersInline(chunk []byte) error {
	if r.users == nil {
		r.users = make(map[string]string)
	}
	d := decoder{b: chunk, users: r.users}
	for len(d.b) > 0 && d.err == nil {
		var o order
		o.key = d.key()
		o.sale = int32(d.uvarint(uint64(len(r.st.sales))))
		o.tier = uint16(d.uvarint(TiersPerSaleMax))
		o.qty = uint16(d.uvarint(QuantityPerOrderMax))
		o.status = OrderStatus(d.uvarint(uint64(StatusRefunded)))
		if r.version == 1 {
			o.needsRefund = d.bool()
		} else {
			flags := d.uvarint(3)
			o.needsRefund, o.usedKept = flags&1 != 0, flags&2 != 0
		}
		o.userID = d.user()
		o.idemKey = d.str(IdempotencyKeyLenMax)
		o.paymentID = d.str(PaymentIDLenMax)
		d.orderNumbers(&o)
		if d.err != nil {
			break
		}
		if err := checkRestoredOrder(r.st, &o); err != nil {
			return err
		}
		if _, dup := r.st.byKey[o.key]; dup {
			return fmt.Errorf("%w: snapshot holds an order twice", errCorrupt)
		}
		r.st.insertOrder(o)
	}
	return d.check("snapshot orders")
}

// readCharges reads the duplicate charges of chunk 0; finish attaches them
// once the orders they belong to exist.
func (r *restorer) readCharges(d *decoder) {
	n := d.uvarint(1 << 31)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.key()
		c := DuplicateCharge{EventID: d.str(PaymentIDLenMax), AmountCents: d.varint(), AtMs: d.varint()}
		if last := len(r.charges) - 1; last >= 0 && r.charges[last].order == k {
			r.charges[last].charges = append(r.charges[last].charges, c)
		} else {
			r.charges = append(r.charges, frozenCharges{k, []DuplicateCharge{c}})
		}
	}
}

func (r *restorer) finish() error {
	st := r.st
	if uint64(st.orders.n) != r.orders {
		return fmt.Errorf("%w: snapshot announced %d orders and held %d", errCorrupt, r.orders, st.orders.n)
	}
	// Users and idempotency pairs are indexed while the keyIndexer may
	// still fill byKey: both only read the orders.
	if r.version >= 3 {
		if err := r.finishIndexes(); err != nil {
			return err
		}
	}
	r.close()
	if r.version >= 3 && len(st.byKey) != int(st.orders.n) {
		return fmt.Errorf("%w: snapshot holds an order twice", errCorrupt)
	}
	for _, fc := range r.charges {
		if _, ok := st.byKey[fc.order]; !ok {
			return fmt.Errorf("%w: snapshot has duplicate charges of an order it does not hold", errCorrupt)
		}
		if st.charges == nil {
			st.charges = make(map[orderKey][]DuplicateCharge)
		}
		if _, dup := st.charges[fc.order]; dup {
			return fmt.Errorf("%w: snapshot lists an order's duplicate charges twice", errCorrupt)
		}
		st.charges[fc.order] = fc.charges
	}
	return r.restoreSections()
}

// finishIndexes completes a version 3 restore: users from their slots, and
// the checks that one insert per order left for the end (but byKey's, which
// finish makes once the keyIndexer is done).
func (r *restorer) finishIndexes() error {
	st := r.st
	users := make([]int, len(st.sales))
	for _, s := range r.slots {
		st.sales[s.sale].users[s.user] = userState{tickets: s.tickets, last: s.last}
		users[s.sale]++
	}
	r.slots = nil
	for i, sl := range st.sales {
		if uint64(sl.orders) != r.sales[i] {
			return fmt.Errorf("%w: snapshot announced %d orders of sale %q and held %d", errCorrupt, r.sales[i], sl.cfg.ID, sl.orders)
		}
		if len(sl.users) != users[i] {
			return fmt.Errorf("%w: snapshot lists a user of sale %q twice", errCorrupt, sl.cfg.ID)
		}
		st.buildIdem(sl, r.idem[i])
		r.idem[i] = nil
		for t := range sl.tiers {
			checkTier(sl, t)
		}
	}
	return nil
}

// close stops the orders' prefill and waits for the goroutine that fills
// byKey, if any. Recovery calls it on every path; finish calls it before it
// reads byKey.
func (r *restorer) close() {
	r.prefill.stop()
	r.prefill = nil
	if r.keys != nil {
		r.st.byKey = r.keys.wait()
		r.keys = nil
	}
	if r.tail != nil {
		r.tail.wait() // it reads the journal, which may close next
	}
}

// keyIndexer fills byKey on its own goroutine, from ranges of orders that
// restore has written and no longer touches.
type keyIndexer struct {
	byKey  map[orderKey]int32 // made by run, for orders + the tail's
	orders uint64
	tail   *tailCount
	ranges chan keyRange
	done   chan struct{}
	next   int32 // first order not yet sent
}

type keyRange struct {
	chunks   []*orderChunk // the table's chunks from the one holding from
	from, to int32
}

func startKeyIndexer(orders uint64, tail *tailCount) *keyIndexer {
	k := &keyIndexer{orders: orders, tail: tail, ranges: make(chan keyRange, 4), done: make(chan struct{})}
	go k.run()
	return k
}

func (k *keyIndexer) run() {
	defer close(k.done)
	k.byKey = make(map[orderKey]int32, k.orders+uint64(k.tail.wait()))
	for r := range k.ranges {
		base := r.from >> chunkShift
		for i := r.from; i < r.to; i++ {
			k.byKey[r.chunks[i>>chunkShift-base].orders[i&chunkMask].key] = i
		}
	}
}

// add hands over the orders of t up to n that were not handed over yet.
func (k *keyIndexer) add(t *orderTable, n int32) {
	if n == k.next {
		return
	}
	chunks := slices.Clone(t.chunks[k.next>>chunkShift : (n-1)>>chunkShift+1])
	k.ranges <- keyRange{chunks, k.next, n}
	k.next = n
}

// wait returns byKey once every order handed over is in it.
func (k *keyIndexer) wait() map[orderKey]int32 {
	close(k.ranges)
	<-k.done
	return k.byKey
}

// chunkPrefill allocates an order table's next chunks on a goroutine of
// its own and writes to every page of each before the table takes it, so
// that the kernel maps their memory there, on another core: the first write
// to fresh memory is a page fault, and filling a table of a million orders
// spent more time in those than in decoding them. It runs at most
// prefillAhead chunks ahead (n may be a corrupt snapshot's claim), and the
// table never waits for it: when no chunk is ready, add allocates one
// itself and the prefill makes one fewer (a goroutine that waits, on a busy
// machine, waits for a core). The goroutine owns each chunk until it sends
// it. A nil *chunkPrefill does nothing.
type chunkPrefill struct {
	spare <-chan *orderChunk
	done  chan struct{}
	left  atomic.Int64 // chunks still wanted, taken by whichever allocates one
}

const (
	prefillAhead  = 32                                 // chunks: 3.75 MiB
	prefillStride = 4096 / int(unsafe.Sizeof(order{})) // orders per page, at most
)

// startPrefill prefills t for n more orders; nil if they need no chunk.
func startPrefill(t *orderTable, n uint64) *chunkPrefill {
	need := (uint64(t.n)+n+chunkMask)>>chunkShift - uint64(len(t.chunks))
	if n == 0 || need == 0 {
		return nil
	}
	spare := make(chan *orderChunk, prefillAhead)
	p := &chunkPrefill{spare: spare, done: make(chan struct{})}
	p.left.Store(int64(need))
	go func() {
		defer close(spare)
		for p.left.Add(-1) >= 0 {
			select {
			case <-p.done:
				return
			default:
			}
			c := new(orderChunk)
			for i := 0; i < chunkLen; i += prefillStride {
				c.orders[i].sale = 0 // a store faults the page in; a load would not
			}
			select {
			case spare <- c:
			case <-p.done:
				return
			}
		}
	}()
	return p
}

// feed gives t a prefilled chunk if its next add starts one and one is
// ready.
func (p *chunkPrefill) feed(t *orderTable) {
	if p == nil || p.spare == nil || !t.needsChunk() {
		return
	}
	select {
	case c, ok := <-p.spare:
		if ok {
			t.reserve(c)
		} else {
			p.spare = nil
		}
	default:
		p.left.Add(-1) // add allocates this one
	}
}

// stop ends the prefill and returns once its goroutine has ended.
func (p *chunkPrefill) stop() {
	if p == nil {
		return
	}
	close(p.done)
	if p.spare != nil { // nil: feed found it closed, the goroutine has ended
		for range p.spare { // until the goroutine has closed it
		}
	}
}

func (d *decoder) check(what string) error {
	if d.err != nil {
		return fmt.Errorf("%w: %s: %v", errCorrupt, what, d.err)
	}
	return nil
}

// orderNumbers reads the fields every snapshot format ends an order with.
func (d *decoder) orderNumbers(o *order) {
	o.amount = d.varint()
	o.createdAt = d.varint()
	o.expiresAt = d.varint()
	o.updatedAt = d.varint()
	o.checkedIn = d.uvarint(1<<64 - 1)
}

// checkRestoredOrder refuses an order that names a sale or tier the
// snapshot does not hold, or a state no order can be in.
func checkRestoredOrder(st *state, o *order) error {
	if int(o.sale) >= len(st.sales) || int(o.tier) >= len(st.sales[o.sale].tiers) ||
		o.qty == 0 || o.status == 0 || o.usedKept && o.status != StatusRefunded {
		return fmt.Errorf("%w: snapshot order out of range", errCorrupt)
	}
	return nil
}
