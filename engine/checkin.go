package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Check-in. A ticket admits once. The owner shard decides every scan of its
// sales' tickets in the order they reach it, so two gates scanning one code
// at the same instant get one admission and one already_checked_in, and an
// offline gate's uploaded scans (CheckInBatch) are decided the same way, in
// the order the gate made them, each with the time it was made.
//
// A scan of a signed code (ticketcode.go) names the order, ticket, tier and
// key; the caller has verified its signature, the shard decides the rest:
//
//	ticket or tier not the order's, order never paid  invalid_ticket
//	order refunded (a ticket not used before)           ticket_revoked
//	code signed with a key that no longer signs it      ticket_revoked
//	  (retired, or the order's tickets were re-issued)
//	order made by an exchange from another session      exchange_in_progress
//	  not settled yet (its old order is still valid)
//	ticket admitted before                              already_checked_in, with the first gate and time
//	otherwise                                           admitted: TicketAdmitted is logged
//
// The orders carry one bit per admitted ticket; the gate and time of each
// admission are kept beside them (admissions), so orders without check-ins
// pay nothing for it.

const (
	GateLenMax       = 64   // bytes of a gate's name
	ScansPerBatchMax = 1000 // scans in one CheckInBatch
	// ScanAheadMsMax is how far a scan's time may lie ahead of the
	// server's clock (a gate's clock runs fast).
	ScanAheadMsMax = 5 * 60 * 1000
)

const (
	CodeInvalidTicket Code = "invalid_ticket"
	CodeTicketRevoked Code = "ticket_revoked"
)

// Admission is one ticket let in, or the first admission of a ticket that
// was scanned again (Rejection.First).
type Admission struct {
	TicketID string // "<order_id>.<n>"
	OrderID  string
	Ticket   int
	TierID   string
	TierName string
	UserID   string // the holder
	Gate     string // "" for an admission logged before gates were
	AtMs     int64  // when the gate scanned it
	// Repeated: this gate had already sent this very scan (same gate, same
	// time); nothing new was logged. An upload retried after a lost answer
	// gets its answers again.
	Repeated bool
}

// Scan is one scan of a signed ticket code whose signature the caller has
// verified (VerifyTicketCode).
type Scan struct {
	Code        TicketPayload
	ScannedAtMs int64 // when the gate scanned it; 0: now
}

// ScanResult is the answer to one scan: admitted, or refused with a
// rejection (already_checked_in carries the first admission in First).
type ScanResult struct {
	Admission Admission
	Err       *Rejection
}

// doorCommand carries what the door's commands need beyond command's
// common fields.
type doorCommand struct {
	gate  string
	scans []scanCommand
	kid   uint8 // cmdRetireKey
	after int   // cmdRevocations: list index to start from
	limit int
}

type scanCommand struct {
	saleID    string
	order     orderKey
	ticket    int
	tier      int
	kid       uint8
	scannedAt int64
	idx       int // place in the caller's batch
}

type doorResult struct {
	scans       []ScanResult
	keys        []TicketKey
	tickets     OrderTickets
	revocations []Revocation
	next        int
}

// CheckIn admits the holder of a plain ticket id "<order_id>.<n>", once,
// without a gate. Only admins use plain ids now (CheckInTicket); door staff
// scan signed codes.
func (e *Engine) CheckIn(ctx context.Context, code string) (CheckIn, error) {
	return e.CheckInTicket(ctx, code, "")
}

// CheckInTicket is CheckIn at a gate. Its rejections keep their old codes:
// unknown_ticket, ticket_not_valid, already_checked_in.
func (e *Engine) CheckInTicket(ctx context.Context, ticketID, gate string) (CheckIn, error) {
	if gate != "" && !ValidGate(gate) {
		return CheckIn{}, reject(CodeInvalidRequest, "gate must be 1 to %d bytes of printable UTF-8", GateLenMax)
	}
	orderID, ticket, ok := ParseTicketID(ticketID)
	if !ok {
		return CheckIn{}, reject(CodeUnknownTicket, "no ticket %q", ticketID)
	}
	o, err := e.orderCommand(ctx, orderID, command{kind: cmdCheckIn, ticket: ticket, door: &doorCommand{gate: gate}})
	if rej, ok := err.(*Rejection); ok && rej.Code == CodeUnknownOrder {
		return CheckIn{}, reject(CodeUnknownTicket, "no ticket %q", ticketID)
	}
	return CheckIn{Order: o, Ticket: ticket}, err
}

