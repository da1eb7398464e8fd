package engine

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// shard owns one state. Four goroutines serve it:
//
//   - the loop (run): the only one that touches the state, and the only
//     select. It decides batches and hands them to the committer in order.
//   - the committer (commit): writes waiting batches to the journal in one
//     Append, in order, without waiting for the sync.
//   - the acker (ack): waits for each Append's sync, in order, then answers
//     its requests. Neither touches the state.
//   - the snapshot writer (snapshots): encodes a frozen view of the state and
//     stores it, off the purchase path.
//
// While the committer syncs batch k, the loop decides batch k+1 (memory runs
// ahead of the log, which only ever frees stock on a crash); answers wait for
// their own batch.
type shard struct {
	pruned map[string]uint32 // archive_prune.go: the snapshot writer's own
	e      *Engine
	id     int
	st     *state
	inbox  chan *request
	quit   chan struct{}

	commitQ chan *batch // decided, waiting for the log; FIFO keeps log order
	ackQ    chan *batch // appended, waiting for the sync
	free    chan *batch // recycled batches; running out stalls the loop (backpressure)
	snapQ   chan *snapshotJob

	seq             uint64 // last seq handed to the committer
	eventsSinceSnap int
	snapBusy        atomic.Bool // a snapshot is being written
	evs             []event     // scratch, reused per command

	pendingOrders atomic.Int64  // published for metrics after each batch
	awaitingSync  atomic.Int64  // requests decided and not yet answered
	durableSeq    atomic.Uint64 // last synced seq (outbox.go)
	m             *shardMetrics

	slots []*viewSlot // published views, by sale index (views.go); loop only

	gatherer *gatherer // committer and acker (gather.go)

	// archive.go, loop only: what the shard last counted into the engine's
	// archive gauges, and when the automatic rule is looked at next.
	archivedSales, archivedOrders int64
	nextArchiveCheck              int64
}

// batch is one decided batch on its way to the log.
type batch struct {
	seq     uint64 // 0: no events (reads and rejections only)
	data    []byte // encoded events
	reqs    []*request
	snap    *snapshotJob     // a snapshot frozen right after this batch
	views   []pendingView    // published once the batch is durable
	creds   *CredentialTable // published once the batch is durable; nil: unchanged
	archive []archiveJob     // sales taken out, written with the batch's entry (archive.go)

	// Stage times, since Engine.started (metrics.go).
	decideStart, decided time.Duration
	appendStart          time.Duration // set by the committer

	// Set by the committer on the first batch of each Append group.
	wait      func() error
	err       error
	appendEnd time.Duration
	entries   int
}

const batchesInFlight = 16

func newShard(e *Engine, id int, st *state, seq uint64, m *engineMetrics) *shard {
	s := &shard{
		e: e, id: id, st: st, seq: seq,
		inbox:   make(chan *request, e.cfg.InboxMax),
		quit:    make(chan struct{}),
		commitQ: make(chan *batch, batchesInFlight),
		ackQ:    make(chan *batch, batchesInFlight),
		free:    make(chan *batch, batchesInFlight),
		snapQ:   make(chan *snapshotJob, 1),
		m:       m.shard(id, e),

		gatherer: newGatherer(e.cfg.SyncGatherMax),
	}
	for range batchesInFlight {
		s.free <- &batch{}
	}
	s.pendingOrders.Store(st.pending)
	s.durableSeq.Store(seq)
	st.queueSeedKey = e.cfg.QueueSeedKey // queue.go
	st.audit.max = e.cfg.AuditMax
	st.audit.trim()
	return s
}

func (s *shard) start(wg *sync.WaitGroup) {
	wg.Add(4)
	go func() { defer wg.Done(); s.run() }()
	go func() { defer wg.Done(); s.commit() }()
	go func() { defer wg.Done(); s.ack() }()
	go func() { defer wg.Done(); s.snapshots() }()
}

