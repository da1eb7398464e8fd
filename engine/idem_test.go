package engine

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestIdemHashCollision indexes an order of bob/x under the hash of
// alice/k, as a real collision of the 64-bit hash would, and checks each
// pair still finds its own order.
func TestIdemHashCollision(t *testing.T) {
	st := newState()
	cfg := SaleConfig{ID: "s", Name: "S", Currency: "EUR", OpensAtMs: 0, ClosesAtMs: 10, HoldMs: 1000, PerUserLimit: 9,
		Tiers: []TierConfig{{ID: "t", Name: "T", PriceCents: 1, Stock: 9}}}
	sl := st.insertSale(cfg, false)
	st.replaying = true // insertOrder leaves the index to the test
	b := st.insertOrder(order{key: orderKey{2}, userID: "bob", idemKey: "x", qty: 1, status: StatusPending})
	a := st.insertOrder(order{key: orderKey{1}, userID: "alice", idemKey: "k", qty: 1, status: StatusPending})
	st.replaying = false
	sl.idem.put(idemHash("alice", "k"), b) // first in alice/k's probe run
	sl.idem.put(idemHash("alice", "k"), a)
	sl.idem.put(idemHash("bob", "x"), b)
	for _, c := range []struct {
		user, key string
		want      int32
		found     bool
	}{{"alice", "k", a, true}, {"bob", "x", b, true}, {"bob", "k", 0, false}, {"alice", "x", 0, false}} {
		got, ok := st.findIdem(sl, c.user, c.key)
		if ok != c.found || ok && got != c.want {
			t.Errorf("findIdem(%s, %s) = %d, %v; want %d, %v", c.user, c.key, got, ok, c.want, c.found)
		}
	}
	if idemHash("ab", "c") == idemHash("a", "bc") || idemHash("a", "b") == idemHash("b", "a") {
		t.Error("idemHash does not separate user from key")
	}
}

// TestIdemIndexRepeatedPair indexes two orders with one pair in bulk, as
// restore would from a snapshot that holds them: the first stays found, as
// apply left it.
func TestIdemIndexRepeatedPair(t *testing.T) {
	st := newState()
	cfg := SaleConfig{ID: "s", Name: "S", Currency: "EUR", OpensAtMs: 0, ClosesAtMs: 10, HoldMs: 1000, PerUserLimit: 9,
		Tiers: []TierConfig{{ID: "t", Name: "T", PriceCents: 1, Stock: 9}}}
	sl := st.insertSale(cfg, false)
	st.replaying = true
	first := st.insertOrder(order{key: orderKey{1}, userID: "ann", idemKey: "k", qty: 1, status: StatusPending})
	second := st.insertOrder(order{key: orderKey{2}, userID: "ann", idemKey: "k", qty: 1, status: StatusPending})
	st.replaying = false
	st.indexIdem(sl, idemHash("ann", "k"), first)
	st.indexIdem(sl, idemHash("ann", "k"), second)
	if idx, ok := st.findIdem(sl, "ann", "k"); !ok || idx != first || sl.idem.n != 1 {
		t.Fatalf("findIdem = %d, %v with %d pairs; want %d, true with 1", idx, ok, sl.idem.n, first)
	}
}

// TestIdemIndexAgainstMap puts random hashes into an idemIndex, through
// segment doublings, splits and directory doublings, and checks after each
// round that every hash finds exactly the orders a map says it holds. Some
// hashes repeat and many share their top bits (one segment, long runs).
func TestIdemIndexAgainstMap(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, n := range []int{0, 1, 7, 100, 5000, 30_000} {
		for _, sized := range []bool{false, true} {
			var ix idemIndex
			if sized {
				ix = makeIdemIndex(n / 2)
			}
			want := make(map[uint64][]int32)
			var hashes []uint64
			for i := range n {
				var h uint64
				switch r := rng.IntN(10); {
				case r == 0 && len(hashes) > 0:
					h = hashes[rng.IntN(len(hashes))] // a repeated hash
				case r < 3:
					h = 0xabc<<52 | rng.Uint64()>>12 // one segment's share
				default:
					h = rng.Uint64()
				}
				hashes = append(hashes, h)
				ix.put(h, int32(i))
				want[h] = append(want[h], int32(i))
				if i&(i+1) == 0 || i == n-1 { // at 1, 3, 7, 15, ... and the end
					checkIdemIndex(t, &ix, want, rng)
				}
			}
			if ix.n != n || n == 30_000 && ix.depth < 2 {
				t.Fatalf("n=%d: index counts %d, directory depth %d", n, ix.n, ix.depth)
			}
		}
	}
}

func checkIdemIndex(t *testing.T, ix *idemIndex, want map[uint64][]int32, rng *rand.Rand) {
	t.Helper()
	for h, idxs := range want {
		var got []int32
		p := ix.probe(h)
		for range len(idxs) + 1 {
			idx, ok := p.next()
			if !ok {
				break
			}
			got = append(got, idx)
		}
		slices.Sort(got)
		if !slices.Equal(got, idxs) {
			t.Fatalf("hash %x finds %v, want %v", h, got, idxs)
		}
	}
	for range 100 {
		h := rng.Uint64()
		if _, held := want[h]; held {
			continue
		}
		p := ix.probe(h)
		if idx, ok := p.next(); ok {
			t.Fatalf("hash %x not put finds %d", h, idx)
		}
	}
	// A segment of depth d fills an aligned run of the directory, and holds
	// the hashes whose top d bits name that run.
	total := 0
	for i, s := range ix.dir {
		if s.depth > ix.depth {
			t.Fatalf("directory entry %d: segment depth %d > %d", i, s.depth, ix.depth)
		}
		run := 1 << (ix.depth - s.depth)
		if i%run != 0 {
			continue
		}
		for j := i; j < i+run; j++ {
			if ix.dir[j] != s {
				t.Fatalf("directory entries %d and %d: segment of depth %d split", i, j, s.depth)
			}
		}
		held := 0
		for _, sl := range s.slots {
			if sl.idx1 == 0 {
				continue
			}
			held++
			if h := sl.hash(); s.depth > 0 && int(h>>(64-uint(s.depth))) != i/run {
				t.Fatalf("hash %x in the segment of directory entry %d", h, i)
			}
		}
		if held != s.n || 4*held > 3*len(s.slots) {
			t.Fatalf("segment of entry %d holds %d of %d slots, counts %d", i, held, len(s.slots), s.n)
		}
		total += held
	}
	if total != ix.n {
		t.Fatalf("segments hold %d pairs, index counts %d", total, ix.n)
	}
}