// CheckInCode admits the holder of a verified code at a gate, once.
func (e *Engine) CheckInCode(ctx context.Context, gate string, scan Scan) (Admission, error) {
	if !ValidGate(gate) {
		return Admission{}, reject(CodeInvalidRequest, "gate must be 1 to %d bytes of printable UTF-8", GateLenMax)
	}
	r := getRequest()
	r.cmd = command{kind: cmdScans, door: &doorCommand{gate: gate, scans: []scanCommand{scan.command(0)}}}
	if err := e.call(ctx, scan.Code.SaleID, r); err != nil {
		return Admission{}, err
	}
	res := r.res.door.scans[0]
	putRequest(r)
	if res.Err != nil {
		return Admission{}, res.Err
	}
	return res.Admission, nil
}

// CheckInBatch decides a gate's uploaded scans, in order, each at the time
// it was scanned, and answers each: admitted, or why not. Scans of one
// ticket in one batch are decided in batch order. The scans of each shard
// go in one request; an error (overload, stop) means the answers are
// unknown: the gate uploads the batch again, and the scans that were
// admitted come back as admitted (Repeated).
func (e *Engine) CheckInBatch(ctx context.Context, gate string, scans []Scan) ([]ScanResult, error) {
	if !ValidGate(gate) {
		return nil, reject(CodeInvalidRequest, "gate must be 1 to %d bytes of printable UTF-8", GateLenMax)
	}
	if len(scans) > ScansPerBatchMax {
		return nil, reject(CodeInvalidRequest, "at most %d scans per upload", ScansPerBatchMax)
	}
	byShard := make([][]scanCommand, len(e.shards))
	for i := range scans {
		s := shardIndex(scans[i].Code.SaleID, len(e.shards))
		byShard[s] = append(byShard[s], scans[i].command(i))
	}
	var reqs []*request
	for s, sc := range byShard {
		if len(sc) == 0 {
			continue
		}
		r := &request{done: make(chan struct{}, 1)}
		r.cmd = command{kind: cmdScans, door: &doorCommand{gate: gate, scans: sc}, audit: auditFrom(ctx)} // audit.go: one entry per shard
		if err := e.send(e.shards[s], r); err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	out := make([]ScanResult, len(scans))
	for _, r := range reqs {
		if err := e.wait(ctx, r); err != nil {
			return nil, err
		}
		for i, res := range r.res.door.scans {
			out[r.cmd.door.scans[i].idx] = res
		}
	}
	return out, nil
}

func (s *Scan) command(idx int) scanCommand {
	c := &s.Code
	return scanCommand{saleID: c.SaleID, order: c.Order, ticket: int(c.Ticket), tier: int(c.Tier), kid: c.Kid,
		scannedAt: s.ScannedAtMs, idx: idx}
}

// ValidGate reports whether s names a gate: 1 to GateLenMax bytes of UTF-8
// without control characters.
func ValidGate(s string) bool {
	if len(s) == 0 || len(s) > GateLenMax || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 {
			return false
		}
	}
	return true
}

// ParseTicketID splits a plain ticket id "<order_id>.<n>".
func ParseTicketID(id string) (orderID string, ticket int, ok bool) {
	dot := len(id) - 1
	for dot >= 0 && id[dot] != '.' {
		dot--
	}
	if dot < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[dot+1:])
	if err != nil || n < 0 || n >= QuantityPerOrderMax || strconv.Itoa(n) != id[dot+1:] {
		return "", 0, false
	}
	return id[:dot], n, true
}

// executeScans decides a batch of scans one after the other, applying each
// admission before the next scan is decided.
func (st *state) executeScans(cmd *command, now int64, res *result, evs []event) []event {
	d := cmd.door
	out := make([]ScanResult, len(d.scans))
	for i := range d.scans {
		start := len(evs)
		var rej *Rejection
		evs, out[i].Admission, rej = st.decideScan(&d.scans[i], d.gate, now, evs)
		if rej != nil {
			out[i].Err = rej
			evs = evs[:start]
			continue
		}
		for j := start; j < len(evs); j++ {
			if err := st.apply(&evs[j]); err != nil {
				panic(newInvariantError("apply of a decided admission failed: %v", err))
			}
		}
	}
	res.door = &doorResult{scans: out}
	return evs
}