func (s *shard) run() {
	defer close(s.commitQ)
	ticker := time.NewTicker(s.e.cfg.TickInterval)
	defer ticker.Stop()
	for {
		var first *request
		select {
		case first = <-s.inbox:
		case <-ticker.C:
			nowMs := s.e.cfg.Now().UnixMilli()
			if at, ok := s.st.nextExpiry(); (!ok || at > nowMs) && !s.archiveCheck(nowMs) && !s.st.queueDue(nowMs) && !s.st.offersDue(nowMs) { // archive.go, queue.go, offers.go
				continue
			}
		case <-s.quit:
			s.refuseQueued()
			return
		}
		b := <-s.free
		now := s.e.cfg.Now().UnixMilli()
		mono := time.Since(s.e.started)
		b.decideStart = mono
		if first != nil {
			s.step(b, first, now, mono)
		} else {
			s.evs = s.st.expireDue(now, s.e.cfg.ExpireMax, s.evs[:0])
			b.data = s.appendEvents(b.data, s.evs)
			s.autoArchive(b, now) // archive.go
		}
	drain:
		for len(b.reqs) < s.e.cfg.BatchMax {
			select {
			case r := <-s.inbox:
				s.step(b, r, now, mono)
			default:
				break drain
			}
		}
		s.seal(b)
		b.decided = time.Since(s.e.started)
		s.m.stages.decide.Update((b.decided - b.decideStart).Seconds())
		s.awaitingSync.Add(int64(len(b.reqs)))
		s.commitQ <- b
	}
}

// step decides one request into the batch.
func (s *shard) step(b *batch, r *request, now int64, mono time.Duration) {
	b.reqs = append(b.reqs, r)
	if len(b.reqs) == 1 { // the batch's oldest request: one observation per batch, not per request
		s.m.stages.inboxWait.Update((mono - r.deadline + s.e.cfg.QueueWaitMax).Seconds())
	}
	if mono > r.deadline {
		r.res.err = ErrOverloaded // waited too long: shed, decide nothing
		s.m.shed.Inc()
		return
	}
	if s.e.failed.Load() {
		r.res.err = ErrStopped
		return
	}
	if r.cmd.kind == cmdTick { // a tick on demand (tests): expire all that is due
		s.evs = s.st.expireDue(now, math.MaxInt32, s.evs[:0])
		b.data = s.appendEvents(b.data, s.evs)
		return
	}
	if r.cmd.kind == cmdLoad {
		s.stepLoad(b, r, now)
		return
	}
	if r.cmd.kind == cmdAuditList {
		s.st.listAudit(r.cmd.auditQ, s.id, &r.res) // audit.go
		return
	}
	if r.cmd.kind == cmdOrderRefs {
		s.st.lookupOrders(r.cmd.refs, &r.res) // outbox.go
		return
	}
	if r.cmd.kind == cmdArchive || r.cmd.kind == cmdUnarchive {
		s.stepArchive(b, &r.cmd, &r.res, now) // archive.go
		return
	}
	if r.cmd.kind == cmdAuditRecord {
		b.data = s.appendEvents(b.data, s.st.recordAudit(r.cmd.audit, r.cmd.key, now, s.evs[:0]))
		return
	}
	s.evs = s.st.execute(&r.cmd, now, &r.res, s.evs[:0])
	if rej := r.res.rej; rej == nil || rej.Code != CodeSaleArchived || s.e.store == nil || !archiveAnswers(r.cmd.kind) {
		s.evs = s.st.auditCommand(&r.cmd, now, &r.res, s.evs) // audit.go: in the same entry; archive.go audits its answers
	}
	b.data = s.appendEvents(b.data, s.evs)
}

