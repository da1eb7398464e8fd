package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// Snapshot format: a shard's sales and orders; every index is rebuilt on
// restore (insertOrder), so a snapshot cannot disagree with itself.
//
//	chunk 0   version(1) | nsales | {SaleConfig as in SalePut, closed, norders} | norders
//	          | ncharges | {key(16) eventID amount at}*         (version 2)
//	chunk 1.. {order}*, up to snapshotOrdersPerChunk per chunk
//	order     key(16) sale tier qty status flags user idemKey paymentID
//	          amount createdAt expiresAt updatedAt checkedIn
//	flags     bit 0 needsRefund, bit 1 usedKept (version 1: needsRefund as a bool)
//
// Restore reads versions 1 and 2.
const (
	snapshotVersion        = 2
	snapshotOrdersPerChunk = 16384
)

// snapshotJob is a shard's state frozen at seq: a deep copy of the sales
// (small) and a copy-on-write view of the orders (large), so the loop spends
// microseconds on it and the writer encodes it in the background.
type snapshotJob struct {
	seq     uint64
	sales   []saleSnapshot
	orders  frozenOrders
	charges []frozenCharges // sorted by order key
}

type frozenCharges struct {
	order   orderKey
	charges []DuplicateCharge // shared with the state, which only appends
}

type saleSnapshot struct {
	cfg    SaleConfig
	closed bool
	orders int // lets restore size the sale's maps once
}

func (st *state) freeze(seq uint64) *snapshotJob {
	job := &snapshotJob{seq: seq, sales: make([]saleSnapshot, len(st.sales))}
	for i, sl := range st.sales {
		cfg := sl.cfg
		cfg.Tiers = slices.Clone(cfg.Tiers)
		job.sales[i] = saleSnapshot{cfg, sl.closed, sl.orders}
	}
	job.orders = st.orders.freeze()
	for k, c := range st.charges {
		job.charges = append(job.charges, frozenCharges{k, c})
	}
	slices.SortFunc(job.charges, func(a, b frozenCharges) int { return bytes.Compare(a.order[:], b.order[:]) })
	return job
}

func (job *snapshotJob) encode() [][]byte {
	head := []byte{snapshotVersion}
	head = binary.AppendUvarint(head, uint64(len(job.sales)))
	for i := range job.sales {
		head = appendSaleConfig(head, &job.sales[i].cfg)
		head = appendBool(head, job.sales[i].closed)
		head = binary.AppendUvarint(head, uint64(job.sales[i].orders))
	}
	head = binary.AppendUvarint(head, uint64(job.orders.n))
	var ncharges int
	for _, fc := range job.charges {
		ncharges += len(fc.charges)
	}
	head = binary.AppendUvarint(head, uint64(ncharges))
	for _, fc := range job.charges {
		for _, c := range fc.charges {
			head = append(head, fc.order[:]...)
			head = appendString(head, c.EventID)
			head = binary.AppendVarint(head, c.AmountCents)
			head = binary.AppendVarint(head, c.AtMs)
		}
	}
	chunks := [][]byte{head}
	var b []byte
	for i := int32(0); i < job.orders.n; i++ {
		if i%snapshotOrdersPerChunk == 0 {
			if b != nil {
				chunks = append(chunks, b)
			}
			b = make([]byte, 0, snapshotOrdersPerChunk*96)
		}
		b = appendOrder(b, job.orders.at(i))
	}
	if b != nil {
		chunks = append(chunks, b)
	}
	return chunks
}

