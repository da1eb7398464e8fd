package engine

import (
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
func recoverShard(j Journal, shard int, check bool) (st *state, seq uint64, events int, err error) {
	defer recoverInvariant(&err)
	st = newState()
	r := restorer{st: st}
	seq, found, err := j.LoadSnapshot(shard, r.add)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("cannot load snapshot: %w", err)
	}
	if found {
		if err := r.finish(); err != nil {
			return nil, 0, 0, err
		}
	}
	users := make(map[string]string)
	err = j.Replay(shard, seq, func(s uint64, entry []byte) error {
		if s != seq+1 {
			return fmt.Errorf("%w: entry %d follows %d", errCorrupt, s, seq)
		}
		seq = s
		return decodeEntryInterned(entry, users, func(ev *event) error {
			events++
			if err := st.apply(ev); err != nil {
				return fmt.Errorf("entry %d: %w", s, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, 0, err
	}
	st.dropStaleHolds()
	if check {
		st.checkState()
	}
	return st, seq, events, nil
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
	for _, st := range old {
		newIdx := make([]int32, len(st.sales))
		for i, sl := range st.sales {
			dst := states[shardIndex(sl.cfg.ID, shards)]
			dst.insertSale(sl.cfg, sl.closed)
			newIdx[i] = int32(len(dst.sales) - 1)
		}
		for i := int32(0); i < st.orders.n; i++ {
			o := *st.orders.at(i)
			dst := states[shardIndex(st.sales[o.sale].cfg.ID, shards)]
			o.sale = newIdx[o.sale]
			dst.insertOrder(o)
			if c, ok := st.charges[o.key]; ok {
				if dst.charges == nil {
					dst.charges = make(map[orderKey][]DuplicateCharge)
				}
				dst.charges[o.key] = c
			}
		}
	}
	return states, nil
}
