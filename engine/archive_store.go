package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// ArchiveStore is what the engine needs to keep archived sales (archive.go)
// on disk. The wal package satisfies it on the log's own Pebble database;
// a Journal without it cannot archive (Engine.Archive says so).
//
// Keys and values are opaque to the store; the engine's layout, per sale
// and per generation gen (1, 2, ... for each time the sale is archived):
//
//	sale 'g'                 → gen(4)           the newest generation
//	sale gen(4) 'c' n(4)     → snapshot chunk n  the sale's whole state (snapshot.go format)
//	sale gen(4) 'o' idx(4)   → order record      each order as the API shows it (JSON), with the
//	                                              gate and time of each admitted ticket, in creation order
//	sale gen(4) 'k' key(16)  → idx(4)            an order's place, by its key
//
// where sale is uvarint(len(id)) id. One order is read with two point
// lookups, a page of orders or attendees (the exports) with one scan,
// without loading the sale; the chunks bring the sale back to memory
// (unarchive) and serve the reads that need its whole state (reports,
// tickets). A generation's records
// are written once, in the batch of the SaleArchived entry, and never
// changed: replaying a SaleUnarchived reads the generation it names.
type ArchiveStore interface {
	// AppendArchive is Journal.Append whose atomic batch also sets
	// keys[i] = values[i]: after a crash both are there or neither.
	AppendArchive(shard int, firstSeq uint64, entries, keys, values [][]byte) (wait func() error, err error)
	// ArchiveGet returns the value at key.
	ArchiveGet(key []byte) (value []byte, found bool, err error)
	// ArchiveScan calls fn for the keys with prefix, from start on (nil: the
	// first), in key order, until fn returns false or an error.
	ArchiveScan(prefix, start []byte, fn func(key, value []byte) (more bool, err error)) error
}

var errNoArchiveStore = errors.New("engine: this journal cannot archive sales (it has no archive store)")

func archiveSaleKey(saleID string) []byte {
	return appendString(make([]byte, 0, len(saleID)+2), saleID)
}

func archiveGenKey(saleID string) []byte { return append(archiveSaleKey(saleID), 'g') }

func archivePrefix(saleID string, gen uint32, kind byte) []byte {
	return append(binary.BigEndian.AppendUint32(archiveSaleKey(saleID), gen), kind)
}

// archiveRecords encodes a sale taken out of a shard (one holds it alone)
// as the records of generation gen. The committer runs it, off the loop.
func archiveRecords(one *state, gen uint32) (keys, values [][]byte) {
	id := one.sales[0].cfg.ID
	keys = append(keys, archiveGenKey(id))
	values = append(values, binary.BigEndian.AppendUint32(nil, gen))
	for n, c := range one.snapshotEncoding() {
		keys = append(keys, binary.BigEndian.AppendUint32(archivePrefix(id, gen, 'c'), uint32(n)))
		values = append(values, c)
	}
	for i := int32(0); i < one.orders.n; i++ {
		o := one.orders.at(i)
		rec := archivedOrderRecord{Order: one.orderView(o)}
		rec.Order.ID = formatOrderID(id, o.key)
		for n := range int(o.qty) {
			if ad := one.door.find(o.key, uint8(n)); ad != nil && o.checkedIn&(1<<n) != 0 {
				rec.Door = append(rec.Door, archivedAdmission{Ticket: n, Gate: ad.gate, AtMs: ad.at})
			}
		}
		b, err := json.Marshal(&rec)
		if err != nil {
			panic(newInvariantError("archive of order %s: %v", rec.Order.ID, err))
		}
		idx := binary.BigEndian.AppendUint32(nil, uint32(i))
		keys = append(keys, binary.BigEndian.AppendUint32(archivePrefix(id, gen, 'o'), uint32(i)))
		values = append(values, b)
		keys = append(keys, append(archivePrefix(id, gen, 'k'), o.key[:]...))
		values = append(values, idx)
	}
	return keys, values
}

// archivedGen returns the newest generation of a sale's records.
func archivedGen(store ArchiveStore, saleID string) (uint32, error) {
	v, ok, err := store.ArchiveGet(archiveGenKey(saleID))
	if err != nil {
		return 0, err
	}
	if !ok || len(v) != 4 {
		return 0, fmt.Errorf("%w: no archive of sale %q", errCorrupt, saleID)
	}
	return binary.BigEndian.Uint32(v), nil
}

