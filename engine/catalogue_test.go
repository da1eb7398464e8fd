package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSalePutRecordVersions: a sale with a catalogue is written as a
// version 2 SalePut; one without stays version 1, byte for byte what onsale
// wrote before catalogues; version 2 of another kind, or with an empty
// catalogue, is refused.
func TestSalePutRecordVersions(t *testing.T) {
	evs := seedEvents()
	plain, described := evs[0], evs[1]
	if described.sale.Catalogue == (Catalogue{}) || plain.sale.Catalogue != (Catalogue{}) {
		t.Fatal("seed events changed: want a sale without and one with a catalogue")
	}
	p := appendEvent(nil, &plain)
	d := appendEvent(nil, &described)
	if p[3] != 1 || d[3] != 2 {
		t.Fatalf("record versions %d and %d, want 1 and 2", p[3], d[3])
	}
	// Version 1 is the old layout: the config and nothing after it.
	old := appendSaleConfig([]byte{1, byte(evSalePut)}, plain.sale)
	if !slices.Equal(p[3:], old) {
		t.Fatalf("a sale without catalogue is not the version 1 record:\n%x\n%x", p[3:], old)
	}
	var got SaleConfig
	if err := decodeEntry(d, func(ev *event) error { got = *ev.sale; return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, *described.sale) {
		t.Fatalf("decoded %+v, want %+v", got, *described.sale)
	}

	closed := appendEvent(nil, &evs[2])
	closed[3] = 2
	empty := append([]byte{2, byte(evSalePut)}, appendSaleConfig(nil, plain.sale)...)
	empty = appendCatalogue(empty, &Catalogue{})
	for name, entry := range map[string][]byte{
		"version 2 SaleClosed":   closed,
		"empty catalogue":        append([]byte{byte(len(empty)) | 0x80, byte(len(empty)>>7) | 0x80, 0}, empty...),
		"catalogue cut short":    d[:len(d)-3],
		"unknown version 3":      append(append([]byte{}, d[:3]...), append([]byte{3}, d[4:]...)...),
		"category over 16 bytes": encodeWith(described, func(c *SaleConfig) { c.Category = strings.Repeat("x", 17) }),
	} {
		if err := decodeEntry(entry, func(*event) error { return nil }); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: got %v, want a corruption error", name, err)
		}
	}
}

func encodeWith(ev event, change func(*SaleConfig)) []byte {
	c := *ev.sale
	change(&c)
	ev.sale = &c
	return appendEvent(nil, &ev)
}

// TestCatalogueSnapshot: catalogues survive a snapshot in their own
// section; a state without any writes no section, so its snapshot is the
// one an onsale without catalogues wrote.
func TestCatalogueSnapshot(t *testing.T) {
	st := randomState(rand.New(rand.NewPCG(3, 4)), 300, false)
	if enc := freezeCatalogues(st); enc != nil {
		t.Fatal("a state without catalogues writes a catalogue section")
	}
	cat := seedEvents()[1].sale.Catalogue
	st.sales[1].cfg.Catalogue = cat
	got, err := restoreSnapshot(st.snapshotEncoding())
	if err != nil {
		t.Fatal(err)
	}
	for i := range st.sales {
		if !reflect.DeepEqual(got.sales[i].cfg, st.sales[i].cfg) {
			t.Fatalf("sale %d restored as %+v, want %+v", i, got.sales[i].cfg, st.sales[i].cfg)
		}
	}
	bad := freezeCatalogues(st)(nil)
	bad[1] = 9 // a sale index past the snapshot's sales
	if err := restoreCatalogues(got, bad); !errors.Is(err, errCorrupt) {
		t.Fatalf("section naming sale 9 of 3: got %v", err)
	}
}