func (st *state) decideScan(sc *scanCommand, gate string, now int64, evs []event) ([]event, Admission, *Rejection) {
	sl, si := st.saleByID(sc.saleID)
	var o *order
	if sl != nil {
		o, _ = st.orderByKey(sc.order)
	} else if rej := st.archivedRejection(&command{saleID: sc.saleID}); rej != nil {
		return evs, Admission{}, rej // archive.go
	}
	if o == nil || o.sale != si {
		return evs, Admission{}, reject(CodeInvalidTicket, "no such ticket in sale %q", sc.saleID)
	}
	if sc.ticket >= int(o.qty) || sc.tier != int(o.tier) {
		return evs, Admission{}, reject(CodeInvalidTicket, "the code names a ticket or tier this order does not have")
	}
	at := sc.scannedAt
	if at == 0 {
		at = now
	}
	if at < 0 || at > now+ScanAheadMsMax {
		return evs, Admission{}, reject(CodeInvalidRequest, "scanned_at %s is ahead of the server's clock (%s)", formatMs(at), formatMs(now))
	}
	bit := uint64(1) << sc.ticket
	switch {
	case o.status == StatusRefunded && o.checkedIn&bit == 0:
		return evs, Admission{}, reject(CodeTicketRevoked, "the order was refunded; this ticket is void")
	case o.status != StatusPaid && o.status != StatusRefunded || o.needsRefund:
		return evs, Admission{}, reject(CodeInvalidTicket, "the order is %s; it has no valid tickets", o.statusText())
	case o.status == StatusPaid && o.checkedIn&bit == 0 && st.xsInProgress(o): // xsession.go: the old order is still valid
		return evs, Admission{}, reject(CodeExchangeInProgress, "the order replaces another that is still valid until its exchange settles; scan again shortly or use the old ticket")
	case o.status == StatusPaid && sc.kid != o.orderKid():
		return evs, Admission{}, reject(CodeTicketRevoked,
			"the code was signed with key %d, which no longer signs this ticket; the holder downloads the ticket again", sc.kid)
	case o.checkedIn&bit != 0:
		first := st.admissionOf(o, sc.ticket)
		if sc.scannedAt != 0 && first.Gate == gate && first.AtMs == at { // an upload sent again
			first.Repeated = true
			return evs, first, nil
		}
		rej := reject(CodeTicketAlreadyCheckIn, "ticket %d of this order was admitted at %s%s", sc.ticket, formatMs(first.AtMs), gateText(first.Gate))
		rej.First = &first
		return evs, Admission{}, rej
	}
	evs = append(evs, event{kind: evTicketAdmitted, at: now, order: o.key, ticket: uint8(sc.ticket), gate: gate, scannedAt: at})
	a := st.admissionView(o, sc.ticket, gate, at)
	return evs, a, nil
}

func gateText(gate string) string {
	if gate == "" {
		return ""
	}
	return " at gate " + strconv.Quote(gate)
}

// decideCheckIn decides a plain ticket id (CheckInTicket), with the codes it
// always had.
func (st *state) decideCheckIn(o *order, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	ticket := cmd.ticket
	if ticket >= int(o.qty) {
		return evs, reject(CodeUnknownOrder, "order has %d tickets", o.qty)
	}
	if o.status != StatusPaid || o.needsRefund {
		return evs, reject(CodeTicketNotValid, "order is %s; only tickets of a paid order admit", o.statusText())
	}
	if o.checkedIn&(1<<ticket) == 0 && st.xsInProgress(o) { // xsession.go: the old order is still valid
		return evs, reject(CodeExchangeInProgress, "the order replaces another that is still valid until its exchange settles; scan again shortly or use the old ticket")
	}
	if o.checkedIn&(1<<ticket) != 0 {
		first := st.admissionOf(o, ticket)
		rej := reject(CodeTicketAlreadyCheckIn, "ticket %d of this order was already checked in", ticket)
		rej.First = &first
		return evs, rej
	}
	gate := ""
	if cmd.door != nil {
		gate = cmd.door.gate
	}
	return append(evs, event{kind: evTicketAdmitted, at: now, order: o.key, ticket: uint8(ticket), gate: gate, scannedAt: now}), nil
}

// admissionView describes an admission of ticket n of o.
func (st *state) admissionView(o *order, n int, gate string, at int64) Admission {
	sl := st.sales[o.sale]
	orderID := formatOrderID(sl.cfg.ID, o.key)
	tier := &sl.cfg.Tiers[o.tier]
	return Admission{
		TicketID: orderID + "." + strconv.Itoa(n), OrderID: orderID, Ticket: n,
		TierID: tier.ID, TierName: tier.Name, UserID: o.userID, Gate: gate, AtMs: at,
	}
}

// admissionOf returns the admission of an admitted ticket. One logged
// before gates were (TicketCheckedIn) has no gate and no time.
func (st *state) admissionOf(o *order, n int) Admission {
	if a := st.door.find(o.key, uint8(n)); a != nil {
		return st.admissionView(o, n, a.gate, a.at)
	}
	return st.admissionView(o, n, "", 0)
}

