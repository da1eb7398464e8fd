package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Archiving finished sales: a sale whose event is over moves out of its
// shard's memory and snapshots into the archive keyspace of the log's
// Pebble database (archive_store.go), from where it stays readable.
//
// The rule, decided in the sale's shard like a purchase:
//
//   - A sale is archived by an admin (Engine.Archive) or automatically once
//     Config.ArchiveAfter has passed since its performance starts
//     (Catalogue.StartsAtMs; a sale without one: its ClosesAtMs), and, if it
//     was brought back, since it was brought back.
//   - A sale with pending orders (tickets held, not paid) is not archived:
//     orders_pending for the admin; the automatic rule waits until they are
//     paid, cancelled or expired.
//   - Archiving an archived sale, and bringing back a live one, change
//     nothing.
//   - An archived sale refuses what would sell or reconfigure it
//     (sale_archived). Reads of it are served from disk; a late payment, a
//     refund or a counter payment brings it back (Engine.Unarchive) and is
//     then decided on the live sale, so every rule (idempotency of payment
//     events included) is the live one. It is archived again by the
//     automatic rule later.
//
// The log entry that records SaleArchived is written in the same Pebble
// batch as the sale's records (ArchiveStore.AppendArchive), so a crash keeps
// both or neither; replaying SaleArchived drops the sale from memory again,
// and snapshots after it hold only the sale's id and final view (snapshot
// section archivedSectionTag). SaleUnarchived is applied with the sale read
// back from the records of its generation, live by the caller of Unarchive
// and in replay by recovery; a generation's records are never overwritten,
// and those older than a sale's newest are deleted once a snapshot holds
// the newest (archive_prune.go).
//
// Moving a sale in or out rebuilds the shard's state (partition): O(orders
// of the shard) on the shard's loop, like a restart of that shard, so it is
// an occasional operation, not a per-request one.

// archivedSale is what a shard keeps of an archived sale: enough to answer
// that it is archived, to publish its view and to find its records.
type archivedSale struct {
	id   string
	gen  uint32
	view *Sale // Archived set; shared with the published view: never modified
}

// archiveCommand is the payload of cmdArchive and cmdUnarchive.
type archiveCommand struct {
	auto   bool   // cmdArchive from the shard's tick: not audited, nobody waits
	gen    uint32 // cmdUnarchive: the generation loaded
	loaded *state // cmdUnarchive: the sale read back from its records
}

// archivable reports whether a sale may be archived now: no ticket held.
func (sl *sale) archivable() bool {
	for _, t := range sl.tiers {
		if t.held > 0 {
			return false
		}
	}
	return true
}

// archivedRejection refuses a command on an archived sale. Commands on
// orders and reads are answered from the archive by the engine
// (Engine.fromArchive), which recognises this rejection.
func (st *state) archivedRejection(cmd *command) *Rejection {
	id := cmd.saleID
	if cmd.kind == cmdPutSale {
		id = cmd.sale.ID
	}
	if _, ok := st.archived[id]; !ok {
		return nil
	}
	return reject(CodeSaleArchived, "sale %q is archived; an admin can bring it back with POST /v1/admin/sales/%s:unarchive", id, id)
}

func (st *state) decideArchive(cmd *command, now int64, res *result, evs []event) ([]event, *Rejection) {
	if a := st.archived[cmd.saleID]; a != nil {
		if cmd.kind == cmdUnarchive && cmd.archive.loaded != nil {
			if cmd.archive.gen != a.gen {
				// Archived again since the caller read it: it reads again.
				return evs, reject(CodeSaleArchived, "sale %q was archived again while it was read back", cmd.saleID)
			}
			return append(evs, event{kind: evSaleUnarchived, at: now, saleID: cmd.saleID, gen: a.gen}), nil
		}
		return evs, nil // archive of an archived sale; unarchive without data is answered by the engine
	}
	sl, _ := st.saleByID(cmd.saleID)
	if sl == nil {
		return evs, reject(CodeUnknownSale, "no sale %q", cmd.saleID)
	}
	if cmd.kind == cmdUnarchive {
		return evs, nil // live already
	}
	if !sl.archivable() {
		return evs, reject(CodePendingOrders,
			"sale %q has tickets held by unpaid orders; archive it once they are paid, cancelled or expired", cmd.saleID)
	}
	if st.xsUnsettled(sl) { // xsession.go
		return evs, reject(CodePendingOrders, "sale %q has an exchange from another session not finished yet; archive it in a few seconds", cmd.saleID)
	}
	return append(evs, event{kind: evSaleArchived, at: now, saleID: cmd.saleID, gen: sl.archiveGen + 1}), nil
}

