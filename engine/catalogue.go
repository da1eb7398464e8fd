package engine

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// The catalogue: the public listing of sales (GET /v1/sales), filtered by
// what the sales' catalogues say and paged by an opaque cursor, in the
// order (starts_at, sale id), sales without a starts_at last.
//
// It is served beside the shards, from the published views only: an index
// sorted in that order, built from the views, holds each sale's sort key,
// its searchable text and its view slot; a query walks the index from the
// cursor and reads live counts from the slots. The index is rebuilt by the
// first query that sees the listing generation move (views.go: a sale
// created, renamed or re-described), so it costs nothing while a rush only
// changes counts, and a rebuild takes a few milliseconds at 10,000 sales
// (catalogue_bench_test.go). No shard is entered and no shard waits.

// CatalogueQuery is a listing request. Zero fields do not filter.
type CatalogueQuery struct {
	// FromMs and ToMs bound StartsAtMs: FromMs <= starts_at < ToMs; 0 does
	// not bound (a starts_at is never 0: that is a sale without one). With
	// either set, sales without a starts_at are left out.
	FromMs, ToMs int64
	City         string   // equal, ignoring case
	Venue        string   // equal, ignoring case
	Category     string   // equal
	Event        string   // equal
	Words        []string // each in the name, venue or city, ignoring case
	// Available keeps only sales that can still sell a ticket: not closed
	// (by an admin or by closes_at at nowMs), a tier with tickets left.
	Available bool
	Limit     int // 1 to CatalogueLimitMax
	After     CatalogueCursor
}

// Catalogue listing bounds.
const (
	CatalogueLimitMax = 200
	CatalogueWordsMax = 8
)

// CatalogueCursor is the position after a page: the sort key of its last
// sale. The zero value is the start.
type CatalogueCursor struct {
	startKey int64
	id       string
}