func appendOrder(b []byte, o *order) []byte {
	b = append(b, o.key[:]...)
	b = binary.AppendUvarint(b, uint64(o.sale))
	b = binary.AppendUvarint(b, uint64(o.tier))
	b = binary.AppendUvarint(b, uint64(o.qty))
	b = append(b, byte(o.status))
	var flags byte
	if o.needsRefund {
		flags |= 1
	}
	if o.usedKept {
		flags |= 2
	}
	b = append(b, flags)
	b = appendString(b, o.userID)
	b = appendString(b, o.idemKey)
	b = appendString(b, o.paymentID)
	b = binary.AppendVarint(b, o.amount)
	b = binary.AppendVarint(b, o.createdAt)
	b = binary.AppendVarint(b, o.expiresAt)
	b = binary.AppendVarint(b, o.updatedAt)
	return binary.AppendUvarint(b, o.checkedIn)
}

// snapshotEncoding returns the snapshot of a state that is not running (for
// Journal.Reset at open).
func (st *state) snapshotEncoding() [][]byte {
	return st.freeze(0).encode()
}

// restorer rebuilds a state chunk by chunk.
type restorer struct {
	st      *state
	users   map[string]string // interned user ids
	chunk   int
	version byte
	orders  uint64 // announced in chunk 0
	charges []frozenCharges
}

func (r *restorer) add(chunk []byte) error {
	if r.users == nil {
		r.users = make(map[string]string)
	}
	d := decoder{b: chunk, users: r.users}
	defer func() { r.chunk++ }()
	if r.chunk == 0 {
		if len(chunk) == 0 || chunk[0] < 1 || chunk[0] > snapshotVersion {
			return fmt.Errorf("%w: snapshot version not understood", errCorrupt)
		}
		r.version = chunk[0]
		d.b = d.b[1:]
		n := d.uvarint(1 << 24)
		for range n {
			var cfg SaleConfig
			d.saleConfig(&cfg)
			closed := d.bool()
			orders := d.uvarint(1 << 31)
			if d.err != nil {
				break
			}
			if _, dup := r.st.saleIdx[cfg.ID]; dup {
				return fmt.Errorf("%w: snapshot holds sale %q twice", errCorrupt, cfg.ID)
			}
			sl := r.st.insertSale(cfg, closed)
			sl.idem = make(map[uint64]int32, orders)
		}
		r.orders = d.uvarint(1 << 31)
		r.st.byKey = make(map[orderKey]int32, r.orders)
		if r.version >= 2 {
			r.readCharges(&d)
		}
		if err := d.check("snapshot header"); err != nil {
			return err
		}
		if len(d.b) != 0 {
			return fmt.Errorf("%w: snapshot header: %d bytes left over", errCorrupt, len(d.b))
		}
		return nil
	}
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
		o.amount = d.varint()
		o.createdAt = d.varint()
		o.expiresAt = d.varint()
		o.updatedAt = d.varint()
		o.checkedIn = d.uvarint(1<<64 - 1)
		if d.err != nil {
			break
		}
		if int(o.sale) >= len(r.st.sales) || int(o.tier) >= len(r.st.sales[o.sale].tiers) ||
			o.qty == 0 || o.status == 0 || o.usedKept && o.status != StatusRefunded {
			return fmt.Errorf("%w: snapshot order out of range", errCorrupt)
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
	if uint64(r.st.orders.n) != r.orders {
		return fmt.Errorf("%w: snapshot announced %d orders and held %d", errCorrupt, r.orders, r.st.orders.n)
	}
	for _, fc := range r.charges {
		if _, ok := r.st.byKey[fc.order]; !ok {
			return fmt.Errorf("%w: snapshot has duplicate charges of an order it does not hold", errCorrupt)
		}
		if r.st.charges == nil {
			r.st.charges = make(map[orderKey][]DuplicateCharge)
		}
		if _, dup := r.st.charges[fc.order]; dup {
			return fmt.Errorf("%w: snapshot lists an order's duplicate charges twice", errCorrupt)
		}
		r.st.charges[fc.order] = fc.charges
	}
	return nil
}

func (d *decoder) check(what string) error {
	if d.err != nil {
		return fmt.Errorf("%w: %s: %v", errCorrupt, what, d.err)
	}
	return nil
}