// applyArchived drops the sale from the state. Live, the sale's own state
// is left in st.archivedOut for the shard to write to the archive.
func (st *state) applyArchived(ev *event) error {
	sl, si := st.saleByID(ev.saleID)
	if sl == nil || ev.gen != sl.archiveGen+1 {
		return fmt.Errorf("%w: SaleArchived of unknown sale %q or generation %d", errCorrupt, ev.saleID, ev.gen)
	}
	view := publishedView(sl)
	view.Archived = true
	one, rest := st.split(si)
	st.replaceWith(rest)
	st.archived[ev.saleID] = &archivedSale{id: ev.saleID, gen: ev.gen, view: view}
	if !st.replaying {
		st.archivedOut = one
	}
	return nil
}

// applyUnarchived brings the sale back from st.staged, the state read from
// the records of the generation the event names.
func (st *state) applyUnarchived(ev *event) error {
	a := st.archived[ev.saleID]
	one := st.staged
	st.staged = nil
	if a == nil || a.gen != ev.gen || one == nil || len(one.sales) != 1 || one.sales[0].cfg.ID != ev.saleID {
		return fmt.Errorf("%w: SaleUnarchived of sale %q generation %d, which is not archived or not read back", errCorrupt, ev.saleID, ev.gen)
	}
	delete(st.archived, ev.saleID)
	st.replaceWith(st.merge(one))
	sl, si := st.saleByID(ev.saleID)
	sl.archiveGen, sl.unarchivedAt = ev.gen, ev.at
	st.touch(si)
	return nil
}

// split returns the sale si alone and the state without it.
func (st *state) split(si int32) (one, rest *state) {
	id := st.sales[si].cfg.ID
	rest, one = newState(), newState()
	partitionSales([]*state{st}, []*state{rest, one}, func(saleID string) int {
		if saleID == id {
			return 1
		}
		return 0
	})
	rest.creds, rest.audit, rest.archived = st.creds, st.audit, st.archived
	return one, rest
}

// merge returns st with the sale of one added after its own.
func (st *state) merge(one *state) *state {
	m := newState()
	partitionSales([]*state{st, one}, []*state{m}, func(string) int { return 0 })
	m.creds, m.audit, m.archived = st.creds, st.audit, st.archived
	return m
}

// replaceWith makes n the state. What the loop keeps about the state
// across batches (touched sales, by id; replaying) carries over; the sale
// indexes change, so the shard rebuilds its view slots (reshaped).
func (st *state) replaceWith(n *state) {
	touched := make([]string, 0, len(st.touched))
	for _, si := range st.touched {
		touched = append(touched, st.sales[si].cfg.ID)
	}
	replaying := st.replaying
	*st = *n
	st.replaying, st.rebuilt, st.reshaped = replaying, true, true
	for _, id := range touched {
		if _, si := st.saleByID(id); si >= 0 {
			st.touch(si)
		}
	}
}

// partitionSales moves every sale of old, with its orders in their order and
// everything that belongs to them, to states[route(sale id)]. States not
// per sale (credentials, audit, archived sales) are the caller's.
func partitionSales(old, states []*state, route func(saleID string) int) {
	for _, dst := range states {
		dst.replaying = old[0].replaying
	}
	for _, st := range old {
		newIdx := make([]int32, len(st.sales))
		for i, sl := range st.sales {
			dst := states[route(sl.cfg.ID)]
			nsl := dst.insertSale(sl.cfg, sl.closed)
			nsl.pk, nsl.coupons = sl.pk, sl.coupons
			nsl.archiveGen, nsl.unarchivedAt = sl.archiveGen, sl.unarchivedAt
			nsl.pays = slices.Clone(sl.pays) // paycurve.go
			newIdx[i] = int32(len(dst.sales) - 1)
		}
		for i := int32(0); i < st.orders.n; i++ {
			o := *st.orders.at(i)
			dst := states[route(st.sales[o.sale].cfg.ID)]
			o.sale = newIdx[o.sale]
			dst.insertOrder(o)
			if c, ok := st.charges[o.key]; ok {
				if dst.charges == nil {
					dst.charges = make(map[orderKey][]DuplicateCharge)
				}
				dst.charges[o.key] = c
			}
			if p, ok := st.payouts[o.key]; ok { // payouts.go
				if dst.payouts == nil {
					dst.payouts = make(map[orderKey][]payout)
				}
				dst.payouts[o.key] = p
			}
		}
	}
	moveBoxOffice(old, states, route)
	moveRealName(old, states, route)
	moveRefunds(old, states, route)     // refundrules.go
	moveExchanges(old, states, route)   // exchanges.go
	moveXSession(old, states, route)    // xsession.go
	moveQueues(old, states, route)      // queue.go
	moveOffers(old, states, route)      // offers.go
	repartitionDoor(old, states, route) // checkin.go
}