// stepLoad is the shard's half of LoadSales: validate every sale of the
// document this shard owns, report, and wait for the caller's verdict.
func (s *shard) stepLoad(b *batch, r *request, now int64) {
	gate := r.cmd.load
	var rej *Rejection
	for i := range r.cmd.sales {
		var scratch result
		if _, rej = s.st.decide(&command{kind: cmdPutSale, sale: &r.cmd.sales[i]}, now, &scratch, s.evs[:0]); rej != nil {
			rej = &Rejection{Code: rej.Code, Message: "sale " + r.cmd.sales[i].ID + ": " + rej.Message}
			break
		}
	}
	gate.prepared <- rej
	commit := false
	if rej == nil {
		select {
		case commit = <-gate.commit:
		case <-s.quit:
		}
	}
	if r.cmd.audit != nil { // audit.go: one entry, with the load's outcome
		outcome := "ok"
		if !commit {
			outcome = "refused"
		}
		defer func() { b.data = s.appendEvents(b.data, s.st.recordAudit(r.cmd.audit, outcome, now, s.evs[:0])) }()
	}
	if !commit {
		return // the caller answers with the first rejection
	}
	for i := range r.cmd.sales {
		cmd := command{kind: cmdPutSale, saleID: r.cmd.sales[i].ID, sale: &r.cmd.sales[i]}
		var res result
		s.evs = s.st.execute(&cmd, now, &res, s.evs[:0])
		if res.rej != nil {
			panic(newInvariantError("load of %q refused after it was validated: %v", cmd.saleID, res.rej))
		}
		b.data = s.appendEvents(b.data, s.evs)
		r.res.sales = append(r.res.sales, res.sale)
	}
}

func (s *shard) appendEvents(data []byte, evs []event) []byte {
	for i := range evs {
		data = appendEvent(data, &evs[i])
	}
	s.eventsSinceSnap += len(evs)
	return data
}

// seal numbers the batch and, when enough has happened since the last
// snapshot, freezes the state for the next one.
func (s *shard) seal(b *batch) {
	if len(b.data) > 0 {
		s.seq++
		b.seq = s.seq
	}
	b.views = s.takeViews(b.views)
	b.creds = s.st.takeCredentialTable()
	if invariantsOn {
		s.st.checkState()
	}
	s.pendingOrders.Store(s.st.pending)
	if s.eventsSinceSnap >= s.e.cfg.SnapshotEvents && !s.snapBusy.Load() {
		s.snapBusy.Store(true)
		s.eventsSinceSnap = 0
		b.snap = s.st.freeze(s.seq)
	}
}

// refuseQueued answers what is left in the inbox at shutdown.
func (s *shard) refuseQueued() {
	for {
		select {
		case r := <-s.inbox:
			r.res.err = ErrStopped
			r.done <- struct{}{}
		default:
			return
		}
	}
}

// commit writes decided batches to the journal in decide order and hands
// them to the acker. Every batch waiting when it wakes goes into one Append;
// it does not wait for the sync, so the next Append joins the next sync
// while this one runs.
func (s *shard) commit() {
	group := make([]*batch, 0, batchesInFlight)
	entries := make([][]byte, 0, batchesInFlight)
	returned := false
	defer func() {
		if !returned {
			// The journal stopped this goroutine (a fatal hook that exits
			// the goroutine, or a panic): refuse what waits, never ack it.
			s.e.fail(errors.New("engine: log writer stopped"))
			for _, g := range group {
				g.err = ErrStopped
				s.ackQ <- g
			}
			for b := range s.commitQ {
				b.err = ErrStopped
				s.ackQ <- b
			}
		}
		close(s.ackQ)
	}()
	for b := range s.commitQ {
		group = append(group[:0], b)
	more:
		for len(group) < batchesInFlight {
			select {
			case b, ok := <-s.commitQ:
				if !ok {
					break more
				}
				group = append(group, b)
			default:
				break more
			}
		}
		group = s.gather(group)
		entries = entries[:0]
		var firstSeq uint64
		for _, g := range group {
			if g.seq != 0 {
				if firstSeq == 0 {
					firstSeq = g.seq
				}
				entries = append(entries, g.data)
			}
		}
		start := time.Since(s.e.started)
		if s.e.failed.Load() {
			group[0].err = ErrStopped
		} else if len(entries) > 0 {
			group[0].entries = len(entries)
			s.gatherer.unsynced.Add(1)
			if keys, values := archiveWrites(group); keys != nil { // archive.go: in the same Pebble batch
				group[0].wait, group[0].err = s.e.store.AppendArchive(s.id, firstSeq, entries, keys, values)
			} else {
				group[0].wait, group[0].err = s.e.cfg.Journal.Append(s.id, firstSeq, entries)
			}
			if group[0].err != nil {
				s.gatherer.unsynced.Add(-1)
			}
			group[0].appendEnd = time.Since(s.e.started)
			s.m.stages.append.Update((group[0].appendEnd - start).Seconds())
		}
		for _, g := range group {
			g.appendStart = start
			s.m.stages.commitWait.Update((start - g.decided).Seconds())
			s.ackQ <- g
		}
		group = group[:0]
	}
	returned = true
}

