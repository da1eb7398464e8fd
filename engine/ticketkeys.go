package engine

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Ticket keys. Each sale signs its tickets with keys of its own, numbered
// 1, 2, ... (the kid). The engine knows only their ids and lives: the keys
// themselves are derived outside the shard from the data key, the sale id
// and the kid (DeriveTicketKey), so nothing secret is ever logged. A new
// sale gets kid 1 in the same entry as its creation; a rotation adds the
// next kid, which signs every ticket paid from then on. Retiring a key
// re-issues the tickets it signed: their orders move to the current key,
// so codes signed with the retired key stop admitting and the holders
// download their tickets again. The current key cannot be retired.
//
// Each order carries the kid that signs its tickets (order.kid, one byte):
// set when it is placed and again when it is paid, moved to the current
// key when its key is retired, always in apply, so replay gives the same.

// TicketKeysPerSaleMax bounds a sale's key ids: one byte in the order and in
// the ticket code.
const TicketKeysPerSaleMax = 255

const (
	CodeUnknownTicketKey    Code = "unknown_ticket_key"
	CodeCurrentTicketKey    Code = "current_ticket_key"
	CodeTicketKeysExhausted Code = "ticket_keys_exhausted"
)

// TicketKey is one of a sale's ticket signing keys, as the log knows it.
type TicketKey struct {
	Kid         int
	CreatedAtMs int64 // 0: the first key of a sale created before keys were logged
	RetiredAtMs int64 // 0 while it is not retired
	Current     bool  // signs the tickets paid from now on
}

// saleTickets is what a sale knows of its tickets beyond its orders.
type saleTickets struct {
	keys    []ticketKey     // kid i+1 at index i; empty: kid 1 only, never logged
	revoked []revokedTicket // append-only (revocations.go)
}

type ticketKey struct {
	createdAt int64
	retiredAt int64
}

func (sl *sale) ticketsState() *saleTickets {
	if sl.tickets == nil {
		sl.tickets = &saleTickets{}
	}
	return sl.tickets
}

// currentKid is the kid that signs the sale's new tickets: the newest.
func (sl *sale) currentKid() uint8 {
	if sl.tickets == nil || len(sl.tickets.keys) == 0 {
		return 1
	}
	return uint8(len(sl.tickets.keys))
}

// kidRetired reports whether kid is unknown to the sale or retired.
func (sl *sale) kidRetired(kid uint8) bool {
	if kid == 0 || kid > sl.currentKid() {
		return true
	}
	if sl.tickets == nil || len(sl.tickets.keys) == 0 {
		return false
	}
	return sl.tickets.keys[kid-1].retiredAt != 0
}

// orderKid is the kid that signs an order's tickets (0 was written by
// versions before ticket keys, when every sale had kid 1 only).
func (o *order) orderKid() uint8 { return max(o.kid, 1) }

// ticketKeys lists a sale's keys, oldest first.
func (sl *sale) ticketKeys() []TicketKey {
	cur := sl.currentKid()
	if sl.tickets == nil || len(sl.tickets.keys) == 0 {
		return []TicketKey{{Kid: 1, Current: true}}
	}
	out := make([]TicketKey, len(sl.tickets.keys))
	for i, k := range sl.tickets.keys {
		out[i] = TicketKey{Kid: i + 1, CreatedAtMs: k.createdAt, RetiredAtMs: k.retiredAt, Current: uint8(i+1) == cur}
	}
	return out
}

// firstTicketKey appends kid 1 to the events of a sale's creation.
func firstTicketKey(evs []event, saleID string, now int64) []event {
	return append(evs, event{kind: evTicketKeyAdded, at: now, saleID: saleID, kid: 1})
}

