package engine

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
)

// recoverStates rebuilds every shard's state from the journal: newest
// snapshot, then each entry after it. If the journal was written with another
// shard count, sales are repartitioned and the journal is reset to one
// snapshot per new shard before anything else is written. It returns the
// states and the last seq of each shard's log.
func recoverStates(j Journal, shards int, logger *slog.Logger) (states []*state, seqs []uint64, err error) {
	defer func() {
		// A snapshot or log that breaks an invariant is corrupt, not a bug
		// to crash on: report it.
		if p := recover(); p != nil {
			ie, ok := p.(invariantError)
			if !ok {
				panic(p)
			}
			states, seqs, err = nil, nil, fmt.Errorf("engine: cannot recover: log is inconsistent: %w", ie)
		}
	}()
	start := time.Now()
	// Recovery builds a large heap that lives on; collecting while it grows
	// only rescans it. Collect less often until it is built.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	stored, err := j.Layout()
	if err != nil {
		return nil, nil, fmt.Errorf("engine: cannot read log layout: %w", err)
	}
	old := make([]*state, stored)
	oldSeqs := make([]uint64, stored)
	var events int
	for i := range stored {
		st, seq, n, err := recoverShard(j, i)
		if err != nil {
			return nil, nil, fmt.Errorf("engine: cannot recover shard %d: %w", i, err)
		}
		old[i], oldSeqs[i] = st, seq
		events += n
	}
	if stored == shards {
		states, seqs = old, oldSeqs
	} else {
		states = repartition(old, shards)
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
	var sales, orders int
	for _, st := range states {
		st.checkState()
		sales += len(st.sales)
		orders += int(st.orders.n)
	}
	logger.Info("state recovered", "shards", shards, "sales", sales, "orders", orders,
		"events_replayed", events, "duration", time.Since(start))
	return states, seqs, nil
}

func recoverShard(j Journal, shard int) (*state, uint64, int, error) {
	st := newState()
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
	events := 0
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
	return st, seq, events, nil
}

// repartition moves every sale, with its orders in their order (and their
// duplicate charges), to the shard that owns it under the new count.
func repartition(old []*state, shards int) []*state {
	states := make([]*state, shards)
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
	return states
}
