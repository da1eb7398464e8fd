package engine

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Snapshot format: a shard's sales and orders; every index is rebuilt on
// restore, so a snapshot cannot disagree with itself.
//
//	chunk 0   version(1) | nsales | {SaleConfig as in SalePut, closed, norders, nusers} | norders
//	          | ncharges | {key(16) eventID amount at}*
//	          | nsections | {tag len body}*   (snapshot_sections.go)
//	chunk 1.. uvarint(len(fields)) | fields: {order}* | strings
//	order     key(16) sale tier qty status flags user idemLen paymentLen
//	          amount createdAt expiresAt updatedAt checkedIn
//	user      0 userLen: the user's first order in the sale, its id next in
//	          strings; or u > 0: the user of user slot u-1 (the slots of a
//	          snapshot are its (sale, user) pairs, numbered in the order of
//	          their first orders)
//	strings   for each order of the chunk: user id (first orders only),
//	          idempotency key, payment id
//	flags     bit 0 needsRefund, bit 1 usedKept
//
// Orders are numbered across chunks (0, 1, ...), up to
// snapshotOrdersPerChunk per chunk. The strings of a chunk are one block, so
// that restore copies them into one string per chunk and slices it (see
// restore.go): a million orders restore without a million allocations, and
// a user slot gives each order's user id, previous order and the user's
// counts without a map lookup per order.
//
// Restore also reads the versions before, whose chunk 0 has no nusers and
// whose orders store every string inline with a length prefix:
//
//	version 1 order  key sale tier qty status needsRefund(0|1) user idemKey paymentID amount ...
//	version 2        chunk 0 gains ncharges {...}; needsRefund becomes flags
//	version 3        orders' strings in one block per chunk, user slots
//	version 4        chunk 0 gains the features' sections
const (
	snapshotVersion        = 4
	snapshotOrdersPerChunk = 16384
)

// snapshotJob is a shard's state frozen at seq: a deep copy of the sales
// (small) and a copy-on-write view of the orders (large), so the loop spends
// microseconds on it and the writer encodes it in the background.
type snapshotJob struct {
	seq      uint64
	sales    []saleSnapshot
	orders   frozenOrders
	charges  []frozenCharges // sorted by order key
	sections []frozenSection
	prune    []oldGenerations // archive_prune.go: what the snapshot makes deletable
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
	job.sections = st.freezeSections()
	job.prune = st.oldGenerations() // archive_prune.go
	return job
}

func (job *snapshotJob) encode() [][]byte {
	users := make([]int, len(job.sales)) // per sale: its user slots
	slots := make([]int32, job.orders.n) // per order: its user's slot
	var nslots int32
	chunks := [][]byte{nil} // chunk 0 comes last: it holds the user counts
	var fields, strs []byte
	for i := int32(0); i < job.orders.n; i++ {
		if i%snapshotOrdersPerChunk == 0 {
			if i > 0 {
				chunks = append(chunks, joinChunk(fields, strs))
			}
			fields, strs = fields[:0], strs[:0]
		}
		o := job.orders.at(i)
		if o.prevByUser < 0 {
			users[o.sale]++
			slots[i] = nslots
			nslots++
			fields, strs = appendOrder(fields, strs, 0, o)
		} else {
			slots[i] = slots[o.prevByUser]
			fields, strs = appendOrder(fields, strs, slots[i]+1, o)
		}
	}
	if job.orders.n > 0 {
		chunks = append(chunks, joinChunk(fields, strs))
	}
	chunks[0] = job.appendHead(nil, users)
	return chunks
}

func (job *snapshotJob) appendHead(head []byte, users []int) []byte {
	head = append(head, snapshotVersion)
	head = binary.AppendUvarint(head, uint64(len(job.sales)))
	for i := range job.sales {
		head = appendSaleConfig(head, &job.sales[i].cfg)
		head = appendBool(head, job.sales[i].closed)
		head = binary.AppendUvarint(head, uint64(job.sales[i].orders))
		head = binary.AppendUvarint(head, uint64(users[i]))
	}
	head = binary.AppendUvarint(head, uint64(job.orders.n))
	head = appendCharges(head, job.charges)
	return appendSections(head, job.sections)
}

func joinChunk(fields, strs []byte) []byte {
	c := make([]byte, 0, binary.MaxVarintLen64+len(fields)+len(strs))
	c = binary.AppendUvarint(c, uint64(len(fields)))
	c = append(c, fields...)
	return append(c, strs...)
}

// appendOrder appends an order's fields to b and its strings to s; user is
// 0 for the user's first order in the sale, else its user slot + 1.
func appendOrder(b, s []byte, user int32, o *order) ([]byte, []byte) {
	b = append(b, o.key[:]...)
	b = binary.AppendUvarint(b, uint64(o.sale))
	b = binary.AppendUvarint(b, uint64(o.tier))
	b = binary.AppendUvarint(b, uint64(o.qty))
	b = append(b, byte(o.status), orderFlags(o))
	b = binary.AppendUvarint(b, uint64(user))
	if user == 0 {
		b = binary.AppendUvarint(b, uint64(len(o.userID)))
		s = append(s, o.userID...)
	}
	b = binary.AppendUvarint(b, uint64(len(o.idemKey)))
	b = binary.AppendUvarint(b, uint64(len(o.paymentID)))
	s = append(s, o.idemKey...)
	s = append(s, o.paymentID...)
	b = binary.AppendVarint(b, o.amount)
	b = binary.AppendVarint(b, o.createdAt)
	b = binary.AppendVarint(b, o.expiresAt)
	b = binary.AppendVarint(b, o.updatedAt)
	return binary.AppendUvarint(b, o.checkedIn), s
}

func orderFlags(o *order) byte {
	var flags byte
	if o.needsRefund {
		flags |= 1
	}
	if o.usedKept {
		flags |= 2
	}
	return flags
}

// snapshotEncoding returns the snapshot of a state that is not running (for
// Journal.Reset at open).
func (st *state) snapshotEncoding() [][]byte {
	return st.freeze(0).encode()
}

// appendCharges appends chunk 0's duplicate charges (format 2 and later):
// their count, then each with its order's key.
func appendCharges(head []byte, charges []frozenCharges) []byte {
	var n int
	for _, fc := range charges {
		n += len(fc.charges)
	}
	head = binary.AppendUvarint(head, uint64(n))
	for _, fc := range charges {
		for _, c := range fc.charges {
			head = append(head, fc.order[:]...)
			head = appendString(head, c.EventID)
			head = binary.AppendVarint(head, c.AmountCents)
			head = binary.AppendVarint(head, c.AtMs)
		}
	}
	return head
}