// decideTicketKeys decides the commands about a sale's keys (rotate,
// retire, list).
func (st *state) decideTicketKeys(cmd *command, now int64, evs []event) ([]event, *Rejection) {
	sl, _ := st.saleByID(cmd.saleID)
	if sl == nil {
		return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	cur := sl.currentKid()
	switch cmd.kind {
	case cmdRotateKey:
		if cur == TicketKeysPerSaleMax {
			return evs, reject(CodeTicketKeysExhausted, "sale %q has used all %d ticket key ids", cmd.saleID, TicketKeysPerSaleMax)
		}
		return append(evs, event{kind: evTicketKeyAdded, at: now, saleID: cmd.saleID, kid: cur + 1}), nil
	case cmdRetireKey:
		kid := cmd.door.kid
		switch {
		case kid == 0 || kid > cur:
			return evs, reject(CodeUnknownTicketKey, "sale %q has no ticket key %d", cmd.saleID, kid)
		case kid == cur:
			return evs, reject(CodeCurrentTicketKey, "key %d signs the sale's tickets now; rotate first, then retire it", kid)
		case sl.kidRetired(kid):
			return evs, nil // retired already
		}
		return append(evs, event{kind: evTicketKeyRetired, at: now, saleID: cmd.saleID, kid: kid}), nil
	}
	return evs, nil // cmdTicketKeys: a read
}

// applyTicketKey carries out TicketKeyAdded and TicketKeyRetired.
func (st *state) applyTicketKey(ev *event) error {
	sl, si := st.saleByID(ev.saleID)
	if sl == nil {
		return fmt.Errorf("%w: %s of unknown sale %q", errCorrupt, ev.kind, ev.saleID)
	}
	st.touch(si)
	t := sl.ticketsState()
	if ev.kind == evTicketKeyAdded {
		if len(t.keys) == 0 && ev.kid == 2 {
			t.keys = append(t.keys, ticketKey{}) // kid 1 of a sale from before keys were logged
		}
		if int(ev.kid) != len(t.keys)+1 {
			return fmt.Errorf("%w: TicketKeyAdded %d after %d keys", errCorrupt, ev.kid, len(t.keys))
		}
		t.keys = append(t.keys, ticketKey{createdAt: ev.at})
		return nil
	}
	cur := sl.currentKid()
	if ev.kid >= cur || len(t.keys) == 0 || t.keys[ev.kid-1].retiredAt != 0 {
		return fmt.Errorf("%w: TicketKeyRetired %d of a sale at key %d", errCorrupt, ev.kid, cur)
	}
	t.keys[ev.kid-1].retiredAt = ev.at
	// Re-issue: every order of the sale signed with the retired key moves
	// to the current one. A scan of the shard's orders, once per retirement.
	for i := int32(0); i < st.orders.n; i++ {
		if o := st.orders.at(i); o.sale == si && o.orderKid() == ev.kid {
			st.orders.mut(i).kid = cur
		}
	}
	return nil
}

// TicketKeys returns a sale's ticket keys, oldest first.
func (e *Engine) TicketKeys(ctx context.Context, saleID string) ([]TicketKey, error) {
	return e.ticketKeyCommand(ctx, command{kind: cmdTicketKeys, saleID: saleID})
}

// RotateTicketKey adds the sale's next key, which signs the tickets paid
// from now on; tickets signed before keep their key. It returns the keys.
func (e *Engine) RotateTicketKey(ctx context.Context, saleID string) ([]TicketKey, error) {
	return e.ticketKeyCommand(ctx, command{kind: cmdRotateKey, saleID: saleID})
}

// RetireTicketKey retires a key of the sale: the tickets it signed are
// re-issued with the current key, and their old codes stop admitting
// (ticket_revoked). Retiring the current key is refused
// (current_ticket_key); retiring a retired key changes nothing.
func (e *Engine) RetireTicketKey(ctx context.Context, saleID string, kid int) ([]TicketKey, error) {
	if kid < 1 || kid > TicketKeysPerSaleMax {
		return nil, reject(CodeUnknownTicketKey, "sale %q has no ticket key %d", saleID, kid)
	}
	return e.ticketKeyCommand(ctx, command{kind: cmdRetireKey, saleID: saleID, door: &doorCommand{kid: uint8(kid)}})
}

func (e *Engine) ticketKeyCommand(ctx context.Context, cmd command) ([]TicketKey, error) {
	var out []TicketKey
	err := e.one(ctx, cmd.saleID, cmd, func(res *result) { out = res.door.keys })
	return out, err
}

// The ticket keys' snapshot section (tag 10): each sale's keys, and the kid
// of every order as runs of equal kids in order number order.
//
//	nsales | {sale nkeys {createdAt retiredAt}} | nruns | {count kid}
const snapshotTagTicketKeys = 10

func init() {
	registerSnapshotSection(snapshotSection{
		tag:     snapshotTagTicketKeys,
		freeze:  freezeTicketKeys,
		restore: restoreTicketKeys,
	})
}

func freezeTicketKeys(st *state) func([]byte) []byte {
	type saleKeys struct {
		sale int
		keys []ticketKey
	}
	var sales []saleKeys
	for i, sl := range st.sales {
		if sl.tickets != nil && len(sl.tickets.keys) > 0 {
			sales = append(sales, saleKeys{i, append([]ticketKey(nil), sl.tickets.keys...)})
		}
	}
	if len(sales) == 0 && st.orders.n == 0 {
		return nil
	}
	orders := st.orders.freeze() // copy-on-write, like the snapshot's own view
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(sales)))
		for _, s := range sales {
			b = binary.AppendUvarint(b, uint64(s.sale))
			b = binary.AppendUvarint(b, uint64(len(s.keys)))
			for _, k := range s.keys {
				b = binary.AppendVarint(b, k.createdAt)
				b = binary.AppendVarint(b, k.retiredAt)
			}
		}
		var runs []byte
		nruns := 0
		for i := int32(0); i < orders.n; {
			kid := orders.at(i).kid
			j := i + 1
			for j < orders.n && orders.at(j).kid == kid {
				j++
			}
			runs = binary.AppendUvarint(runs, uint64(j-i))
			runs = append(runs, kid)
			nruns++
			i = j
		}
		b = binary.AppendUvarint(b, uint64(nruns))
		return append(b, runs...)
	}
}