// moveArchived files each archived sale on the shard that owns it under a
// new shard count (repartition).
func moveArchived(old, states []*state) {
	for _, st := range old {
		for id, a := range st.archived {
			states[shardIndex(id, len(states))].archived[id] = a
		}
	}
}

// archiveDue returns a sale the automatic rule archives at now, if any:
// the first in creation order, one per call.
func (st *state) archiveDue(now, afterMs int64) (string, bool) {
	for _, sl := range st.sales {
		starts := sl.cfg.Catalogue.StartsAtMs
		if starts == 0 {
			starts = sl.cfg.ClosesAtMs
		}
		if now >= starts+afterMs && now >= sl.unarchivedAt+afterMs && sl.archivable() && !st.xsUnsettled(sl) {
			return sl.cfg.ID, true
		}
	}
	return "", false
}

// publishable is a copy of the archived sale's view to publish: publish
// stamps a version on what it is given from the acker's goroutine, while
// the state's own view stays the shard's.
func (a *archivedSale) publishable() *Sale {
	v := a.view.clone()
	return &v
}

func (st *state) answerArchive(cmd *command, res *result) {
	if a := st.archived[cmd.saleID]; a != nil {
		res.sale = a.view.clone()
		return
	}
	sl, _ := st.saleByID(cmd.saleID)
	res.sale = saleView(sl)
}

// Events: SaleArchived and SaleUnarchived, both "at saleID gen".

func appendArchiveEvent(b []byte, ev *event) []byte {
	b = binary.AppendVarint(b, ev.at)
	b = appendString(b, ev.saleID)
	return binary.AppendUvarint(b, uint64(ev.gen))
}

func decodeArchiveEvent(d *decoder, ev *event) {
	ev.at = d.varint()
	ev.saleID = d.str(IDLenMax)
	ev.gen = uint32(d.uvarint(1<<32 - 1))
	if ev.gen == 0 {
		d.fail("archive generation 0")
	}
}

// Snapshot sections. archivedSectionTag: the shard's archived sales, by id:
//
//	n {id gen len(view) view(JSON)}
//
// archiveGenSectionTag: the live sales that were archived before:
//
//	n {sale gen unarchivedAt}
const (
	archivedSectionTag   = 100
	archiveGenSectionTag = 101
)