// admissions are the gate and time of every admission of a shard, in log
// order; last finds an order's newest, whose prev links to the one before.
// list is only appended to, so a snapshot shares it.
type admissions struct {
	list  []admission
	last  map[orderKey]int32
	gates map[string]string // one copy of each gate's name, shared by its admissions
}

// gatesInternedMax bounds the gate names shared; more are kept as they come.
const gatesInternedMax = 4096

// intern returns the shared copy of a gate's name (no allocation when the
// gate is known).
func (a *admissions) intern(gate []byte) string {
	if s, ok := a.gates[string(gate)]; ok {
		return s
	}
	s := string(gate)
	if len(a.gates) < gatesInternedMax {
		if a.gates == nil {
			a.gates = make(map[string]string)
		}
		a.gates[s] = s
	}
	return s
}

type admission struct {
	order  orderKey
	at     int64
	gate   string
	prev   int32 // the order's previous admission; -1 if none
	ticket uint8
}

func (a *admissions) add(k orderKey, ticket uint8, gate string, at int64) {
	if a.last == nil {
		a.last = make(map[orderKey]int32)
	}
	prev, ok := a.last[k]
	if !ok {
		prev = -1
	}
	a.list = append(a.list, admission{order: k, at: at, gate: gate, prev: prev, ticket: ticket})
	a.last[k] = int32(len(a.list) - 1)
}

func (a *admissions) find(k orderKey, ticket uint8) *admission {
	i, ok := a.last[k]
	for ok && i >= 0 {
		if a.list[i].ticket == ticket {
			return &a.list[i]
		}
		i = a.list[i].prev
	}
	return nil
}

// applyCheckIn carries out TicketCheckedIn and TicketAdmitted.
func (st *state) applyCheckIn(o *order, ev *event) error {
	if o.status != StatusPaid || int(ev.ticket) >= int(o.qty) {
		return fmt.Errorf("%w: %s of a %s order", errCorrupt, ev.kind, o.status)
	}
	o.checkedIn |= 1 << ev.ticket
	if ev.kind == evTicketAdmitted {
		st.door.add(o.key, ev.ticket, st.door.intern([]byte(ev.gate)), ev.scannedAt)
	}
	return nil
}

// The admissions' snapshot section (tag 11), in log order:
//
//	n | {key(16) ticket gate at}
const snapshotTagAdmissions = 11

func init() {
	registerSnapshotSection(snapshotSection{
		tag: snapshotTagAdmissions,
		freeze: func(st *state) func([]byte) []byte {
			list := st.door.list[:len(st.door.list):len(st.door.list)]
			if len(list) == 0 {
				return nil
			}
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(len(list)))
				for i := range list {
					a := &list[i]
					b = append(b, a.order[:]...)
					b = append(b, a.ticket)
					b = appendString(b, a.gate)
					b = binary.AppendVarint(b, a.at)
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(uint64(len(body)))
			if d.err == nil && st.door.last == nil {
				st.door.list = make([]admission, 0, n)
				st.door.last = make(map[orderKey]int32, n)
			}
			for range n {
				k := d.key()
				ticket := d.uvarint(QuantityPerOrderMax - 1)
				gate := d.raw(d.uvarint(GateLenMax))
				at := d.varint()
				if d.err != nil {
					break
				}
				o, _ := st.orderByKey(k)
				if o == nil || o.checkedIn&(1<<ticket) == 0 {
					return fmt.Errorf("%w: admissions section: an admission of a ticket not checked in", errCorrupt)
				}
				st.door.add(k, uint8(ticket), st.door.intern(gate), at)
			}
			if err := d.check("admissions section"); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: admissions section: %d bytes left over", errCorrupt, len(d.b))
			}
			return nil
		},
	})
}

// repartitionDoor moves the door's state to the shards that own its sales
// under a new shard count (recover.go's repartition has moved the sales
// and orders).
func repartitionDoor(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		for _, sl := range st.sales {
			if sl.tickets != nil {
				dst := states[route(sl.cfg.ID)]
				nsl, _ := dst.saleByID(sl.cfg.ID)
				nsl.tickets = sl.tickets
			}
		}
		for _, a := range st.door.list {
			o, _ := st.orderByKey(a.order)
			dst := states[route(st.sales[o.sale].cfg.ID)]
			dst.door.add(a.order, a.ticket, dst.door.intern([]byte(a.gate)), a.at)
		}
	}
}
