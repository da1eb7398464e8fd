package engine

import (
	"strings"
	"testing"
)

// TestRecoverNamesTheBrokenShard: shards recover in parallel; a corrupt or
// inconsistent log in one of them fails recovery with that shard named, as
// an error, never a panic.
func TestRecoverNamesTheBrokenShard(t *testing.T) {
	cfg := &SaleConfig{ID: "s1", Name: "Sale", Currency: "EUR", OpensAtMs: 1, ClosesAtMs: 2, HoldMs: 1000, PerUserLimit: 4,
		Tiers: []TierConfig{{ID: "floor", Name: "Floor", PriceCents: 5000, Stock: 1}}}
	entry := func(evs ...event) []byte {
		var b []byte
		for i := range evs {
			b = appendEvent(b, &evs[i])
		}
		return b
	}
	place := func(k byte) event {
		return event{kind: evOrderPlaced, at: 1, saleID: "s1", order: orderKey{k}, userID: "u", key: string(rune('a' + k)), qty: 1, amount: 5000, expiresAt: 1001}
	}
	good := entry(event{kind: evSalePut, sale: cfg, saleID: "s1"}, place(1))
	for _, c := range []struct {
		name  string
		entry []byte
		want  string
	}{
		{"corrupt", good[:len(good)-1], "cannot recover shard 2: engine: corrupt log record"},
		{"oversold", entry(event{kind: evSalePut, sale: cfg, saleID: "s1"}, place(1), place(2)), "cannot recover shard 2: log is inconsistent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := newMemJournal()
			j.layout = 3
			for shard := range 3 {
				j.entries[shard] = []memEntry{{1, good}}
			}
			j.entries[2] = []memEntry{{1, c.entry}}
			_, _, err := recoverStates(j, 3, quietLogger)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
		})
	}
}
