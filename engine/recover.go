package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// recoverStates rebuilds every shard's state from the journal: newest
// snapshot, then each entry after it. If the journal was written with another
// shard count, sales are repartitioned and the journal is reset to one
// snapshot per new shard before anything else is written. It returns the
// states and the last seq of each shard's log.
//
// Threading: it runs before any shard starts. Each stored shard is rebuilt
// on a goroutine of its own, which owns that state until recoverStates
// returns; beside it run the shard's log reader (decodeLog, which hands
// decoded events over by channel), the one counting the orders of the log
// after the snapshot (tailCount, which reads the journal and owns nothing
// of the state), the one allocating the order table's next chunks
// (chunkPrefill, which owns each chunk until it sends it) and, for a
// version 3 snapshot, the goroutine filling byKey (keyIndexer, which makes
// byKey and owns it until restore finishes); after replay, checkState's
// two halves read the state on two goroutines while endReplay writes the
// parts they do not read. All of them have ended when recoverStates
// returns.
func recoverStates(j Journal, shards int, logger *slog.Logger) (states []*state, seqs []uint64, err error) {
	start := time.Now()
	// Recovery builds a large heap that lives on; collecting while it grows
	// only rescans it. Collect less often until it is built.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	stored, err := j.Layout()
	if err != nil {
		return nil, nil, fmt.Errorf("engine: cannot read log layout: %w", err)
	}
	// Shards are independent: each is rebuilt on its own goroutine, from its
	// own snapshot and log, and checked there when the layout stays.
	old := make([]*state, stored)
	oldSeqs := make([]uint64, stored)
	events := make([]int, stored)
	errs := make([]error, stored)
	check := stored == shards
	var wg sync.WaitGroup
	for i := range stored {
		wg.Go(func() {
			old[i], oldSeqs[i], events[i], errs[i] = recoverShard(j, i, check)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, nil, fmt.Errorf("engine: cannot recover shard %d: %w", i, err)
		}
	}
	if check {
		states, seqs = old, oldSeqs
	} else {
		if states, err = repartition(old, shards); err != nil {
			return nil, nil, fmt.Errorf("engine: cannot repartition: %w", err)
		}
		if err := checkStates(states); err != nil {
			return nil, nil, err
		}
		snaps := make([][][]byte, shards)
		for i, st := range states {
			snaps[i] = st.snapshotEncoding()
		}
		if err := j.Reset(snaps); err != nil {
			return nil, nil, fmt.Errorf("engine: cannot write the log's new layout: %w", err)
		}
		seqs = make([]uint64, shards)
		if stored > 0 {
			logger.Info("sales repartitioned", "shards_before", stored, "shards", shards)
		}
	}
	var sales, orders, replayed int
	for i, st := range states {
		sales += len(st.sales)
		orders += int(st.orders.n)
		if i < len(events) {
			replayed += events[i]
		}
	}
	logger.Info("state recovered", "shards", shards, "sales", sales, "orders", orders,
		"events_replayed", replayed, "duration", time.Since(start))
	return states, seqs, nil
}

// recoverShard rebuilds one shard: its snapshot, then every entry after it;
// check recounts the result (checkState). A snapshot or log that breaks an
// invariant is corrupt, not a bug to crash on: it is reported as an error.
func recoverShard(j Journal, shard int, check bool) (*state, uint64, int, error) {
	st, seq, err := restoreShard(j, shard)
	if err != nil {
		return nil, 0, 0, err
	}
	return finishShard(j, shard, st, seq, st.orders.n, check)
}

// restoreShard is the first half of recoverShard, which a standby runs
// when it starts following (follow.go): the shard's newest snapshot.
func restoreShard(j Journal, shard int) (st *state, seq uint64, err error) {
	defer recoverInvariant(&err)
	st = newState()
	r := restorer{st: st, tail: countTail(j, shard)}
	defer r.close()
	seq, found, err := j.LoadSnapshot(shard, r.add)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot load snapshot: %w", err)
	}
	if found {
		if err := r.finish(); err != nil {
			return nil, 0, err
		}
	} else if n := r.tail.wait(); n > 0 {
		st.byKey = make(map[orderKey]int32, n)
	}
	st.orders.tail = uint64(r.tail.wait())
	return st, seq, nil
}

// logSpanner is a Journal that can say which entries a shard's log holds
// (wal.Log): those after its snapshot.
type logSpanner interface {
	Span(shard int) (first, last uint64, err error)
}

// tailCount counts, on a goroutine of its own while the snapshot is
// restored, the orders that the shard's log places after its snapshot, so
// that byKey is made for them as well (growing a map of a million keys
// during replay moves each key again) and the order table's prefill covers
// them. It reads each record's kind only. A Journal without Span, or a log
// it cannot read, counts 0: the count only sizes; replay is what reports a
// log it cannot read.
type tailCount struct {
	done   chan struct{}
	orders int
}

