package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// Real-name sales (实名制): a sale whose RealNameRule is Required takes, with
// every purchase, one attendee per ticket, and allows at most
// PerDocumentLimit tickets per identity document across the whole sale,
// whoever buys them. That is the point of the rule: a scalper with a
// thousand accounts still needs a thousand documents.
//
// The engine never sees a document number or a name. The caller sends, per
// attendee, a keyed hash of the document (type and normalised number), its
// last four characters for display, and the name sealed with a key the
// engine does not have. The hash is what the limit counts.
//
// Counts are derived, never stored: a document's tickets are the tickets,
// among the orders that named it, that the order still takes (pending,
// paid, or used before a refund; ticketsTaken's rule, per ticket). So a
// cancel, an expiry or a refund gives the slots back with no event of its
// own, a late payment takes them again only if they are free, and a
// restart restores the counts exactly because it restores the orders.
// Each document keeps the list of orders that named it; the list grows
// only with orders placed (a cancel-and-buy-again loop lengthens it by one
// per order, which the per-user rate and the hold bound).
//
// Records live beside the orders, in a map keyed by order, like box-office
// records: orders of other sales pay nothing for them.

// RealNameRule is a sale's real-name rule; the zero value is a sale without
// one.
type RealNameRule struct {
	Required         bool
	PerDocumentLimit int // 1 to PerDocumentLimitMax when Required; 0 otherwise
}

// Attendee is the person a ticket is for, as the engine knows them.
type Attendee struct {
	DocumentHash  [32]byte // keyed hash of document type and normalised number
	DocumentLast4 string   // the number's last characters, for display (1 to 4)
	SealedName    []byte   // the name, encrypted by the caller; opaque here
}

// Limits of real-name data.
const (
	PerDocumentLimitMax   = 1000
	DocumentLast4LenMax   = 4
	SealedNameLenMax      = 512 // a 100-character name in UTF-8, a nonce and a tag
	realNameSectionTag    = 50
	realNameFlagRequired  = 1
	realNameFlagsKnownMax = realNameFlagRequired
)

// Codes of the real-name rule's rejections.
const (
	// CodeAttendeesRequired: a real-name sale got a purchase without one
	// attendee per ticket (or a sale without the rule got attendees).
	CodeAttendeesRequired Code = "attendees_required"
	// CodeDuplicateDocument: two attendees of one order share a document.
	CodeDuplicateDocument Code = "duplicate_document"
	// CodeDocumentLimitExceeded: an attendee's document holds its sale's
	// PerDocumentLimit tickets already.
	CodeDocumentLimitExceeded Code = "document_limit_exceeded"
)

// realNameState is a shard's real-name records.
type realNameState struct {
	attendees map[orderKey][]Attendee // per order, one per ticket; never modified
	// derived
	docs map[docKey][]orderKey // the orders that named a document, oldest first
}

type docKey struct {
	sale int32
	hash [32]byte
}

func validateRealNameRule(r RealNameRule) *Rejection {
	switch {
	case r.Required && (r.PerDocumentLimit < 1 || r.PerDocumentLimit > PerDocumentLimitMax):
		return reject(CodeInvalidRequest, "real_name.per_document_limit must be 1 to %d", PerDocumentLimitMax)
	case !r.Required && r.PerDocumentLimit != 0:
		return reject(CodeInvalidRequest, "real_name.per_document_limit needs real_name.required")
	}
	return nil
}

// realNameRuleEvent appends the rule of a sale being put. SalePut's record
// does not carry the rule (so that a log without real-name sales stays
// readable by an onsale that predates them); this event, in the same entry,
// does. A SalePut resets the rule, so a sale put without one has none.
func realNameRuleEvent(evs []event, cfg *SaleConfig) []event {
	if cfg.RealName == (RealNameRule{}) {
		return evs
	}
	return append(evs, event{kind: evRealNameRule, saleID: cfg.ID, realName: cfg.RealName})
}

