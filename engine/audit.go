package engine

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Audit trail. Every action an admin, staff or seller credential asks of a
// shard carries an AuditEntry (WithAudit on the call's context); the shard
// records it as an AuditRecorded event right after deciding the command,
// accepted or refused, in the same log entry as the command's own events.
// So the record cannot be lost while the action is kept, and replay needs
// nothing else. Buyers' commands carry none: their purchases are orders.
//
// Retention: each shard keeps its newest AuditMax entries in memory and in
// its snapshots (section auditSectionTag), oldest dropped first and counted;
// the log before a snapshot is deleted with it, so a dropped entry is gone.
// Entries are numbered per shard (Seq, from 1), which orders them within the
// shard and makes paging stable.

// AuditEntry is one recorded action.
type AuditEntry struct {
	AtMs      int64  // when its shard decided it
	Actor     string // "admin", "door", or a credential id
	Role      string // "admin", "door", "staff" or "seller"
	Action    string // what was asked: the HTTP route's name
	Target    string // the sale, order or credential id it was about ("" for none)
	Outcome   string // "ok", or the code of the rejection
	Remote    string // the caller's address
	RequestID string
	Shard     int    // set by Audit
	Seq       uint64 // per shard, from 1; set when recorded
}

// AuditFieldLenMax bounds every string of an AuditEntry; longer ones are cut.
const AuditFieldLenMax = 256

// auditMaxDefault is Config.AuditMax's default: ~100 MiB at most over all
// shards with ~250-byte entries and 4 shards.
const auditMaxDefault = 100_000

const auditSectionTag = 60

type auditKey struct{}

// WithAudit returns ctx carrying a, so that the shard command the call makes
// (sale, order, credential and key changes, check-ins, box-office sales) is
// recorded with it. Outcome, Shard and Seq are the engine's.
func WithAudit(ctx context.Context, a *AuditEntry) context.Context {
	return context.WithValue(ctx, auditKey{}, a)
}

func auditFrom(ctx context.Context) *AuditEntry {
	a, _ := ctx.Value(auditKey{}).(*AuditEntry)
	return a
}

// auditState is a shard's newest entries, oldest first. The shard's loop
// only appends and drops from the front, never writes an element in place,
// so a snapshot shares the slice (list[:len:len]).
type auditState struct {
	list    []AuditEntry
	total   uint64 // entries ever recorded on this shard: the last Seq
	dropped uint64 // entries dropped for the cap
	max     int    // AuditMax; 0 until the shard starts: replay keeps everything, Open trims
}

func (a *auditState) add(e AuditEntry) {
	a.total++
	e.Seq = a.total
	a.list = append(a.list, e)
	a.trim()
}

func (a *auditState) trim() {
	if a.max > 0 && len(a.list) > a.max {
		n := len(a.list) - a.max
		clear(a.list[:n]) // let the strings go before the array is reallocated
		a.list = a.list[n:]
		a.dropped += uint64(n)
	}
}

// auditCommand records cmd's audit entry, if it has one, after cmd was
// executed: appended to evs and applied.
func (st *state) auditCommand(cmd *command, now int64, res *result, evs []event) []event {
	if cmd.audit == nil {
		return evs
	}
	outcome := "ok"
	if res.rej != nil {
		outcome = string(res.rej.Code)
	} else if res.err != nil {
		outcome = "error"
	}
	a := *cmd.audit     // shared by the shards of one check-in upload: not written
	if a.Target == "" { // routes whose target is in the body: the order, or the credential
		var zero orderKey
		switch {
		case cmd.cred != nil:
			a.Target = cmd.cred.ID
		case cmd.hook != nil: // webhooks.go
			a.Target = cmd.hook.ID
		case cmd.order != zero:
			a.Target = formatOrderID(cmd.saleID, cmd.order)
		case cmd.door != nil && len(cmd.door.scans) == 1: // a scanned code; an upload of many has none
			a.Target = formatOrderID(cmd.door.scans[0].saleID, cmd.door.scans[0].order)
		}
	}
	return st.recordAudit(&a, outcome, now, evs)
}