func countTail(j Journal, shard int) *tailCount {
	t := &tailCount{done: make(chan struct{})}
	s, ok := j.(logSpanner)
	if !ok {
		close(t.done)
		return t
	}
	go func() {
		defer close(t.done)
		first, _, err := s.Span(shard)
		if err != nil || first == 0 {
			return
		}
		n := 0
		_ = j.Replay(shard, first-1, func(_ uint64, entry []byte) error {
			n += countOrdersPlaced(entry)
			return nil
		})
		t.orders = min(n, tailOrdersMax)
	}()
	return t
}

// wait returns the count once it is counted; 0 for no count (nil).
func (t *tailCount) wait() int {
	if t == nil {
		return 0
	}
	<-t.done
	return t.orders
}

// tailOrdersMax bounds what a count can make recovery allocate ahead.
const tailOrdersMax = 1 << 23

// countOrdersPlaced counts the OrderPlaced records of a log entry (format
// in event.go), up to the first it cannot read.
func countOrdersPlaced(entry []byte) int {
	n := 0
	eachEventKind(entry, func(k eventKind) bool {
		if k == evOrderPlaced {
			n++
		}
		return true
	})
	return n
}

// eachEventKind calls fn with the kind of each record of a log entry
// (format in event.go), without decoding the records, until fn returns
// false or a record cannot be read.
func eachEventKind(entry []byte, fn func(eventKind) bool) {
	for len(entry) > 0 {
		l, w := binary.Uvarint(entry)
		if w <= 0 || l < 2 || l > uint64(len(entry)-w) {
			return
		}
		if !fn(eventKind(entry[w+1])) {
			return
		}
		entry = entry[w+int(l):]
	}
}

// finishShard is the second half, which a standby runs when it takes over:
// every entry after seq, then the recount and the indexes of the orders
// from restored on (the ones before are indexed already).
func finishShard(j Journal, shard int, st *state, seq uint64, restored int32, check bool) (_ *state, _ uint64, events int, err error) {
	defer recoverInvariant(&err)
	if seq, events, err = replay(j, shard, st, seq); err != nil {
		return nil, 0, 0, err
	}
	if err := endShard(st, restored, check); err != nil {
		return nil, 0, 0, err
	}
	return st, seq, events, nil
}