func restoreTicketKeys(st *state, body []byte) error {
	d := decoder{b: body}
	n := d.uvarint(uint64(len(st.sales)))
	last := -1
	for range n {
		si := int(d.uvarint(uint64(len(st.sales)) - 1))
		nk := d.uvarint(TicketKeysPerSaleMax)
		if d.err != nil {
			break
		}
		if si <= last || nk == 0 {
			return fmt.Errorf("%w: ticket keys section: sales out of order or without keys", errCorrupt)
		}
		last = si
		t := st.sales[si].ticketsState()
		for range nk {
			k := ticketKey{createdAt: d.varint(), retiredAt: d.varint()}
			t.keys = append(t.keys, k)
		}
		if t.keys[len(t.keys)-1].retiredAt != 0 {
			return fmt.Errorf("%w: ticket keys section: the current key is retired", errCorrupt)
		}
	}
	runs := d.uvarint(uint64(st.orders.n))
	var i int32
	for range runs {
		count := d.uvarint(uint64(st.orders.n - i))
		if d.err != nil {
			break
		}
		if len(d.b) < 1 || count == 0 {
			d.fail("bad run")
			break
		}
		kid := d.b[0]
		d.b = d.b[1:]
		for range count {
			o := st.orders.mut(i)
			if kid > st.sales[o.sale].currentKid() {
				return fmt.Errorf("%w: ticket keys section: an order signed with a key its sale has not", errCorrupt)
			}
			o.kid = kid
			i++
		}
	}
	if err := d.check("ticket keys section"); err != nil {
		return err
	}
	if len(d.b) != 0 || i != st.orders.n {
		return fmt.Errorf("%w: ticket keys section: kids of %d orders of %d, %d bytes left", errCorrupt, i, st.orders.n, len(d.b))
	}
	return nil
}