// decideAttendees checks a purchase's attendees against its sale's rule:
// one per ticket, no document twice in the order, and no document past the
// sale's limit. It appends the attendees' record, which apply files under
// the order that the purchase's next event places.
func (st *state) decideAttendees(sl *sale, cmd *command, now int64, evs []event) ([]event, *Rejection) {
	rule := sl.cfg.RealName
	if !rule.Required {
		if len(cmd.attendees) > 0 {
			return evs, reject(CodeAttendeesRequired, "sale %q is not a real-name sale; send no attendees", cmd.saleID)
		}
		return evs, nil
	}
	if len(cmd.attendees) != cmd.qty {
		return evs, reject(CodeAttendeesRequired, "sale %q is a real-name sale: send one attendee per ticket (%d), not %d",
			cmd.saleID, cmd.qty, len(cmd.attendees))
	}
	si := st.saleIdx[cmd.saleID]
	for i := range cmd.attendees {
		h := cmd.attendees[i].DocumentHash
		for j := range i {
			if cmd.attendees[j].DocumentHash == h {
				return evs, reject(CodeDuplicateDocument, "attendees[%d] and attendees[%d] have the same document; each ticket needs its own attendee", j, i)
			}
		}
		if have := st.documentTickets(si, h); have >= rule.PerDocumentLimit {
			return evs, reject(CodeDocumentLimitExceeded, "attendees[%d]: this document holds %d tickets of the sale already; at most %d per document",
				i, have, rule.PerDocumentLimit)
		}
	}
	return append(evs, event{kind: evAttendeesNamed, at: now, saleID: cmd.saleID, order: cmd.newOrder, attendees: cmd.attendees}), nil
}

// attendeesFit reports whether an order that takes no tickets now (expired
// or cancelled) could take them again without a document going past its
// sale's limit: late money's rule (decidePay, decideCounterPay).
// sameDocuments reports whether a retried purchase names the documents of
// the order it retries, ticket by ticket. Only documents compare: a name
// is sealed with a fresh nonce on every request, so the same name never
// comes back as the same bytes.
func (st *state) sameDocuments(o *order, as []Attendee) bool {
	had := st.realName.attendees[o.key]
	if len(had) != len(as) {
		return false
	}
	for i := range as {
		if had[i].DocumentHash != as[i].DocumentHash {
			return false
		}
	}
	return true
}

func (st *state) attendeesFit(o *order) bool {
	as := st.realName.attendees[o.key]
	limit := st.sales[o.sale].cfg.RealName.PerDocumentLimit
	if len(as) == 0 || limit == 0 {
		return true
	}
	for i := range as {
		if st.documentTickets(o.sale, as[i].DocumentHash) >= limit {
			return false
		}
	}
	return true
}

// documentTickets counts the tickets of a sale that a document holds now.
func (st *state) documentTickets(si int32, h [32]byte) int {
	n := 0
	for _, k := range st.realName.docs[docKey{si, h}] {
		o, _ := st.orderByKey(k)
		if o == nil {
			continue // named in the entry being decided, placed by its next event
		}
		for i, a := range st.realName.attendees[k] {
			if a.DocumentHash == h && o.takesTicket(i) {
				n++
			}
		}
	}
	return n
}

// takesTicket is ticketsTaken for one ticket.
func (o *order) takesTicket(i int) bool {
	switch {
	case o.status == StatusPending, o.status == StatusPaid && !o.needsRefund:
		return true
	case o.status == StatusRefunded && o.usedKept:
		return o.checkedIn&(1<<i) != 0
	}
	return false
}

func (st *state) applyRealName(ev *event) error {
	sl, si := st.saleByID(ev.saleID)
	if sl == nil {
		return fmt.Errorf("%w: %s of unknown sale %q", errCorrupt, ev.kind, ev.saleID)
	}
	if ev.kind == evRealNameRule {
		st.touch(si)
		sl.cfg.RealName = ev.realName
		return nil
	}
	// AttendeesNamed comes before the OrderPlaced of its order, in the same
	// entry: the order is not there yet.
	if _, dup := st.realName.attendees[ev.order]; dup {
		return fmt.Errorf("%w: AttendeesNamed twice for one order", errCorrupt)
	}
	if _, placed := st.byKey[ev.order]; placed {
		return fmt.Errorf("%w: AttendeesNamed after its order was placed", errCorrupt)
	}
	st.fileAttendees(si, ev.order, ev.attendees)
	return nil
}

