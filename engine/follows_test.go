package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestFollowsAreLoggedState: follows are normalized, idempotent, capped
// per buyer, deleted only by their owner, and survive replay and a
// repartition.
func TestFollowsAreLoggedState(t *testing.T) {
	clock := newFakeClock()
	j := newMemJournal()
	e := openTest(t, j, clock, 2)
	ctx := context.Background()
	f, created, err := e.CreateFollow(ctx, Follow{ID: "fol_1", UserID: "ann", Kind: "venue", Value: "  The ARENA "})
	if err != nil || !created || f.Value != "the arena" || f.CreatedAtMs != clock.Ms() {
		t.Fatalf("CreateFollow: %+v %v %v", f, created, err)
	}
	again, created, err := e.CreateFollow(ctx, Follow{ID: "fol_2", UserID: "ann", Kind: "venue", Value: "the arena"})
	if err != nil || created || again != f {
		t.Fatalf("following again: %+v created %v %v, want %+v", again, created, err, f)
	}
	for _, bad := range []Follow{
		{ID: "fol_3", UserID: "ann", Kind: "city", Value: "x"},
		{ID: "fol_3", UserID: "ann", Kind: "venue", Value: "  "},
		{ID: "fol_3", UserID: "ann", Kind: "venue", Value: "a\x01b"},
		{ID: "fol_3", UserID: "ann", Kind: "category", Value: "opera"},
		{ID: "", UserID: "ann", Kind: "event", Value: "e1"},
		{ID: "fol_1", UserID: "ann", Kind: "event", Value: "e1"}, // id taken
	} {
		_, _, err := e.CreateFollow(ctx, bad)
		wantCode(t, err, CodeInvalidRequest)
	}
	for i := 1; i < FollowsPerUserMax; i++ {
		if _, _, err := e.CreateFollow(ctx, Follow{ID: fmt.Sprintf("fol_b%d", i), UserID: "ann", Kind: "event", Value: fmt.Sprintf("E%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = e.CreateFollow(ctx, Follow{ID: "fol_over", UserID: "ann", Kind: "event", Value: "one-too-many"})
	wantCode(t, err, CodeFollowsLimit)
	if _, _, err := e.CreateFollow(ctx, Follow{ID: "fol_bob", UserID: "bob", Kind: "category", Value: "Concert"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.DeleteFollow(ctx, "bob", "fol_1") // ann's
	wantCode(t, err, CodeUnknownFollow)
	if d, err := e.DeleteFollow(ctx, "ann", "fol_b7"); err != nil || d.Value != "e7" {
		t.Fatalf("DeleteFollow: %+v %v", d, err)
	}
	e.Close()

	for _, shards := range []int{2, 3} { // replay, then a repartition
		e2 := openTest(t, j, clock, shards)
		ann, err := e2.Follows(ctx, "ann")
		if err != nil || len(ann) != FollowsPerUserMax-1 || ann[0] != f || slices.ContainsFunc(ann, func(g Follow) bool { return g.ID == "fol_b7" }) {
			t.Fatalf("%d shards: %d follows of ann, first %+v: %v", shards, len(ann), ann[0], err)
		}
		n, err := e2.FollowsCount(ctx)
		if err != nil || n != FollowsPerUserMax {
			t.Fatalf("%d shards: count %d %v", shards, n, err)
		}
		c := Catalogue{Event: "E8", Venue: "the Arena", Category: "concert"}
		got, err := e2.Followers(ctx, FollowMatches(&c), "", 10)
		if err != nil || !slices.Equal(got, []string{"ann", "bob"}) {
			t.Fatalf("%d shards: followers %v %v", shards, got, err)
		}
		if got, _ := e2.Followers(ctx, FollowMatches(&c), "ann", 10); !slices.Equal(got, []string{"bob"}) {
			t.Fatalf("%d shards: followers after ann %v", shards, got)
		}
		c = Catalogue{Event: "E7", Venue: "elsewhere", Category: "sport"}
		if got, _ := e2.Followers(ctx, FollowMatches(&c), "", 10); len(got) != 0 {
			t.Fatalf("%d shards: unfollowed or unmatched, yet followers %v", shards, got)
		}
		e2.Close()
	}
}

// TestFollowsSnapshotSection: the section gives back the same follows.
func TestFollowsSnapshotSection(t *testing.T) {
	st := randomState(rand.New(rand.NewPCG(3, 4)), 50, false)
	for i := range 30 {
		f := Follow{ID: fmt.Sprintf("f%d", i), UserID: fmt.Sprintf("u%d", i%4), Kind: FollowKinds[i%3], Value: fmt.Sprintf("v%d", i%5), CreatedAtMs: int64(i)}
		if f.Kind == "category" {
			f.Value = Categories[i%len(Categories)]
		}
		if st.follows.find(f.UserID, func(g *Follow) bool { return g.Kind == f.Kind && g.Value == f.Value }) >= 0 {
			continue
		}
		if err := st.apply(&event{kind: evFollowed, at: f.CreatedAtMs, follow: &f}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.apply(&event{kind: evUnfollowed, follow: &Follow{ID: "f4", UserID: "u0"}}); err != nil {
		t.Fatal(err)
	}
	got, err := restoreSnapshot(st.snapshotEncoding())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.follows, st.follows) {
		t.Fatalf("restored %+v\nwant %+v", got.follows, st.follows)
	}
}

// TestOnSaleNotification: a sale's creation entry announces it; a later
// put of the same sale does not.
func TestOnSaleNotification(t *testing.T) {
	st := newState()
	cfg := SaleConfig{ID: "s1", Name: "Show", Currency: "EUR", OpensAtMs: 5, ClosesAtMs: 10, HoldMs: 1, PerUserLimit: 1,
		Tiers: []TierConfig{{ID: "t", Name: "T", PriceCents: 1, Stock: 1}}, Catalogue: Catalogue{Venue: "Arena"}}
	kinds := func(evs []event) []string {
		var b []byte
		for i := range evs {
			b = appendEvent(b, &evs[i])
		}
		var out []string
		if err := DecodeNotifications(b, func(n *Notification) {
			out = append(out, n.Kind)
			if n.Kind == NotifyEventOnSale && (n.Sale.Venue != "Arena" || n.Sale.OpensAtMs != 5 || n.SaleID != "s1") {
				t.Errorf("on_sale notification %+v", n)
			}
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	var res result
	evs, rej := st.decide(&command{kind: cmdPutSale, saleID: "s1", sale: &cfg}, 1, &res, nil)
	if rej != nil {
		t.Fatal(rej)
	}
	if got := kinds(evs); !slices.Equal(got, []string{NotifySaleAnnounced, NotifyEventOnSale}) {
		t.Fatalf("creation: %v", got)
	}
	for i := range evs {
		if err := st.apply(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	evs, rej = st.decide(&command{kind: cmdPutSale, saleID: "s1", sale: &cfg}, 2, &res, nil)
	if rej != nil {
		t.Fatal(rej)
	}
	if got := kinds(evs); !slices.Equal(got, []string{NotifySaleAnnounced}) {
		t.Fatalf("update: %v", got)
	}
}