func TestValidateCatalogue(t *testing.T) {
	ok := Catalogue{Event: "e-1", Venue: "Salle Pleyel", City: "Paris", StartsAtMs: 1, Category: "theatre",
		ImageURL: "https://cdn.example.com/a.png?w=400", Description: "Line one.\nLine two.\tTabbed."}
	if r := validateCatalogue(&ok); r != nil {
		t.Fatalf("valid catalogue refused: %v", r)
	}
	if r := validateCatalogue(&Catalogue{}); r != nil {
		t.Fatalf("empty catalogue refused: %v", r)
	}
	for _, tc := range []struct {
		name   string
		change func(*Catalogue)
	}{
		{"event with a space", func(c *Catalogue) { c.Event = "my event" }},
		{"venue too long", func(c *Catalogue) { c.Venue = strings.Repeat("v", VenueLenMax+1) }},
		{"venue on two lines", func(c *Catalogue) { c.Venue = "a\nb" }},
		{"city not UTF-8", func(c *Catalogue) { c.City = "\xff" }},
		{"starts_at negative", func(c *Catalogue) { c.StartsAtMs = -1 }},
		{"starts_at past 9999", func(c *Catalogue) { c.StartsAtMs = StartsAtMsMax + 1 }},
		{"category free text", func(c *Catalogue) { c.Category = "Concert" }},
		{"image over http", func(c *Catalogue) { c.ImageURL = "http://cdn.example.com/a.png" }},
		{"image javascript", func(c *Catalogue) { c.ImageURL = "javascript:alert(1)" }},
		{"image relative", func(c *Catalogue) { c.ImageURL = "/a.png" }},
		{"image with credentials", func(c *Catalogue) { c.ImageURL = "https://u:p@cdn.example.com/a.png" }},
		{"image with a quote", func(c *Catalogue) { c.ImageURL = `https://cdn.example.com/a".png` }},
		{"image too long", func(c *Catalogue) { c.ImageURL = "https://x.example/" + strings.Repeat("a", ImageURLLenMax) }},
		{"description too long", func(c *Catalogue) { c.Description = strings.Repeat("d", DescriptionLenMax+1) }},
		{"description with NUL", func(c *Catalogue) { c.Description = "a\x00b" }},
	} {
		c := ok
		tc.change(&c)
		if r := validateCatalogue(&c); r == nil || r.Code != CodeInvalidRequest {
			t.Errorf("%s: got %v, want invalid_request", tc.name, r)
		}
	}
}

// catalogueSales creates n sales with catalogues drawn from rng, a tenth
// without a starts_at, and returns their configs.
func catalogueSales(t testing.TB, e *Engine, clock *fakeClock, rng *rand.Rand, n int) []SaleConfig {
	t.Helper()
	cities := []string{"Paris", "Lyon", "Berlin", "Madrid"}
	var cfgs []SaleConfig
	for i := range n {
		c := testSale(fmt.Sprintf("s%05d", i), clock, 1+rng.IntN(3), 10)
		c.Name = fmt.Sprintf("%s night %d", []string{"Jazz", "Rock", "Opera"}[rng.IntN(3)], i)
		c.Catalogue = Catalogue{
			Event: fmt.Sprintf("e%d", rng.IntN(20)), City: cities[rng.IntN(len(cities))],
			Venue: fmt.Sprintf("Hall %d", rng.IntN(5)), Category: Categories[rng.IntN(len(Categories))],
			StartsAtMs: clock.Ms() + int64(rng.IntN(1000))*3600_000,
		}
		if rng.IntN(10) == 0 {
			c.StartsAtMs = 0
		}
		cfgs = append(cfgs, c)
	}
	for chunk := range slices.Chunk(cfgs, 500) {
		if _, err := e.LoadSales(context.Background(), chunk); err != nil {
			t.Fatal(err)
		}
	}
	return cfgs
}