func (st *state) fileAttendees(si int32, k orderKey, as []Attendee) {
	rn := &st.realName
	if rn.attendees == nil {
		rn.attendees = make(map[orderKey][]Attendee)
		rn.docs = make(map[docKey][]orderKey)
	}
	rn.attendees[k] = as
	for i := range as {
		dk := docKey{si, as[i].DocumentHash}
		rn.docs[dk] = append(rn.docs[dk], k)
	}
}

// Event bodies:
//
//	RealNameRule    saleID flags(1: required) perDocumentLimit
//	AttendeesNamed  at saleID key n {documentHash(32 bytes) last4 sealedName}
func appendRealNameEvent(b []byte, ev *event) []byte {
	if ev.kind == evRealNameRule {
		b = appendString(b, ev.saleID)
		b = binary.AppendUvarint(b, realNameFlags(ev.realName))
		return binary.AppendUvarint(b, uint64(ev.realName.PerDocumentLimit))
	}
	b = binary.AppendVarint(b, ev.at)
	b = appendString(b, ev.saleID)
	b = append(b, ev.order[:]...)
	return appendAttendees(b, ev.attendees)
}

func realNameFlags(r RealNameRule) uint64 {
	if r.Required {
		return realNameFlagRequired
	}
	return 0
}

func appendAttendees(b []byte, as []Attendee) []byte {
	b = binary.AppendUvarint(b, uint64(len(as)))
	for i := range as {
		b = append(b, as[i].DocumentHash[:]...)
		b = appendString(b, as[i].DocumentLast4)
		b = appendString(b, string(as[i].SealedName))
	}
	return b
}

func decodeRealNameEvent(d *decoder, ev *event) {
	if ev.kind == evRealNameRule {
		ev.saleID = d.str(IDLenMax)
		ev.realName = d.realNameRule()
		return
	}
	ev.at = d.varint()
	ev.saleID = d.str(IDLenMax)
	ev.order = d.key()
	ev.attendees = d.attendees()
}

func (d *decoder) realNameRule() RealNameRule {
	r := RealNameRule{Required: d.uvarint(realNameFlagsKnownMax)&realNameFlagRequired != 0}
	r.PerDocumentLimit = int(d.uvarint(PerDocumentLimitMax))
	if d.err == nil && validateRealNameRule(r) != nil {
		d.fail("invalid real-name rule")
	}
	return r
}

// attendees reads what appendAttendees wrote; a record names 1 to
// QuantityPerOrderMax attendees, each with a last4 and a sealed name.
func (d *decoder) attendees() []Attendee {
	n := d.uvarint(QuantityPerOrderMax)
	if d.err != nil || n == 0 {
		d.fail("no attendees")
		return nil
	}
	as := make([]Attendee, n)
	for i := range as {
		copy(as[i].DocumentHash[:], d.raw(32))
		as[i].DocumentLast4 = d.str(DocumentLast4LenMax)
		as[i].SealedName = []byte(d.str(SealedNameLenMax))
		if d.err == nil && (as[i].DocumentLast4 == "" || len(as[i].SealedName) == 0) {
			d.fail("attendee without last4 or name")
		}
	}
	if d.err != nil {
		return nil
	}
	return as
}

// The real-name snapshot section: the rules of the sales that have one, in
// sale order, then every order's attendees, by order key. The documents'
// lists are rebuilt from them.
//
//	nrules | {saleID flags perDocumentLimit}* | norders | {key attendees}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag:     realNameSectionTag,
		freeze:  freezeRealName,
		restore: restoreRealName,
	})
}

func freezeRealName(st *state) func([]byte) []byte {
	type rule struct {
		id string
		r  RealNameRule
	}
	var rules []rule
	for _, sl := range st.sales {
		if sl.cfg.RealName != (RealNameRule{}) {
			rules = append(rules, rule{sl.cfg.ID, sl.cfg.RealName})
		}
	}
	if len(rules) == 0 && len(st.realName.attendees) == 0 {
		return nil
	}
	type kv struct {
		k  orderKey
		as []Attendee // never modified: shared with the state
	}
	recs := make([]kv, 0, len(st.realName.attendees))
	for k, as := range st.realName.attendees {
		recs = append(recs, kv{k, as})
	}
	slices.SortFunc(recs, func(a, b kv) int { return bytes.Compare(a.k[:], b.k[:]) })
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(rules)))
		for _, r := range rules {
			b = appendString(b, r.id)
			b = binary.AppendUvarint(b, realNameFlags(r.r))
			b = binary.AppendUvarint(b, uint64(r.r.PerDocumentLimit))
		}
		b = binary.AppendUvarint(b, uint64(len(recs)))
		for _, x := range recs {
			b = append(b, x.k[:]...)
			b = appendAttendees(b, x.as)
		}
		return b
	}
}