func init() {
	registerSnapshotSection(snapshotSection{
		tag: archivedSectionTag,
		freeze: func(st *state) func([]byte) []byte {
			if len(st.archived) == 0 {
				return nil
			}
			list := make([]*archivedSale, 0, len(st.archived))
			for _, a := range st.archived {
				list = append(list, a) // immutable: shared with the writer
			}
			slices.SortFunc(list, func(a, b *archivedSale) int { return strings.Compare(a.id, b.id) })
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(len(list)))
				for _, a := range list {
					view, err := json.Marshal(a.view)
					if err != nil {
						panic(newInvariantError("archived view of %q: %v", a.id, err))
					}
					b = appendString(b, a.id)
					b = binary.AppendUvarint(b, uint64(a.gen))
					b = appendString(b, string(view))
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(uint64(len(body)))
			for range n {
				a := &archivedSale{id: d.str(IDLenMax), gen: uint32(d.uvarint(1<<32 - 1))}
				view := d.raw(d.uvarint(1 << 24))
				if d.err != nil {
					break
				}
				a.view = new(Sale)
				if err := json.Unmarshal(view, a.view); err != nil || a.view.ID != a.id || !a.view.Archived {
					return fmt.Errorf("%w: archived sale %q: bad view", errCorrupt, a.id)
				}
				if _, live := st.saleIdx[a.id]; live {
					return fmt.Errorf("%w: sale %q both live and archived", errCorrupt, a.id)
				}
				a.view.Version = 0
				st.archived[a.id] = a
			}
			if err := d.check("archived sales"); err != nil {
				return err
			}
			if len(d.b) != 0 || len(st.archived) != int(n) {
				return fmt.Errorf("%w: archived sales: bad section", errCorrupt)
			}
			return nil
		},
	})
	registerSnapshotSection(snapshotSection{
		tag: archiveGenSectionTag,
		freeze: func(st *state) func([]byte) []byte {
			type gen struct {
				sale        int
				gen         uint32
				unarchiveAt int64
			}
			var list []gen
			for i, sl := range st.sales {
				if sl.archiveGen > 0 {
					list = append(list, gen{i, sl.archiveGen, sl.unarchivedAt})
				}
			}
			if len(list) == 0 {
				return nil
			}
			return func(b []byte) []byte {
				b = binary.AppendUvarint(b, uint64(len(list)))
				for _, g := range list {
					b = binary.AppendUvarint(b, uint64(g.sale))
					b = binary.AppendUvarint(b, uint64(g.gen))
					b = binary.AppendVarint(b, g.unarchiveAt)
				}
				return b
			}
		},
		restore: func(st *state, body []byte) error {
			d := decoder{b: body}
			n := d.uvarint(uint64(len(st.sales)))
			for range n {
				si := d.uvarint(uint64(max(len(st.sales)-1, 0)))
				gen := uint32(d.uvarint(1<<32 - 1))
				at := d.varint()
				if d.err != nil {
					break
				}
				st.sales[si].archiveGen, st.sales[si].unarchivedAt = gen, at
			}
			if err := d.check("archive generations"); err != nil {
				return err
			}
			if len(d.b) != 0 {
				return fmt.Errorf("%w: archive generations: bytes left over", errCorrupt)
			}
			return nil
		},
	})
}

// Archive moves a sale out of memory (see the rule above) and returns its
// final view, Archived set. It is answered once the archive is durable.
func (e *Engine) Archive(ctx context.Context, saleID string) (Sale, error) {
	if e.store == nil {
		return Sale{}, errNoArchiveStore
	}
	start := time.Now()
	var out Sale
	err := e.one(ctx, saleID, command{kind: cmdArchive, saleID: saleID, archive: &archiveCommand{}},
		func(res *result) { out = res.sale })
	if err == nil {
		e.archiveM.archiveSeconds.UpdateDuration(start)
	}
	return out, err
}

// Unarchive brings an archived sale back into its shard's memory and
// returns its live view; a live sale is returned unchanged. The sale is
// read from disk on the caller's goroutine, then applied by its shard.
func (e *Engine) Unarchive(ctx context.Context, saleID string) (Sale, error) {
	if e.store == nil {
		return Sale{}, errNoArchiveStore
	}
	start := time.Now()
	var out Sale
	cmd := &archiveCommand{}
	for attempt := 0; ; attempt++ {
		err := e.one(ctx, saleID, command{kind: cmdUnarchive, saleID: saleID, archive: cmd},
			func(res *result) { out = res.sale })
		if err == nil && !out.Archived {
			e.archiveM.unarchiveSeconds.UpdateDuration(start)
			return out, nil
		}
		if err != nil && !isArchivedRejection(err) {
			return out, err
		}
		if attempt == 3 {
			return Sale{}, fmt.Errorf("engine: sale %q was archived again at each of 3 attempts to bring it back", saleID)
		}
		// Archived: read the newest generation and ask again with it.
		gen, loaded, err := e.loadNewestArchived(saleID)
		if err != nil {
			return Sale{}, err
		}
		cmd = &archiveCommand{gen: gen, loaded: loaded}
	}
}

// loadNewestArchived reads the newest generation of an archived sale.
func (e *Engine) loadNewestArchived(saleID string) (uint32, *state, error) {
	defer e.readingArchive()()
	gen, err := archivedGen(e.store, saleID)
	if err != nil {
		return 0, nil, err
	}
	loaded, err := loadArchived(e.store, saleID, gen)
	return gen, loaded, err
}

// readingArchive marks an archive read in flight until the function it
// returns is called: a snapshot's writer deletes no old generation
// meanwhile (archive_prune.go), since the read may have found the sale's
// newest generation before it was archived again.
func (e *Engine) readingArchive() func() {
	e.archiveReads.Add(1)
	return func() { e.archiveReads.Add(-1) }
}

