package engine

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Published sale views: reads of a sale's availability without entering its
// shard. In a rush, polling outnumbers buying ten to one; sending every
// poll through the shard and its log sync would make each poll as slow as a
// purchase and take the hot sale's one goroutine away from selling.
//
// After each batch the loop builds an immutable Sale for every sale the
// batch changed (state.touched) and attaches it to the batch; the acker
// publishes it in the sale's slot once the batch is durable and before it
// answers the batch's requests. So:
//
//   - nothing a view shows can be undone by a crash (it waits for the sync);
//   - whoever was answered for a write reads it back (published first);
//   - views of a sale only move forward (batches are acked in log order).
//
// Readers load the slot with one atomic load; a view and its slices are
// shared by every reader and never modified.

// viewSlot holds the newest durable view of one sale; nil until the batch
// that created the sale is durable.
type viewSlot struct {
	view atomic.Pointer[Sale]
}

// saleViews maps sale ids to slots. The map is copy-on-write: readers load
// it without a lock; shards add the slots of new sales under mu, rarely.
type saleViews struct {
	slots atomic.Pointer[map[string]*viewSlot]
	mu    sync.Mutex

	// listingGen grows after a view is published whose sale is new or whose
	// name or catalogue changed: the catalogue's index (catalogue.go) is
	// rebuilt when it sees a generation it was not built at.
	listingGen atomic.Uint64
	catalogue  catalogueIndexer
}

func newSaleViews() *saleViews {
	v := &saleViews{}
	m := map[string]*viewSlot{}
	v.slots.Store(&m)
	return v
}

// get returns the newest durable view of a sale, or nil.
func (v *saleViews) get(saleID string) *Sale {
	if slot := (*v.slots.Load())[saleID]; slot != nil {
		return slot.view.Load()
	}
	return nil
}

// all returns every published view, sorted by sale id.
func (v *saleViews) all() []*Sale {
	m := *v.slots.Load()
	out := make([]*Sale, 0, len(m))
	for _, slot := range m {
		if s := slot.view.Load(); s != nil {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *Sale) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// add registers new slots, all at once.
func (v *saleViews) add(ids []string, slots []*viewSlot) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := *v.slots.Load()
	m := make(map[string]*viewSlot, len(old)+len(ids))
	for k, s := range old {
		m[k] = s
	}
	for i, id := range ids {
		m[id] = slots[i]
	}
	v.slots.Store(&m)
}

// pendingView is a view waiting for its batch's sync.
type pendingView struct {
	slot *viewSlot
	view *Sale
}

// touch records that an event changed sale si.
func (st *state) touch(si int32) {
	if sl := st.sales[si]; !sl.touched {
		sl.touched = true
		st.touched = append(st.touched, si)
	}
}

// takeViews builds the views of the sales touched since the last call, in
// the order they were first touched, and forgets them. The slots of sales
// new to the shard are created and registered (still empty: unknown to
// readers until the batch is durable).
func (s *shard) takeViews(out []pendingView) []pendingView {
	var newIDs []string
	var newSlots []*viewSlot
	for _, si := range s.st.touched {
		sl := s.st.sales[si]
		sl.touched = false
		for int(si) >= len(s.slots) {
			slot := &viewSlot{}
			newIDs = append(newIDs, s.st.sales[len(s.slots)].cfg.ID)
			newSlots = append(newSlots, slot)
			s.slots = append(s.slots, slot)
		}
		v := publishedView(sl)
		s.st.viewQueue(sl, v) // queue.go
		out = append(out, pendingView{s.slots[si], v})
	}
	s.st.touched = s.st.touched[:0]
	if len(newIDs) > 0 {
		s.e.views.add(newIDs, newSlots)
	}
	return out
}

// publishedView is saleView sharing the sale's tier configuration, which is
// replaced on change and never modified in place.
func publishedView(sl *sale) *Sale {
	var v *Sale
	if len(sl.tiers) <= len(viewWithFewTiers{}.counts) { // one allocation, not two
		w := &viewWithFewTiers{}
		v = &w.Sale
		v.memo = &w.memo
		v.TierCounts = w.counts[:len(sl.tiers)]
	} else {
		w := &viewWithMemo{}
		v = &w.Sale
		v.memo = &w.memo
		v.TierCounts = make([]TierCounts, len(sl.tiers))
	}
	v.SaleConfig, v.Closed, v.OrderCount = sl.cfg, sl.closed, sl.orders
	for t := range sl.tiers {
		v.TierCounts[t] = sl.tierCounts(t) // packages.go
	}
	return v
}

// viewWithFewTiers holds a view and its counts in one allocation: a view
// is built per batch for every sale the batch changed, and most sales have
// a handful of tiers.
type viewWithFewTiers struct {
	Sale
	counts [4]TierCounts
	memo   ViewMemo
}

// viewWithMemo is a view of more tiers and its memo in one allocation.
type viewWithMemo struct {
	Sale
	memo ViewMemo
}

// ViewMemo keeps one value derived from a published view, made by the
// first reader that needs it and shared by the readers after it: httpapi
// keeps there the view's JSON answer and its ETag, so that a poll of an
// unchanged sale writes stored bytes instead of encoding them again. A view
// never changes, so what is derived from it stays true as long as the view
// is current, and goes away with it: there is nothing to evict. Readers on
// any goroutine may load and store; the value stored must be immutable,
// and of one type.
type ViewMemo struct{ v atomic.Value }

// Memo returns the view's memo; nil for a Sale that is not a published
// view (a copy, an answer to a write), which has nothing to share.
func (s *Sale) Memo() *ViewMemo { return s.memo }

// Load returns the value stored, or nil.
func (m *ViewMemo) Load() any { return m.v.Load() }

// Store replaces the value; a reader racing another stores the same
// derivation, so whichever lands last is as good.
func (m *ViewMemo) Store(v any) { m.v.Store(v) }

// publish makes a durable batch's views visible. Only the acker of the
// sale's shard calls it, so each slot has one writer: the version is
// stamped before the view is shared, and the listing generation moves after
// the store, so that an index built at the new generation sees the view.
func (v *saleViews) publish(views []pendingView) {
	listed := false
	for _, p := range views {
		old := p.slot.view.Load()
		p.view.Version = 1
		if old != nil {
			p.view.Version = old.Version + 1
		}
		// Unchanged strings share their bytes with the old view's, so
		// these compare pointers, not text.
		listed = listed || old == nil || old.Name != p.view.Name || old.Catalogue != p.view.Catalogue
		p.slot.view.Store(p.view)
	}
	if listed {
		v.listingGen.Add(1)
	}
}

// clone returns a copy that shares nothing with the view.
func (s *Sale) clone() Sale {
	c := *s
	c.memo = nil // the copy may be changed: it shares no derivation
	c.Tiers = slices.Clone(s.Tiers)
	c.TierCounts = slices.Clone(s.TierCounts)
	if s.QueueCounts != nil {
		q := *s.QueueCounts
		c.QueueCounts = &q
	}
	return c
}
