package engine

import "testing"

// TestIdemHashCollision makes two (user, key) pairs share a hash slot, as a
// real FNV collision would, and checks each still finds its own order.
func TestIdemHashCollision(t *testing.T) {
	st := newState()
	cfg := SaleConfig{ID: "s", Name: "S", Currency: "EUR", OpensAtMs: 0, ClosesAtMs: 10, HoldMs: 1000, PerUserLimit: 9,
		Tiers: []TierConfig{{ID: "t", Name: "T", PriceCents: 1, Stock: 9}}}
	sl := st.insertSale(cfg, false)
	a := st.insertOrder(order{key: orderKey{1}, userID: "alice", idemKey: "k", qty: 1, status: StatusPending})
	// Pretend bob/x hashes where alice/k does.
	delete(sl.idem, idemHash("alice", "k"))
	sl.idem[idemHash("bob", "x")] = a
	b := st.insertOrder(order{key: orderKey{2}, userID: "bob", idemKey: "x", qty: 1, status: StatusPending})
	if len(sl.idemOverflow) != 1 {
		t.Fatalf("the colliding pair did not go to the overflow map: %v", sl.idemOverflow)
	}
	// alice/k is now reachable only through ... nowhere: put it back as a
	// collision victim would be, through putIdem.
	st.putIdem(sl, "alice", "k", a)
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
	if idemHash("ab", "c") == idemHash("a", "bc") {
		t.Error("idemHash does not separate user from key")
	}
}