// String is the cursor as a client carries it: opaque, URL-safe.
func (c CatalogueCursor) String() string {
	if c.id == "" {
		return ""
	}
	b := []byte{1} // format version
	b = binary.AppendVarint(b, c.startKey)
	b = append(b, c.id...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCatalogueCursor reads a cursor that String wrote; ok is false for
// anything else.
func ParseCatalogueCursor(s string) (c CatalogueCursor, ok bool) {
	if s == "" {
		return CatalogueCursor{}, true
	}
	if len(s) > 2*IDLenMax {
		return CatalogueCursor{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != 1 {
		return CatalogueCursor{}, false
	}
	key, n := binary.Varint(b[1:])
	if n <= 0 {
		return CatalogueCursor{}, false
	}
	id := string(b[1+n:])
	if !validID(id) {
		return CatalogueCursor{}, false
	}
	return CatalogueCursor{key, id}, true
}

// Catalogue lists the sales a query matches, at most q.Limit, and the
// cursor of the next page ("" on the last). The views are shared: callers
// must not modify them.
func (e *Engine) Catalogue(q *CatalogueQuery, nowMs int64) ([]*Sale, string) {
	idx := e.views.catalogue.current(e.views)
	limit := min(max(q.Limit, 1), CatalogueLimitMax)
	words := make([]string, 0, len(q.Words))
	for _, w := range q.Words {
		words = append(words, strings.ToLower(w))
	}
	bounded := q.FromMs != 0 || q.ToMs != 0
	i := idx.search(q.After)
	if q.FromMs != 0 {
		i = max(i, idx.search(CatalogueCursor{startKey: q.FromMs}))
	}
	var out []*Sale
	last := -1 // the entry of out's last sale
	for ; i < len(idx.entries); i++ {
		en := &idx.entries[i]
		if bounded && (en.startKey == noStartKey || q.ToMs != 0 && en.startKey >= q.ToMs) {
			break // the rest start later, or not at all
		}
		if !en.matches(q, words) {
			continue
		}
		v := en.slot.view.Load()
		if q.Available && !canSell(v, nowMs) {
			continue
		}
		if len(out) == limit { // one more matches: there is a next page
			en := &idx.entries[last]
			return out, CatalogueCursor{en.startKey, en.id}.String()
		}
		out = append(out, v)
		last = i
	}
	return out, ""
}

// canSell: a ticket of the sale could still be bought, now or once it opens.
func canSell(v *Sale, nowMs int64) bool {
	if v.Closed || v.Archived || nowMs >= v.ClosesAtMs {
		return false
	}
	for _, c := range v.TierCounts {
		if c.Available > 0 {
			return true
		}
	}
	return false
}

// noStartKey sorts the sales without a starts_at after every other.
const noStartKey = math.MaxInt64

// catalogueIndex is the listing order at one listing generation. Immutable.
type catalogueIndex struct {
	gen     uint64
	entries []catalogueEntry // by (startKey, id)
}

type catalogueEntry struct {
	startKey int64 // StartsAtMs, or noStartKey
	id       string
	text     string // name, venue and city, lower-cased, NUL between
	built    *Sale  // the view indexed: its name and catalogue are filtered on
	slot     *viewSlot
}

func (en *catalogueEntry) matches(q *CatalogueQuery, words []string) bool {
	c := &en.built.Catalogue
	switch {
	case q.Category != "" && c.Category != q.Category,
		q.Event != "" && c.Event != q.Event,
		q.City != "" && !strings.EqualFold(c.City, q.City),
		q.Venue != "" && !strings.EqualFold(c.Venue, q.Venue):
		return false
	}
	for _, w := range words {
		if !strings.Contains(en.text, w) {
			return false
		}
	}
	return true
}

// search returns the index of the first entry after the cursor.
func (idx *catalogueIndex) search(after CatalogueCursor) int {
	i, _ := slices.BinarySearchFunc(idx.entries, after, func(en catalogueEntry, c CatalogueCursor) int {
		if en.startKey != c.startKey {
			if en.startKey < c.startKey {
				return -1
			}
			return 1
		}
		return strings.Compare(en.id, c.id)
	})
	if i < len(idx.entries) && after.id != "" && idx.entries[i].id == after.id && idx.entries[i].startKey == after.startKey {
		i++
	}
	return i
}

// catalogueIndexer keeps the newest index; a query that finds it stale
// rebuilds it under mu while later queries wait for that rebuild.
type catalogueIndexer struct {
	index atomic.Pointer[catalogueIndex]
	mu    sync.Mutex
}

func (c *catalogueIndexer) current(v *saleViews) *catalogueIndex {
	if idx := c.index.Load(); idx != nil && idx.gen == v.listingGen.Load() {
		return idx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Read the generation before the views: a view published during the
	// build moves it past the one stored, and the next query rebuilds.
	gen := v.listingGen.Load()
	if idx := c.index.Load(); idx != nil && idx.gen == gen {
		return idx
	}
	idx := buildCatalogueIndex(v, gen)
	c.index.Store(idx)
	return idx
}

func buildCatalogueIndex(v *saleViews, gen uint64) *catalogueIndex {
	slots := *v.slots.Load()
	idx := &catalogueIndex{gen: gen, entries: make([]catalogueEntry, 0, len(slots))}
	for id, slot := range slots {
		view := slot.view.Load()
		if view == nil {
			continue // created, not yet durable
		}
		key := int64(noStartKey)
		if view.StartsAtMs != 0 {
			key = view.StartsAtMs
		}
		text := strings.ToLower(view.Name + "\x00" + view.Venue + "\x00" + view.City)
		idx.entries = append(idx.entries, catalogueEntry{key, id, text, view, slot})
	}
	slices.SortFunc(idx.entries, func(a, b catalogueEntry) int {
		if a.startKey != b.startKey {
			if a.startKey < b.startKey {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	return idx
}

// The catalogue's snapshot section: the sales that have a catalogue, by
// index in the snapshot's sale list. The sale list itself (snapshot.go)
// keeps format 4's SaleConfig without catalogues, so snapshots written
// before catalogues existed restore unchanged, and a snapshot with none
// writes no section.
//
//	nsales | {saleIndex catalogue (as in a version 2 SalePut)}*
const snapshotTagCatalogue = 30

func init() {
	registerSnapshotSection(snapshotSection{
		tag:     snapshotTagCatalogue,
		freeze:  freezeCatalogues,
		restore: restoreCatalogues,
	})
}

func freezeCatalogues(st *state) func([]byte) []byte {
	type described struct {
		sale int
		cat  Catalogue // strings are immutable: a copy of the headers suffices
	}
	var sales []described
	for i, sl := range st.sales {
		if sl.cfg.Catalogue != (Catalogue{}) {
			sales = append(sales, described{i, sl.cfg.Catalogue})
		}
	}
	if len(sales) == 0 {
		return nil
	}
	return func(b []byte) []byte {
		b = binary.AppendUvarint(b, uint64(len(sales)))
		for i := range sales {
			b = binary.AppendUvarint(b, uint64(sales[i].sale))
			b = appendCatalogue(b, &sales[i].cat)
		}
		return b
	}
}

func restoreCatalogues(st *state, body []byte) error {
	d := decoder{b: body}
	n := d.uvarint(uint64(len(st.sales)))
	for range n {
		si := d.uvarint(uint64(max(len(st.sales)-1, 0)))
		var c Catalogue
		d.catalogue(&c)
		if d.err != nil {
			break
		}
		st.sales[si].cfg.Catalogue = c
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d bytes left over", len(d.b)))
	}
	if d.err != nil {
		return fmt.Errorf("%w: snapshot catalogue section: %v", errCorrupt, d.err)
	}
	return nil
}