// archiveAnswers reports whether fromArchive answers a command on an
// archived sale (then the shard does not audit its rejection: the answer is
// audited).
func archiveAnswers(kind cmdKind) bool {
	switch kind {
	case cmdGetOrder, cmdSaleOrders, cmdSaleAttendees, cmdUserOrders, cmdTickets, cmdSaleReport, cmdRevocations,
		cmdTicketKeys, cmdCoupons, cmdPay, cmdRefund, cmdCancel, cmdCounterPay:
		return true
	}
	return false
}

func isArchivedRejection(err error) bool {
	var rej *Rejection
	return errors.As(err, &rej) && rej.Code == CodeSaleArchived
}

// fromArchive answers a request that the shard refused because its sale is
// archived, if it is one the archive answers: an order, a page of orders or
// of attendees from their records; other reads on the sale read back from disk; a late
// payment, refund, cancel or counter payment after bringing the sale back.
// It returns the shard's rejection otherwise.
func (e *Engine) fromArchive(ctx context.Context, saleID string, r *request, rej error) error {
	defer e.readingArchive()()
	cmd := r.cmd
	switch cmd.kind {
	case cmdGetOrder:
		o, ok, err := archivedOrder(e.store, saleID, cmd.order)
		if err != nil {
			return err
		}
		if !ok || cmd.userID != "" && o.UserID != cmd.userID {
			return reject(CodeUnknownOrder, "no order %q", formatOrderID(saleID, cmd.order))
		}
		r.res = result{order: o, orderKey: cmd.order}
		return nil
	case cmdSaleOrders:
		orders, next, err := archivedOrders(e.store, saleID, cmd.after, cmd.limit)
		if err != nil {
			return err
		}
		r.res = result{orders: orders, next: next}
		return nil
	case cmdSaleAttendees:
		rows, next, err := archivedAttendees(e.store, saleID, cmd.after, cmd.limit)
		if err != nil {
			return err
		}
		r.res = result{reports: &reportResult{attendees: rows, next: next}}
		return nil
	}
	if !archiveAnswers(cmd.kind) {
		return rej
	}
	gen, err := archivedGen(e.store, saleID)
	if err != nil {
		return err
	}
	st, err := loadArchived(e.store, saleID, gen)
	if err != nil {
		return err
	}
	var res result
	if evs := st.execute(&cmd, e.cfg.Now().UnixMilli(), &res, nil); len(evs) == 0 {
		r.res = res           // a read, or a write that changes nothing (a replayed payment event)
		if cmd.audit != nil { // the shard left it to this answer
			outcome := "ok"
			if res.rej != nil {
				outcome = string(res.rej.Code)
			}
			if err := e.RecordAudit(ctx, *cmd.audit, outcome); err != nil {
				return err
			}
		}
		if res.rej != nil {
			return res.rej
		}
		return nil
	}
	// It changes the sale: bring the sale back (not an admin's unarchive:
	// the command is audited, not this) and decide it there.
	if _, err := e.Unarchive(context.WithValue(ctx, auditKey{}, (*AuditEntry)(nil)), saleID); err != nil {
		return err
	}
	r.res = result{}
	e.archiveM.lateWrites.Inc()
	return e.call(ctx, saleID, r)
}

// archiveMetrics: the engine's archive figures.
type archiveMetrics struct {
	archiveSeconds, unarchiveSeconds *metrics.PrometheusHistogram
	lateWrites                       *metrics.Counter
}

func newArchiveMetrics(set *metrics.Set, e *Engine) archiveMetrics {
	m := archiveMetrics{
		archiveSeconds:   set.NewPrometheusHistogramExt("onsale_archive_seconds", shardSecondsBounds),
		unarchiveSeconds: set.NewPrometheusHistogramExt("onsale_unarchive_seconds", shardSecondsBounds),
		lateWrites:       set.NewCounter("onsale_archive_late_writes_total"),
	}
	set.NewGauge("onsale_archived_sales", func() float64 { return float64(e.archivedSales.Load()) })
	set.NewGauge("onsale_archived_orders", func() float64 { return float64(e.archivedOrders.Load()) })
	return m
}