// naiveCatalogue is the listing by definition: filter every config, sort.
func naiveCatalogue(e *Engine, cfgs []SaleConfig, q *CatalogueQuery, nowMs int64) []string {
	var ids []string
	for _, c := range cfgs {
		v, _ := e.SaleView(c.ID)
		text := strings.ToLower(c.Name + " " + c.Venue + " " + c.City)
		switch {
		case q.FromMs != 0 && (c.StartsAtMs == 0 || c.StartsAtMs < q.FromMs),
			q.ToMs != 0 && (c.StartsAtMs == 0 || c.StartsAtMs >= q.ToMs),
			q.City != "" && !strings.EqualFold(q.City, c.City),
			q.Category != "" && q.Category != c.Category,
			q.Event != "" && q.Event != c.Event,
			q.Available && !canSell(v, nowMs):
			continue
		}
		all := true
		for _, w := range q.Words {
			all = all && strings.Contains(text, strings.ToLower(w))
		}
		if all {
			ids = append(ids, c.ID)
		}
	}
	key := func(id string) int64 {
		v, _ := e.SaleView(id)
		if v.StartsAtMs == 0 {
			return noStartKey
		}
		return v.StartsAtMs
	}
	slices.SortFunc(ids, func(a, b string) int {
		if ka, kb := key(a), key(b); ka != kb {
			if ka < kb {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return ids
}

// TestCatalogueMatchesNaiveListing: random queries, paged to the end, list
// exactly what filtering and sorting every sale lists, while sales change
// under them.
func TestCatalogueMatchesNaiveListing(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 3)
	cfgs := catalogueSales(t, e, clock, rng, 400)
	ctx := context.Background()
	for round := range 60 {
		// Sell some sales out and rename or move others between queries.
		c := &cfgs[rng.IntN(len(cfgs))]
		if round%2 == 0 {
			c.City, c.StartsAtMs = "Lyon", clock.Ms()+int64(rng.IntN(1000))*3600_000
			if _, _, err := e.PutSale(ctx, *c); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, tier := range c.Tiers {
				e.Purchase(ctx, PurchaseRequest{SaleID: c.ID, TierID: tier.ID, Quantity: tier.Stock, UserID: "u", IdempotencyKey: fmt.Sprint(round, tier.ID)})
			}
		}
		q := CatalogueQuery{Limit: 1 + rng.IntN(60)}
		switch rng.IntN(6) {
		case 0:
			q.City = []string{"paris", "LYON", "Berlin"}[rng.IntN(3)]
		case 1:
			q.FromMs = clock.Ms() + int64(rng.IntN(500))*3600_000
			q.ToMs = q.FromMs + int64(rng.IntN(500))*3600_000
		case 2:
			q.Words = []string{[]string{"jazz", "ROCK", "hall 3", "night 1"}[rng.IntN(4)]}
		case 3:
			q.Available, q.Category = true, Categories[rng.IntN(len(Categories))]
		case 4:
			q.Event = fmt.Sprintf("e%d", rng.IntN(20))
		}
		want := naiveCatalogue(e, cfgs, &q, clock.Ms())
		var got []string
		for pages := 0; ; pages++ {
			sales, next := e.Catalogue(&q, clock.Ms())
			if len(sales) > q.Limit || pages > len(cfgs) {
				t.Fatalf("seed %d: page of %d sales for limit %d, or endless paging", seed, len(sales), q.Limit)
			}
			for _, s := range sales {
				got = append(got, s.ID)
			}
			if next == "" {
				break
			}
			var ok bool
			if q.After, ok = ParseCatalogueCursor(next); !ok {
				t.Fatalf("seed %d: cursor %q does not parse", seed, next)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d round %d: query %+v\n got %v\nwant %v", seed, round, q, got, want)
		}
	}
}

func TestCatalogueCursorParse(t *testing.T) {
	c := CatalogueCursor{startKey: 1_900_000_000_000, id: "sale-1"}
	got, ok := ParseCatalogueCursor(c.String())
	if !ok || got != c {
		t.Fatalf("cursor %q parsed as %+v %v", c.String(), got, ok)
	}
	for _, bad := range []string{"x", "AQ", "!!!!", strings.Repeat("A", 200), CatalogueCursor{1, "a b"}.String()} {
		if _, ok := ParseCatalogueCursor(bad); ok {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

// TestSaleViewVersions: each published view of a sale has a version one
// more than the last.
func TestSaleViewVersions(t *testing.T) {
	clock := newFakeClock()
	e := openTest(t, newMemJournal(), clock, 1)
	ctx := context.Background()
	cfg := testSale("s1", clock, 10, 10)
	if _, _, err := e.PutSale(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	v1, _ := e.SaleView("s1")
	if _, _, err := e.Purchase(ctx, PurchaseRequest{SaleID: "s1", TierID: "floor", Quantity: 1, UserID: "u", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	v2, _ := e.SaleView("s1")
	if v1.Version != 1 || v2.Version != 2 {
		t.Fatalf("versions %d then %d, want 1 then 2", v1.Version, v2.Version)
	}
}