func restoreRealName(st *state, body []byte) error {
	d := decoder{b: body}
	nrules := d.uvarint(uint64(len(st.sales)))
	for range nrules {
		id := d.str(IDLenMax)
		r := d.realNameRule()
		if d.err != nil {
			break
		}
		sl, _ := st.saleByID(id)
		if sl == nil {
			return fmt.Errorf("%w: snapshot has a real-name rule of a sale it does not hold", errCorrupt)
		}
		sl.cfg.RealName = r
	}
	norders := d.uvarint(uint64(len(st.byKey)))
	for range norders {
		k := d.key()
		as := d.attendees()
		if d.err != nil {
			break
		}
		o, _ := st.orderByKey(k)
		switch {
		case o == nil:
			return fmt.Errorf("%w: snapshot has attendees of an order it does not hold", errCorrupt)
		case len(as) != int(o.qty):
			return fmt.Errorf("%w: snapshot has %d attendees for an order of %d tickets", errCorrupt, len(as), o.qty)
		case st.realName.attendees[k] != nil:
			return fmt.Errorf("%w: snapshot lists an order's attendees twice", errCorrupt)
		}
		st.fileAttendees(o.sale, k, as)
	}
	if err := d.check("real-name section"); err != nil {
		return err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: real-name section: %d bytes left over", errCorrupt, len(d.b))
	}
	return nil
}

// checkRealName panics unless every attendee record belongs to an order of
// its sale with one attendee per ticket (a log whose AttendeesNamed was not
// followed by its order's placement fails here, in recovery's check).
func (st *state) checkRealName() {
	n := 0
	for k, as := range st.realName.attendees {
		o, _ := st.orderByKey(k)
		if o == nil || len(as) != int(o.qty) {
			panic(newInvariantError("attendees of order %x: no order of %d tickets", k, len(as)))
		}
		for i := range as {
			if !slices.Contains(st.realName.docs[docKey{o.sale, as[i].DocumentHash}], k) {
				panic(newInvariantError("attendee %d of order %x missing from its document's list", i, k))
			}
		}
		n += len(as)
	}
	for _, ks := range st.realName.docs {
		n -= len(ks)
	}
	if n != 0 {
		panic(newInvariantError("documents' lists hold %d entries more than the attendees", -n))
	}
}

// moveRealName files each order's attendees on the new shard of its sale
// (repartition); the rules travel in the sales' configs.
func moveRealName(old, states []*state, route func(saleID string) int) {
	for _, st := range old {
		for k, as := range st.realName.attendees {
			o, _ := st.orderByKey(k)
			dst := states[route(st.sales[o.sale].cfg.ID)]
			no, _ := dst.orderByKey(k)
			dst.fileAttendees(no.sale, k, as)
		}
	}
}

// checkAttendees checks what the codec bounds, before a shard sees them.
func checkAttendees(as []Attendee) *Rejection {
	if len(as) > QuantityPerOrderMax {
		return reject(CodeInvalidRequest, "at most %d attendees", QuantityPerOrderMax)
	}
	for i := range as {
		switch {
		case len(as[i].DocumentLast4) == 0 || len(as[i].DocumentLast4) > DocumentLast4LenMax:
			return reject(CodeInvalidRequest, "attendees[%d]: document last4 must have 1 to %d bytes", i, DocumentLast4LenMax)
		case len(as[i].SealedName) == 0 || len(as[i].SealedName) > SealedNameLenMax:
			return reject(CodeInvalidRequest, "attendees[%d]: the sealed name must have 1 to %d bytes", i, SealedNameLenMax)
		}
	}
	return nil
}

// cloneAttendees copies the caller's attendees: a command holds no bytes the
// caller may reuse.
func cloneAttendees(as []Attendee) []Attendee {
	if len(as) == 0 {
		return nil
	}
	out := slices.Clone(as)
	for i := range out {
		out[i].SealedName = slices.Clone(out[i].SealedName)
	}
	return out
}