// RecordAudit records an action that is no shard's command (a backup) on
// the shard of the credentials, after it happened: a crash between the
// action and this record loses the record. outcome is "ok" or a code.
func (e *Engine) RecordAudit(ctx context.Context, a AuditEntry, outcome string) error {
	r := getRequest()
	r.cmd = command{kind: cmdAuditRecord, audit: &a, key: outcome}
	if err := e.call(ctx, credentialsKey, r); err != nil {
		return err
	}
	putRequest(r)
	return nil
}

func (st *state) recordAudit(a *AuditEntry, outcome string, now int64, evs []event) []event {
	e := *a
	e.AtMs, e.Outcome, e.Shard, e.Seq = now, outcome, 0, 0
	for _, f := range []*string{&e.Actor, &e.Role, &e.Action, &e.Target, &e.Outcome, &e.Remote, &e.RequestID} {
		if len(*f) > AuditFieldLenMax {
			*f = (*f)[:AuditFieldLenMax]
		}
	}
	ev := event{kind: evAuditRecorded, at: now, audit: &e}
	st.applyAudit(&ev)
	return append(evs, ev)
}

func (st *state) applyAudit(ev *event) error {
	st.audit.add(*ev.audit)
	return nil
}

// Event body:
//
//	AuditRecorded at actor role action target outcome remote requestID
func appendAuditEvent(b []byte, ev *event) []byte {
	a := ev.audit
	b = binary.AppendVarint(b, ev.at)
	return appendAuditFields(b, a)
}

func appendAuditFields(b []byte, a *AuditEntry) []byte {
	for _, s := range []string{a.Actor, a.Role, a.Action, a.Target, a.Outcome, a.Remote, a.RequestID} {
		b = appendString(b, s)
	}
	return b
}

func decodeAuditEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	a := &AuditEntry{AtMs: ev.at}
	d.auditFields(a)
	ev.audit = a
}

func (d *decoder) auditFields(a *AuditEntry) {
	for _, f := range []*string{&a.Actor, &a.Role, &a.Action, &a.Target, &a.Outcome, &a.Remote, &a.RequestID} {
		*f = d.str(AuditFieldLenMax)
	}
}

// The audit snapshot section: the counters, then the kept entries, oldest
// first.
//
//	total dropped n | {at seq fields as in AuditRecorded}*
func init() {
	registerSnapshotSection(snapshotSection{
		tag: auditSectionTag,
		freeze: func(st *state) func([]byte) []byte {
			if st.audit.total == 0 {
				return nil
			}
			list, total, dropped := st.audit.list[:len(st.audit.list):len(st.audit.list)], st.audit.total, st.audit.dropped
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, total)
				b = binary.AppendUvarint(b, dropped)
				b = binary.AppendUvarint(b, uint64(len(list)))
				for i := range list {
					b = binary.AppendVarint(b, list[i].AtMs)
					b = binary.AppendUvarint(b, list[i].Seq)
					b = appendAuditFields(b, &list[i])
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			total, dropped := d.uvarint(1<<62), d.uvarint(1<<62)
			n := d.uvarint(1 << 32)
			if d.err == nil && (n > total || dropped > total) {
				return fmt.Errorf("%w: audit section: %d entries kept, %d dropped of %d", errCorrupt, n, dropped, total)
			}
			list := make([]AuditEntry, 0, min(n, 1<<16))
			for range n {
				a := AuditEntry{AtMs: d.varint(), Seq: d.uvarint(1 << 62)}
				d.auditFields(&a)
				if d.err != nil {
					break
				}
				list = append(list, a)
			}
			if err := d.check("audit section"); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: audit section: %d bytes left over", errCorrupt, len(d.b))
			}
			st.audit.list, st.audit.total, st.audit.dropped = list, total, dropped
			return nil
		},
	})
}