// endShard ends a replay: the recount (if check) and the indexes of the
// orders from restored on.
func endShard(st *state, restored int32, check bool) (err error) {
	defer recoverInvariant(&err)
	if st.rebuilt { // an archive or unarchive renumbered the orders (archive.go)
		restored, st.rebuilt, st.reshaped = 0, false, false
	}
	// checkState reads neither the idempotency index nor the hold heap:
	// recount while endReplay builds them, its two halves on two goroutines
	// (they only read).
	var keysErr, countsErr error
	var wg sync.WaitGroup
	if check {
		wg.Go(func() {
			defer recoverInvariant(&keysErr)
			st.checkKeys()
		})
		wg.Go(func() {
			defer recoverInvariant(&countsErr)
			st.checkCounts()
		})
	}
	endErr := st.endReplay(restored)
	wg.Wait()
	for _, err := range []error{endErr, keysErr, countsErr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// replay applies every entry of the shard's log after seq to st and returns
// the last seq and the number of events. One goroutine reads and decodes the
// log (the journal's iteration and checksums, the codec, interning user ids)
// while this one applies, in log order, blocks of decoded events. However
// replay ends (an error, a panic), the reader has stopped when it returns.
func replay(j Journal, shard int, st *state, seq uint64) (uint64, int, error) {
	blocks := make(chan *eventBlock, replayBlocksInFlight-1)
	free := make(chan *eventBlock, replayBlocksInFlight)
	for range replayBlocksInFlight {
		free <- &eventBlock{events: make([]event, 0, replayBlockEvents)}
	}
	stop := make(chan struct{})
	go decodeLog(j, shard, seq, blocks, free, stop)
	defer func() {
		close(stop)
		for range blocks { // until the reader has closed it
		}
	}()
	prefill := startPrefill(&st.orders, st.orders.tail)
	defer prefill.stop()
	st.replaying = true
	events := 0
	for b := range blocks {
		for i := range b.events {
			if b.events[i].kind == evSaleUnarchived {
				if err := stageUnarchive(j, st, &b.events[i]); err != nil { // archive_store.go
					return 0, 0, fmt.Errorf("entry %d: %w", b.seqs[i], err)
				}
			}
			prefill.feed(&st.orders)
			if err := st.apply(&b.events[i]); err != nil {
				return 0, 0, fmt.Errorf("entry %d: %w", b.seqs[i], err)
			}
		}
		if b.err != nil {
			return 0, 0, b.err // the last block
		}
		events += len(b.events)
		seq = b.last
		b.events, b.seqs = b.events[:0], b.seqs[:0]
		free <- b
	}
	return seq, events, nil
}

const (
	replayBlockEvents    = 1024
	replayBlocksInFlight = 8
)

// eventBlock is a run of decoded events on its way from decodeLog to replay.
type eventBlock struct {
	events []event  // strings are the block's own; sale points to a copy
	seqs   []uint64 // the entry of each event, for errors
	last   uint64   // the last entry read so far
	err    error    // set on the last block if reading or decoding failed
}

// decodeLog reads the shard's log after seq into blocks, each taken from
// free, and closes blocks when the log ends, fails, or stop is closed.
func decodeLog(j Journal, shard int, seq uint64, blocks chan<- *eventBlock, free <-chan *eventBlock, stop <-chan struct{}) {
	defer close(blocks)
	b := <-free
	send := func() bool {
		select {
		case blocks <- b:
		case <-stop:
			return false
		}
		select {
		case b = <-free:
			return true
		case <-stop:
			return false
		}
	}
	dec := &entryDecoder{users: make(map[string]string)} // one event for the whole log
	errStopped := errors.New("engine: replay stopped")
	err := j.Replay(shard, seq, func(s uint64, entry []byte) error {
		if s != seq+1 {
			return fmt.Errorf("%w: entry %d follows %d", errCorrupt, s, seq)
		}
		seq = s
		return dec.decode(entry, func(ev *event) error {
			e := *ev
			if e.sale != nil { // the decoder's, reused for the next SalePut
				cfg := *e.sale
				e.sale = &cfg
			}
			b.events, b.seqs, b.last = append(b.events, e), append(b.seqs, s), s
			if len(b.events) == replayBlockEvents && !send() {
				return errStopped
			}
			return nil
		})
	})
	if errors.Is(err, errStopped) {
		return
	}
	b.last, b.err = seq, err
	select {
	case blocks <- b:
	case <-stop:
	}
}

// endReplay checks and builds what apply and insertOrder left while
// replaying: that no order key was placed twice (each OrderPlaced added one
// to byKey, unless its key was there), the idempotency pairs of the orders
// from the first replayed one on, and the hold heap, sized.
func (st *state) endReplay(from int32) error {
	st.replaying = false
	if len(st.byKey) != int(st.orders.n) {
		return fmt.Errorf("%w: OrderPlaced twice for one order", errCorrupt)
	}
	// A sale with no pair indexed yet (every sale, without a snapshot) is
	// indexed in bulk, its pairs gathered in a slice sized first; the others
	// one pair at a time.
	added := make([]int, len(st.sales))
	for i := from; i < st.orders.n; i++ {
		added[st.orders.at(i).sale]++
	}
	bulk := make([][]idemPair, len(st.sales))
	for si, sl := range st.sales {
		if sl.idem.n == 0 && added[si] > 0 {
			bulk[si] = make([]idemPair, 0, added[si])
		}
	}
	for i := from; i < st.orders.n; i++ {
		o := st.orders.at(i)
		sl, h := st.sales[o.sale], idemHash(o.userID, o.idemKey)
		if sl.idem.n == 0 {
			bulk[o.sale] = append(bulk[o.sale], idemPair{h, i})
		} else {
			st.indexIdem(sl, h, i)
		}
	}
	for si, pairs := range bulk {
		if len(pairs) > 0 {
			st.buildIdem(st.sales[si], pairs)
		}
	}
	st.holds = make(holdHeap, 0, st.pending)
	st.dropStaleHolds()
	return nil
}

// checkStates recounts repartitioned states, one goroutine each.
func checkStates(states []*state) error {
	errs := make([]error, len(states))
	var wg sync.WaitGroup
	for i, st := range states {
		wg.Go(func() {
			defer recoverInvariant(&errs[i])
			st.checkState()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("engine: cannot recover shard %d: %w", i, err)
		}
	}
	return nil
}

// recoverInvariant turns the panic of a broken invariant into *err; other
// panics go on.
func recoverInvariant(err *error) {
	if p := recover(); p != nil {
		ie, ok := p.(invariantError)
		if !ok {
			panic(p)
		}
		*err = fmt.Errorf("log is inconsistent: %w", ie)
	}
}

// repartition moves every sale, with its orders in their order (and their
// duplicate charges), to the shard that owns it under the new count.
func repartition(old []*state, shards int) (states []*state, err error) {
	defer recoverInvariant(&err)
	states = make([]*state, shards)
	for i := range states {
		states[i] = newState()
	}
	if len(old) > 0 {
		partitionSales(old, states, func(saleID string) int { return shardIndex(saleID, shards) }) // archive.go
	}
	moveCredentials(old, states)
	moveWebhooks(old, states) // webhooks.go
	moveFollows(old, states)  // follows.go
	moveAudit(old, states)
	moveArchived(old, states) // archive.go
	return states, nil
}
