package engine

import "sync/atomic"

// Old archive generations. Each time a sale is archived its records are
// written anew under a new generation (archive_store.go), and replaying a
// SaleUnarchived reads the generation it names. A generation older than
// the sale's newest is needed by nothing once a snapshot holds the sale
// at that newest generation: the snapshot replaces every log entry up to
// it (so no SaleUnarchived of an older generation is replayed again),
// reads of an archived sale go to its newest generation (the 'g' record,
// written in the batch of its SaleArchived), and a live sale is served
// from memory. So after each snapshot is saved, its writer deletes, per
// sale the snapshot knows at generation g (archived, or brought back
// from g), the generations below g: one range deletion per sale, in one
// atomic write (ArchivePruner), so that a crash leaves each old
// generation whole or gone, and never touches the newest. A deletion a
// crash lost is made again after the next snapshot of the restarted
// shard. No deletion runs while an archive read is in flight
// (Engine.readingArchive). The newest generation of a sale brought back stays on disk until
// the sale is archived again.

// ArchivePruner deletes archive records: every key in [start, end), in one
// atomic write. The wal package satisfies it; an ArchiveStore without it
// keeps every generation.
type ArchivePruner interface {
	ArchiveDeleteRange(start, end []byte) error
}

// oldGenerations: a sale whose generations below newest may go.
type oldGenerations struct {
	sale   string
	newest uint32
}

// oldGenerations lists the sales of the state with generations older than
// their newest (freeze, on the shard's loop).
func (st *state) oldGenerations() []oldGenerations {
	var out []oldGenerations
	for id, a := range st.archived {
		if a.gen > 1 {
			out = append(out, oldGenerations{id, a.gen})
		}
	}
	for _, sl := range st.sales {
		if sl.archiveGen > 1 {
			out = append(out, oldGenerations{sl.cfg.ID, sl.archiveGen})
		}
	}
	return out
}

// pruneArchiveHook, if set (tests), runs before each deletion; false skips
// it, as a crash between the snapshot and the deletion would.
var pruneArchiveHook atomic.Pointer[func(sale string, newest uint32) bool]

// pruneArchive deletes the generations a saved snapshot made unneeded (the
// snapshot writer, after SaveSnapshot). Each sale's range is deleted once
// per run of the shard.
func (s *shard) pruneArchive(list []oldGenerations) {
	p, ok := s.e.store.(ArchivePruner)
	if !ok || len(list) == 0 {
		return
	}
	if s.e.archiveReads.Load() > 0 {
		// A reader may hold a generation it read as the newest before
		// the sale was archived again: this snapshot deletes nothing, the
		// next one tries again. A reader that starts after this load
		// reads the newest generation's number, written before the
		// snapshot was frozen, so it never meets a deleted one.
		return
	}
	if s.pruned == nil {
		s.pruned = make(map[string]uint32)
	}
	for _, g := range list {
		if s.pruned[g.sale] >= g.newest {
			continue
		}
		if h := pruneArchiveHook.Load(); h != nil && !(*h)(g.sale, g.newest) {
			continue
		}
		if err := p.ArchiveDeleteRange(genStart(g.sale, 1), genStart(g.sale, g.newest)); err != nil {
			s.e.cfg.Logger.Error("cannot delete old archive generations; they stay on disk", "sale", g.sale, "below", g.newest, "err", err)
			continue
		}
		s.pruned[g.sale] = g.newest
		s.e.cfg.Logger.Info("old archive generations deleted", "sale", g.sale, "below", g.newest)
	}
}

// genStart is the first key of a generation's records.
func genStart(sale string, gen uint32) []byte {
	p := archivePrefix(sale, gen, 0)
	return p[:len(p)-1]
}