// publishArchived publishes the views of the shard's archived sales (Open)
// and counts them for the metrics.
func (s *shard) publishArchived() {
	var ids []string
	var slots []*viewSlot
	var views []pendingView
	for id, a := range s.st.archived {
		slot := &viewSlot{}
		ids, slots = append(ids, id), append(slots, slot)
		views = append(views, pendingView{slot, a.publishable()})
	}
	s.e.views.add(ids, slots)
	s.e.views.publish(views)
	s.countArchived()
}

func (s *shard) countArchived() {
	var orders int64
	for _, a := range s.st.archived {
		orders += int64(a.view.OrderCount)
	}
	s.e.archivedSales.Add(int64(len(s.st.archived)) - s.archivedSales)
	s.e.archivedOrders.Add(orders - s.archivedOrders)
	s.archivedSales, s.archivedOrders = int64(len(s.st.archived)), orders
}

// stepArchive executes an archive or unarchive command, by a caller or by
// the tick (r nil), and does what follows it on the loop: the sale taken
// out goes with the batch to the committer (archiveRecords), the view slots
// follow the new sale numbers, and an archived sale's final view is
// published with the batch.
func (s *shard) stepArchive(b *batch, cmd *command, res *result, now int64) {
	b.views = s.takeViews(b.views) // every sale has its slot before numbers change
	if cmd.kind == cmdUnarchive && cmd.archive.loaded != nil {
		s.st.staged = cmd.archive.loaded
	}
	s.evs = s.st.execute(cmd, now, res, s.evs[:0])
	s.st.staged = nil
	// Audited once per admin request: an unarchive that must first read the
	// sale (answered "archived") asks again, and only that answer counts.
	retried := cmd.kind == cmdUnarchive && (res.rej == nil && res.sale.Archived || res.rej != nil && res.rej.Code == CodeSaleArchived)
	if !cmd.archive.auto && !retried {
		s.evs = s.st.auditCommand(cmd, now, res, s.evs) // audit.go: in the same entry
	}
	b.data = s.appendEvents(b.data, s.evs)
	if !s.st.reshaped {
		return
	}
	s.st.reshaped = false
	slotsByID := *s.e.views.slots.Load()
	s.slots = s.slots[:0]
	for _, sl := range s.st.sales {
		s.slots = append(s.slots, slotsByID[sl.cfg.ID])
	}
	if one := s.st.archivedOut; one != nil {
		s.st.archivedOut = nil
		a := s.st.archived[cmd.saleID]
		b.archive = append(b.archive, archiveJob{one: one, gen: a.gen})
		b.views = append(b.views, pendingView{slotsByID[cmd.saleID], a.publishable()})
	}
	s.countArchived()
}

// archiveJob is a sale taken out of the shard, on its way to the archive
// with the batch that took it out.
type archiveJob struct {
	one *state
	gen uint32
}

// autoArchive archives, on a tick, a sale the automatic rule finds due.
func (s *shard) autoArchive(b *batch, now int64) {
	after := s.e.cfg.ArchiveAfter.Milliseconds()
	if after <= 0 {
		return
	}
	id, ok := s.st.archiveDue(now, after)
	if !ok {
		return
	}
	var res result
	s.stepArchive(b, &command{kind: cmdArchive, saleID: id, archive: &archiveCommand{auto: true}}, &res, now)
	if res.rej != nil {
		s.e.cfg.Logger.Warn("automatic archive refused", "sale", id, "err", res.rej)
	} else {
		s.e.cfg.Logger.Info("sale archived", "sale", id, "orders", res.sale.OrderCount)
	}
}

// archiveWrites encodes the archive jobs of a group of batches for one
// AppendArchive.
func archiveWrites(group []*batch) (keys, values [][]byte) {
	for _, g := range group {
		for _, job := range g.archive {
			k, v := archiveRecords(job.one, job.gen)
			keys, values = append(keys, k...), append(values, v...)
		}
	}
	return keys, values
}

// archiveCheck reports whether the automatic rule has a sale to archive.
// After a look that found none it looks again a second later; while sales
// are due, at every tick (one is archived per tick).
func (s *shard) archiveCheck(now int64) bool {
	after := s.e.cfg.ArchiveAfter.Milliseconds()
	if after <= 0 || now < s.nextArchiveCheck {
		return false
	}
	_, ok := s.st.archiveDue(now, after)
	if !ok {
		s.nextArchiveCheck = now + 1000
	}
	return ok
}
