package engine

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkCatalogue: one listing query over 10,000 sales, from the index;
// and the index rebuild that follows a change of a sale's catalogue.
func BenchmarkCatalogue(b *testing.B) {
	clock := newFakeClock()
	e := openTest(b, newMemJournal(), clock, 4)
	catalogueSales(b, e, clock, rand.New(rand.NewPCG(1, 2)), 10_000)
	now := clock.Ms()
	e.Catalogue(&CatalogueQuery{}, now) // builds the index: not a query's cost
	for _, bc := range []struct {
		name string
		q    CatalogueQuery
	}{
		{"sales=10000/first_page", CatalogueQuery{Limit: 50}},
		{"sales=10000/city", CatalogueQuery{City: "berlin", Limit: 50}},
		{"sales=10000/from_to", CatalogueQuery{FromMs: now + 400*3600_000, ToMs: now + 500*3600_000, Limit: 50}},
		{"sales=10000/words", CatalogueQuery{Words: []string{"opera", "hall 3"}, Limit: 50}},
		{"sales=10000/available_category", CatalogueQuery{Available: true, Category: "sport", Limit: 200}},
		{"sales=10000/no_match", CatalogueQuery{Words: []string{"zzz"}, Limit: 50}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e.Catalogue(&bc.q, now)
			}
		})
	}
	b.Run("sales=10000/rebuild", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buildCatalogueIndex(e.views, 0)
		}
	})
}