// ack waits for each appended group's sync, in order, then answers its
// requests. A batch that carries a wait function opens a group; the batches
// after it up to the next one were in the same Append.
func (s *shard) ack() {
	defer close(s.snapQ)
	var err error
	for b := range s.ackQ {
		if err == nil && b.err != nil {
			err = b.err
		}
		if b.wait != nil {
			if err == nil {
				err = b.wait()
			}
			synced := time.Since(s.e.started)
			s.gatherer.syncEnded(synced-b.appendEnd, s.awaitingSync.Load())
			s.m.observeAppend(synced-b.appendStart, b.entries)
			s.m.stages.syncWait.Update((synced - b.appendEnd).Seconds())
		}
		if err != nil {
			s.e.fail(err)
		}
		s.answer(b, err)
	}
}

func (s *shard) answer(b *batch, err error) {
	if err == nil {
		s.e.views.publish(b.views) // before the answers: whoever was answered reads it back
		s.e.publishCredentials(b.creds)
		if b.seq != 0 {
			s.durableSeq.Store(b.seq)
			if s.e.cfg.Outbox != nil {
				s.e.cfg.Outbox.Durable(s.id, b.seq) // outbox.go: a wake-up, never blocks
			}
		}
	}
	durable := time.Since(s.e.started)
	s.awaitingSync.Add(-int64(len(b.reqs)))
	for i, r := range b.reqs {
		if err != nil {
			r.res = result{err: ErrStopped}
		}
		if i == len(b.reqs)-1 { // woken last: its caller observes the answer stage, once per batch
			r.durable = durable
		}
		r.done <- struct{}{}
	}
	if b.snap != nil {
		if err == nil {
			s.snapQ <- b.snap
		} else {
			s.snapBusy.Store(false)
		}
	}
	clear(b.reqs)
	clear(b.views)
	*b = batch{data: b.data[:0], reqs: b.reqs[:0], views: b.views[:0]}
	s.free <- b
}

// snapshots writes the frozen states the loop hands over, one at a time.
func (s *shard) snapshots() {
	for job := range s.snapQ {
		start := time.Now()
		if s.e.cfg.Outbox != nil && !s.e.cfg.Outbox.BeforeTruncate(s.id, job.seq) {
			// outbox.go: never delete what the outbox has not read. The
			// log stays; a later snapshot (or the next start) takes it.
			s.snapBusy.Store(false)
			continue
		}
		chunks := job.encode()
		err := s.e.cfg.Journal.SaveSnapshot(s.id, job.seq, chunks)
		if err != nil {
			// The log is intact; the next snapshot tries again.
			s.e.cfg.Logger.Error("cannot save snapshot", "shard", s.id, "seq", job.seq, "err", err)
		} else {
			s.e.cfg.Logger.Info("snapshot saved", "shard", s.id, "seq", job.seq,
				"orders", job.orders.n, "chunks", len(chunks), "duration", time.Since(start))
			s.pruneArchive(job.prune) // archive_prune.go
		}
		s.snapBusy.Store(false)
	}
}
