package httpapi

import (
	"encoding/json"
	"sync"
	"testing"
)

// TestIdempotencyUnderConcurrency sends one purchase 100 times at once with
// one key: one order is made, answered 201 once and 200 with the same order
// to every other copy; the key with another body is 422; the same key of
// another buyer is another order. The sale holds the tickets of exactly
// those two orders. (Across kill -9: reliability.TestKillRounds.)
func TestIdempotencyUnderConcurrency(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putSale("s1", 50, 4)
	const copies = 100
	statuses := make([]int, copies)
	ids := make([]string, copies)
	var wg sync.WaitGroup
	for i := range copies {
		wg.Go(func() {
			r := e.buy("s1", "u1", "same-key", "floor", 2)
			statuses[i] = r.status
			if r.status == 200 || r.status == 201 {
				ids[i] = r.str("order_id")
			}
		})
	}
	wg.Wait()
	created := 0
	for i := range copies {
		switch {
		case statuses[i] == 201:
			created++
		case statuses[i] != 200:
			t.Fatalf("copy %d answered %d", i, statuses[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("copy %d got order %s, copy 0 got %s", i, ids[i], ids[0])
		}
	}
	if created != 1 {
		t.Fatalf("%d copies answered 201 created, want 1", created)
	}
	e.want(e.buy("s1", "u1", "same-key", "floor", 1), 422, "idempotency_conflict")
	other := e.want(e.buy("s1", "u2", "same-key", "floor", 2), 201, "").str("order_id")
	if other == ids[0] {
		t.Fatalf("another buyer's key returned the first buyer's order %s", other)
	}
	sale := e.want(e.do("GET", "/v1/sales/s1", nil, ""), 200, "").json()
	floor := sale["tiers"].([]any)[0].(map[string]any)
	if floor["held"] != json.Number("4") {
		t.Fatalf("floor holds %v tickets, want the 4 of two orders", floor["held"])
	}
}