// loadArchived reads a generation of a sale back into a state of its own.
func loadArchived(store ArchiveStore, saleID string, gen uint32) (st *state, err error) {
	defer recoverInvariant(&err)
	st = newState()
	r := restorer{st: st}
	defer r.close()
	chunks := 0
	err = store.ArchiveScan(archivePrefix(saleID, gen, 'c'), nil, func(_, chunk []byte) (bool, error) {
		chunks++
		return true, r.add(chunk)
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read archived sale %q: %w", saleID, err)
	}
	if chunks == 0 {
		return nil, fmt.Errorf("%w: archived sale %q generation %d has no records", errCorrupt, saleID, gen)
	}
	if err := r.finish(); err != nil {
		return nil, err
	}
	if len(st.sales) != 1 || st.sales[0].cfg.ID != saleID {
		return nil, fmt.Errorf("%w: archived sale %q holds another sale", errCorrupt, saleID)
	}
	st.dropStaleHolds()
	return st, nil
}

// stageUnarchive reads the sale a SaleUnarchived names for apply (replay).
func stageUnarchive(j Journal, st *state, ev *event) error {
	store, ok := j.(ArchiveStore)
	if !ok {
		return errNoArchiveStore
	}
	one, err := loadArchived(store, ev.saleID, ev.gen)
	if err != nil {
		return err
	}
	st.staged = one
	return nil
}

// archivedOrder reads one order of an archived sale: two point lookups.
func archivedOrder(store ArchiveStore, saleID string, key orderKey) (Order, bool, error) {
	gen, err := archivedGen(store, saleID)
	if err != nil {
		return Order{}, false, err
	}
	idx, ok, err := store.ArchiveGet(append(archivePrefix(saleID, gen, 'k'), key[:]...))
	if err != nil || !ok {
		return Order{}, false, err
	}
	v, ok, err := store.ArchiveGet(append(archivePrefix(saleID, gen, 'o'), idx...))
	if err != nil || !ok {
		return Order{}, false, err
	}
	var rec archivedOrderRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return Order{}, false, fmt.Errorf("%w: archived order: %v", errCorrupt, err)
	}
	return rec.Order, true, nil
}

// archivedOrderRecord is the value of an order's 'o' record.
type archivedOrderRecord struct {
	Order Order
	Door  []archivedAdmission `json:",omitempty"`
}

type archivedAdmission struct {
	Ticket int
	Gate   string
	AtMs   int64
}

// archivedOrders reads up to limit orders after index after (-1: from the
// first), in creation order, and the index of the last one read (-1 when
// none is left after the page).
func archivedOrders(store ArchiveStore, saleID string, after, limit int) ([]Order, int, error) {
	var out []Order
	next, err := scanArchivedOrders(store, saleID, after, limit, func(rec *archivedOrderRecord) {
		out = append(out, rec.Order)
	})
	return out, next, err
}

// archivedAttendees is attendeesPage (reports.go) on the records.
func archivedAttendees(store ArchiveStore, saleID string, after, limit int) ([]AttendeeRow, int, error) {
	var out []AttendeeRow
	next, err := scanArchivedOrders(store, saleID, after, limit, func(rec *archivedOrderRecord) {
		o := &rec.Order
		kept := o.Status == StatusPaid && !o.NeedsRefund
		for n := range o.Quantity {
			in := o.CheckedIn&(1<<n) != 0
			if !kept && !in {
				continue
			}
			a := AttendeeRow{TicketID: TicketCode(o.ID, n), OrderID: o.ID, Ticket: n, TierID: o.TierID,
				UserID: o.UserID, BoxOffice: o.BoxOffice, Status: o.Status, CheckedIn: in}
			for _, d := range rec.Door {
				if in && d.Ticket == n {
					a.Gate, a.AtMs = d.Gate, d.AtMs
				}
			}
			out = append(out, a)
		}
	})
	return out, next, err
}

// scanArchivedOrders hands fn up to limit order records after index after
// and returns the index to continue after, or -1 at the end.
func scanArchivedOrders(store ArchiveStore, saleID string, after, limit int, fn func(*archivedOrderRecord)) (int, error) {
	gen, err := archivedGen(store, saleID)
	if err != nil {
		return -1, err
	}
	prefix := archivePrefix(saleID, gen, 'o')
	start := binary.BigEndian.AppendUint32(append([]byte(nil), prefix...), uint32(after+1))
	seen, next := 0, -1
	err = store.ArchiveScan(prefix, start, func(_, v []byte) (bool, error) {
		if seen == limit {
			next = after + seen
			return false, nil
		}
		var rec archivedOrderRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return false, fmt.Errorf("%w: archived order: %v", errCorrupt, err)
		}
		seen++
		fn(&rec)
		return true, nil
	})
	return next, err
}