// moveAudit gathers the old shards' entries into new shard 0, by time
// (repartition). They are renumbered there; their order is kept.
func moveAudit(old, states []*state) {
	var all []AuditEntry
	var dropped uint64
	for _, st := range old {
		all = append(all, st.audit.list...)
		dropped += st.audit.dropped
	}
	slices.SortStableFunc(all, func(a, b AuditEntry) int { return cmp.Compare(a.AtMs, b.AtMs) })
	dst := &states[0].audit
	dst.total, dst.dropped = dropped, dropped
	for _, e := range all {
		dst.add(e)
	}
}

// AuditQuery filters and pages Audit. Empty strings and zero times match
// everything.
type AuditQuery struct {
	Actor, Action, Target string
	FromMs, ToMs          int64 // AtMs in [FromMs, ToMs); 0: unbounded
	Cursor                string
	Limit                 int // 1 to AuditPageMax
}

// AuditPageMax bounds a page of Audit.
const AuditPageMax = 1000

// Audit returns the entries that match q, newest first, and the cursor of
// the next page ("" when there is none). Each shard filters its own list.
func (e *Engine) Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, string, error) {
	if q.Limit < 1 || q.Limit > AuditPageMax {
		return nil, "", reject(CodeInvalidRequest, "limit must be 1 to %d", AuditPageMax)
	}
	after, ok := parseAuditCursor(q.Cursor)
	if !ok {
		return nil, "", reject(CodeInvalidRequest, "cursor %q is not one this server gave", q.Cursor)
	}
	var all []AuditEntry
	shard := 0
	err := e.fanOut(ctx, command{kind: cmdAuditList, auditQ: &auditPage{q: q, after: after}}, func(r *result) {
		for i := range r.audit {
			r.audit[i].Shard = shard
		}
		all = append(all, r.audit...)
		shard++
	})
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(all, func(a, b AuditEntry) int { return -compareAudit(&a, &b) })
	next := ""
	if len(all) > q.Limit {
		all = all[:q.Limit]
		last := &all[q.Limit-1]
		next = fmt.Sprintf("%d.%d.%d", last.AtMs, last.Shard, last.Seq)
	}
	return all, next, nil
}

// auditPage is Audit's query as a shard reads it.
type auditPage struct {
	q     AuditQuery
	after *AuditEntry // the previous page's last entry (AtMs, Shard, Seq); nil on the first
}

// compareAudit orders entries by time, then shard, then seq.
func compareAudit(a, b *AuditEntry) int {
	return cmp.Or(cmp.Compare(a.AtMs, b.AtMs), cmp.Compare(a.Shard, b.Shard), cmp.Compare(a.Seq, b.Seq))
}

func parseAuditCursor(s string) (*AuditEntry, bool) {
	if s == "" {
		return nil, true
	}
	p := strings.Split(s, ".")
	if len(p) != 3 {
		return nil, false
	}
	at, err1 := strconv.ParseInt(p[0], 10, 64)
	shard, err2 := strconv.Atoi(p[1])
	seq, err3 := strconv.ParseUint(p[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || shard < 0 {
		return nil, false
	}
	return &AuditEntry{AtMs: at, Shard: shard, Seq: seq}, true
}

// listAudit answers cmdAuditList on shard: up to Limit+1 newest matching
// entries before the cursor, so that Audit knows whether a next page
// exists. It reads the state only.
func (st *state) listAudit(p *auditPage, shard int, res *result) {
	q := &p.q
	res.audit = nil
	for i := len(st.audit.list) - 1; i >= 0 && len(res.audit) <= q.Limit; i-- {
		e := st.audit.list[i]
		e.Shard = shard
		switch {
		case p.after != nil && compareAudit(&e, p.after) >= 0:
		case q.Actor != "" && e.Actor != q.Actor, q.Action != "" && e.Action != q.Action, q.Target != "" && e.Target != q.Target:
		case q.FromMs != 0 && e.AtMs < q.FromMs, q.ToMs != 0 && e.AtMs >= q.ToMs:
		default:
			res.audit = append(res.audit, e)
		}
	}
}
